//! Registering and editing a patient: the core's parsing, plus the plausibility of the chart's
//! weight, so an impossible weight never reaches the record the doses are calculated from.

use jiff::civil::Date;
use ketcare_clinical::{Library, SiteSettings};
use ketcare_core::FieldErrors;
use ketcare_core::patient::{NewPatient, PatientInput};

/// Parses a patient's record; a weight outside the possible human range (the cited bounds of
/// `eligibility/rules.toml`, the same the calculator refuses) is refused naming `weight_value`.
pub fn parse(
    library: &Library,
    input: &PatientInput,
    today: Date,
) -> Result<NewPatient, FieldErrors> {
    let record = NewPatient::parse(input, today)?;
    if let Some(w) = record.weight {
        let t = &library.eligibility_rules().thresholds;
        let (lo, hi) = (t.weight_min_kg.get_ref(), t.weight_max_kg.get_ref());
        let none = SiteSettings::default();
        if let (Some(min), Some(max)) = (lo.resolve(&none), hi.resolve(&none)) {
            let kg = w.value.kg();
            if !(min.value..=max.value).contains(&kg) {
                let mut sources = lo.source.clone();
                sources.extend(hi.source.iter().cloned());
                return Err(FieldErrors::single(
                    "weight_value",
                    format!(
                        "{} kg is not a possible human weight ({} to {} kg) [{}]; check the number and the unit",
                        ketcare_core::units::trim_float(kg),
                        min.value,
                        max.value,
                        sources.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(record)
}
