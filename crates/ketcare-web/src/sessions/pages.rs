//! Session pages: the suite dashboard, scheduling a session, the session page (the whole
//! workflow), and the printable signed record.

use super::service;
use crate::AppState;
use crate::auth::Principal;
use crate::clinical;
use crate::error::{AppError, PageError};
use crate::pages::PagePath;
use crate::pages::{Nav, render_html};
use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use ketcare_core::{PatientId, Permission, RecordId, SessionId};
use ketcare_session::alarms::Alarm;
use ketcare_session::session::{AdminEvent, ScoreKind};
use ketcare_session::{Command, Mode, Phase, VitalReading, VitalSource, Vitals};
use ketcare_store::{RecordKind, SessionRecord, StoredVital};

fn pairs(body: &Bytes) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_bytes(body).map_err(|e| AppError::invalid("form", e.to_string()))
}

fn get<'a>(p: &'a [(String, String)], k: &str) -> &'a str {
    p.iter()
        .find(|(a, _)| a == k)
        .map(|(_, v)| v.trim())
        .unwrap_or("")
}

fn time_text(t: &jiff::Timestamp) -> String {
    t.to_zoned(ketcare_app::zones::here())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn hm(t: &jiff::Timestamp) -> String {
    t.to_zoned(ketcare_app::zones::here())
        .strftime("%H:%M:%S")
        .to_string()
}

// ---- Suite dashboard -----------------------------------------------------------------------

pub struct ChairRow {
    pub session_id: SessionId,
    pub chair: String,
    pub patient: String,
    pub mrn: String,
    pub phase: String,
    pub elapsed: String,
    pub latest: String,
    pub trend: String,
    pub next_check: String,
    pub alarms: Vec<AlarmView>,
}

pub struct AlarmView {
    pub id: u32,
    pub session_id: SessionId,
    pub label: String,
    pub detail: String,
    pub action: String,
    pub state: String,
    pub raised: String,
    pub who: String,
    pub open: bool,
    pub acknowledged: bool,
}

fn alarm_view(sid: SessionId, a: &Alarm) -> AlarmView {
    let mut who = Vec::new();
    if let Some(s) = &a.acknowledged {
        who.push(format!("acknowledged by {} at {}", s.by, hm(&s.at)));
    }
    if let Some(s) = &a.resolved {
        who.push(format!(
            "resolved by {} at {}: {}",
            s.by,
            hm(&s.at),
            a.resolution_note.clone().unwrap_or_default()
        ));
    }
    AlarmView {
        id: a.id,
        session_id: sid,
        label: a.kind.label().into(),
        detail: a.detail.clone(),
        action: format!("{} [{}]", a.action.text, a.action.source.join(", ")),
        state: format!("{:?}", a.state).to_lowercase(),
        raised: hm(&a.raised_at),
        who: who.join("; "),
        open: a.is_open(),
        acknowledged: a.acknowledged.is_some(),
    }
}

fn trend(vitals: &[StoredVital]) -> String {
    let n = vitals.len();
    if n < 2 {
        return String::new();
    }
    let (a, b) = (&vitals[n - 2].reading.vitals, &vitals[n - 1].reading.vitals);
    let arrow = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) if y > x => "↑",
        (Some(x), Some(y)) if y < x => "↓",
        (Some(_), Some(_)) => "→",
        _ => "",
    };
    format!(
        "SBP {} HR {} SpO2 {}",
        arrow(a.systolic, b.systolic),
        arrow(a.heart_rate, b.heart_rate),
        arrow(a.spo2, b.spo2)
    )
}

#[derive(Template)]
#[template(path = "sessions_suite.html")]
pub struct SuitePage {
    pub nav: Option<Nav>,
    pub rows: Vec<ChairRow>,
    pub can_act: bool,
}

pub async fn suite(State(s): State<AppState>, p: Principal) -> Result<Response, PageError> {
    let now = service::now(&s)?;
    let mut rows = Vec::new();
    for r in s.store.active_sessions(&p.actor).await? {
        let patient = s.store.get_patient(&p.actor, r.patient_id).await?;
        let vitals = s.store.session_vitals(&p.actor, r.id).await?;
        let se = &r.session;
        rows.push(ChairRow {
            session_id: r.id,
            chair: se.chair.clone(),
            patient: patient.record.full_name(),
            mrn: patient.record.mrn.clone(),
            phase: se.phase.label().into(),
            elapsed: se
                .dose_start()
                .map(|t| format!("{} min", (now.as_second() - t.as_second()) / 60))
                .unwrap_or_default(),
            latest: vitals
                .last()
                .map(|v| format!("{} ({})", v.reading.vitals.summary(), hm(&v.reading.at)))
                .unwrap_or_default(),
            trend: trend(&vitals),
            next_check: se.next_check(now).map(|t| hm(&t)).unwrap_or_default(),
            alarms: se.open_alarms().map(|a| alarm_view(r.id, a)).collect(),
        });
    }
    Ok(render_html(&SuitePage {
        nav: Nav::of(&p),
        rows,
        can_act: p.user.role.allows(Permission::RunSession),
    }))
}

