//! Every site setting ketcare reads, in one registry generated from the data files and the code's
//! own keys: its input (a number with its unit and allowed range, or yes/no), what it is for,
//! what stays blocked while it is unset, the value that applies meanwhile, and its source rows.
//!
//! The data files are walked for every table that names a `site_setting` (protocols, eligibility
//! rules, monitoring, course templates, billing codes, questionnaires), so a key added to a data
//! file is listed, typed and accepted without a copy here. Keys the code reads directly are listed
//! below with their purpose. A key in neither is refused when the site saves its settings.

use ketcare_clinical::{Library, SiteSettings};
use ketcare_session::limits::{Plausibility, Range};
use serde::Serialize;
use std::collections::BTreeMap;

/// How a setting is entered.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Input {
    /// A number in `unit`, greater than `above` (or at least `min`), at most `max`, in steps of
    /// `step` when the quantity is a count.
    Number {
        unit: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        /// The value must be strictly greater than this (a positive quantity: above 0).
        #[serde(skip_serializing_if = "Option::is_none")]
        above: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<f64>,
        /// Where the allowed range comes from.
        range_source: String,
    },
    /// 1 = yes, 2 = no (settings are numbers; 0 would read as unset).
    YesNo,
    /// A telephone number, kept as text (digits, spaces, `+`, `-`, parentheses; at most 32
    /// characters), offered as a tap-to-call link.
    Phone,
    /// A list of sending facilities and network addresses ([`crate::senders`]).
    SenderList,
    /// Text of a delivery setting ([`crate::outreach`]), in the form `format` names.
    Text { format: TextFormat },
}

/// The forms of the text settings that configure delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TextFormat {
    /// An `https://` (or `http://`) address without query or fragment.
    Url,
    /// A host name or IP address.
    Host,
    /// An email address.
    Email,
    /// `tls`, `starttls` or `none`.
    SmtpSecurity,
    /// `HH:MM-HH:MM`.
    QuietHours,
}

impl TextFormat {
    fn words(self) -> &'static str {
        match self {
            TextFormat::Url => "an address starting https:// (or http://)",
            TextFormat::Host => "a host name or IP address",
            TextFormat::Email => "an email address",
            TextFormat::SmtpSecurity => "tls, starttls or none",
            TextFormat::QuietHours => "HH:MM-HH:MM on a 24-hour clock, e.g. 21:00-08:00",
        }
    }

    /// Checks a value of this form.
    pub fn check(self, value: &str) -> Result<(), String> {
        let v = value.trim();
        let plain = |v: &str| {
            !v.is_empty()
                && v.len() <= 253
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        };
        let ok = match self {
            TextFormat::Url => {
                let rest = v
                    .strip_prefix("https://")
                    .or_else(|| v.strip_prefix("http://"));
                rest.is_some_and(|r| {
                    let host = r.split('/').next().unwrap_or_default();
                    plain(host)
                        && !r.contains(['?', '#', ' ', '"', '<', '>'])
                        && r.chars().all(|c| c.is_ascii_graphic())
                })
            }
            TextFormat::Host => plain(v),
            TextFormat::Email => v.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && plain(domain)
                    && !local.contains([' ', '<', '>', '"', '\\', ',', ';'])
                    && local.chars().all(|c| c.is_ascii_graphic())
            }),
            TextFormat::SmtpSecurity => crate::outreach::SmtpSecurity::parse(v).is_some(),
            TextFormat::QuietHours => {
                return ketcare_ops::outreach::QuietHours::parse(v).map(|_| ());
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {}", self.words()))
        }
    }
}

/// The crisis line the patient's questionnaire page offers as a tap-to-call number.
pub const CRISIS_LINE: &str = "measures.crisis_line";

/// Checks a telephone number as [`Input::Phone`] accepts it.
pub fn check_phone(value: &str) -> Result<(), String> {
    let v = value.trim();
    if v.is_empty() {
        return Err("a telephone number is required".into());
    }
    if v.chars().count() > 32 {
        return Err("at most 32 characters".into());
    }
    if !v.chars().any(|c| c.is_ascii_digit()) {
        return Err("a telephone number has digits".into());
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_digit() || " +-()".contains(*c)))
    {
        return Err(format!(
            "use digits, spaces, +, - and parentheses only (found {c:?})"
        ));
    }
    Ok(())
}

impl Input {
    /// Whether the setting is kept as text (not a number).
    pub fn is_text(&self) -> bool {
        matches!(self, Input::Phone | Input::SenderList | Input::Text { .. })
    }

