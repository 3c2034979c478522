//! The patient registry's types: raw input as it comes from a form or JSON body, the validated
//! record ("parse, don't validate"), and guardians of minors.

use crate::age::{Age, AgeBand, AgeBands};
use crate::ids::{GuardianId, PatientId};
use crate::units::{HeightCm, HeightUnit, WeightKg, WeightUnit};
use crate::validation::FieldErrors;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// Administrative sex, as FHIR R4 `AdministrativeGender` codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Female,
    Male,
    Other,
    Unknown,
}

impl Sex {
    pub const ALL: [Sex; 4] = [Self::Female, Self::Male, Self::Other, Self::Unknown];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Female => "female",
            Self::Male => "male",
            Self::Other => "other",
            Self::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A number given as JSON number or as form text.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum NumberInput {
    Number(f64),
    Text(String),
}

/// A yes/no answer given as a JSON boolean or as form text (`yes`, `no`, or empty: not asked).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum YesNoInput {
    Bool(bool),
    Text(String),
}

/// The intake questions the program's outcome analyses use (the research registry's
/// covariates): each yes, no, or not asked (`None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Intake {
    /// A first-degree relative with alcohol use disorder.
    #[serde(default)]
    pub family_history_alcohol_use_disorder: Option<bool>,
    #[serde(default)]
    pub prior_suicide_attempt: Option<bool>,
    /// Electroconvulsive therapy or transcranial magnetic stimulation before.
    #[serde(default)]
    pub prior_ect_or_tms: Option<bool>,
    #[serde(default)]
    pub comorbid_anxiety: Option<bool>,
    #[serde(default)]
    pub ptsd: Option<bool>,
    #[serde(default)]
    pub chronic_pain: Option<bool>,
}

impl Intake {
    /// Every question: its field name, the words a form shows, and the answer.
    pub fn answers(&self) -> [(&'static str, &'static str, Option<bool>); 6] {
        [
            (
                "family_history_alcohol_use_disorder",
                "Family history of alcohol use disorder",
                self.family_history_alcohol_use_disorder,
            ),
            (
                "prior_suicide_attempt",
                "Prior suicide attempt",
                self.prior_suicide_attempt,
            ),
            (
                "prior_ect_or_tms",
                "Prior ECT or TMS",
                self.prior_ect_or_tms,
            ),
            (
                "comorbid_anxiety",
                "Comorbid anxiety disorder",
                self.comorbid_anxiety,
            ),
            ("ptsd", "PTSD", self.ptsd),
            ("chronic_pain", "Chronic pain", self.chronic_pain),
        ]
    }
}

fn yes_no(errors: &mut FieldErrors, field: &str, v: &Option<YesNoInput>) -> Option<bool> {
    match v {
        None => None,
        Some(YesNoInput::Bool(b)) => Some(*b),
        Some(YesNoInput::Text(t)) => match t.trim() {
            "" => None,
            "yes" | "true" => Some(true),
            "no" | "false" => Some(false),
            other => {
                errors.push(
                    field,
                    format!("answer yes, no or leave it empty, not {other:?}"),
                );
                None
            }
        },
    }
}

/// A list given as a JSON array or as form text with one item per line.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ListInput {
    Items(Vec<String>),
    Lines(String),
}