// ---- Scheduling ----------------------------------------------------------------------------

pub struct OrderOption {
    pub id: RecordId,
    pub label: String,
}

pub struct SessionLink {
    pub id: SessionId,
    pub label: String,
}

#[derive(Template)]
#[template(path = "sessions_new.html")]
pub struct NewSessionPage {
    pub nav: Option<Nav>,
    pub patient_id: i64,
    pub patient: String,
    pub orders: Vec<OrderOption>,
    pub sessions: Vec<SessionLink>,
    pub error: String,
    /// The order chosen when the page opens (from the order page's link).
    pub chosen: String,
    /// The patient header (name, MRN, age, weight, allergies, alerts, consent) and tabs.
    pub header: Option<crate::chart::PatientHeader>,
}

async fn new_page(
    s: &AppState,
    p: &Principal,
    id: i64,
    error: String,
    chosen: String,
) -> Result<NewSessionPage, AppError> {
    let pid = PatientId::new(id);
    let patient = s.store.get_patient(&p.actor, pid).await?;
    let mut orders = Vec::new();
    for r in s
        .store
        .patient_records(&p.actor, pid, RecordKind::DoseOrder)
        .await?
    {
        let o = clinical::order_of(&r)?;
        // Only a verified order can be scheduled; the others are listed to say why not.
        orders.push((
            o.order.state != ketcare_clinical::dose::OrderState::Verified,
            OrderOption {
                id: r.id,
                label: format!(
                    "Order {} — {} ({})",
                    r.id,
                    o.order.calculation.protocol_title,
                    o.order.state.label()
                ),
            },
        ));
    }
    orders.sort_by_key(|(not_verified, o)| (*not_verified, std::cmp::Reverse(o.id)));
    let orders = orders.into_iter().map(|(_, o)| o).collect();
    let sessions = s
        .store
        .patient_sessions(&p.actor, pid)
        .await?
        .into_iter()
        .map(|r| SessionLink {
            id: r.id,
            label: format!(
                "Session {} · {} · {} · {}",
                r.id,
                time_text(&r.session.scheduled_for),
                r.session.chair,
                r.session.phase.label()
            ),
        })
        .collect();
    Ok(NewSessionPage {
        nav: Nav::of(p),
        patient_id: id,
        patient: patient.record.full_name(),
        orders,
        sessions,
        error,
        chosen,
        header: crate::chart::header(s, p, pid, "sessions").await.ok(),
    })
}

