//! The instrument catalogue and its data files: every error names the file, the line and the
//! field.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use toml::Spanned;

use ketcare_clinical::DataError;
use ketcare_clinical::SiteSettings;
use ketcare_clinical::data::{line_of, parse_toml};
use ketcare_clinical::source::{Cited, CitedText, Provenance, SourceCatalogue, Status};

use crate::mme::OpioidTable;

/// Embedded data files (name as shown in errors, text).
pub const SOURCES_FILE: (&str, &str) = (
    "data/measures/sources.toml",
    include_str!("../../../data/measures/sources.toml"),
);
pub const INSTRUMENTS_FILE: (&str, &str) = (
    "data/measures/instruments.toml",
    include_str!("../../../data/measures/instruments.toml"),
);
pub const OPIOIDS_FILE: (&str, &str) = (
    "data/measures/opioids.toml",
    include_str!("../../../data/measures/opioids.toml"),
);

/// Where a rule comes from: source IDs and the reference row's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cite {
    #[serde(default)]
    pub source: Vec<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A LOINC code with its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Code {
    pub code: String,
    #[serde(default)]
    pub source: Vec<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Who answers the instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rater {
    #[serde(rename = "self")]
    SelfReport,
    Clinician,
    Observer,
    Nurse,
}

impl Rater {
    /// Whether a patient may answer it on a link.
    pub fn is_self_report(self) -> bool {
        self == Rater::SelfReport
    }
}

/// How the total is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScoringKind {
    /// Sum of the scored items.
    Sum,
    /// Sum over domains, each the maximum of its items (QIDS-SR16).
    Domains,
    /// The one item is the score.
    Single,
    /// Positive when any scored item is "yes" (1); no total.
    AnyYes,
    /// Items are recorded; the reference confirms no total.
    ItemsOnly,
}

/// Whether item wording may be shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Wording {
    /// The licence allows the text.
    Free,
    /// Item number and a neutral label only; the clinic loads its licensed text.
    LabelsOnly,
}

/// An answer option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerOption {
    pub value: i32,
    pub label: String,
}

/// A positive suicide-risk answer rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SafetyRule {
    pub at_least: i32,
    pub source: Vec<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub n: u8,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Counts towards the total (default true).
    #[serde(default = "yes")]
    pub scored: bool,
    /// Must be answered (default true).
    #[serde(default = "yes")]
    pub required: bool,
    /// Item range when it differs from the instrument's (yes/no items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<AnswerOption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<SafetyRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loinc: Option<Code>,
}

fn yes() -> bool {
    true
}

/// A severity band (inclusive bounds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub min: i32,
    pub max: i32,
    pub label: String,
}

/// A cut-off: met when the total is at least `at_least` (a site may replace an S default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cutoff {
    pub id: String,
    pub label: String,
    pub at_least: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_setting: Option<String>,
    pub source: Vec<String>,
    pub status: Status,
}

/// A domain of a domain-scored instrument: the maximum of its items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    pub label: String,
    pub items: Vec<u8>,
}

/// A sum of selected items (CADSS-6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscore {
    pub id: String,
    pub label: String,
    pub items: Vec<u8>,
    pub source: Vec<String>,
    pub status: Status,
}

/// One instrument, as in the data file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Instrument {
    pub id: String,
    pub name: String,
    pub measures: String,
    pub rater: Rater,
    pub scoring: ScoringKind,
    pub scoring_cite: Cite,
    pub item_min: i32,
    /// Highest item score (absent when the reference leaves it unconfirmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_max: Option<i32>,
    /// Site setting that supplies the highest item score when the reference does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_max_setting: Option<String>,
    pub licence: CitedText,
    pub wording: Wording,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stem: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<AnswerOption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options_cite: Option<Cite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loinc_panel: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loinc_total: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bands_cite: Option<Cite>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<Band>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cutoffs: Vec<Cutoff>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<Domain>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscores: Vec<Subscore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Response: a fall from baseline of at least `value` (a fraction).
    pub response: Option<Cited>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Remission: a total of at most `value`.
    pub remission: Option<Cited>,
    pub items: Vec<Item>,
}

impl Instrument {
    /// The item range (min, max) of an item; `None` for max when the site has not set it.
    pub fn item_range(&self, item: &Item, settings: &SiteSettings) -> (i32, Option<i32>) {
        let min = item.min.unwrap_or(self.item_min);
        let max = item.max.or(self.item_max).or_else(|| {
            self.item_max_setting
                .as_deref()
                .and_then(|k| settings.value(k))
                .map(|v| v.round() as i32)
        });
        (min, max)
    }

