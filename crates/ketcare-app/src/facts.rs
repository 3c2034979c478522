//! The facts a clinical decision is made on, loaded from the record: age on the day of care from
//! the date of birth, the chart's latest weight and height with their dates, sex, and the
//! patient's earlier sessions. Nothing here comes from a request.

use crate::error::{Error, Result};
use jiff::civil::Date;
use ketcare_clinical::dose::{PatientMeasures, Sex as DoseSex};
use ketcare_clinical::eligibility::Age as ClinicalAge;
use ketcare_core::age::Age;
use ketcare_core::patient::{Patient, Sex};
use ketcare_core::{Actor, AgeBand, AgeBands, PatientId};
use ketcare_store::Store;

/// One patient as the record has them on the day of care.
#[derive(Debug, Clone)]
pub struct PatientFacts {
    pub patient: Patient,
    pub today: Date,
    pub age: Age,
    pub band: AgeBand,
}

impl PatientFacts {
    /// Loads the patient (an audited read checked against the actor's role) and derives the
    /// age and band on `today` from the date of birth.
    pub async fn load(
        store: &dyn Store,
        actor: &Actor,
        id: PatientId,
        today: Date,
        bands: &AgeBands,
    ) -> Result<Self> {
        let patient = store.get_patient(actor, id).await?;
        Self::of(patient, today, bands)
    }

    pub fn of(patient: Patient, today: Date, bands: &AgeBands) -> Result<Self> {
        let Some(age) = Age::on(patient.record.date_of_birth, today) else {
            return Err(Error::invalid(
                "date_of_birth",
                format!(
                    "the record's date of birth {} is after the day of care {today}",
                    patient.record.date_of_birth
                ),
            ));
        };
        Ok(PatientFacts {
            band: bands.band_for(age),
            patient,
            today,
            age,
        })
    }

    pub fn clinical_age(&self) -> ClinicalAge {
        ClinicalAge {
            years: self.age.years(),
            months: self.age.completed_months % 12,
        }
    }

    /// The chart's weight, kg, and the day it was measured.
    pub fn weight(&self) -> Option<(f64, Date)> {
        self.patient
            .record
            .weight
            .map(|w| (w.value.kg(), w.measured_on))
    }

    /// The calculator's view of the patient, entirely from the record. A chart without a
    /// weight cannot be dosed: the refusal names `patient.weight_kg`.
    pub fn measures(&self) -> Result<PatientMeasures> {
        let Some(weight) = self.patient.record.weight else {
            return Err(Error::invalid(
                "patient.weight_kg",
                "the chart has no weight: record the patient's weight (with the date measured) first",
            ));
        };
        Ok(PatientMeasures {
            weight_kg: weight.value,
            height_cm: self.patient.record.height.map(|h| h.value),
            sex: match self.patient.record.sex {
                Sex::Female => Some(DoseSex::Female),
                Sex::Male => Some(DoseSex::Male),
                Sex::Other | Sex::Unknown => None,
            },
            age: Some(self.clinical_age()),
        })
    }
}