pub async fn new_session_form(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, PageError> {
    let chosen = q.get("order_id").cloned().unwrap_or_default();
    Ok(render_html(
        &new_page(&s, &p, id, String::new(), chosen).await?,
    ))
}

pub async fn create_session(
    State(s): State<AppState>,
    p: Principal,
    PagePath(id): PagePath<i64>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = pairs(&body)?;
    let order_id: RecordId = get(&f, "order_id")
        .parse()
        .map_err(|_| AppError::invalid("order_id", "choose a dose order"))?;
    let now = service::now(&s)?;
    match service::create(
        &s,
        &p.actor,
        PatientId::new(id),
        order_id,
        get(&f, "chair"),
        now,
    )
    .await
    {
        Ok(rec) => Ok(Redirect::to(&format!("/sessions/{}", rec.id)).into_response()),
        Err(AppError::Invalid(e)) => {
            let msg =
                e.0.iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
            let chosen = get(&f, "order_id").to_owned();
            let mut r = render_html(&new_page(&s, &p, id, msg, chosen).await?);
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

// ---- Session page --------------------------------------------------------------------------

pub struct Row {
    pub label: String,
    pub value: String,
}

pub struct VitalRow {
    pub at: String,
    pub summary: String,
    pub source: String,
    pub by: String,
}

#[derive(Template)]
#[template(path = "sessions_page.html")]
pub struct SessionPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub id: SessionId,
    pub patient_id: i64,
    pub patient: String,
    pub mrn: String,
    pub chair: String,
    pub phase: String,
    pub phase_key: String,
    pub protocol: String,
    pub esketamine: bool,
    pub signed: String,
    pub error: String,
    pub plan: Vec<Row>,
    pub checklist: Vec<Row>,
    pub checklist_missing: Vec<String>,
    pub discharge_missing: Vec<String>,
    pub administrations: Vec<Row>,
    pub vitals: Vec<VitalRow>,
    pub scores: Vec<Row>,
    pub notes: Vec<Row>,
    pub alarms: Vec<AlarmView>,
    pub inactive: Vec<Row>,
    pub transitions: Vec<Row>,
    /// Site settings changed while the session was open, as applied to it.
    pub settings_applied: Vec<Row>,
    pub addenda: Vec<Row>,
    pub next_check: String,
    pub devices: String,
    pub can_run: bool,
    pub can_sign: bool,
    pub has_dose: bool,
    pub show_checklist_form: bool,
    pub show_discharge_form: bool,
    pub in_chair: bool,
    pub rems: Vec<Row>,
    pub measures: Option<super::pre_measures::PreSession>,
    /// The verified order's pump rate (mL/h), pre-filled in the start and rate forms.
    pub ordered_rate: String,
    /// Rates other than the order's, with who, when, why.
    pub deviations: Vec<Row>,
    /// The mg given and running time computed from the record, and the nurse's confirmation.
    pub given: Vec<Row>,
    /// Whether the confirm/correct form is offered, and its pre-filled mg.
    pub show_given_form: bool,
    pub given_prefill: String,
    /// The session timeline (predicted concentration, vitals, scores, administrations, alarms).
    pub tl: super::history::TimelineView,
}

fn yes(v: Option<bool>) -> String {
    match v {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => "—".into(),
    }
}

/// "NOT the ordered rate: …": the flag a rate other than the verified order's carries.
pub fn deviation_text(d: &ketcare_session::RateDeviation) -> String {
    let mut t = format!(
        "NOT the ordered rate: given {} mL/h, ordered {} mL/h — reason: {} ({}, {})",
        ketcare_core::units::trim_float(d.given_ml_per_h),
        ketcare_core::units::trim_float(d.ordered_ml_per_h),
        d.reason,
        d.by,
        time_text(&d.at)
    );
    if !d.soft_limits_crossed.is_empty() {
        t.push_str(&format!(
            "; soft limits passed: {}",
            d.soft_limits_crossed.join("; ")
        ));
    }
    t
}

/// An amount in mg to the microgram (the ledger's unit), without trailing zeros.
fn mg_text(mg: f64) -> String {
    format!("{}", (mg * 1000.0).round() / 1000.0)
}

fn admin_text(e: &AdminEvent) -> String {
    let flag = |d: &Option<ketcare_session::RateDeviation>| {
        d.as_ref()
            .map(|d| format!(" — {}", deviation_text(d)))
            .unwrap_or_default()
    };
    match e {
        AdminEvent::Start {
            rate_ml_per_h: Some(r),
            deviation,
        } => format!("start at {r} mL/h{}", flag(deviation)),
        AdminEvent::Start {
            rate_ml_per_h: None,
            ..
        } => "start".into(),
        AdminEvent::RateChange {
            rate_ml_per_h,
            deviation,
        } => format!("rate changed to {rate_ml_per_h} mL/h{}", flag(deviation)),
        AdminEvent::Pause { reason } => format!("paused: {reason}"),
        AdminEvent::Resume => "resumed".into(),
        AdminEvent::Stop { reason: Some(r) } => format!("stopped: {r}"),
        AdminEvent::Stop { reason: None } => "stopped".into(),
        AdminEvent::Device { number } => {
            format!("device {number} self-administered under supervision")
        }
    }
}

pub async fn page_of(
    s: &AppState,
    p: &Principal,
    r: &SessionRecord,
    vitals: &[StoredVital],
    error: String,
) -> Result<SessionPage, AppError> {
    let now = service::now(s)?;
    let patient = s.store.get_patient(&p.actor, r.patient_id).await?;
    let se = &r.session;
    let pl = &se.plan;
    let mut plan = vec![
        Row {
            label: "Protocol".into(),
            value: format!("{} (v{})", pl.protocol_title, pl.protocol_version),
        },
        Row {
            label: "Minimum observation".into(),
            value: format!(
                "{} min [{}]",
                pl.minimum_observation_minutes
                    .value()
                    .map(ketcare_core::units::trim_float)
                    .unwrap_or_else(|| "—".into()),
                pl.minimum_observation_minutes.provenance_text()
            ),
        },
        Row {
            label: "Baseline BP gate".into(),
            value: format!(
                "{}/{} [{}]",
                pl.bp_gate_systolic
                    .value()
                    .map(ketcare_core::units::trim_float)
                    .unwrap_or_else(|| "—".into()),
                pl.bp_gate_diastolic
                    .value()
                    .map(ketcare_core::units::trim_float)
                    .unwrap_or_else(|| "—".into()),
                pl.bp_gate_systolic.provenance_text()
            ),
        },
    ];
    if pl.mode == Mode::Esketamine {
        plan.push(Row {
            label: "Devices".into(),
            value: format!(
                "{} planned, {} min apart [{}]",
                pl.devices_planned,
                pl.minutes_between_devices
                    .value()
                    .map(ketcare_core::units::trim_float)
                    .unwrap_or_default(),
                pl.minutes_between_devices.provenance_text()
            ),
        });
        plan.push(Row {
            label: "BP check after the dose".into(),
            value: format!(
                "{} min [{}]",
                pl.bp_check_minutes_after_dose
                    .value()
                    .map(ketcare_core::units::trim_float)
                    .unwrap_or_default(),
                pl.bp_check_minutes_after_dose.provenance_text()
            ),
        });
    } else if !pl.vital_schedule.is_empty() {
        plan.push(Row {
            label: "Vitals schedule".into(),
            value: format!(
                "{} min after the start [{} (V)]",
                pl.vital_schedule
                    .iter()
                    .map(|v| ketcare_core::units::trim_float(*v))
                    .collect::<Vec<_>>()
                    .join(", "),
                pl.vital_schedule_source.join(", ")
            ),
        });
    }
    if let Some(f) = &pl.fasting_rule {
        plan.push(Row {
            label: "Fasting".into(),
            value: f.clone(),
        });
    }
    let c = &se.checklist;
    let mut checklist = vec![
        Row {
            label: "Consent (from the consent record)".into(),
            value: match &c.consent {
                Some(k) if k.valid => format!("valid — {} (checked {})", k.message, hm(&k.at)),
                Some(k) => format!(
                    "not valid: {} — {} (checked {})",
                    k.reason.as_deref().unwrap_or("unknown").replace('_', " "),
                    k.message,
                    hm(&k.at)
                ),
                None => "not checked yet (checked at every step until dosing starts)".into(),
            },
        },
        Row {
            label: "Fasting confirmed".into(),
            value: yes(c.fasting_confirmed),
        },
        Row {
            label: "Baseline vitals".into(),
            value: c
                .baseline
                .as_ref()
                .map(|b| format!("{} at {} by {}", b.vitals.summary(), hm(&b.at), b.by))
                .unwrap_or_else(|| "—".into()),
        },
        Row {
            label: "Pregnancy status".into(),
            value: c
                .pregnancy
                .map(|x| crate::fmt::words(&x))
                .unwrap_or_else(|| "—".into()),
        },
        Row {
            label: "Escort home".into(),
            value: yes(c.escort_home),
        },
        Row {
            label: "Eligibility re-confirmed".into(),
            value: yes(c.eligibility_reconfirmed),
        },
        Row {
            label: "Suicide-risk screen".into(),
            value: c
                .suicide_risk
                .map(|x| format!("{x:?}"))
                .unwrap_or_else(|| "—".into()),
        },
        Row {
            label: "Verified dose".into(),
            value: c
                .dose
                .as_ref()
                .map(|d| {
                    format!(
                        "order {}: {} (ordered by {}, verified by {})",
                        d.order_id, d.summary, d.author, d.verified_by
                    )
                })
                .unwrap_or_else(|| "—".into()),
        },
    ];
    if let Some(a) = &c.bp_gate_accepted {
        checklist.push(Row {
            label: "BP above the gate accepted".into(),
            value: format!("{} by {} at {}", a.reason, a.by, hm(&a.at)),
        });
    }
    if pl.mode == Mode::Esketamine {
        let rm = &c.rems;
        for (l, v) in [
            ("REMS-certified setting", rm.setting_certified),
            ("Patient enrolled in REMS", rm.patient_enrolled),
            ("Prescriber on site", rm.prescriber_on_site),
            ("Pulse oximeter on site", rm.pulse_oximeter_on_site),
        ] {
            checklist.push(Row {
                label: l.into(),
                value: yes(v),
            });
        }
        checklist.push(Row {
            label: "Concomitant sedating medicines".into(),
            value: rm
                .concomitant_sedating
                .clone()
                .unwrap_or_else(|| "—".into()),
        });
        checklist.push(Row {
            label: "Concomitant BP-raising medicines".into(),
            value: rm
                .concomitant_bp_raising
                .clone()
                .unwrap_or_else(|| "—".into()),
        });
    }
    let administrations = se
        .administrations
        .iter()
        .map(|a| Row {
            label: format!("{} · {}", hm(&a.at), a.by),
            value: admin_text(&a.event),
        })
        .collect();
    let ordered_rate = c
        .dose
        .as_ref()
        .and_then(|d| d.delivery.infusion.as_ref())
        .map(|i| ketcare_core::units::trim_float(i.rate_ml_per_h))
        .unwrap_or_default();
    if !ordered_rate.is_empty() {
        plan.push(Row {
            label: "Ordered pump rate".into(),
            value: format!("{ordered_rate} mL/h (from the verified order)"),
        });
    }
    let deviations: Vec<Row> = se
        .rate_deviations()
        .into_iter()
        .map(|d| Row {
            label: format!("{} · {}", hm(&d.at), d.by),
            value: deviation_text(d),
        })
        .collect();
    let delivered = se.delivered();
    let mut given = Vec::new();
    let mut given_prefill = String::new();
    if se.dose_start().is_some() {
        match &delivered {
            Ok(d) => {
                given_prefill = mg_text(d.mg);
                given.push(Row {
                    label: "Computed from the administration record".into(),
                    value: format!(
                        "{} mg given{}{}",
                        given_prefill,
                        if pl.mode == Mode::Infusion {
                            format!(
                                "; infusion ran {} min",
                                ketcare_core::units::trim_float(
                                    (d.running_minutes * 10.0).round() / 10.0
                                )
                            )
                        } else {
                            String::new()
                        },
                        if d.running { " (still running)" } else { "" }
                    ),
                });
            }
            Err(e) => given.push(Row {
                label: "Computed from the administration record".into(),
                value: format!("cannot be computed: {e}"),
            }),
        }
        given.push(Row {
            label: "Confirmed by the nurse".into(),
            value: match &se.given_confirmation {
                Some(g) => format!(
                    "{} mg by {} at {}{}",
                    mg_text(g.mg),
                    g.by,
                    time_text(&g.at),
                    match &g.reason {
                        Some(r) => format!(
                            " — corrected{}: {r}",
                            g.computed_mg
                                .map(|c| format!(" from {} mg", mg_text(c)))
                                .unwrap_or_default()
                        ),
                        None => String::new(),
                    }
                ),
                None => "not yet (signing needs it)".into(),
            },
        });
    }
    let vitals_rows = vitals
        .iter()
        .map(|v| VitalRow {
            at: hm(&v.reading.at),
            summary: v.reading.vitals.summary(),
            source: match &v.reading.control_id {
                Some(c) => format!("{} (message {c})", v.reading.source.as_str()),
                None => v.reading.source.as_str().into(),
            },
            by: v.reading.by.clone(),
        })
        .collect();
    let scores = se
        .scores
        .iter()
        .map(|x| Row {
            label: format!("{} · {}", hm(&x.at), x.by),
            value: match x.kind {
                ScoreKind::Moaas => {
                    format!("MOAA/S {} (0–5; 5 = responds readily to name)", x.value)
                }
                ScoreKind::Cadss => format!("CADSS total {}", x.value),
            },
        })
        .collect();
    let mut notes: Vec<Row> = Vec::new();
    for n in &se.side_effects {
        notes.push(Row {
            label: format!("{} · {} · side effect", hm(&n.at), n.by),
            value: format!(
                "{}{}",
                n.text,
                n.severity.map(|s| format!(" ({s:?})")).unwrap_or_default()
            ),
        });
    }
    for i in &se.interventions {
        notes.push(Row {
            label: format!("{} · {} · intervention", hm(&i.at), i.by),
            value: format!("{} {} {}", i.drug, i.dose, i.route),
        });
    }
    for n in &se.adverse_events {
        notes.push(Row {
            label: format!("{} · {} · adverse event", hm(&n.at), n.by),
            value: format!(
                "{}{}",
                n.text,
                n.severity.map(|s| format!(" ({s:?})")).unwrap_or_default()
            ),
        });
    }
    let readings: Vec<VitalReading> = vitals.iter().map(|v| v.reading.clone()).collect();
    let rems = match se.rems_form(&readings) {
        Some(f) => {
            let o = |v: Option<String>| v.unwrap_or_else(|| "—".into());
            vec![
                Row {
                    label: "REMS-certified setting".into(),
                    value: yes(f.setting_certified),
                },
                Row {
                    label: "Patient enrolled".into(),
                    value: yes(f.patient_enrolled),
                },
                Row {
                    label: "Prescriber on site".into(),
                    value: yes(f.prescriber_on_site),
                },
                Row {
                    label: "Pulse oximeter on site".into(),
                    value: yes(f.pulse_oximeter_on_site),
                },
                Row {
                    label: "Dose".into(),
                    value: o(f.dose),
                },
                Row {
                    label: "Devices".into(),
                    value: f
                        .devices
                        .iter()
                        .map(|(n, t)| format!("#{n} at {}", hm(t)))
                        .collect::<Vec<_>>()
                        .join(", "),
                },
                Row {
                    label: "BP before dosing".into(),
                    value: o(f.bp_before_dose),
                },
                Row {
                    label: "BP about 40 min after".into(),
                    value: o(f.bp_about_40_min),
                },
                Row {
                    label: "Lowest SpO2".into(),
                    value: f
                        .lowest_spo2
                        .map(ketcare_core::units::trim_float)
                        .unwrap_or_else(|| "—".into()),
                },
                Row {
                    label: "Deepest sedation (MOAA/S)".into(),
                    value: f
                        .deepest_moaas
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "—".into()),
                },
                Row {
                    label: "Highest dissociation (CADSS)".into(),
                    value: f
                        .highest_cadss
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "—".into()),
                },
                Row {
                    label: "Observed (min)".into(),
                    value: f
                        .observation_minutes
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "—".into()),
                },
                Row {
                    label: "Sedation and dissociation resolved".into(),
                    value: yes(Some(f.sedation_dissociation_resolved)),
                },
                Row {
                    label: "Clinically stable to leave".into(),
                    value: yes(f.clinically_stable),
                },
                Row {
                    label: "Concomitant sedating medicines".into(),
                    value: o(f.concomitant_sedating),
                },
                Row {
                    label: "Concomitant BP-raising medicines".into(),
                    value: o(f.concomitant_bp_raising),
                },
                Row {
                    label: "Adverse events".into(),
                    value: if f.adverse_events.is_empty() {
                        "none".into()
                    } else {
                        f.adverse_events.join("; ")
                    },
                },
                Row {
                    label: "Transport arranged; no driving until the next day".into(),
                    value: yes(f.transport_advice_given),
                },
                Row {
                    label: "Submit the form by".into(),
                    value: o(f.submit_by),
                },
            ]
        }
        None => vec![],
    };
    Ok(SessionPage {
        nav: Nav::of(p),
        csrf: p.csrf().to_owned(),
        id: r.id,
        patient_id: r.patient_id.get(),
        patient: patient.record.full_name(),
        mrn: patient.record.mrn.clone(),
        chair: se.chair.clone(),
        phase: se.phase.label().into(),
        phase_key: se.phase.as_str().into(),
        protocol: pl.protocol_title.clone(),
        esketamine: pl.mode == Mode::Esketamine,
        signed: se
            .signature
            .as_ref()
            .map(|x| format!("Signed by {} at {}", x.by, time_text(&x.at)))
            .unwrap_or_default(),
        error,
        plan,
        checklist,
        checklist_missing: if matches!(
            se.phase,
            Phase::Scheduled | Phase::CheckedIn | Phase::PreAssessment
        ) {
            se.checklist_missing()
        } else {
            vec![]
        },
        discharge_missing: if matches!(se.phase, Phase::Observation | Phase::ReadyForDischarge) {
            se.discharge_missing(now)
        } else {
            vec![]
        },
        administrations,
        vitals: vitals_rows,
        scores,
        notes,
        alarms: se.alarms.iter().map(|a| alarm_view(r.id, a)).collect(),
        inactive: ketcare_session::alarms::inactive_rules(pl)
            .into_iter()
            .map(|(l, k)| Row { label: l, value: k })
            .collect(),
        transitions: se
            .transitions
            .iter()
            .map(|t| Row {
                label: format!("{} · {}", time_text(&t.at), t.by),
                value: format!(
                    "{} → {}{}",
                    t.from.label(),
                    t.to.label(),
                    t.note
                        .as_ref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                ),
            })
            .collect(),
        settings_applied: se
            .settings_applied
            .iter()
            .map(|a| Row {
                label: format!("{} · site settings version {}", time_text(&a.at), a.version),
                value: a.changes.join("; "),
            })
            .collect(),
        addenda: se
            .addenda
            .iter()
            .map(|a| Row {
                label: format!("{} · {}", time_text(&a.at), a.by),
                value: a.text.clone(),
            })
            .collect(),
        next_check: se.next_check(now).map(|t| hm(&t)).unwrap_or_default(),
        devices: if pl.mode == Mode::Esketamine {
            format!("{} of {}", se.devices_given(), pl.devices_planned)
        } else {
            String::new()
        },
        can_run: p.user.role.allows(Permission::RunSession) && se.signature.is_none(),
        can_sign: p.user.role.allows(Permission::SignSession)
            && se.signature.is_none()
            && se.phase.is_final(),
        has_dose: c.dose.is_some(),
        show_checklist_form: matches!(se.phase, Phase::CheckedIn | Phase::PreAssessment),
        show_discharge_form: matches!(se.phase, Phase::Observation | Phase::ReadyForDischarge),
        in_chair: se.phase.is_active() && se.signature.is_none(),
        rems,
        measures: super::pre_measures::panel(s, p, r).await.ok(),
        ordered_rate,
        deviations,
        given,
        show_given_form: se.signature.is_none()
            && se.dose_start().is_some()
            && matches!(
                se.phase,
                Phase::Observation
                    | Phase::ReadyForDischarge
                    | Phase::Escalated
                    | Phase::Discharged
                    | Phase::Transferred
            ),
        given_prefill,
        tl: super::history::timeline_view(s, p, r.id).await,
    })
}