impl ListInput {
    fn items(&self) -> Vec<String> {
        let raw: Vec<&str> = match self {
            ListInput::Items(v) => v.iter().map(String::as_str).collect(),
            ListInput::Lines(s) => s.lines().collect(),
        };
        raw.into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// A patient as submitted by a form or the JSON API, before any checking.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct PatientInput {
    #[serde(default)]
    pub mrn: String,
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub family_name: String,
    /// ISO date, `YYYY-MM-DD`.
    #[serde(default)]
    pub date_of_birth: String,
    /// `female`, `male`, `other` or `unknown`.
    #[serde(default)]
    pub sex: String,
    pub weight_value: Option<NumberInput>,
    /// `kg` (default) or `lb`.
    pub weight_unit: Option<String>,
    /// ISO date the weight was measured; required with a weight.
    pub weight_measured_on: Option<String>,
    pub height_value: Option<NumberInput>,
    /// `cm` (default) or `in`.
    pub height_unit: Option<String>,
    pub height_measured_on: Option<String>,
    pub indications: Option<ListInput>,
    pub psychiatric_history: Option<String>,
    pub substance_use_history: Option<String>,
    pub medications: Option<ListInput>,
    pub allergies: Option<ListInput>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Intake questions (yes, no, or empty: not asked).
    pub family_history_alcohol_use_disorder: Option<YesNoInput>,
    pub prior_suicide_attempt: Option<YesNoInput>,
    pub prior_ect_or_tms: Option<YesNoInput>,
    pub comorbid_anxiety: Option<YesNoInput>,
    pub ptsd: Option<YesNoInput>,
    pub chronic_pain: Option<YesNoInput>,
}

/// A measurement with the date it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Measured<T> {
    pub value: T,
    #[schema(value_type = String, format = Date)]
    pub measured_on: Date,
}

/// A validated patient record, ready to store.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NewPatient {
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    #[schema(value_type = String, format = Date)]
    pub date_of_birth: Date,
    pub sex: Sex,
    #[schema(value_type = Option<Object>)]
    pub weight: Option<Measured<WeightKg>>,
    #[schema(value_type = Option<Object>)]
    pub height: Option<Measured<HeightCm>>,
    pub indications: Vec<String>,
    pub psychiatric_history: String,
    pub substance_use_history: String,
    pub medications: Vec<String>,
    pub allergies: Vec<String>,
    pub phone: String,
    pub email: String,
    /// The intake questions (part of the clinical record).
    #[serde(flatten)]
    pub intake: Intake,
}

impl NewPatient {
    /// The text the patient is found by: names both ways round, MRN and indications, folded
    /// with [`search_fold`]. The store keeps it beside the record, so a search compares folded
    /// text with folded text on either backend.
    pub fn search_text(&self) -> String {
        let mut parts = vec![
            format!("{} {}", self.given_name, self.family_name),
            format!("{} {}", self.family_name, self.given_name),
            self.mrn.clone(),
        ];
        parts.extend(self.indications.iter().cloned());
        search_fold(&parts.join("\n"))
    }
}

/// Folds text for searching: Unicode lower case, accents removed (É → e, ö → o), runs of
/// white space made one space. "Émond", "EMOND" and "emond" fold alike.
pub fn search_fold(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    let folded: String = s
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase();
    let mut out = String::with_capacity(folded.len());
    for line in folded.split('\n') {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&line.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    out
}

/// A stored patient with guardians.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Patient {
    pub id: PatientId,
    #[serde(flatten)]
    pub record: NewPatient,
    pub guardians: Vec<Guardian>,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

/// The part of a patient's record that booking needs and nothing more (minimum necessary): who
/// the patient is and how to reach them and their guardians. No weight, history, medication,
/// allergy or indication.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PatientDemographics {
    pub id: PatientId,
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    #[schema(value_type = String, format = Date)]
    pub date_of_birth: Date,
    pub sex: Sex,
    pub phone: String,
    pub email: String,
    pub guardians: Vec<Guardian>,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl PatientDemographics {
    pub fn day_of_care(&self, on: Date, bands: &AgeBands) -> Option<DayOfCare> {
        DayOfCare::of(self.date_of_birth, on, bands)
    }
}

impl From<Patient> for PatientDemographics {
    fn from(p: Patient) -> Self {
        Self {
            id: p.id,
            mrn: p.record.mrn,
            given_name: p.record.given_name,
            family_name: p.record.family_name,
            date_of_birth: p.record.date_of_birth,
            sex: p.record.sex,
            phone: p.record.phone,
            email: p.record.email,
            guardians: p.guardians,
            updated_at: p.updated_at,
        }
    }
}

/// A patient as the reader may see them: the whole record for a clinician, the demographics for
/// a role that only books (`view` says which).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum VisiblePatient {
    Full(Patient),
    Demographics(PatientDemographics),
}