    /// The unit with a leading space, or nothing.
    fn unit_suffix(&self) -> String {
        match self {
            Input::Number { unit, .. } if !unit.is_empty() => format!(" {unit}"),
            _ => String::new(),
        }
    }

    /// The values it accepts, in words, with where the range comes from.
    pub fn range_words(&self) -> String {
        match self {
            Input::YesNo => "yes or no".into(),
            Input::Phone => "a telephone number (digits, spaces, +, -, parentheses)".into(),
            Input::Text { format } => format.words().into(),
            Input::SenderList => {
                "facility names (MSH-4) and addresses or networks (10.0.0.5, 10.0.0.0/24), \
                 separated by commas"
                    .into()
            }
            Input::Number {
                min,
                above,
                max,
                range_source,
                ..
            } => {
                let u = self.unit_suffix();
                let low = match (min, above) {
                    (Some(m), _) => format!("at least {m}{u}"),
                    (None, Some(a)) => format!("more than {a}{u}"),
                    (None, None) => String::new(),
                };
                let high = max.map(|m| format!("at most {m}{u}")).unwrap_or_default();
                let words = [low, high]
                    .into_iter()
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("{words} ({range_source})")
            }
        }
    }
}

/// One setting the code reads.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SettingSpec {
    pub key: String,
    pub input: Input,
    /// What the value is for (the data file's note, or the code's own description).
    pub purpose: String,
    /// What happens while it is unset.
    pub when_unset: String,
    /// Whether something is refused while it is unset (the "needed and not set" list).
    pub blocks: bool,
    /// The cited value that applies while it is unset, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<f64>,
    /// Source rows and their status, e.g. "R1d (S)"; empty for a code-level setting.
    pub sources: Vec<String>,
    /// Where it is read: data file and table path, or the code's use.
    pub used_by: Vec<String>,
    /// Whether a site may set it for itself: every use decides for one site's session,
    /// booking or bill (the session rules, the course templates' slot rules, the billing
    /// switches, the nurse ratio). Dose limits and rounding, screening, questionnaires, the
    /// registry and delivery stay the organisation's: an order and a patient belong to it.
    pub per_site: bool,
}

/// A family of keys sharing a prefix, one per named thing (e.g. one factor per drug).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SettingFamily {
    /// Keys are `<prefix>.<name>`.
    pub prefix: String,
    pub name_is: String,
    pub spec: SettingSpec,
}

/// The registry: every key, and the key families.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Registry {
    pub settings: Vec<SettingSpec>,
    pub families: Vec<SettingFamily>,
}

