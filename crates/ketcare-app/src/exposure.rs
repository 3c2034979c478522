//! Exposure beside response, per clinic (`GET /api/v1/pk/exposure-response`, the page
//! `/pk/exposure`): for every signed session, the predicted Cmax and AUC of what was actually
//! given — the same prediction as the session page and its timeline
//! ([`crate::sessions::history::predicted_of`], which `predicted` runs, so the figures cannot
//! differ) — beside the peak
//! CADSS, the lowest MOAA/S and the systolic rise over baseline recorded in that session, grouped
//! by protocol and age band, with a descriptive least-squares line of each response against
//! predicted Cmax and its 95% confidence band.
//!
//! **Descriptive only**: the figures describe this clinic's signed sessions; they are not a
//! dosing recommendation and ketcare never drives a pump. Every fact is loaded from the store
//! (each session record and patient read is an audited access, and the view itself is audited as
//! `pk.exposure.read`).

use crate::error::{Error, Result};
use crate::pk::PkLibrary;
use crate::sessions::history::{PredictedQuery, predicted_of, unpredictable};
use jiff::civil::Date;
use ketcare_clinical::Library;
use ketcare_core::audit::AuditEvent;
use ketcare_core::{Actor, AgeBand, PatientId, Permission, SessionId};
use ketcare_session::session::ScoreKind;
use ketcare_store::Store;
use serde::Serialize;

/// Fewer sessions than this in a group: the group is listed, not fitted.
pub const MIN_SESSIONS_TO_FIT: usize = 5;

/// Said with every answer.
pub const DESCRIPTIVE: &str = "Descriptive of this clinic's signed sessions only: predicted exposure (a model of what was given) beside the responses recorded. It is not a dosing recommendation and does not predict any patient's response; ketcare never drives a pump.";

/// How the baseline of the systolic rise is taken.
pub const BASELINE_DEFINITION: &str = "Baseline systolic: the pre-dose baseline recorded on the session checklist; where it carries no systolic, the last systolic recorded before the first administration. Maximum: the highest systolic recorded (monitor, manual or API) from the first administration to the end of the record. Rise = maximum − baseline (negative when the pressure fell).";

/// The fitting method, in words.
pub const METHOD: &str = "Ordinary least squares of the response on predicted Cmax (y = a + b·Cmax), per protocol and age band, when the group has at least 5 sessions with the response and two different Cmax values. The band is the two-sided 95% confidence interval of the mean response: ŷ ± t(0.975, n−2) · s · √(1/n + (x − x̄)²/Sxx), s the residual standard error. Cmax is the highest value of the typical-person curve on the 1-minute grid; AUC is exact over the prediction's horizon (the last dosing event + 240 min, at least 360 min).";

/// Which sessions to show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub protocol: Option<String>,
    pub age_band: Option<AgeBand>,
}

impl Filter {
    /// Reads `protocol` and `age_band` from query pairs; an unknown protocol or band, or any
    /// other key, is refused naming the field.
    pub fn parse(pairs: &[(String, String)], library: &Library) -> Result<Filter> {
        let mut f = Filter::default();
        for (k, v) in pairs {
            let v = v.trim();
            match k.as_str() {
                "protocol" if v.is_empty() => {}
                "protocol" => {
                    if library.get(v).is_err() {
                        return Err(Error::invalid(
                            "protocol",
                            format!("no protocol `{v}` in the library"),
                        ));
                    }
                    f.protocol = Some(v.to_owned());
                }
                "age_band" if v.is_empty() => {}
                "age_band" => {
                    f.age_band = Some(
                        AgeBand::ALL
                            .into_iter()
                            .find(|b| b.as_str() == v)
                            .ok_or_else(|| {
                                Error::invalid(
                                    "age_band",
                                    format!(
                                        "`{v}` is not an age band (one of {})",
                                        AgeBand::ALL.map(AgeBand::as_str).join(", ")
                                    ),
                                )
                            })?,
                    );
                }
                other => {
                    return Err(Error::invalid(
                        other,
                        "not a filter of this view (protocol, age_band)",
                    ));
                }
            }
        }
        Ok(f)
    }
}