impl VisiblePatient {
    /// `patient` cut to what a reader with (or without) the clinical-read right may see.
    pub fn of(patient: Patient, may_read_clinical: bool) -> Self {
        if may_read_clinical {
            Self::Full(patient)
        } else {
            Self::Demographics(patient.into())
        }
    }

    pub fn day_of_care(&self, on: Date, bands: &AgeBands) -> Option<DayOfCare> {
        match self {
            Self::Full(p) => p.record.day_of_care(on, bands),
            Self::Demographics(d) => d.day_of_care(on, bands),
        }
    }
}

impl NewPatient {
    /// The fields of the clinical part that hold something, by input field name.
    pub fn clinical_fields_given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        if self.weight.is_some() {
            given.push("weight_value");
        }
        if self.height.is_some() {
            given.push("height_value");
        }
        for (field, _, answer) in self.intake.answers() {
            if answer.is_some() {
                given.push(field);
            }
        }
        for (field, empty) in [
            ("indications", self.indications.is_empty()),
            ("psychiatric_history", self.psychiatric_history.is_empty()),
            (
                "substance_use_history",
                self.substance_use_history.is_empty(),
            ),
            ("medications", self.medications.is_empty()),
            ("allergies", self.allergies.is_empty()),
        ] {
            if !empty {
                given.push(field);
            }
        }
        given
    }

    /// This record with its clinical part (weight, height, indications, histories, medications,
    /// allergies) taken from `stored`: what an edit by someone who may not read that part
    /// changes.
    pub fn with_clinical_part_of(mut self, stored: &NewPatient) -> Self {
        self.weight = stored.weight;
        self.height = stored.height;
        self.indications = stored.indications.clone();
        self.psychiatric_history = stored.psychiatric_history.clone();
        self.substance_use_history = stored.substance_use_history.clone();
        self.medications = stored.medications.clone();
        self.allergies = stored.allergies.clone();
        self.intake = stored.intake;
        self
    }

    /// Body-mass index (kg/m²) from the recorded weight and height, when both are recorded.
    pub fn bmi(&self) -> Option<f64> {
        let (w, h) = (self.weight?, self.height?);
        let m = h.value.cm() / 100.0;
        (m > 0.0).then(|| w.value.kg() / (m * m))
    }
}

/// One line of a search result.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PatientSummary {
    pub id: PatientId,
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    #[schema(value_type = String, format = Date)]
    pub date_of_birth: Date,
    pub sex: Sex,
}

impl From<PatientDemographics> for PatientSummary {
    fn from(d: PatientDemographics) -> Self {
        Self {
            id: d.id,
            mrn: d.mrn,
            given_name: d.given_name,
            family_name: d.family_name,
            date_of_birth: d.date_of_birth,
            sex: d.sex,
        }
    }
}

impl PatientSummary {
    /// Whether `folded_query` (folded with [`search_fold`]) is in the names or the MRN, or is
    /// the date of birth — a search by someone who may not read indications.
    pub fn demographics_match(&self, folded_query: &str) -> bool {
        self.name_matches(folded_query)
            || search_fold(&self.mrn).contains(folded_query)
            || self.date_of_birth.to_string() == folded_query
    }

    /// Whether `folded_query` is in the given or family name, either way round (any case,
    /// accents ignored): a name search, which an MRN or an indication does not answer.
    pub fn name_matches(&self, folded_query: &str) -> bool {
        folded_query.is_empty()
            || search_fold(&format!(
                "{} {}\n{} {}",
                self.given_name, self.family_name, self.family_name, self.given_name
            ))
            .contains(folded_query)
    }
}