    /// Highest possible total, when the instrument has a total and its item scale is known.
    pub fn total_max(&self, settings: &SiteSettings) -> Option<i32> {
        let scored = self.items.iter().filter(|i| i.scored);
        match self.scoring {
            ScoringKind::Sum => scored
                .map(|i| self.item_range(i, settings).1)
                .sum::<Option<i32>>(),
            ScoringKind::Single => scored.map(|i| self.item_range(i, settings).1).next()?,
            ScoringKind::Domains => {
                let max = self.item_max?;
                Some(max * i32::try_from(self.domains.len()).ok()?)
            }
            ScoringKind::AnyYes | ScoringKind::ItemsOnly => None,
        }
    }

    /// Lowest possible total.
    pub fn total_min(&self) -> i32 {
        match self.scoring {
            ScoringKind::Domains => self.item_min * self.domains.len() as i32,
            _ => self
                .items
                .iter()
                .filter(|i| i.scored)
                .map(|i| i.min.unwrap_or(self.item_min))
                .sum(),
        }
    }

    /// The options to show for an item (its own, else the instrument's).
    pub fn options_for<'a>(&'a self, item: &'a Item) -> &'a [AnswerOption] {
        if item.options.is_empty() {
            &self.options
        } else {
            &item.options
        }
    }

    /// Whether any item carries a suicide-risk rule.
    pub fn has_safety_items(&self) -> bool {
        self.items.iter().any(|i| i.safety.is_some())
    }

    /// The response fraction and where it came from; `Err(key)` names an unset site setting.
    pub fn response_fraction(
        &self,
        settings: &SiteSettings,
    ) -> Option<Result<(f64, Provenance), String>> {
        self.response.as_ref().map(|r| resolve(r, settings))
    }

    /// The remission bound and where it came from; `Err(key)` names an unset site setting.
    pub fn remission_at_most(
        &self,
        settings: &SiteSettings,
    ) -> Option<Result<(f64, Provenance), String>> {
        self.remission.as_ref().map(|r| resolve(r, settings))
    }
}

/// A cited number, or the site setting that replaces or supplies it; `Err(key)` names the
/// unset setting.
pub(crate) fn resolve(c: &Cited, settings: &SiteSettings) -> Result<(f64, Provenance), String> {
    c.resolve(settings)
        .map(|r| (r.value, r.provenance))
        .ok_or_else(|| c.site_setting.clone().unwrap_or_else(|| "(none)".into()))
}

/// Every instrument and the opioid table, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Catalogue {
    pub instruments: Vec<Instrument>,
    pub opioids: OpioidTable,
    pub sources: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstrumentsFile {
    #[allow(dead_code)]
    version: u32,
    instrument: Vec<Spanned<Instrument>>,
}

static BUILTIN: OnceLock<Result<Catalogue, DataError>> = OnceLock::new();

impl Catalogue {
    /// The embedded catalogue (parsed and validated once).
    pub fn builtin() -> Result<&'static Catalogue, DataError> {
        BUILTIN
            .get_or_init(|| Self::parse(SOURCES_FILE, INSTRUMENTS_FILE, OPIOIDS_FILE))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Parses and validates the three files, each given as (name, text).
    pub fn parse(
        sources: (&str, &str),
        instruments: (&str, &str),
        opioids: (&str, &str),
    ) -> Result<Self, DataError> {
        let sources = SourceCatalogue::parse(sources.0, sources.1)?.sources;
        let file: InstrumentsFile = parse_toml(instruments.0, instruments.1)?;
        let mut seen = BTreeSet::new();
        let mut list = Vec::new();
        for sp in file.instrument {
            let start = sp.span().start;
            let inst = sp.into_inner();
            let ctx = Ctx {
                file: instruments.0,
                text: instruments.1,
                start,
                sources: &sources,
                id: inst.id.clone(),
            };
            if !seen.insert(inst.id.clone()) {
                return Err(ctx.err(
                    "id",
                    "",
                    "instrument id is already defined; expected unique ids",
                ));
            }
            validate(&ctx, &inst)?;
            list.push(inst);
        }
        let opioids = OpioidTable::parse(opioids.0, opioids.1, &sources)?;
        Ok(Self {
            instruments: list,
            opioids,
            sources,
        })
    }