pub async fn session_page(
    State(s): State<AppState>,
    p: Principal,
    PagePath(sid): PagePath<SessionId>,
) -> Result<Response, PageError> {
    let r = s.store.session_record(&p.actor, sid).await?;
    let v = s.store.session_vitals(&p.actor, sid).await?;
    Ok(render_html(&page_of(&s, &p, &r, &v, String::new()).await?))
}

#[derive(Template)]
#[template(path = "sessions_record.html")]
pub struct RecordPage {
    pub nav: Option<Nav>,
    pub p: SessionPage,
    /// Date of birth, as the record has it.
    pub born: String,
    /// The discharge checklist as confirmed.
    pub discharge: Vec<Row>,
    /// Drawn, given and wasted from the ledger and the administration record.
    pub figures: Vec<Row>,
    /// Everyone who acted on the record: username → full name and role.
    pub staff: Vec<Row>,
}

fn mg_of_ug(ug: i64) -> String {
    format!("{} mg", ketcare_core::units::trim_float(ug as f64 / 1000.0))
}

/// The usernames that acted on a session record, each once, in order of first appearance.
fn actors(se: &ketcare_session::Session) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |u: &str| {
        if !u.is_empty() && !u.starts_with("system:") && !out.iter().any(|x| x == u) {
            out.push(u.to_owned());
        }
    };
    if let Some(d) = &se.checklist.dose {
        add(&d.author);
        add(&d.verified_by);
    }
    for t in &se.transitions {
        add(&t.by);
    }
    for a in &se.administrations {
        add(&a.by);
    }
    if let Some(g) = &se.given_confirmation {
        add(&g.by);
    }
    if let Some(sig) = &se.signature {
        add(&sig.by);
    }
    out
}