/// One signed session's exposure and responses.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SessionExposure {
    pub session_id: SessionId,
    pub patient_id: PatientId,
    pub protocol_id: String,
    pub protocol_title: String,
    /// The patient's age band on the day of the first administration.
    pub age_band: String,
    /// The day of the first administration (in the session's site's time zone).
    pub date: Date,
    pub drug: String,
    pub route: String,
    pub model: String,
    pub total_mg: f64,
    pub cmax_ng_ml: f64,
    pub tmax_min: f64,
    /// Exact AUC from the first administration to `auc_horizon_min` (ng·min/mL).
    pub auc_ng_min_ml: f64,
    pub auc_horizon_min: f64,
    pub peak_cadss: Option<u32>,
    pub lowest_moaas: Option<u32>,
    pub baseline_systolic: Option<f64>,
    /// `checklist` or `before_first_administration`.
    pub baseline_from: Option<&'static str>,
    pub max_systolic: Option<f64>,
    pub systolic_rise: Option<f64>,
}

/// A point of the fitted line and its band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BandPoint {
    pub cmax_ng_ml: f64,
    pub fitted: f64,
    pub lower: f64,
    pub upper: f64,
}

/// An ordinary least-squares line with its 95% confidence band of the mean.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Ols {
    pub n: usize,
    pub intercept: f64,
    pub slope: f64,
    pub residual_se: f64,
    pub r_squared: Option<f64>,
    pub df: usize,
    /// t(0.975, df).
    pub t_975: f64,
    pub x_mean: f64,
    pub sxx: f64,
    /// The line and band at evenly spaced Cmax values over the observed range.
    pub band: Vec<BandPoint>,
}

impl Ols {
    /// The band's half-width at `x`.
    pub fn half_width(&self, x: f64) -> f64 {
        self.t_975
            * self.residual_se
            * (1.0 / self.n as f64 + (x - self.x_mean).powi(2) / self.sxx).sqrt()
    }
}

/// One response against predicted Cmax in a group.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Fit {
    /// `peak_cadss` or `systolic_rise`.
    pub response: &'static str,
    pub unit: &'static str,
    /// Sessions of the group with this response recorded.
    pub n: usize,
    pub ols: Option<Ols>,
    /// Why there is no line, when there is none.
    pub note: Option<String>,
}

/// The sessions of one protocol and age band.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Group {
    pub protocol_id: String,
    pub protocol_title: String,
    pub age_band: String,
    pub sessions: Vec<SessionExposure>,
    pub cadss: Fit,
    pub systolic_rise: Fit,
}

impl Group {
    /// (predicted Cmax, peak CADSS) of the sessions that recorded a CADSS.
    pub fn cadss_points(&self) -> Vec<(f64, f64)> {
        self.sessions
            .iter()
            .filter_map(|s| s.peak_cadss.map(|c| (s.cmax_ng_ml, f64::from(c))))
            .collect()
    }

    /// (predicted Cmax, systolic rise) of the sessions with a baseline and a later systolic.
    pub fn rise_points(&self) -> Vec<(f64, f64)> {
        self.sessions
            .iter()
            .filter_map(|s| s.systolic_rise.map(|r| (s.cmax_ng_ml, r)))
            .collect()
    }
}

/// A signed session left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Excluded {
    pub session_id: SessionId,
    pub reason: String,
}

/// The clinic's exposure and responses.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExposureResponse {
    pub protocol: Option<String>,
    pub age_band: Option<String>,
    pub groups: Vec<Group>,
    pub excluded: Vec<Excluded>,
    pub method: &'static str,
    pub baseline_definition: &'static str,
    pub descriptive: &'static str,
    pub advisory: &'static str,
}

/// Reads every signed session and its patient (each an audited access), predicts what it gave
/// with [`predicted_of`] (what [`crate::sessions::history::predicted`] runs: the session page's
/// prediction: default model, the record's weight and age on
/// `today`), and groups and fits the responses. Prescribers and nurses — the clinicians who run
/// and sign sessions — may read it.
pub async fn exposure_response(
    store: &dyn Store,
    library: &Library,
    pk: PkLibrary,
    actor: &Actor,
    filter: &Filter,
    today: Date,
) -> Result<ExposureResponse> {
    if !actor.role.is_some_and(|r| r.allows(Permission::RunSession)) {
        return Err(Error::Forbidden(
            "exposure across the clinic's sessions is for the clinicians who run them".into(),
        ));
    }
    let mut rows = Vec::new();
    let mut excluded = Vec::new();
    for sid in store.signed_session_ids().await? {
        match session_exposure(store, library, pk.clone(), actor, sid, today).await? {
            Ok(row) => {
                if filter
                    .protocol
                    .as_ref()
                    .is_some_and(|p| *p != row.protocol_id)
                    || filter.age_band.is_some_and(|b| b.as_str() != row.age_band)
                {
                    continue;
                }
                rows.push(row);
            }
            Err(reason) => excluded.push(Excluded {
                session_id: sid,
                reason,
            }),
        }
    }
    store
        .audit(
            actor,
            AuditEvent::new(
                "pk.exposure.read",
                None,
                format!(
                    "protocol={} age_band={} sessions={}",
                    filter.protocol.as_deref().unwrap_or("*"),
                    filter.age_band.map_or("*", AgeBand::as_str),
                    rows.len()
                ),
            ),
        )
        .await?;
    Ok(ExposureResponse {
        protocol: filter.protocol.clone(),
        age_band: filter.age_band.map(|b| b.as_str().to_owned()),
        groups: group(rows),
        excluded,
        method: METHOD,
        baseline_definition: BASELINE_DEFINITION,
        descriptive: DESCRIPTIVE,
        advisory: ketcare_pk::ADVISORY,
    })
}

