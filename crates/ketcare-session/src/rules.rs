//! Monitoring and alarm rules: `data/sessions/monitoring.toml`, loaded and validated (a bad file
//! is refused naming file, line and field), then resolved against the site settings.

use ketcare_clinical::SiteSettings;
use ketcare_clinical::data::{DataError, line_of, parse_toml};
use ketcare_clinical::protocol::{Drug, Protocol};
use ketcare_clinical::source::{Cited, CitedText, Provenance, Resolved, SourceCatalogue, Status};
use serde::{Deserialize, Serialize};

/// The built-in rules file.
pub const BUILTIN: (&str, &str) = (
    "data/sessions/monitoring.toml",
    include_str!("../../../data/sessions/monitoring.toml"),
);

/// The rules as written in the data file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    pub version: u32,
    pub esketamine: EsketamineRules,
    pub ketamine: KetamineRules,
    pub alarms: AlarmThresholds,
    pub actions: Actions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsketamineRules {
    pub minutes_between_devices: Cited,
    pub bp_check_minutes_after_dose: Cited,
    pub minimum_observation_minutes: Cited,
    pub bp_gate_systolic_mmhg: Cited,
    pub bp_gate_diastolic_mmhg: Cited,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KetamineRules {
    pub bp_gate_systolic_mmhg: Cited,
    pub bp_gate_diastolic_mmhg: Cited,
    pub vital_schedule_minutes: Vec<Cited>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmThresholds {
    pub systolic_high_mmhg: Cited,
    pub diastolic_high_mmhg: Cited,
    pub systolic_low_mmhg: Cited,
    pub heart_rate_high_bpm: Cited,
    pub heart_rate_low_bpm: Cited,
    pub spo2_low_percent: Cited,
    pub resp_rate_low_per_min: Cited,
    pub resp_rate_high_per_min: Cited,
    pub etco2_high_mmhg: Cited,
    pub systolic_rise_mmhg: Cited,
    pub diastolic_rise_mmhg: Cited,
    pub vitals_interval_minutes: Cited,
    pub vitals_grace_minutes: Cited,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actions {
    pub hypertension: CitedText,
    pub hypotension: CitedText,
    pub heart_rate: CitedText,
    pub desaturation: CitedText,
    pub respiratory: CitedText,
    pub missed_vitals: CitedText,
    pub esketamine_bp_check: CitedText,
}

impl RulesFile {
    /// Parses and validates a rules file against the source catalogue.
    pub fn parse(file: &str, text: &str, sources: &SourceCatalogue) -> Result<Self, DataError> {
        let rules: RulesFile = parse_toml(file, text)?;
        let mut cited: Vec<(String, &Cited)> = vec![
            (
                "esketamine.minutes_between_devices".into(),
                &rules.esketamine.minutes_between_devices,
            ),
            (
                "esketamine.bp_check_minutes_after_dose".into(),
                &rules.esketamine.bp_check_minutes_after_dose,
            ),
            (
                "esketamine.minimum_observation_minutes".into(),
                &rules.esketamine.minimum_observation_minutes,
            ),
            (
                "esketamine.bp_gate_systolic_mmhg".into(),
                &rules.esketamine.bp_gate_systolic_mmhg,
            ),
            (
                "esketamine.bp_gate_diastolic_mmhg".into(),
                &rules.esketamine.bp_gate_diastolic_mmhg,
            ),
            (
                "ketamine.bp_gate_systolic_mmhg".into(),
                &rules.ketamine.bp_gate_systolic_mmhg,
            ),
            (
                "ketamine.bp_gate_diastolic_mmhg".into(),
                &rules.ketamine.bp_gate_diastolic_mmhg,
            ),
        ];
        for (i, c) in rules.ketamine.vital_schedule_minutes.iter().enumerate() {
            cited.push((format!("ketamine.vital_schedule_minutes[{i}]"), c));
        }
        let a = &rules.alarms;
        for (k, c) in [
            ("systolic_high_mmhg", &a.systolic_high_mmhg),
            ("diastolic_high_mmhg", &a.diastolic_high_mmhg),
            ("systolic_low_mmhg", &a.systolic_low_mmhg),
            ("heart_rate_high_bpm", &a.heart_rate_high_bpm),
            ("heart_rate_low_bpm", &a.heart_rate_low_bpm),
            ("spo2_low_percent", &a.spo2_low_percent),
            ("resp_rate_low_per_min", &a.resp_rate_low_per_min),
            ("resp_rate_high_per_min", &a.resp_rate_high_per_min),
            ("etco2_high_mmhg", &a.etco2_high_mmhg),
            ("systolic_rise_mmhg", &a.systolic_rise_mmhg),
            ("diastolic_rise_mmhg", &a.diastolic_rise_mmhg),
            ("vitals_interval_minutes", &a.vitals_interval_minutes),
            ("vitals_grace_minutes", &a.vitals_grace_minutes),
        ] {
            cited.push((format!("alarms.{k}"), c));
        }
        for (field, c) in &cited {
            if let Some(problem) = cited_problem(c, sources) {
                return Err(invalid(file, text, field, problem));
            }
        }
        let x = &rules.actions;
        for (k, t) in [
            ("hypertension", &x.hypertension),
            ("hypotension", &x.hypotension),
            ("heart_rate", &x.heart_rate),
            ("desaturation", &x.desaturation),
            ("respiratory", &x.respiratory),
            ("missed_vitals", &x.missed_vitals),
            ("esketamine_bp_check", &x.esketamine_bp_check),
        ] {
            if t.text.trim().is_empty() {
                return Err(invalid(
                    file,
                    text,
                    &format!("actions.{k}"),
                    "expected a non-empty text".into(),
                ));
            }
            if let Some(id) = t.source.iter().find(|id| sources.citation(id).is_none()) {
                return Err(invalid(
                    file,
                    text,
                    &format!("actions.{k}"),
                    format!("unknown source ID {id:?}: expected an ID from the References table"),
                ));
            }
        }
        Ok(rules)
    }

    /// The built-in rules, validated against the built-in source catalogue.
    pub fn builtin(sources: &SourceCatalogue) -> Result<Self, DataError> {
        Self::parse(BUILTIN.0, BUILTIN.1, sources)
    }

    /// Every site-setting key the rules read, with what it is for and whether it is set.
    pub fn settings_keys(&self) -> Vec<(&str, &str)> {
        let a = &self.alarms;
        let mut keys = Vec::new();
        for (c, what) in [
            (
                &self.esketamine.bp_gate_systolic_mmhg,
                "esketamine baseline systolic BP gate (mmHg)",
            ),
            (
                &self.esketamine.bp_gate_diastolic_mmhg,
                "esketamine baseline diastolic BP gate (mmHg)",
            ),
            (
                &self.ketamine.bp_gate_systolic_mmhg,
                "ketamine baseline systolic BP gate (mmHg)",
            ),
            (
                &self.ketamine.bp_gate_diastolic_mmhg,
                "ketamine baseline diastolic BP gate (mmHg)",
            ),
            (&a.systolic_high_mmhg, "alarm: systolic above (mmHg)"),
            (&a.diastolic_high_mmhg, "alarm: diastolic above (mmHg)"),
            (&a.systolic_low_mmhg, "alarm: systolic below (mmHg)"),
            (&a.heart_rate_high_bpm, "alarm: heart rate above (/min)"),
            (&a.heart_rate_low_bpm, "alarm: heart rate below (/min)"),
            (&a.spo2_low_percent, "alarm: SpO2 below (%)"),
            (
                &a.resp_rate_low_per_min,
                "alarm: respiratory rate below (/min)",
            ),
            (
                &a.resp_rate_high_per_min,
                "alarm: respiratory rate above (/min)",
            ),
            (&a.etco2_high_mmhg, "alarm: EtCO2 above (mmHg)"),
            (
                &a.systolic_rise_mmhg,
                "alarm: systolic rise over baseline above (mmHg)",
            ),
            (
                &a.diastolic_rise_mmhg,
                "alarm: diastolic rise over baseline above (mmHg)",
            ),
            (
                &a.vitals_interval_minutes,
                "vitals every (min) after the cited schedule",
            ),
            (&a.vitals_grace_minutes, "grace for a scheduled check (min)"),
        ] {
            if let Some(k) = &c.site_setting {
                keys.push((k.as_str(), what));
            }
        }
        keys
    }
}

fn invalid(file: &str, text: &str, field: &str, message: String) -> DataError {
    let key = field.rsplit('.').next().unwrap_or(field);
    let key = key.split('[').next().unwrap_or(key);
    let line = text
        .find(&format!("{key} ="))
        .map(|o| line_of(text, o))
        .unwrap_or(1);
    DataError::Invalid {
        file: file.to_owned(),
        line,
        field: field.to_owned(),
        message,
    }
}

fn cited_problem(c: &Cited, sources: &SourceCatalogue) -> Option<String> {
    match c.status {
        Status::V | Status::S => {
            let v = c.value?;
            if !v.is_finite() || v < 0.0 {
                return Some(format!("value {v} is not a non-negative number"));
            }
            if c.source.is_empty() {
                return Some("a V or S value must name its source".into());
            }
        }
        Status::U => {
            if c.value.is_some() {
                return Some(
                    "a U value is never a built-in default: remove `value`, name a `site_setting`"
                        .into(),
                );
            }
            if c.site_setting.is_none() {
                return Some("a U value must name its `site_setting`".into());
            }
        }
    }
    if (c.status == Status::V || c.status == Status::S) && c.value.is_none() {
        return Some("a V or S row needs a `value`".into());
    }
    c.source
        .iter()
        .find(|id| sources.citation(id).is_none())
        .map(|id| format!("unknown source ID {id:?}: expected an ID from the References table"))
}

/// A threshold or duration as used: its value and where it came from, or the site-setting key
/// that is missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Setting {
    Set(Resolved),
    /// Not set by the site; the rule using it is inactive (or the step blocked) and the page says so.
    Unset {
        key: String,
        note: Option<String>,
    },
}

impl Setting {
    pub fn resolve(c: &Cited, settings: &SiteSettings) -> Setting {
        match c.resolve(settings) {
            Some(r) => Setting::Set(r),
            None => Setting::Unset {
                key: c.site_setting.clone().unwrap_or_default(),
                note: c.note.clone(),
            },
        }
    }
    pub fn value(&self) -> Option<f64> {
        match self {
            Setting::Set(r) => Some(r.value),
            Setting::Unset { .. } => None,
        }
    }
    /// "site setting K", "R2, R4 (V)", or "not set (site setting K)".
    pub fn provenance_text(&self) -> String {
        match self {
            Setting::Set(Resolved { provenance, .. }) => provenance_text(provenance),
            Setting::Unset { key, .. } => format!("not set (site setting {key})"),
        }
    }
}

/// Short text for a provenance.
pub fn provenance_text(p: &Provenance) -> String {
    match p {
        Provenance::Reference { source, status } => format!("{} ({status:?})", source.join(", ")),
        Provenance::SiteSetting { key } => format!("set by the site ({key})"),
        Provenance::SiteLimitOverride { key, .. } => format!("set by the site ({key})"),
        Provenance::Input { field } => format!("input {field}"),
        Provenance::Computed { formula } => formula.clone(),
    }
}

/// A suggested action with its sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Action {
    pub text: String,
    pub source: Vec<String>,
}

impl From<&CitedText> for Action {
    fn from(t: &CitedText) -> Self {
        Action {
            text: t.text.clone(),
            source: t.source.clone(),
        }
    }
}

/// What kind of administration the session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Esketamine nasal spray, device by device.
    Esketamine,
    /// An infusion or other ketamine route: start, rate change, pause, resume, stop.
    Infusion,
}