/// The data files whose `site_setting` tables are settings, with what an unset required key
/// holds up in each.
fn data_files() -> Vec<(&'static str, &'static str, Blocks)> {
    let mut out = vec![
        (
            ketcare_clinical::protocol::RULES.0,
            ketcare_clinical::protocol::RULES.1,
            Blocks::Screening,
        ),
        (
            ketcare_session::rules::BUILTIN.0,
            ketcare_session::rules::BUILTIN.1,
            Blocks::SessionStart,
        ),
        (
            "data/ops/courses.toml",
            ketcare_ops::schedule::BUILTIN_TEXT,
            Blocks::Booking,
        ),
        (
            "data/ops/billing.toml",
            ketcare_ops::billing::BUILTIN_TEXT,
            Blocks::BillingLine,
        ),
        (
            ketcare_measures::catalogue::INSTRUMENTS_FILE.0,
            ketcare_measures::catalogue::INSTRUMENTS_FILE.1,
            Blocks::Interpretation,
        ),
    ];
    for (file, text) in ketcare_clinical::protocol::BUILTIN_PROTOCOLS {
        out.push((file, text, Blocks::Orders));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Blocks {
    Orders,
    Screening,
    SessionStart,
    Booking,
    BillingLine,
    Interpretation,
}

impl Blocks {
    /// Whether what it holds up is decided for one site (see [`SettingSpec::per_site`]).
    fn per_site(self) -> bool {
        matches!(self, Self::SessionStart | Self::Booking | Self::BillingLine)
    }

    fn text(self, file: &str) -> String {
        match self {
            Self::Orders => {
                format!("orders for the protocol in {file} are refused until it is set")
            }
            Self::Screening => "screening cannot decide until it is set".into(),
            Self::SessionStart => "a session of this drug cannot start until it is set".into(),
            Self::Booking => "booking this course is refused until it is set".into(),
            Self::BillingLine => "the code is left off every superbill until it is set".into(),
            Self::Interpretation => {
                "this questionnaire's result is incomplete until it is set".into()
            }
        }
    }
}

impl Registry {
    /// Builds the registry from the built-in data files, the site's own protocol files
    /// `(file name, TOML text)`, the library and the questionnaire catalogue.
    pub fn build(library: &Library, site_protocols: &[(String, String)]) -> Registry {
        let mut map: BTreeMap<String, SettingSpec> = BTreeMap::new();
        let mut files: Vec<(String, String, Blocks)> = data_files()
            .into_iter()
            .map(|(f, t, b)| (f.to_owned(), t.to_owned(), b))
            .collect();
        for (f, t) in site_protocols {
            files.push((format!("site protocol {f}"), t.clone(), Blocks::Orders));
        }
        for (file, text, blocks) in &files {
            if let Ok(v) = text.parse::<toml::Table>() {
                walk(file, *blocks, &toml::Value::Table(v), "", &mut map);
            }
        }
        for c in code_settings(library) {
            let e = map.entry(c.key.clone()).or_insert_with(|| c.clone());
            e.per_site &= c.per_site;
            for u in c.used_by {
                if !e.used_by.contains(&u) {
                    e.used_by.push(u);
                }
            }
        }
        let prefix = library
            .eligibility_rules()
            .thresholds
            .diazepam_factor_setting_prefix
            .clone();
        let families = vec![SettingFamily {
            spec: spec(
                &format!("{prefix}.<drug>"),
                "Diazepam-equivalent factor of one benzodiazepine: mg of diazepam per mg of the drug. The reference has no equivalence table (diazepam counts 1:1 by definition).".into(),
                "a benzodiazepine dose without a stated diazepam equivalent is reported as unknown in screening".into(),
                vec!["data/eligibility/rules.toml: diazepam_factor_setting_prefix".into()],
            ),
            prefix,
            name_is: "the benzodiazepine's name in lower case, as written on the medication list".into(),
        }];
        Registry {
            settings: map.into_values().collect(),
            families,
        }
    }

    /// The spec of a key, from the list or a family.
    pub fn get(&self, key: &str) -> Option<SettingSpec> {
        if let Some(s) = self.settings.iter().find(|s| s.key == key) {
            return Some(s.clone());
        }
        self.families.iter().find_map(|f| {
            let name = key.strip_prefix(&f.prefix)?.strip_prefix('.')?;
            let ok = !name.is_empty() && name.trim() == name && name == name.to_lowercase();
            ok.then(|| SettingSpec {
                key: key.to_owned(),
                ..f.spec.clone()
            })
        })
    }

    /// Checks one value: the key must be known and the value must fit its input.
    pub fn check(&self, key: &str, value: f64) -> Result<(), String> {
        let Some(spec) = self.get(key) else {
            return Err(
                "not a setting ketcare reads (a misspelt key?); the settings page lists every key"
                    .to_owned(),
            );
        };
        if !value.is_finite() {
            return Err(format!("expected a number, got {value}"));
        }
        match &spec.input {
            Input::Phone | Input::SenderList | Input::Text { .. } => {
                Err("this setting is text: enter it on the settings page".into())
            }
            Input::YesNo if value != 1.0 && value != 2.0 => {
                Err(format!("expected 1 (yes) or 2 (no), got {value}"))
            }
            Input::YesNo => Ok(()),
            Input::Number {
                min,
                above,
                max,
                step,
                range_source,
                ..
            } => {
                let u = spec.input.unit_suffix();
                if let Some(a) = above
                    && value <= *a
                {
                    return Err(format!(
                        "must be more than {a}{u} ({range_source}), got {value}"
                    ));
                }
                if let Some(m) = min
                    && value < *m
                {
                    return Err(format!(
                        "must be at least {m}{u} ({range_source}), got {value}"
                    ));
                }
                if let Some(m) = max
                    && value > *m
                {
                    return Err(format!(
                        "must be at most {m}{u} ({range_source}), got {value}"
                    ));
                }
                if step.is_some() && value.fract() != 0.0 {
                    return Err(format!("must be a whole number, got {value}"));
                }
                Ok(())
            }
        }
    }

    /// Checks one text value: the key must be a known text setting and the text must fit.
    pub fn check_text(&self, key: &str, value: &str) -> Result<(), String> {
        match self.get(key).map(|s| s.input) {
            None => Err(
                "not a setting ketcare reads (a misspelt key?); the settings page lists every key"
                    .to_owned(),
            ),
            Some(Input::Phone) => check_phone(value),
            Some(Input::SenderList) => crate::senders::parse(value).map(|_| ()),
            Some(Input::Text { format }) => format.check(value),
            Some(_) => Err("this setting is a number, not text".into()),
        }
    }

    /// Checks every value of a settings body; one message per refused key, keyed by the key.
    pub fn check_all(&self, settings: &SiteSettings) -> Vec<(String, String)> {
        settings
            .values
            .iter()
            .filter_map(|(k, v)| self.check(k, *v).err().map(|e| (k.clone(), e)))
            .chain(
                settings
                    .texts
                    .iter()
                    .filter_map(|(k, v)| self.check_text(k, v).err().map(|e| (k.clone(), e))),
            )
            .collect()
    }
}

fn walk(
    file: &str,
    blocks: Blocks,
    v: &toml::Value,
    path: &str,
    out: &mut BTreeMap<String, SettingSpec>,
) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        toml::Value::Table(t) => {
            if let Some(toml::Value::String(key)) = t.get("site_setting") {
                add_from_table(file, blocks, t, path, key, out);
            }
            // A field named `<what>_setting` names the setting that supplies `<what>`.
            for (k, child) in t {
                if let (Some(what), toml::Value::String(key)) = (k.strip_suffix("_setting"), child)
                    && k != "site_setting"
                {
                    let mut table = toml::Table::new();
                    table.insert("site_setting".into(), child.clone());
                    if let Some(note) = t.get("note").or_else(|| t.get("title")) {
                        table.insert("note".into(), note.clone());
                    }
                    add_from_table(file, blocks, &table, &join(what), key, out);
                }
            }
            for (k, child) in t {
                walk(file, blocks, child, &join(k), out);
            }
        }
        toml::Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                // Name array items by their id where they have one.
                let name = child
                    .get("id")
                    .or_else(|| child.get("code"))
                    .and_then(|x| x.as_str().map(str::to_owned))
                    .unwrap_or_else(|| i.to_string());
                walk(file, blocks, child, &format!("{path}[{name}]"), out);
            }
        }
        _ => {}
    }
}

