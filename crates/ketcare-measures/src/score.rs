//! Scoring: completeness, item ranges, totals, bands, cut-offs and suicide-risk safety flags.

use serde::{Deserialize, Serialize};

use ketcare_clinical::SiteSettings;
use ketcare_clinical::source::{Cited, Provenance, Status};

use crate::catalogue::{Instrument, ScoringKind, resolve};

/// A form that cannot be scored; every variant names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ScoreError {
    #[error("instrument: unknown instrument {id:?}")]
    UnknownInstrument { id: String },
    #[error("answers: {given} answers given, but {instrument} has {items} items")]
    TooManyAnswers {
        instrument: String,
        given: usize,
        items: usize,
    },
    #[error(
        "answers: items {} of {instrument} are not answered; {instrument} defines no missing-item rule, so every scored item is required",
        join(.items)
    )]
    MissingItems { instrument: String, items: Vec<u8> },
    #[error("answers: item {item} of {instrument} is {value}; expected {min} to {max}")]
    OutOfRange {
        instrument: String,
        item: u8,
        value: i32,
        min: i32,
        max: i32,
    },
    #[error(
        "answers: {instrument}'s item scale is not confirmed by the reference; the site must set {key}"
    )]
    SettingMissing { instrument: String, key: String },
    #[error(
        "answers: item {position}: {value:?} is not a whole number (leave it empty or `-` when not answered)"
    )]
    NotANumber { position: usize, value: String },
}

fn join(items: &[u8]) -> String {
    items
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ScoreError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            ScoreError::UnknownInstrument { .. } => "instrument",
            _ => "answers",
        }
    }
}

/// Parses `1,2,0,,3` (an empty or `-` position is unanswered).
pub fn parse_answers(text: &str) -> Result<Vec<Option<i32>>, ScoreError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .enumerate()
        .map(|(i, s)| {
            let s = s.trim();
            if s.is_empty() || s == "-" {
                Ok(None)
            } else {
                s.parse::<i32>()
                    .map(Some)
                    .map_err(|_| ScoreError::NotANumber {
                        position: i + 1,
                        value: s.to_string(),
                    })
            }
        })
        .collect()
}

/// A positive suicide-risk answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SafetyFlag {
    pub instrument: String,
    pub item: u8,
    pub label: String,
    pub answer: i32,
    pub at_least: i32,
    pub source: Vec<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The band a total falls in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BandResult {
    pub label: String,
    pub min: i32,
    pub max: i32,
}

/// A cut-off and whether the total meets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CutoffResult {
    pub id: String,
    pub label: String,
    pub at_least: f64,
    pub met: bool,
    pub provenance: Provenance,
}

/// A named partial score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartScore {
    pub label: String,
    pub value: i32,
}

/// A scored form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Score {
    pub instrument: String,
    pub answers: Vec<Option<i32>>,
    /// The total (absent for screens without a total and for items-only instruments).
    pub total: Option<i32>,
    pub total_min: Option<i32>,
    pub total_max: Option<i32>,
    /// For yes/no screens: positive when any item is yes.
    pub positive: Option<bool>,
    pub band: Option<BandResult>,
    pub cutoffs: Vec<CutoffResult>,
    pub domains: Vec<PartScore>,
    pub subscores: Vec<PartScore>,
    pub safety: Vec<SafetyFlag>,
    /// Where the scoring rule comes from.
    pub provenance: Provenance,
    /// Set when the item scale comes from a site setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_scale_set_by_site: Option<String>,
}

impl Score {
    /// Total as text for display ("12", "positive", "—").
    pub fn display(&self) -> String {
        match (self.total, self.positive) {
            (Some(t), _) => t.to_string(),
            (None, Some(true)) => "positive".into(),
            (None, Some(false)) => "negative".into(),
            _ => "recorded".into(),
        }
    }
}

/// The positive suicide-risk answers among (possibly incomplete) answers. Values outside an
/// item's range are ignored here (scoring refuses them).
pub fn safety_flags(inst: &Instrument, answers: &[Option<i32>]) -> Vec<SafetyFlag> {
    inst.items
        .iter()
        .zip(answers.iter())
        .filter_map(|(item, a)| {
            let rule = item.safety.as_ref()?;
            let v = (*a)?;
            let max = item.max.or(inst.item_max).unwrap_or(i32::MAX);
            (v >= rule.at_least && v <= max).then(|| SafetyFlag {
                instrument: inst.id.clone(),
                item: item.n,
                label: item.label.clone(),
                answer: v,
                at_least: rule.at_least,
                source: rule.source.clone(),
                status: rule.status,
                note: rule.note.clone(),
            })
        })
        .collect()
}

