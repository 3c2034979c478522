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

/// The patient a form names by MRN ("KC-1001"), by "Name (MRN)" as a picker writes it, or by
/// patient number; `field` is named in the refusal when it names no one, or more than one.
pub async fn resolve(
    store: &dyn ketcare_store::Store,
    actor: &ketcare_core::Actor,
    field: &str,
    text: &str,
) -> Result<ketcare_core::PatientId, crate::Error> {
    let t = text.trim();
    if t.is_empty() {
        return Err(crate::Error::invalid(
            field,
            "name the patient by MRN or name",
        ));
    }
    if let Ok(n) = t.parse::<i64>() {
        return Ok(ketcare_core::PatientId::new(n));
    }
    // "Alvarez, Maria (KC-1001)": the MRN in the last parentheses.
    let mrn = match (t.rfind('('), t.ends_with(')')) {
        (Some(i), true) => t[i + 1..t.len() - 1].trim(),
        _ => t,
    };
    let found = store.search_patients(actor, mrn, 20).await?;
    let exact: Vec<_> = found
        .iter()
        .filter(|p| p.mrn.eq_ignore_ascii_case(mrn))
        .collect();
    // Only an exact MRN names a patient: a name or a fragment that happens to match one
    // patient today must not pick them silently.
    let named = match (t.rfind('('), t.ends_with(')')) {
        (Some(i), true) => t[..i].trim(),
        _ => "",
    };
    match exact.as_slice() {
        // "Name (MRN)" whose name is not that patient's is a contradiction, not a choice.
        [one]
            if !named.is_empty()
                && ketcare_core::patient::search_fold(named)
                    != ketcare_core::patient::search_fold(&format!(
                        "{}, {}",
                        one.family_name, one.given_name
                    )) =>
        {
            Err(crate::Error::invalid(
                field,
                format!(
                    "MRN {mrn} is {}, {}, not {named:?}",
                    one.family_name, one.given_name
                ),
            ))
        }
        [one] => Ok(one.id),
        [] if found.is_empty() => Err(crate::Error::invalid(
            field,
            format!("no patient has the MRN {mrn:?}"),
        )),
        [] => Err(crate::Error::invalid(
            field,
            format!(
                "{t:?} is not an MRN; it matches {} patient(s) by name: give the MRN, e.g. {:?}",
                found.len(),
                found[0].mrn
            ),
        )),
        _ => Err(crate::Error::invalid(
            field,
            format!("more than one patient has the MRN {mrn:?}"),
        )),
    }
}

/// "Alvarez, Maria (KC-1001)" for each of `ids` that exists, as lists and queues name people
/// (one audited read of the patients shown).
pub async fn labels(
    store: &dyn ketcare_store::Store,
    actor: &ketcare_core::Actor,
    ids: &[ketcare_core::PatientId],
) -> Result<std::collections::BTreeMap<ketcare_core::PatientId, String>, crate::Error> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Default::default());
    }
    Ok(store
        .patient_summaries(actor, &ids)
        .await?
        .into_iter()
        .map(|p| {
            (
                p.id,
                format!("{}, {} ({})", p.family_name, p.given_name, p.mrn),
            )
        })
        .collect())
}