/// What a patient looks like on the day of care.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DayOfCare {
    pub age: Age,
    pub band: AgeBand,
    /// Version of the age-band table that decided the band.
    pub bands_version: u32,
}

impl DayOfCare {
    /// Age and band on `on` of someone born on `born` (None before birth).
    pub fn of(born: Date, on: Date, bands: &AgeBands) -> Option<Self> {
        Age::on(born, on).map(|age| Self {
            age,
            band: bands.band_for(age),
            bands_version: bands.version,
        })
    }
}

impl NewPatient {
    /// Checks every field and returns all problems at once.
    pub fn parse(input: &PatientInput, today: Date) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mrn = required(&mut errors, "mrn", &input.mrn, 32);
        if !mrn.is_empty()
            && !mrn
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errors.push("mrn", "use letters, digits, '-' or '_' only");
        }
        let given_name = required(&mut errors, "given_name", &input.given_name, 100);
        let family_name = required(&mut errors, "family_name", &input.family_name, 100);
        let date_of_birth = match parse_date(&input.date_of_birth) {
            Err(m) => {
                errors.push("date_of_birth", m);
                None
            }
            Ok(d) if d > today => {
                errors.push("date_of_birth", "date of birth cannot be in the future");
                None
            }
            Ok(d) => Some(d),
        };
        let sex = Sex::parse(input.sex.trim());
        if sex.is_none() {
            errors.push("sex", "choose female, male, other or unknown");
        }
        let weight = measured(
            &mut errors,
            ("weight_value", "weight_unit", "weight_measured_on"),
            (
                &input.weight_value,
                &input.weight_unit,
                &input.weight_measured_on,
            ),
            today,
            |v, unit| match WeightUnit::parse(unit.unwrap_or("kg")) {
                Some(unit) => WeightKg::from_unit(v, unit).map_err(|m| vec![("weight_value", m)]),
                None => {
                    let mut e = vec![("weight_unit", "use kg or lb".to_owned())];
                    if !v.is_finite() || v <= 0.0 {
                        e.push((
                            "weight_value",
                            "weight must be a positive number".to_owned(),
                        ));
                    }
                    Err(e)
                }
            },
        );
        let height = measured(
            &mut errors,
            ("height_value", "height_unit", "height_measured_on"),
            (
                &input.height_value,
                &input.height_unit,
                &input.height_measured_on,
            ),
            today,
            |v, unit| match HeightUnit::parse(unit.unwrap_or("cm")) {
                Some(unit) => HeightCm::from_unit(v, unit).map_err(|m| vec![("height_value", m)]),
                None => {
                    let mut e = vec![("height_unit", "use cm or in".to_owned())];
                    if !v.is_finite() || v <= 0.0 {
                        e.push((
                            "height_value",
                            "height must be a positive number".to_owned(),
                        ));
                    }
                    Err(e)
                }
            },
        );
        let email = optional_text(&mut errors, "email", &input.email, false);
        let psychiatric_history = optional_text(
            &mut errors,
            "psychiatric_history",
            &input.psychiatric_history,
            true,
        );
        let substance_use_history = optional_text(
            &mut errors,
            "substance_use_history",
            &input.substance_use_history,
            true,
        );
        let phone = optional_text(&mut errors, "phone", &input.phone, false);
        for (field, l) in [
            ("indications", &input.indications),
            ("medications", &input.medications),
            ("allergies", &input.allergies),
        ] {
            for item in l.as_ref().map(ListInput::items).unwrap_or_default() {
                no_control(&mut errors, field, &item, false);
            }
        }
        if !email.is_empty() && !email.contains('@') {
            errors.push("email", "an email address contains @");
        }
        let list = |l: &Option<ListInput>| l.as_ref().map(ListInput::items).unwrap_or_default();
        let intake = Intake {
            family_history_alcohol_use_disorder: yes_no(
                &mut errors,
                "family_history_alcohol_use_disorder",
                &input.family_history_alcohol_use_disorder,
            ),
            prior_suicide_attempt: yes_no(
                &mut errors,
                "prior_suicide_attempt",
                &input.prior_suicide_attempt,
            ),
            prior_ect_or_tms: yes_no(&mut errors, "prior_ect_or_tms", &input.prior_ect_or_tms),
            comorbid_anxiety: yes_no(&mut errors, "comorbid_anxiety", &input.comorbid_anxiety),
            ptsd: yes_no(&mut errors, "ptsd", &input.ptsd),
            chronic_pain: yes_no(&mut errors, "chronic_pain", &input.chronic_pain),
        };
        let (Some(date_of_birth), Some(sex)) = (date_of_birth, sex) else {
            return Err(errors);
        };
        errors.into_result(NewPatient {
            mrn,
            given_name,
            family_name,
            date_of_birth,
            sex,
            weight,
            height,
            indications: list(&input.indications),
            psychiatric_history,
            substance_use_history,
            medications: list(&input.medications),
            allergies: list(&input.allergies),
            phone,
            email,
            intake,
        })
    }

    pub fn day_of_care(&self, on: Date, bands: &AgeBands) -> Option<DayOfCare> {
        DayOfCare::of(self.date_of_birth, on, bands)
    }

    pub fn full_name(&self) -> String {
        format!("{} {}", self.given_name, self.family_name)
    }
}