/// Scores a form: refuses unknown items, out-of-range values and missing required items
/// (naming them), else computes the total, band, cut-offs and safety flags.
pub fn score(
    inst: &Instrument,
    answers: &[Option<i32>],
    settings: &SiteSettings,
) -> Result<Score, ScoreError> {
    let items = inst.items.len();
    if answers.len() > items {
        return Err(ScoreError::TooManyAnswers {
            instrument: inst.name.clone(),
            given: answers.len(),
            items,
        });
    }
    let mut scale_key = None;
    if inst.item_max.is_none()
        && let Some(k) = &inst.item_max_setting
    {
        if settings.value(k).is_none() {
            return Err(ScoreError::SettingMissing {
                instrument: inst.name.clone(),
                key: k.clone(),
            });
        }
        scale_key = Some(k.clone());
    }
    let mut full: Vec<Option<i32>> = answers.to_vec();
    full.resize(items, None);
    for (item, a) in inst.items.iter().zip(&full) {
        if let Some(v) = *a {
            let (min, max) = inst.item_range(item, settings);
            let max = max.unwrap_or(min);
            if v < min || v > max {
                return Err(ScoreError::OutOfRange {
                    instrument: inst.name.clone(),
                    item: item.n,
                    value: v,
                    min,
                    max,
                });
            }
        }
    }
    let missing: Vec<u8> = inst
        .items
        .iter()
        .zip(&full)
        .filter(|(item, a)| item.required && a.is_none())
        .map(|(item, _)| item.n)
        .collect();
    if !missing.is_empty() {
        return Err(ScoreError::MissingItems {
            instrument: inst.name.clone(),
            items: missing,
        });
    }
    let value = |n: u8| -> i32 { full.get(usize::from(n) - 1).copied().flatten().unwrap_or(0) };
    let scored = inst.items.iter().filter(|i| i.scored);
    let mut domains = Vec::new();
    let (total, positive) = match inst.scoring {
        ScoringKind::Sum | ScoringKind::Single => (Some(scored.map(|i| value(i.n)).sum()), None),
        ScoringKind::Domains => {
            for d in &inst.domains {
                let v = d.items.iter().map(|&n| value(n)).max().unwrap_or(0);
                domains.push(PartScore {
                    label: d.label.clone(),
                    value: v,
                });
            }
            (Some(domains.iter().map(|d| d.value).sum()), None)
        }
        ScoringKind::AnyYes => (None, Some(scored.clone().any(|i| value(i.n) >= 1))),
        ScoringKind::ItemsOnly => (None, None),
    };
    let band = total.and_then(|t| {
        inst.bands
            .iter()
            .find(|b| b.min <= t && t <= b.max)
            .map(|b| BandResult {
                label: b.label.clone(),
                min: b.min,
                max: b.max,
            })
    });
    let cutoffs = match total {
        Some(t) => inst
            .cutoffs
            .iter()
            .filter_map(|c| {
                let cited = Cited {
                    value: Some(f64::from(c.at_least)),
                    site_setting: c.site_setting.clone(),
                    required: None,
                    source: c.source.clone(),
                    status: c.status,
                    note: None,
                };
                let (at_least, provenance) = resolve(&cited, settings).ok()?;
                Some(CutoffResult {
                    id: c.id.clone(),
                    label: c.label.clone(),
                    at_least,
                    met: f64::from(t) >= at_least,
                    provenance,
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let subscores = inst
        .subscores
        .iter()
        .map(|s| PartScore {
            label: s.label.clone(),
            value: s.items.iter().map(|&n| value(n)).sum(),
        })
        .collect();
    let has_total = total.is_some();
    Ok(Score {
        instrument: inst.id.clone(),
        answers: full.clone(),
        total,
        total_min: has_total.then(|| inst.total_min()),
        total_max: if has_total {
            inst.total_max(settings)
        } else {
            None
        },
        positive,
        band,
        cutoffs,
        domains,
        subscores,
        safety: safety_flags(inst, &full),
        provenance: Provenance::Reference {
            source: inst.scoring_cite.source.clone(),
            status: inst.scoring_cite.status,
        },
        item_scale_set_by_site: scale_key,
    })
}