pub async fn record_page(
    State(s): State<AppState>,
    p: Principal,
    PagePath(sid): PagePath<SessionId>,
) -> Result<Response, PageError> {
    let r = s.store.session_record(&p.actor, sid).await?;
    let v = s.store.session_vitals(&p.actor, sid).await?;
    let patient = s.store.get_patient(&p.actor, r.patient_id).await?;
    let se = &r.session;
    let d = &se.discharge;
    let discharge = [
        ("Dissociation resolved", d.dissociation_resolved),
        (
            "Respiratory depression resolved",
            d.respiratory_depression_resolved,
        ),
        ("Clinically stable", d.clinically_stable),
        ("Escort present", d.escort_present),
        ("Transport advice given", d.transport_advice_given),
    ]
    .into_iter()
    .map(|(label, v)| Row {
        label: label.into(),
        value: yes(v),
    })
    .collect();
    let mut figures = Vec::new();
    if p.user.role.allows(Permission::LedgerRead) {
        let ledger = s.store.session_ledger_state(&p.actor, sid.get()).await?;
        if let Some(l) = ledger.sessions.get(&sid.get()) {
            figures.push(Row {
                label: "Drawn (ledger)".into(),
                value: mg_of_ug(l.drawn_ug),
            });
            figures.push(Row {
                label: "Wasted (ledger, witnessed)".into(),
                value: mg_of_ug(l.wasted_ug),
            });
        } else {
            figures.push(Row {
                label: "Ledger".into(),
                value: "no draw recorded for this session".into(),
            });
        }
    }
    figures.push(Row {
        label: "Given (administration record)".into(),
        value: se
            .given_mg()
            .map(|mg| format!("{} mg", ketcare_core::units::trim_float(mg)))
            .unwrap_or_else(|e| e),
    });
    let mut staff = Vec::new();
    for u in actors(se) {
        let value = match s.store.user_by_username(&u).await? {
            Some(user) => format!("{} ({})", user.display_name, user.role),
            None => "not a current account".into(),
        };
        staff.push(Row { label: u, value });
    }
    Ok(render_html(&RecordPage {
        nav: Nav::of(&p),
        born: patient.record.date_of_birth.to_string(),
        discharge,
        figures,
        staff,
        p: page_of(&s, &p, &r, &v, String::new()).await?,
    }))
}