    /// An instrument by id.
    pub fn instrument(&self, id: &str) -> Option<&Instrument> {
        self.instruments.iter().find(|i| i.id == id)
    }
}

pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub start: usize,
    pub sources: &'a BTreeMap<String, String>,
    pub id: String,
}

impl Ctx<'_> {
    /// An error at the first line at/after the instrument start that contains `needle`.
    pub(crate) fn err(&self, field: &str, needle: &str, message: impl Into<String>) -> DataError {
        let rest = self.text.get(self.start..).unwrap_or("");
        let off = if needle.is_empty() {
            0
        } else {
            rest.find(needle).unwrap_or(0)
        };
        DataError::Invalid {
            file: self.file.into(),
            line: line_of(self.text, self.start + off),
            field: format!("{}.{field}", self.id),
            message: message.into(),
        }
    }

    pub(crate) fn check_sources(
        &self,
        field: &str,
        needle: &str,
        ids: &[String],
        status: Status,
    ) -> Result<(), DataError> {
        if let Some(bad) = ids.iter().find(|i| !self.sources.contains_key(i.as_str())) {
            return Err(self.err(
                field,
                needle,
                format!(
                    "unknown source ID {bad:?}: expected an ID listed in data/measures/sources.toml"
                ),
            ));
        }
        if status != Status::U && ids.is_empty() {
            return Err(self.err(
                field,
                needle,
                format!("status {status:?} needs `source` with at least one source ID"),
            ));
        }
        Ok(())
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn valid_key(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

fn validate(ctx: &Ctx, inst: &Instrument) -> Result<(), DataError> {
    let none = SiteSettings::default();
    if !valid_id(&inst.id) {
        return Err(ctx.err("id", "id", "expected [a-z0-9_] text"));
    }
    ctx.check_sources(
        "scoring_cite",
        "scoring_cite",
        &inst.scoring_cite.source,
        inst.scoring_cite.status,
    )?;
    ctx.check_sources(
        "licence",
        "licence",
        &inst.licence.source,
        inst.licence.status,
    )?;
    for (name, code) in [
        ("loinc_panel", &inst.loinc_panel),
        ("loinc_total", &inst.loinc_total),
    ] {
        if let Some(c) = code {
            ctx.check_sources(name, name, &c.source, c.status)?;
        }
    }
    if let Some(c) = &inst.options_cite {
        ctx.check_sources("options_cite", "options_cite", &c.source, c.status)?;
    }
    match (inst.item_max, &inst.item_max_setting) {
        (Some(_), None) => {}
        (None, Some(k)) if valid_key(k) => {}
        _ => {
            return Err(ctx.err(
                "item_max",
                "item_m",
                "expected exactly one of `item_max` (a cited number) or `item_max_setting` (a site-setting key)",
            ));
        }
    }
    if inst.items.is_empty() {
        return Err(ctx.err("items", "", "expected at least one item"));
    }
    for (i, item) in inst.items.iter().enumerate() {
        let needle = format!("n = {}\n", item.n);
        let field = format!("items[{}]", item.n);
        if usize::from(item.n) != i + 1 {
            return Err(ctx.err(
                &field,
                &needle,
                format!(
                    "items must be numbered 1, 2, … in order; expected n = {}",
                    i + 1
                ),
            ));
        }
        if item.label.trim().is_empty() {
            return Err(ctx.err(&field, &needle, "`label` must not be empty"));
        }
        if inst.wording == Wording::LabelsOnly && item.text.is_some() {
            return Err(ctx.err(
                &format!("{field}.text"),
                &needle,
                "the licence does not allow shipping item wording (wording = \"labels_only\"); remove `text`",
            ));
        }
        if item.scored && !item.required {
            return Err(ctx.err(
                &field,
                &needle,
                "a scored item must be required (no missing-item rule is defined)",
            ));
        }
        let (min, max) = inst.item_range(item, &none);
        if let Some(max) = max
            && max <= min
        {
            return Err(ctx.err(&field, &needle, format!("item range {min}..{max} is empty")));
        }
        for o in inst.options_for(item) {
            if o.value < min || max.is_some_and(|m| o.value > m) {
                return Err(ctx.err(
                    &format!("{field}.options"),
                    &needle,
                    format!("option value {} is outside the item range", o.value),
                ));
            }
        }
        if let Some(s) = &item.safety {
            ctx.check_sources(&format!("{field}.safety"), &needle, &s.source, s.status)?;
            if s.at_least <= min || max.is_some_and(|m| s.at_least > m) {
                return Err(ctx.err(
                    &format!("{field}.safety.at_least"),
                    &needle,
                    "expected a value above the item's lowest score and within its range",
                ));
            }
        }
        if let Some(c) = &item.loinc {
            ctx.check_sources(&format!("{field}.loinc"), &needle, &c.source, c.status)?;
        }
    }
    let n_items = inst.items.len();
    let scored: Vec<u8> = inst
        .items
        .iter()
        .filter(|i| i.scored)
        .map(|i| i.n)
        .collect();
    match inst.scoring {
        ScoringKind::Single if scored.len() != 1 => {
            return Err(ctx.err(
                "scoring",
                "scoring",
                "scoring \"single\" needs exactly one scored item",
            ));
        }
        ScoringKind::Domains => {
            let mut covered: Vec<u8> = inst.domains.iter().flat_map(|d| d.items.clone()).collect();
            covered.sort_unstable();
            if covered != scored {
                return Err(ctx.err(
                    "domains",
                    "domains",
                    "the domains must cover every scored item exactly once",
                ));
            }
        }
        _ => {}
    }
    if inst.scoring != ScoringKind::Domains && !inst.domains.is_empty() {
        return Err(ctx.err(
            "domains",
            "domains",
            "`domains` only applies to scoring \"domains\"",
        ));
    }
    for s in &inst.subscores {
        ctx.check_sources("subscores", "subscores", &s.source, s.status)?;
        if s.items.iter().any(|&n| n == 0 || usize::from(n) > n_items) {
            return Err(ctx.err(
                "subscores",
                "subscores",
                format!("subscore {} names an item that does not exist", s.id),
            ));
        }
    }
    // Bands: contiguous, covering the whole total range.
    if !inst.bands.is_empty() {
        let cite = inst
            .bands_cite
            .as_ref()
            .ok_or_else(|| ctx.err("bands_cite", "bands", "bands need `bands_cite`"))?;
        ctx.check_sources("bands_cite", "bands_cite", &cite.source, cite.status)?;
        let Some(tmax) = inst.total_max(&none) else {
            return Err(ctx.err("bands", "bands", "bands need a total with a known range"));
        };
        let mut next = inst.total_min();
        for b in &inst.bands {
            if b.min != next || b.max < b.min {
                return Err(ctx.err(
                    "bands",
                    "bands",
                    format!(
                        "band {:?} must start at {next} and end at or after its start",
                        b.label
                    ),
                ));
            }
            next = b.max + 1;
        }
        if next != tmax + 1 {
            return Err(ctx.err(
                "bands",
                "bands",
                format!("the bands must end at the highest total, {tmax}"),
            ));
        }
    }
    for c in &inst.cutoffs {
        ctx.check_sources("cutoffs", "cutoffs", &c.source, c.status)?;
        if c.status == Status::U {
            return Err(ctx.err(
                "cutoffs",
                "cutoffs",
                "a U cut-off is never a number: make it a site setting",
            ));
        }
    }
    for (field, rule) in [("response", &inst.response), ("remission", &inst.remission)] {
        let Some(r) = rule else { continue };
        ctx.check_sources(field, field, &r.source, r.status)?;
        cited_shape(ctx, field, r.value, r.site_setting.as_deref(), r.status)?;
        if field == "response"
            && let Some(f) = r.value
            && !(f > 0.0 && f < 1.0)
        {
            return Err(ctx.err(
                "response.value",
                field,
                "expected a fraction between 0 and 1",
            ));
        }
    }
    Ok(())
}

fn cited_shape(
    ctx: &Ctx,
    field: &str,
    value: Option<f64>,
    key: Option<&str>,
    status: Status,
) -> Result<(), DataError> {
    if let Some(k) = key
        && !valid_key(k)
    {
        return Err(ctx.err(field, field, "`site_setting` must be [a-z0-9._-] text"));
    }
    match (status, value, key) {
        (Status::U, Some(_), _) => Err(ctx.err(
            field,
            field,
            "status U values are never hard-coded: remove the number and name a `site_setting`",
        )),
        (Status::U, None, None) => {
            Err(ctx.err(field, field, "status U needs a `site_setting` key"))
        }
        (Status::V | Status::S, None, _) => Err(ctx.err(
            field,
            field,
            format!("status {status:?} needs a number read in the source"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_loads() {
        let c = Catalogue::builtin().map_err(|e| e.to_string());
        assert!(c.is_ok(), "{c:?}");
    }
}