/// Everything a session needs from the protocol, the rules and the site settings, resolved
/// once by the edge (so the state machine and the alarm rules are pure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Plan {
    pub protocol_id: String,
    pub protocol_version: u32,
    pub protocol_title: String,
    pub mode: Mode,
    /// Devices to give (esketamine), from the verified order.
    pub devices_planned: u32,
    pub minutes_between_devices: Setting,
    pub bp_check_minutes_after_dose: Setting,
    pub minimum_observation_minutes: Setting,
    pub bp_gate_systolic: Setting,
    pub bp_gate_diastolic: Setting,
    /// Minutes after the start at which vitals are due (cited schedule).
    pub vital_schedule: Vec<f64>,
    pub vital_schedule_source: Vec<String>,
    pub fasting_rule: Option<String>,
    pub alarms: ResolvedAlarms,
}

/// The alarm thresholds as resolved for one site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResolvedAlarms {
    pub systolic_high: Setting,
    pub diastolic_high: Setting,
    pub systolic_low: Setting,
    pub heart_rate_high: Setting,
    pub heart_rate_low: Setting,
    pub spo2_low: Setting,
    pub resp_rate_low: Setting,
    pub resp_rate_high: Setting,
    pub etco2_high: Setting,
    pub systolic_rise: Setting,
    pub diastolic_rise: Setting,
    pub vitals_interval: Setting,
    pub vitals_grace: Setting,
    pub actions: ResolvedActions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResolvedActions {
    pub hypertension: Action,
    pub hypotension: Action,
    pub heart_rate: Action,
    pub desaturation: Action,
    pub respiratory: Action,
    pub missed_vitals: Action,
    pub esketamine_bp_check: Action,
}