/// One session's row, or why it has none (an error of the store is an error of the whole view).
async fn session_exposure(
    store: &dyn Store,
    library: &Library,
    pk: PkLibrary,
    actor: &Actor,
    sid: SessionId,
    today: Date,
) -> Result<std::result::Result<SessionExposure, String>> {
    let r = store.session_record(actor, sid).await?;
    let pt = store.get_patient(actor, r.patient_id).await?;
    let p = match predicted_of(library, pk, &r, &pt, &PredictedQuery::default(), today).await {
        Ok(p) => p,
        Err(e) => return unpredictable(e).map(Err),
    };
    let se = &r.session;
    let started = p.history.started_at;
    let date = started
        .to_zoned(crate::zones::of_site(store, r.site_id).await?)
        .date();
    let Some(day) = pt.record.day_of_care(date, library.age_bands()) else {
        return Ok(Err(
            "the patient's age on the day of the session is unknown".into(),
        ));
    };
    let peak_cadss = se
        .scores
        .iter()
        .filter(|s| s.kind == ScoreKind::Cadss)
        .map(|s| s.value)
        .max();
    let lowest_moaas = se
        .scores
        .iter()
        .filter(|s| s.kind == ScoreKind::Moaas)
        .map(|s| s.value)
        .min();
    let stored = store.session_vitals(actor, sid).await?;
    let baseline_at = se.checklist.baseline.as_ref().map(|b| b.at);
    let (baseline_systolic, baseline_from) = match se
        .checklist
        .baseline
        .as_ref()
        .and_then(|b| b.vitals.systolic)
    {
        Some(s) => (Some(s), Some("checklist")),
        None => {
            let before = stored
                .iter()
                .map(|v| &v.reading)
                .filter(|v| v.at < started)
                .filter_map(|v| v.vitals.systolic.map(|s| (v.at, s)))
                .max_by_key(|(at, _)| *at)
                .map(|(_, s)| s);
            (before, before.map(|_| "before_first_administration"))
        }
    };
    let max_systolic = stored
        .iter()
        .map(|v| &v.reading)
        .filter(|v| v.at >= started && Some(v.at) != baseline_at)
        .filter_map(|v| v.vitals.systolic)
        .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
    let systolic_rise = match (baseline_systolic, max_systolic) {
        (Some(b), Some(m)) => Some(m - b),
        _ => None,
    };
    let key = &p.result.key;
    Ok(Ok(SessionExposure {
        session_id: sid,
        patient_id: r.patient_id,
        protocol_id: se.plan.protocol_id.clone(),
        protocol_title: se.plan.protocol_title.clone(),
        age_band: day.band.as_str().to_owned(),
        date,
        drug: p.history.drug.clone(),
        route: p.history.route.clone(),
        model: p.result.model.id.clone(),
        total_mg: p.history.total_mg,
        cmax_ng_ml: key.cmax_ng_ml,
        tmax_min: key.tmax_min,
        auc_ng_min_ml: key.auc_ng_min_ml,
        auc_horizon_min: p.result.times_min.last().copied().unwrap_or(0.0),
        peak_cadss,
        lowest_moaas,
        baseline_systolic,
        baseline_from,
        max_systolic,
        systolic_rise,
    }))
}

fn band_rank(b: &str) -> usize {
    AgeBand::ALL
        .iter()
        .position(|x| x.as_str() == b)
        .unwrap_or(usize::MAX)
}

