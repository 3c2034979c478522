//! Measurement-based care: questionnaires, patient links, safety alerts, trajectories, opioid MME.

use crate::routes::Entry;
use ketcare_measures::{Catalogue, Score, ScoreError, SiteSettings};
use utoipa::OpenApi;

/// Scores answers given as text (`1,2,,0`): the one function the CLI, the API and the pages
/// call.
pub fn score_text(
    instrument: &str,
    answers: &str,
    settings: &SiteSettings,
) -> Result<Score, ScoreError> {
    let answers = ketcare_measures::parse_answers(answers)?;
    score_answers(instrument, &answers, settings)
}

/// Scores answers by instrument id.
pub fn score_answers(
    instrument: &str,
    answers: &[Option<i32>],
    settings: &SiteSettings,
) -> Result<Score, ScoreError> {
    let inst = catalogue()
        .and_then(|c| c.instrument(instrument))
        .ok_or_else(|| ScoreError::UnknownInstrument {
            id: instrument.to_string(),
        })?;
    ketcare_measures::score(inst, answers, settings)
}

/// The built-in catalogue (validated by a test and at start).
pub fn catalogue() -> Option<&'static Catalogue> {
    Catalogue::builtin().ok()
}

/// This area's routes, each with its role rule (joined into [`crate::routes::table`]).
#[rustfmt::skip]
pub(crate) fn routes() -> Vec<Entry> {
    vec![]
}

/// This area's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi()]
pub struct MeasuresApiDoc;