impl RulesFile {
    /// Resolves the rules for one protocol and the site's settings.
    pub fn plan(&self, protocol: &Protocol, settings: &SiteSettings, devices_planned: u32) -> Plan {
        let r = |c: &Cited| Setting::resolve(c, settings);
        let esk = protocol.drug == Drug::Esketamine;
        let a = &self.alarms;
        let x = &self.actions;
        let min_obs = match &protocol.monitoring.minimum_observation_minutes {
            Some(c) => r(c.get_ref()),
            None if esk => r(&self.esketamine.minimum_observation_minutes),
            None => Setting::Unset {
                key: format!("{}.minimum_observation_minutes", protocol.id),
                note: Some("the protocol names no minimum observation".into()),
            },
        };
        let (schedule, schedule_source) = if esk {
            (vec![], vec![])
        } else {
            let vals: Vec<f64> = self
                .ketamine
                .vital_schedule_minutes
                .iter()
                .filter_map(|c| c.value)
                .collect();
            let mut src: Vec<String> = self
                .ketamine
                .vital_schedule_minutes
                .iter()
                .flat_map(|c| c.source.iter().cloned())
                .collect();
            src.sort();
            src.dedup();
            (vals, src)
        };
        Plan {
            protocol_id: protocol.id.clone(),
            protocol_version: protocol.version,
            protocol_title: protocol.title.clone(),
            mode: if esk {
                Mode::Esketamine
            } else {
                Mode::Infusion
            },
            devices_planned: if esk { devices_planned.max(1) } else { 0 },
            minutes_between_devices: match protocol.esketamine.as_ref() {
                Some(e) => r(e.get_ref().minutes_between_devices.get_ref()),
                None => r(&self.esketamine.minutes_between_devices),
            },
            bp_check_minutes_after_dose: r(&self.esketamine.bp_check_minutes_after_dose),
            minimum_observation_minutes: min_obs,
            bp_gate_systolic: if esk {
                r(&self.esketamine.bp_gate_systolic_mmhg)
            } else {
                r(&self.ketamine.bp_gate_systolic_mmhg)
            },
            bp_gate_diastolic: if esk {
                r(&self.esketamine.bp_gate_diastolic_mmhg)
            } else {
                r(&self.ketamine.bp_gate_diastolic_mmhg)
            },
            vital_schedule: schedule,
            vital_schedule_source: schedule_source,
            fasting_rule: protocol.fasting.rule.as_ref().map(|t| t.text.clone()),
            alarms: ResolvedAlarms {
                systolic_high: r(&a.systolic_high_mmhg),
                diastolic_high: r(&a.diastolic_high_mmhg),
                systolic_low: r(&a.systolic_low_mmhg),
                heart_rate_high: r(&a.heart_rate_high_bpm),
                heart_rate_low: r(&a.heart_rate_low_bpm),
                spo2_low: r(&a.spo2_low_percent),
                resp_rate_low: r(&a.resp_rate_low_per_min),
                resp_rate_high: r(&a.resp_rate_high_per_min),
                etco2_high: r(&a.etco2_high_mmhg),
                systolic_rise: r(&a.systolic_rise_mmhg),
                diastolic_rise: r(&a.diastolic_rise_mmhg),
                vitals_interval: r(&a.vitals_interval_minutes),
                vitals_grace: r(&a.vitals_grace_minutes),
                actions: ResolvedActions {
                    hypertension: (&x.hypertension).into(),
                    hypotension: (&x.hypotension).into(),
                    heart_rate: (&x.heart_rate).into(),
                    desaturation: (&x.desaturation).into(),
                    respiratory: (&x.respiratory).into(),
                    missed_vitals: (&x.missed_vitals).into(),
                    esketamine_bp_check: (&x.esketamine_bp_check).into(),
                },
            },
        }
    }
}