/// Where the page opens again after a form: the section the nurse was working in, so recording
/// a vital, a score or an alarm's handling keeps her place; a phase change opens at the top.
fn section_of(command: &str) -> &'static str {
    match command {
        "vitals" => "#vitals-section",
        "score" | "side_effect" | "intervene" | "adverse_event" => "#notes-section",
        "acknowledge_alarm" | "resolve_alarm" => "#alarms-section",
        _ => "",
    }
}

async fn after(
    s: &AppState,
    p: &Principal,
    sid: SessionId,
    res: Result<(), AppError>,
    section: &str,
) -> Result<Response, PageError> {
    match res {
        Ok(()) => Ok(Redirect::to(&format!("/sessions/{sid}{section}")).into_response()),
        Err(e @ (AppError::Conflict(_) | AppError::Invalid(_))) => {
            let msg = match &e {
                AppError::Invalid(f) => {
                    f.0.iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                }
                other => other.to_string(),
            };
            let status = match e {
                AppError::Conflict(_) => axum::http::StatusCode::CONFLICT,
                _ => axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            };
            let r = s.store.session_record(&p.actor, sid).await?;
            let v = s.store.session_vitals(&p.actor, sid).await?;
            let mut resp = render_html(&page_of(s, p, &r, &v, msg).await?);
            *resp.status_mut() = status;
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}

fn num(f: &[(String, String)], k: &str) -> Result<Option<f64>, AppError> {
    match get(f, k) {
        "" => Ok(None),
        v => v
            .parse::<f64>()
            .map(Some)
            .map_err(|_| AppError::invalid(k, format!("{v:?} is not a number"))),
    }
}

fn pump_rate(r: f64) -> Result<ketcare_clinical::units::RateMlPerH, AppError> {
    ketcare_clinical::units::RateMlPerH::new(r)
        .map_err(|e| AppError::invalid("rate_ml_per_h", e.to_string()))
}

fn flag(f: &[(String, String)], k: &str) -> Option<bool> {
    match get(f, k) {
        "yes" | "true" | "on" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

fn text(f: &[(String, String)], k: &str) -> Option<String> {
    Some(get(f, k).to_owned()).filter(|s| !s.is_empty())
}

fn vitals_of(f: &[(String, String)]) -> Result<Vitals, AppError> {
    Ok(Vitals {
        systolic: num(f, "systolic")?,
        diastolic: num(f, "diastolic")?,
        heart_rate: num(f, "heart_rate")?,
        spo2: num(f, "spo2")?,
        resp_rate: num(f, "resp_rate")?,
        etco2: num(f, "etco2")?,
        temperature_c: num(f, "temperature_c")?,
    })
}

/// Turns a page form into a command: `command` names it, the other fields are its arguments.
pub fn command_of(f: &[(String, String)]) -> Result<Command, AppError> {
    use ketcare_session::session::{ChecklistUpdate, DischargeConfirmations, RemsSetting};
    let name = get(f, "command");
    let json = |v: serde_json::Value| -> Result<Command, AppError> {
        serde_json::from_value(v).map_err(|e| AppError::invalid("command", e.to_string()))
    };
    Ok(match name {
        "checklist" => {
            let rems = if get(f, "rems") == "1" {
                Some(RemsSetting {
                    setting_certified: flag(f, "setting_certified"),
                    patient_enrolled: flag(f, "patient_enrolled"),
                    prescriber_on_site: flag(f, "prescriber_on_site"),
                    pulse_oximeter_on_site: flag(f, "pulse_oximeter_on_site"),
                    concomitant_sedating: text(f, "concomitant_sedating"),
                    concomitant_bp_raising: text(f, "concomitant_bp_raising"),
                })
            } else {
                None
            };
            let pick = |k: &str| -> Result<Option<serde_json::Value>, AppError> {
                match get(f, k) {
                    "" => Ok(None),
                    v => Ok(Some(serde_json::Value::String(v.to_owned()))),
                }
            };
            Command::UpdateChecklist(ChecklistUpdate {
                consent_valid: None,
                fasting_confirmed: flag(f, "fasting_confirmed"),
                pregnancy: pick("pregnancy")?
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| AppError::invalid("pregnancy", e.to_string()))?,
                escort_home: flag(f, "escort_home"),
                eligibility_reconfirmed: flag(f, "eligibility_reconfirmed"),
                suicide_risk: pick("suicide_risk")?
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| AppError::invalid("suicide_risk", e.to_string()))?,
                bp_gate_reason: text(f, "bp_gate_reason"),
                rems,
            })
        }
        "baseline" => Command::SetBaseline {
            vitals: vitals_of(f)?,
        },
        "discharge_items" => Command::ConfirmDischarge(DischargeConfirmations {
            dissociation_resolved: flag(f, "dissociation_resolved"),
            respiratory_depression_resolved: flag(f, "respiratory_depression_resolved"),
            clinically_stable: flag(f, "clinically_stable"),
            escort_present: flag(f, "escort_present"),
            transport_advice_given: flag(f, "transport_advice_given"),
        }),
        "start" => Command::Start {
            rate_ml_per_h: num(f, "rate_ml_per_h")?.map(pump_rate).transpose()?,
            rate_reason: text(f, "rate_reason"),
        },
        "change_rate" => Command::ChangeRate {
            rate_ml_per_h: pump_rate(
                num(f, "rate_ml_per_h")?
                    .ok_or_else(|| AppError::invalid("rate_ml_per_h", "required"))?,
            )?,
            rate_reason: text(f, "rate_reason"),
        },
        "record_given" => Command::RecordGiven {
            given_mg: num(f, "given_mg")?
                .ok_or_else(|| AppError::invalid("given_mg", "required"))?,
            reason: text(f, "reason"),
        },
        "stop" => Command::Stop {
            reason: text(f, "reason"),
        },
        "score" => {
            let value = get(f, "value")
                .parse::<u32>()
                .map_err(|_| AppError::invalid("value", "a whole number"))?;
            json(serde_json::json!({ "command": "score", "kind": get(f, "kind"), "value": value }))?
        }
        "acknowledge_alarm" | "resolve_alarm" => {
            let alarm = get(f, "alarm")
                .parse::<u32>()
                .map_err(|_| AppError::invalid("alarm", "an alarm number"))?;
            json(serde_json::json!({ "command": name, "alarm": alarm, "note": get(f, "note") }))?
        }
        "side_effect" | "adverse_event" => {
            let mut v = serde_json::json!({ "command": name, "text": get(f, "text") });
            if !get(f, "severity").is_empty() {
                v["severity"] = get(f, "severity").into();
            }
            json(v)?
        }
        "" => return Err(AppError::invalid("command", "required")),
        other => {
            let mut v = serde_json::Map::new();
            v.insert("command".into(), other.into());
            for (k, val) in f {
                if k != "command" && k != "csrf_token" && !val.trim().is_empty() {
                    v.insert(k.clone(), val.trim().into());
                }
            }
            json(serde_json::Value::Object(v))?
        }
    })
}

pub async fn command(
    State(s): State<AppState>,
    p: Principal,
    PagePath(sid): PagePath<SessionId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = pairs(&body)?;
    let res = match command_of(&f) {
        Ok(cmd) => service::command(&s, &p.actor, sid, &cmd).await.map(|_| ()),
        Err(e) => Err(e),
    };
    after(&s, &p, sid, res, section_of(get(&f, "command"))).await
}

pub async fn vitals(
    State(s): State<AppState>,
    p: Principal,
    PagePath(sid): PagePath<SessionId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = pairs(&body)?;
    let res = async {
        let reading = VitalReading {
            at: service::now(&s)?,
            vitals: vitals_of(&f)?,
            source: VitalSource::Manual,
            by: p.actor.username.clone(),
            control_id: None,
        };
        service::record_vital(&s, &p.actor, sid, &reading, None)
            .await
            .map(|_| ())
    }
    .await;
    after(&s, &p, sid, res, section_of("vitals")).await
}

pub async fn attach_dose(
    State(s): State<AppState>,
    p: Principal,
    PagePath(sid): PagePath<SessionId>,
) -> Result<Response, PageError> {
    let res = service::attach_dose(&s, &p.actor, sid).await.map(|_| ());
    after(&s, &p, sid, res, "").await
}