fn required(errors: &mut FieldErrors, field: &str, value: &str, max: usize) -> String {
    let v = value.trim();
    if v.is_empty() {
        errors.push(field, "required");
    } else if v.chars().count() > max {
        errors.push(field, format!("at most {max} characters"));
    }
    no_control(errors, field, v, false);
    v.to_owned()
}

/// Refuses control characters (NUL, escape, bell, …), which no name, number or note contains
/// and which can forge log lines or break documents. A multi-line field keeps its line breaks
/// and tabs.
pub fn no_control(errors: &mut FieldErrors, field: &str, v: &str, multiline: bool) {
    let bad = v
        .chars()
        .find(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')));
    if let Some(c) = bad {
        errors.push(
            field,
            format!(
                "contains a control character (U+{:04X}); remove it",
                c as u32
            ),
        );
    }
}

fn optional_text(
    errors: &mut FieldErrors,
    field: &str,
    v: &Option<String>,
    multiline: bool,
) -> String {
    let v = v.as_deref().map(str::trim).unwrap_or("");
    no_control(errors, field, v, multiline);
    v.to_owned()
}

/// Parses an ISO date (`YYYY-MM-DD`).
pub fn parse_date(s: &str) -> Result<Date, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("required".into());
    }
    s.parse::<Date>()
        .map_err(|_| format!("`{s}` is not a date; use YYYY-MM-DD"))
}

fn number(v: &NumberInput) -> Result<Option<f64>, String> {
    match v {
        NumberInput::Number(n) => Ok(Some(*n)),
        NumberInput::Text(t) if t.trim().is_empty() => Ok(None),
        NumberInput::Text(t) => t
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| format!("`{}` is not a number", t.trim())),
    }
}