fn add_from_table(
    file: &str,
    blocks: Blocks,
    t: &toml::Table,
    path: &str,
    key: &str,
    out: &mut BTreeMap<String, SettingSpec>,
) {
    let num = |k: &str| {
        t.get(k)
            .and_then(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
    };
    let default = num("value")
        .or_else(|| num("at_least"))
        .or_else(|| num("at_most"));
    let required = t
        .get("required")
        .and_then(toml::Value::as_bool)
        .unwrap_or(true);
    let status = t.get("status").and_then(|x| x.as_str()).unwrap_or("");
    let sources: Vec<String> = t
        .get("source")
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .map(|s| format!("{s} ({status})"))
                .collect()
        })
        .unwrap_or_default();
    let note = t
        .get("note")
        .or_else(|| t.get("label"))
        .or_else(|| t.get("title"))
        .and_then(|x| x.as_str())
        .unwrap_or_default();
    let purpose = if note.is_empty() {
        format!("{} ({path})", describe_key(key))
    } else {
        format!("{} ({path}): {note}", describe_key(key))
    };
    let when_unset = match (default, required) {
        (Some(d), _) => format!("unset: the cited value {d} applies"),
        (None, false) => "unset: this check is off".into(),
        (None, true) => blocks.text(file),
    };
    let used = format!("{file}: {path}");
    let e = out.entry(key.to_owned()).or_insert_with(|| SettingSpec {
        key: key.to_owned(),
        input: input_for(key),
        purpose: purpose.clone(),
        when_unset: when_unset.clone(),
        blocks: default.is_none() && required,
        default,
        sources: Vec::new(),
        used_by: Vec::new(),
        per_site: blocks.per_site(),
    });
    // A key also read for the whole organisation is the organisation's alone.
    e.per_site &= blocks.per_site();
    for s in sources {
        if !e.sources.contains(&s) {
            e.sources.push(s);
        }
    }
    if !e.used_by.contains(&used) {
        e.used_by.push(used);
    }
    // A key that blocks anywhere blocks: keep the strictest wording.
    if default.is_none() && required && !e.blocks {
        e.when_unset = when_unset;
        e.blocks = true;
    }
}