fn group(rows: Vec<SessionExposure>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for row in rows {
        match groups
            .iter_mut()
            .find(|g| g.protocol_id == row.protocol_id && g.age_band == row.age_band)
        {
            Some(g) => g.sessions.push(row),
            None => groups.push(Group {
                protocol_id: row.protocol_id.clone(),
                protocol_title: row.protocol_title.clone(),
                age_band: row.age_band.clone(),
                sessions: vec![row],
                cadss: fit("peak_cadss", "points", &[]),
                systolic_rise: fit("systolic_rise", "mmHg", &[]),
            }),
        }
    }
    for g in &mut groups {
        g.cadss = fit("peak_cadss", "points", &g.cadss_points());
        g.systolic_rise = fit("systolic_rise", "mmHg", &g.rise_points());
    }
    groups.sort_by(|a, b| {
        a.protocol_id
            .cmp(&b.protocol_id)
            .then(band_rank(&a.age_band).cmp(&band_rank(&b.age_band)))
    });
    groups
}

/// The descriptive fit of one response, or why there is none.
pub fn fit(response: &'static str, unit: &'static str, points: &[(f64, f64)]) -> Fit {
    let n = points.len();
    let (ols, note) = if n < MIN_SESSIONS_TO_FIT {
        (
            None,
            Some(format!(
                "{n} session(s) with this response: too few to fit a line (at least {MIN_SESSIONS_TO_FIT}); the points are shown as they are"
            )),
        )
    } else {
        match ols(points) {
            Some(o) => (Some(o), None),
            None => (
                None,
                Some("every session has the same predicted Cmax: no line can be fitted".into()),
            ),
        }
    };
    Fit {
        response,
        unit,
        n,
        ols,
        note,
    }
}

/// Points of the band over the observed range.
const BAND_POINTS: usize = 25;

/// Ordinary least squares of y on x with the 95% confidence band of the mean response; `None`
/// with fewer than 3 points or no spread in x.
pub fn ols(points: &[(f64, f64)]) -> Option<Ols> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let x_mean = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let y_mean = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - x_mean).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - x_mean) * (p.1 - y_mean)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - y_mean).powi(2)).sum();
    if sxx <= f64::EPSILON * x_mean.abs().max(1.0) {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = y_mean - slope * x_mean;
    let sse: f64 = points
        .iter()
        .map(|p| (p.1 - intercept - slope * p.0).powi(2))
        .sum();
    let df = n - 2;
    let residual_se = (sse / df as f64).sqrt();
    let t_975 = t_quantile_975(df as f64);
    let lo = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let mut o = Ols {
        n,
        intercept,
        slope,
        residual_se,
        r_squared: (syy > 0.0).then(|| 1.0 - sse / syy),
        df,
        t_975,
        x_mean,
        sxx,
        band: Vec::new(),
    };
    o.band = (0..BAND_POINTS)
        .map(|i| {
            let x = lo + (hi - lo) * i as f64 / (BAND_POINTS - 1) as f64;
            let y = intercept + slope * x;
            let h = o.half_width(x);
            BandPoint {
                cmax_ng_ml: x,
                fitted: y,
                lower: y - h,
                upper: y + h,
            }
        })
        .collect();
    Some(o)
}