type MeasureFields = (&'static str, &'static str, &'static str);

fn measured<T>(
    errors: &mut FieldErrors,
    (value_field, _unit_field, date_field): MeasureFields,
    (value, unit, date): (&Option<NumberInput>, &Option<String>, &Option<String>),
    today: Date,
    make: impl Fn(f64, Option<&str>) -> Result<T, Vec<(&'static str, String)>>,
) -> Option<Measured<T>> {
    let v = match value.as_ref().map(number).transpose() {
        Err(m) => {
            errors.push(value_field, m);
            return None;
        }
        Ok(v) => v.flatten()?,
    };
    let unit = unit.as_deref().map(str::trim).filter(|u| !u.is_empty());
    let made = match make(v, unit) {
        Ok(t) => Some(t),
        Err(problems) => {
            for (f, m) in problems {
                errors.push(f, m);
            }
            None
        }
    };
    let on = match parse_date(date.as_deref().unwrap_or("")) {
        Err(m) => {
            errors.push(date_field, m);
            None
        }
        Ok(d) if d > today => {
            errors.push(date_field, "a measurement date cannot be in the future");
            None
        }
        Ok(d) => Some(d),
    };
    Some(Measured {
        value: made?,
        measured_on: on?,
    })
}

/// How a guardian is related to the minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    Mother,
    Father,
    Parent,
    LegalGuardian,
    Grandparent,
    Other,
}

impl Relationship {
    pub const ALL: [Relationship; 6] = [
        Self::Mother,
        Self::Father,
        Self::Parent,
        Self::LegalGuardian,
        Self::Grandparent,
        Self::Other,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mother => "mother",
            Self::Father => "father",
            Self::Parent => "parent",
            Self::LegalGuardian => "legal_guardian",
            Self::Grandparent => "grandparent",
            Self::Other => "other",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct GuardianInput {
    #[serde(default)]
    pub name: String,
    /// mother, father, parent, legal_guardian, grandparent or other.
    #[serde(default)]
    pub relationship: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NewGuardian {
    pub name: String,
    pub relationship: Relationship,
    pub phone: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Guardian {
    pub id: GuardianId,
    #[serde(flatten)]
    pub record: NewGuardian,
}

impl NewGuardian {
    pub fn parse(input: &GuardianInput) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = required(&mut errors, "name", &input.name, 100);
        let relationship = Relationship::parse(input.relationship.trim());
        if relationship.is_none() {
            errors.push(
                "relationship",
                "choose mother, father, parent, legal_guardian, grandparent or other",
            );
        }
        let phone = input.phone.trim().to_owned();
        let email = input.email.trim().to_owned();
        no_control(&mut errors, "phone", &phone, false);
        no_control(&mut errors, "email", &email, false);
        if phone.is_empty() && email.is_empty() {
            errors.push("phone", "give a phone number or an email address");
        }
        if !email.is_empty() && !email.contains('@') {
            errors.push("email", "an email address contains @");
        }
        match relationship {
            Some(relationship) => errors.into_result(NewGuardian {
                name,
                relationship,
                phone,
                email,
            }),
            None => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn intake_answers_are_yes_no_or_not_asked_and_bmi_comes_from_the_record() {
        let mut i = input();
        i.prior_suicide_attempt = Some(YesNoInput::Text("yes".into()));
        i.ptsd = Some(YesNoInput::Bool(false));
        i.chronic_pain = Some(YesNoInput::Text(String::new()));
        i.height_value = Some(NumberInput::Text("150".into()));
        i.height_measured_on = Some("2026-11-01".into());
        let today = jiff::civil::date(2026, 11, 20);
        let p = NewPatient::parse(&i, today).unwrap();
        assert_eq!(p.intake.prior_suicide_attempt, Some(true));
        assert_eq!(p.intake.ptsd, Some(false));
        assert_eq!(p.intake.chronic_pain, None);
        assert!(p.clinical_fields_given().contains(&"prior_suicide_attempt"));
        i.comorbid_anxiety = Some(YesNoInput::Text("maybe".into()));
        let e = NewPatient::parse(&i, today).unwrap_err();
        assert_eq!(e.0[0].field, "comorbid_anxiety");
        // 88 lb (39.916 kg) at 150 cm: 17.74 kg/m².
        let w = p.weight.unwrap().value.kg();
        assert!((p.bmi().unwrap() - w / 1.5 / 1.5).abs() < 1e-12);
        assert!((p.bmi().unwrap() - 17.74).abs() < 0.01);
    }

    fn input() -> PatientInput {
        PatientInput {
            mrn: "MRN-1".into(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            date_of_birth: "2011-03-04".into(),
            sex: "female".into(),
            weight_value: Some(NumberInput::Text("88".into())),
            weight_unit: Some("lb".into()),
            weight_measured_on: Some("2026-11-01".into()),
            indications: Some(ListInput::Lines("TRD\n\n  anxiety \n".into())),
            ..Default::default()
        }
    }

    #[test]
    fn control_characters_are_refused_naming_the_field() {
        let today = date(2026, 12, 6);
        let mut input = PatientInput {
            mrn: "KC-9".into(),
            given_name: "Ro\u{0}bin".into(),
            family_name: "Quill\u{1b}[31m".into(),
            date_of_birth: "1980-05-01".into(),
            sex: "female".into(),
            psychiatric_history: Some("line one\nline two\ttabbed".into()),
            allergies: Some(ListInput::Items(vec!["pea\u{7}nut".into()])),
            ..PatientInput::default()
        };
        let e = NewPatient::parse(&input, today).unwrap_err();
        assert!(e.get("given_name").unwrap().contains("U+0000"), "{e:?}");
        assert!(e.get("family_name").unwrap().contains("U+001B"), "{e:?}");
        assert!(e.get("allergies").unwrap().contains("U+0007"), "{e:?}");
        // Line breaks and tabs belong in a history.
        assert!(e.get("psychiatric_history").is_none(), "{e:?}");
        input.given_name = "Robin".into();
        input.family_name = "Quill".into();
        input.allergies = None;
        assert!(NewPatient::parse(&input, today).is_ok());
        let g = GuardianInput {
            name: "Helen\u{8}".into(),
            relationship: "mother".into(),
            phone: "+1 555 0100".into(),
            email: String::new(),
        };
        assert!(NewGuardian::parse(&g).unwrap_err().get("name").is_some());
    }

    #[test]
    fn search_folds_case_and_accents() {
        assert_eq!(search_fold("  Émond "), "emond");
        assert_eq!(search_fold("ÖZTÜRK"), "ozturk");
        assert_eq!(search_fold("Ødegaard"), "ødegaard");
        assert_eq!(
            search_fold("Treatment-resistant  Depression"),
            "treatment-resistant depression"
        );
    }

    #[test]
    fn parses_a_good_record() {
        let p = NewPatient::parse(&input(), date(2026, 11, 22)).unwrap();
        assert_eq!(p.indications, vec!["TRD", "anxiety"]);
        assert!((p.weight.unwrap().value.kg() - 39.916_128_56).abs() < 1e-9);
        let bands = AgeBands::builtin().unwrap();
        let d = p.day_of_care(date(2026, 11, 22), &bands).unwrap();
        assert_eq!(d.band, AgeBand::Adolescent);
        assert_eq!(d.age.years(), 15);
    }

    #[test]
    fn names_every_bad_field() {
        let mut i = input();
        i.mrn = "".into();
        i.date_of_birth = "2031-01-01".into();
        i.sex = "x".into();
        i.weight_value = Some(NumberInput::Text("heavy".into()));
        let e = NewPatient::parse(&i, date(2026, 11, 22)).unwrap_err();
        for f in ["mrn", "date_of_birth", "sex", "weight_value"] {
            assert!(e.get(f).is_some(), "{f} missing from {e}");
        }
    }

    #[test]
    fn weight_needs_a_date_and_a_known_unit() {
        let mut i = input();
        i.weight_measured_on = None;
        i.weight_unit = Some("stone".into());
        let e = NewPatient::parse(&i, date(2026, 11, 22)).unwrap_err();
        assert!(e.get("weight_measured_on").is_some());
        assert!(e.get("weight_unit").is_some());
    }

    #[test]
    fn guardian_needs_a_contact() {
        let g = GuardianInput {
            name: "Ann".into(),
            relationship: "mother".into(),
            ..Default::default()
        };
        assert!(NewGuardian::parse(&g).unwrap_err().get("phone").is_some());
    }
}