/// A readable name of a key: its last part with spaces.
fn describe_key(key: &str) -> String {
    let last = key.rsplit('.').next().unwrap_or(key).replace('_', " ");
    let mut c = last.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn number(unit: &str, above: Option<f64>, max: Option<f64>, step: Option<f64>, src: &str) -> Input {
    Input::Number {
        unit: unit.to_owned(),
        min: None,
        above,
        max,
        step,
        range_source: src.to_owned(),
    }
}

fn vital(unit: &str, r: &Range) -> Input {
    let cite = |b: &ketcare_session::limits::Bound| b.source.join(", ");
    Input::Number {
        unit: unit.to_owned(),
        min: None,
        above: Some(r.min.value),
        max: r.max.as_ref().map(|m| m.value),
        step: None,
        range_source: format!(
            "data/sessions/plausibility.toml: {}{}",
            cite(&r.min),
            r.max
                .as_ref()
                .map(|m| format!(", {}", cite(m)))
                .unwrap_or_default()
        ),
    }
}

/// The input of a key, from its unit suffix. Ranges are those of the quantity itself (a
/// percentage is at most 100) or of the cited plausibility ranges for vital signs; a clinical
/// choice within them is the site's.
fn input_for(key: &str) -> Input {
    if key == CRISIS_LINE {
        return Input::Phone;
    }
    if key == crate::senders::MLLP_ALLOWED_SENDERS {
        return Input::SenderList;
    }
    if let Some(format) = crate::outreach::text_format(key) {
        return Input::Text { format };
    }
    if key == crate::outreach::SMTP_PORT {
        return Input::Number {
            unit: String::new(),
            min: Some(1.0),
            above: None,
            max: Some(65535.0),
            step: Some(1.0),
            range_source: "a TCP port".into(),
        };
    }
    let positive = "a positive quantity";
    let count = "a whole count";
    let p = Plausibility::builtin().ok();
    let last = key.rsplit('.').next().unwrap_or(key);
    if last.ends_with("_enabled")
        || matches!(
            key,
            "billing.esketamine_drug_line"
                | "schedule.ketamine_prescriber_on_site"
                | "measures.link_before_session"
                | crate::second_factor::REQUIRED_SETTING
        )
    {
        return Input::YesNo;
    }
    if let Some(p) = p {
        if last.ends_with("_mmhg") {
            let r = if last.contains("etco2") {
                &p.etco2
            } else if last.contains("diastolic") {
                &p.diastolic
            } else {
                &p.systolic
            };
            return vital("mmHg", r);
        }
        if last.ends_with("_bpm") {
            return vital("/min", &p.heart_rate);
        }
        if last.starts_with("resp_rate") {
            return vital("/min", &p.resp_rate);
        }
        if last.contains("spo2") {
            return vital("%", &p.spo2);
        }
    }
    let suffix = |s: &str| last.ends_with(s);
    if suffix("_fraction") {
        return number("", Some(0.0), Some(1.0), None, "a fraction: 0.5 = 50 %");
    }
    if suffix("_percent") {
        return number("%", Some(0.0), Some(100.0), None, "a percentage");
    }
    if suffix("_minutes") {
        return number("min", Some(0.0), None, None, positive);
    }
    if suffix("_hours") {
        return number("h", Some(0.0), None, None, positive);
    }
    if suffix("_kg") {
        return number("kg", Some(0.0), None, None, positive);
    }
    if suffix("_years") {
        return number("years", Some(0.0), None, None, positive);
    }
    if suffix("_mg_per_dose") || suffix("_mg") || suffix("dose_mg_increment") {
        return number("mg", Some(0.0), None, None, positive);
    }
    if suffix("syringe_ml_increment") {
        return number("mL", Some(0.0), None, None, positive);
    }
    if suffix("pump_ml_per_h_increment") {
        return number("mL/h", Some(0.0), None, None, positive);
    }
    if suffix("_weeks") {
        return number("weeks", Some(0.0), None, Some(1.0), count);
    }
    if suffix("_days") {
        return number("days", Some(0.0), None, Some(1.0), count);
    }
    if suffix("_trials")
        || suffix("_consecutive")
        || suffix("_patients")
        || suffix("_sessions")
        || suffix("_count")
    {
        return number("", Some(0.0), None, Some(1.0), count);
    }
    if suffix("_at_least") || suffix("_at_most") || last == "item_max" {
        return number(
            "points",
            Some(0.0),
            None,
            Some(1.0),
            "a score in whole points",
        );
    }
    number("", Some(0.0), None, None, positive)
}

fn spec(key: &str, purpose: String, when_unset: String, used_by: Vec<String>) -> SettingSpec {
    SettingSpec {
        key: key.to_owned(),
        input: input_for(key),
        purpose,
        blocks: when_unset.contains("until it is set"),
        when_unset,
        default: None,
        sources: Vec::new(),
        used_by,
        per_site: key == ketcare_ops::schedule::NURSE_MAX_CONCURRENT_SETTING,
    }
}

/// Keys the code reads itself (not named in a data file).
fn code_settings(library: &Library) -> Vec<SettingSpec> {
    use ketcare_clinical::settings::keys;
    let mut out = vec![
        spec(
            keys::DOSE_MG_INCREMENT,
            "Dose rounding increment for weight-based doses, in mg (the reference gives none).".into(),
            "weight-based doses cannot be calculated until it is set".into(),
            vec!["dose calculator: rounding".into()],
        ),
        spec(
            keys::SYRINGE_ML_INCREMENT,
            "Smallest volume a syringe measures, in mL (the reference gives none).".into(),
            "volumes cannot be calculated until it is set".into(),
            vec!["dose calculator: rounding".into()],
        ),
        spec(
            keys::PUMP_ML_PER_H_INCREMENT,
            "Pump rate step, in mL/h (the reference gives none).".into(),
            "infusion rates cannot be calculated until it is set".into(),
            vec!["dose calculator: rounding".into()],
        ),
        spec(
            ketcare_ops::schedule::NURSE_MAX_CONCURRENT_SETTING,
            "How many patients one nurse may monitor at once (the reference gives no ratio).".into(),
            "unset: one patient per nurse, the strictest reading".into(),
            vec!["scheduling: nurse conflicts".into()],
        ),
        spec(
            ketcare_measures::outcome::ASSESSMENT_EVERY_DAYS,
            "Days between scheduled questionnaire sets of a course.".into(),
            "unset: no questionnaire is shown as due".into(),
            vec!["measures: questionnaires due".into()],
        ),
        spec(
            crate::senders::MLLP_ALLOWED_SENDERS,
            "The bedside monitors allowed to send vitals over MLLP: their sending facilities \
             (MSH-4) and network addresses; any other sender gets ACK AR and an audit record."
                .into(),
            "unset: any host that reaches the MLLP port can store vitals".into(),
            vec!["sessions: bedside monitor feed".into()],
        ),
        spec(
            CRISIS_LINE,
            "The crisis line a patient is offered, as a tap-to-call number, beside the urgent \
             message after a suicide-risk answer (the reference gives no number: it is the site's \
             own, for its country)."
                .into(),
            "unset: the patient is told to call their local emergency number, with no number shown"
                .into(),
            vec!["measures: questionnaire page".into()],
        ),
        spec(
            crate::registry::SMALL_CELL,
            "The smallest count the research registry shows in a table or export: smaller counts \
             are suppressed, and export rows of an age band, sex and indication group smaller \
             than it are left out (the reference gives no number)."
                .into(),
            "unset: the registry shows no table until it is set".into(),
            vec!["research: every table and export".into()],
        ),
        spec(
            crate::registry::WINDOW_FROM,
            "First day after the first treatment on which a score counts as the course's outcome \
             (the reference gives no window)."
                .into(),
            "unset: response and remission are not evaluated".into(),
            vec!["research: outcome table".into()],
        ),
        spec(
            crate::registry::WINDOW_TO,
            "Last day after the first treatment on which a score counts as the course's outcome."
                .into(),
            "unset: response and remission are not evaluated".into(),
            vec!["research: outcome table".into()],
        ),
        spec(
            crate::registry::INDUCTION_SESSIONS,
            "Sessions that make an induction completed (within the days below; the reference \
             gives no number)."
                .into(),
            "unset: induction completion is not evaluated".into(),
            vec!["research: outcome table".into()],
        ),
        spec(
            crate::registry::INDUCTION_DAYS,
            "Days from the first treatment within which those sessions count.".into(),
            "unset: induction completion is not evaluated".into(),
            vec!["research: outcome table".into()],
        ),
        spec(
            ketcare_measures::outcome::RELAPSE_CONSECUTIVE,
            "How many consecutive scores at or above the relapse bound make a relapse.".into(),
            "unset: relapse is not evaluated".into(),
            vec!["measures: course outcome".into()],
        ),
        spec(
            crate::sessions::pre_measures::LINK_BEFORE_SESSION,
            "Ask for the course's questionnaire set before every session.".into(),
            "unset: no questionnaire is asked for before a session".into(),
            vec!["sessions: check-in".into()],
        ),
        spec(
            crate::second_factor::REQUIRED_SETTING,
            "Require a second factor (an authenticator app's code, RFC 6238) of administrators \
             and prescribers: signed in without one, they can do nothing but set it up. A \
             security policy of the site, not a clinical value."
                .into(),
            "unset: a second factor is each user's choice".into(),
            vec!["sign-in: second factor".into()],
        ),
        spec(
            crate::therapy::INTEGRATION_WINDOW_DAYS,
            "How many days after a dose its integration session is due (the reference gives no \
             number: it is the site's own program)."
                .into(),
            "unset: no dose is called due or missed for integration, and the therapy page says \
             the site has not set the window"
                .into(),
            vec!["therapy: integration after each dose".into()],
        ),
        spec(
            crate::therapy::NOTES_SHARED_SETTING,
            "May the patient's other treating therapists (therapists who have recorded an \
             encounter with the patient) read a psychotherapy note, beside its author? HIPAA \
             §164.501 notes; never any other role."
                .into(),
            "unset: only the note's author reads it".into(),
            vec!["therapy: psychotherapy notes".into()],
        ),
        spec(
            crate::outreach::PUBLIC_URL,
            "The address patients open questionnaire links at (this server as patients reach \
             it, e.g. https://care.example.org): messages carry links under it."
                .into(),
            "unset: no link is sent by email or text message; links are handed over".into(),
            vec!["outreach: messages".into()],
        ),
        spec(
            crate::outreach::SMTP_HOST,
            "The site's own SMTP relay that sends email (its user name and password are given \
             to `ketcare serve`, never stored here)."
                .into(),
            "unset: no email is sent".into(),
            vec!["outreach: email".into()],
        ),
        spec(
            crate::outreach::SMTP_PORT,
            "The SMTP relay's port.".into(),
            "unset: 465 with tls, 587 with starttls, 25 with none".into(),
            vec!["outreach: email".into()],
        ),
        spec(
            crate::outreach::SMTP_SECURITY,
            "How the connection to the relay is secured: tls (from the first byte), starttls \
             (required) or none (only for a relay on this host)."
                .into(),
            "unset: starttls".into(),
            vec!["outreach: email".into()],
        ),
        spec(
            crate::outreach::EMAIL_FROM,
            "The address email is sent from.".into(),
            "unset: no email is sent".into(),
            vec!["outreach: email".into()],
        ),
        spec(
            crate::outreach::SMS_GATEWAY_URL,
            "The SMS gateway's webhook: each text message is POSTed there as JSON, signed with \
             HMAC-SHA256 under the secret given to `ketcare serve`."
                .into(),
            "unset: no text message is sent".into(),
            vec!["outreach: text messages".into()],
        ),
        spec(
            crate::outreach::REMINDER_AFTER_DAYS,
            "Days after a questionnaire link's message before an unanswered link is first \
             reminded of, with a new address (the reference gives none: the site's choice)."
                .into(),
            "unset: no reminder is sent".into(),
            vec!["outreach: reminders".into()],
        ),
        spec(
            crate::outreach::REMINDER_COUNT,
            "How many reminders an unanswered link gets: the first after \
             `outreach.reminder_after_days`, then one a day, each with a new address, until it \
             is answered or expires (the reference gives none: the site's choice)."
                .into(),
            "unset: one reminder".into(),
            vec!["outreach: reminders".into()],
        ),
        spec(
            ketcare_ops::billing::SiteBilling::MONITORING_UNIT,
            "Minutes of recorded in-person monitoring one 0820T unit stands for (whole units \
             only). The reference confirms neither the code nor its time unit: the site's \
             choice, read only when `billing.psychedelic_monitoring_codes_enabled` is on."
                .into(),
            "unset: 0820T is not coded (the superbill says why)".into(),
            vec!["billing: psychedelic-assisted therapy monitoring".into()],
        ),
        spec(
            crate::outreach::QUIET_HOURS,
            "Hours in the site's time zone when no message is sent; a message due then waits \
             until they end (the reference gives none: the site's choice)."
                .into(),
            "unset: messages go at any hour".into(),
            vec!["outreach: messages".into()],
        ),
        spec(
            DEMO_CLINIC,
            "Marks this database as a demo clinic: every page says so, and the demo's settings are shown as its choice.".into(),
            "unset: a clinic's own database".into(),
            vec!["every page: the demo banner".into()],
        ),
    ];
    if let Ok(cat) = ketcare_measures::Catalogue::builtin() {
        for inst in &cat.instruments {
            if inst.remission.is_some() || inst.response.is_some() {
                out.push(spec(
                    &ketcare_measures::outcome::relapse_key(&inst.id),
                    format!(
                        "{}: a score at or above this, after response, counts towards relapse (no confirmed definition in the reference).",
                        inst.id
                    ),
                    "unset: relapse is not evaluated".into(),
                    vec![format!("measures: course outcome ({})", inst.id)],
                ));
            }
        }
    }
    for summary in library.list() {
        if let Ok(p) = library.get(&summary.id)
            && p.monitoring.minimum_observation_minutes.is_none()
            && p.drug != ketcare_clinical::protocol::Drug::Esketamine
        {
            out.push(spec(
                &format!("{}.minimum_observation_minutes", p.id),
                format!(
                    "Minimum observation after the dose for {}: the protocol names none.",
                    p.id
                ),
                "unset: discharge is not held for a minimum time; recovery criteria still apply"
                    .into(),
                vec![format!("sessions: observation ({})", p.id)],
            ));
        }
    }
    out
}

/// The registry of this site: the built-in data files and the site's own protocol files.
pub async fn load(
    store: &dyn ketcare_store::Store,
    library: &Library,
) -> Result<Registry, crate::Error> {
    let site: Vec<(String, String)> = store
        .site_protocols()
        .await?
        .into_iter()
        .map(|p| (p.file_name, p.body))
        .collect();
    Ok(Registry::build(library, &site))
}

/// Setting: 1 marks the database as a demo clinic.
pub const DEMO_CLINIC: &str = "site.demo_clinic";

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let lib = Library::builtin().unwrap_or_else(|e| unreachable!("{e}"));
        Registry::build(&lib, &[])
    }

    #[test]
    fn lists_the_keys_the_walk_missed_before() {
        let r = registry();
        for key in [
            "eligibility.trd_adequate_trial_min_weeks",
            "eligibility.ketamine_bp_systolic_max_mmhg",
            "session.ketamine.bp_gate_systolic_mmhg",
            "session.alarm.systolic_high_mmhg",
            "observation.ketamine_psychiatric_minutes",
            "fasting.ketamine_infusion_food_hours",
            "billing.em_codes_enabled",
            "rounding.dose_mg_increment",
            "schedule.nurse_max_concurrent_patients",
            "measures.qids_sr16.response_fall_fraction",
            "patient.weight_soft_max_kg",
            "measures.cadss.item_max",
        ] {
            assert!(r.get(key).is_some(), "{key} missing");
        }
        let gate = r.get("session.ketamine.bp_gate_systolic_mmhg").unwrap();
        assert!(gate.when_unset.contains("cannot start"), "{gate:?}");
        let alarm = r.get("session.alarm.systolic_high_mmhg").unwrap();
        assert_eq!(alarm.when_unset, "unset: this check is off");
        let esk = r
            .get("eligibility.esketamine_bp_systolic_max_mmhg")
            .unwrap();
        assert_eq!(esk.default, Some(140.0));
        assert!(esk.sources.contains(&"R1d (S)".to_owned()), "{esk:?}");
    }

    #[test]
    fn refuses_unknown_keys_and_values_outside_the_input() {
        let r = registry();
        assert!(r.check("session.alarm.systolc_high_mmhg", 170.0).is_err());
        assert!(r.check("session.alarm.systolic_high_mmhg", 170.0).is_ok());
        let e = r
            .check("session.alarm.systolic_high_mmhg", 900.0)
            .unwrap_err();
        assert!(e.contains("480") && e.contains("plausibility"), "{e}");
        assert!(r.check("session.alarm.spo2_low_percent", 101.0).is_err());
        assert!(r.check("billing.em_codes_enabled", 3.0).is_err());
        assert!(r.check("billing.em_codes_enabled", 2.0).is_ok());
        let sf = crate::second_factor::REQUIRED_SETTING;
        assert_eq!(r.get(sf).map(|s| s.input), Some(Input::YesNo));
        assert!(r.check(sf, 1.0).is_ok());
        assert!(r.check(sf, 0.5).is_err());
        assert!(
            r.check("eligibility.trd_adequate_trial_min_weeks", 4.5)
                .is_err()
        );
        assert!(
            r.check("measures.qids_sr16.response_fall_fraction", 50.0)
                .is_err()
        );
        assert!(
            r.check("eligibility.diazepam_equivalent_factor.lorazepam", 10.0)
                .is_ok()
        );
        assert!(
            r.check("eligibility.diazepam_equivalent_factor.", 10.0)
                .is_err()
        );
    }
}