/// ln Γ(x), x > 0 (Lanczos, g = 7, 9 terms; relative error below 1e-13).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The continued fraction of the regularized incomplete beta (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The regularized incomplete beta I_x(a, b).
fn beta_inc(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// The upper tail P(T > t) of Student's t with `df` degrees of freedom, t ≥ 0.
fn t_upper_tail(t: f64, df: f64) -> f64 {
    0.5 * beta_inc(df / 2.0, 0.5, df / (df + t * t))
}

/// t(0.975, df): the two-sided 95% quantile of Student's t, by bisection on the tail.
pub fn t_quantile_975(df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 1.0e3_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_upper_tail(mid, df) > 0.025 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-13 {
            break;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_printed_tables() {
        // Two-sided 95% critical values of Student's t (any statistics table).
        for (df, t) in [
            (1.0, 12.706_204_736),
            (2.0, 4.302_652_730),
            (3.0, 3.182_446_305),
            (4.0, 2.776_445_105),
            (10.0, 2.228_138_852),
            (30.0, 2.042_272_456),
            (120.0, 1.979_930_405),
        ] {
            let got = t_quantile_975(df);
            assert!((got - t).abs() < 1e-7, "df {df}: {got} vs {t}");
        }
    }

    #[test]
    fn ols_on_a_hand_worked_line() {
        // Worked by hand: x̄ = 3, ȳ = 7, Sxx = 10.
        let pts = [(1.0, 3.0), (2.0, 6.0), (3.0, 6.0), (4.0, 9.0), (5.0, 11.0)];
        let o = ols(&pts).unwrap();
        // Normal equations: Sxy = Σ(x−3)(y−7) = (−2)(−4)+(−1)(−1)+0+1·2+2·4 = 19.
        assert!((o.slope - 1.9).abs() < 1e-12);
        assert!((o.intercept - (7.0 - 1.9 * 3.0)).abs() < 1e-12);
        // Residuals: 3−3.2, 6−5.1, 6−7, 9−8.9, 11−10.8 → SSE = 0.04+0.81+1+0.01+0.04 = 1.9.
        assert!((o.residual_se - (1.9_f64 / 3.0).sqrt()).abs() < 1e-12);
        let h = o.half_width(3.0);
        assert!((h - 3.182_446_305 * (1.9_f64 / 3.0).sqrt() * (0.2_f64).sqrt()).abs() < 1e-7);
        assert_eq!(o.band.len(), BAND_POINTS);
        assert!((o.band[0].cmax_ng_ml - 1.0).abs() < 1e-12);
        assert!((o.band[BAND_POINTS - 1].cmax_ng_ml - 5.0).abs() < 1e-12);
    }

    fn row(sid: i64, protocol: &str, band: &str, cmax: f64, cadss: Option<u32>) -> SessionExposure {
        SessionExposure {
            session_id: SessionId::new(sid),
            patient_id: PatientId::new(1),
            protocol_id: protocol.into(),
            protocol_title: protocol.into(),
            age_band: band.into(),
            date: Date::constant(2026, 12, 6),
            drug: "ketamine".into(),
            route: "iv_infusion".into(),
            model: "domino".into(),
            total_mg: 1.0,
            cmax_ng_ml: cmax,
            tmax_min: 1.0,
            auc_ng_min_ml: 1.0,
            auc_horizon_min: 360.0,
            peak_cadss: cadss,
            lowest_moaas: None,
            baseline_systolic: Some(120.0),
            baseline_from: Some("checklist"),
            max_systolic: Some(120.0 + cmax / 10.0),
            systolic_rise: Some(cmax / 10.0),
        }
    }

    #[test]
    fn groups_by_protocol_then_band_and_fits_only_the_sessions_with_the_response() {
        let mut rows = vec![
            row(1, "b-proto", "adult", 10.0, Some(1)),
            row(2, "a-proto", "adult", 10.0, Some(1)),
            row(3, "a-proto", "adolescent", 10.0, Some(1)),
        ];
        for i in 0..6 {
            let c = 20.0 + 10.0 * f64::from(i);
            // One of them without a CADSS: five with the response, six with the rise.
            rows.push(row(
                10 + i64::from(i),
                "b-proto",
                "adult",
                c,
                (i != 2).then_some(i as u32 * 3),
            ));
        }
        let g = group(rows);
        let keys: Vec<(&str, &str, usize)> = g
            .iter()
            .map(|g| {
                (
                    g.protocol_id.as_str(),
                    g.age_band.as_str(),
                    g.sessions.len(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("a-proto", "adolescent", 1),
                ("a-proto", "adult", 1),
                ("b-proto", "adult", 7)
            ]
        );
        let b = &g[2];
        assert_eq!(b.cadss.n, 6);
        assert_eq!(b.systolic_rise.n, 7);
        assert!(b.cadss.ols.is_some() && b.systolic_rise.ols.is_some());
        // The rise is exactly Cmax / 10 here: the line is that, with no residual.
        let o = b.systolic_rise.ols.as_ref().unwrap();
        assert!((o.slope - 0.1).abs() < 1e-12 && o.intercept.abs() < 1e-9);
        assert!(o.residual_se < 1e-9 && o.r_squared.unwrap() > 1.0 - 1e-12);
        assert!(g[0].cadss.ols.is_none() && g[0].cadss.note.as_ref().unwrap().contains("too few"));
    }

    #[test]
    fn too_few_or_no_spread_is_said_not_fitted() {
        let f = fit("peak_cadss", "points", &[(1.0, 1.0); 4]);
        assert!(f.ols.is_none() && f.note.unwrap().contains("too few"));
        let f = fit(
            "peak_cadss",
            "points",
            &[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0), (1.0, 4.0), (1.0, 5.0)],
        );
        assert!(f.ols.is_none() && f.note.unwrap().contains("same predicted Cmax"));
    }
}
