//! A believable demo clinic: staff of every role and twenty patients of all ages, minors with
//! guardians. Everything is fictional. Dates of birth are relative to today so the age bands
//! stay the same whenever the demo is started.

use anyhow::{Context, Result};
use jiff::civil::Date;
use ketcare_app::password::hash_password;
use ketcare_core::patient::{
    GuardianInput, ListInput, NewGuardian, NewPatient, NumberInput, PatientInput,
};
use ketcare_core::{Actor, Role};
use ketcare_store::{NewUser, Store};

/// The shared demo password (printed at start; demo data only).
pub const DEMO_PASSWORD: &str = "ketcare-demo";

pub const STAFF: [(&str, &str, Role); 7] = [
    ("admin", "Alex Admin", Role::Administrator),
    ("prescriber", "Dr Priya Prescott", Role::Prescriber),
    ("nurse", "Nina Nurse", Role::Nurse),
    ("pharmacist", "Paul Pharmacist", Role::Pharmacist),
    ("therapist", "Tess Therapist", Role::Therapist),
    ("scheduler", "Sam Scheduler", Role::Scheduler),
    ("researcher", "Rae Researcher", Role::Researcher),
];

struct DemoPatient {
    mrn: &'static str,
    given: &'static str,
    family: &'static str,
    /// Age today as (years, extra days) so bands are stable.
    years: i16,
    days: i16,
    sex: &'static str,
    weight_kg: f64,
    height_cm: f64,
    indications: &'static [&'static str],
    psychiatric: &'static str,
    substance: &'static str,
    medications: &'static [&'static str],
    allergies: &'static [&'static str],
    guardian: Option<(&'static str, &'static str, &'static str)>,
}

const PATIENTS: &[DemoPatient] = &[
    DemoPatient {
        mrn: "KC-1001",
        given: "Maria",
        family: "Alvarez",
        years: 42,
        days: 30,
        sex: "female",
        weight_kg: 68.0,
        height_cm: 165.0,
        indications: &["Treatment-resistant depression"],
        psychiatric: "MDD, recurrent; 3 failed adequate antidepressant trials this episode",
        substance: "None",
        medications: &["Sertraline 150 mg daily"],
        allergies: &[],
        guardian: None,
    },
    DemoPatient {
        mrn: "KC-1002",
        given: "James",
        family: "Okafor",
        years: 35,
        days: 100,
        sex: "male",
        weight_kg: 92.5,
        height_cm: 183.0,
        indications: &["Treatment-resistant depression"],
        psychiatric: "MDD; failed escitalopram and bupropion",
        substance: "Alcohol in remission 4 years",
        medications: &["Venlafaxine 225 mg daily"],
        allergies: &["Penicillin"],
        guardian: None,
    },
    DemoPatient {
        mrn: "KC-1003",
        given: "Linh",
        family: "Nguyen",
        years: 29,
        days: 12,
        sex: "female",
        weight_kg: 54.0,
        height_cm: 158.0,
        indications: &["Major depressive disorder with acute suicidal ideation"],
        psychiatric: "MDD with suicidal ideation; inpatient admission last year",
        substance: "None",
        medications: &["Escitalopram 20 mg daily"],
        allergies: &[],
        guardian: None,
    },
    DemoPatient {
        mrn: "KC-1004",
        given: "Robert",
        family: "Fischer",
        years: 67,
        days: 200,
        sex: "male",
        weight_kg: 81.0,
        height_cm: 176.0,
        indications: &["Treatment-resistant depression"],
        psychiatric: "Late-life depression",
        substance: "None",
        medications: &["Mirtazapine 30 mg nightly", "Amlodipine 5 mg daily"],
        allergies: &[],
        guardian: None,
    },
    DemoPatient {
        mrn: "KC-1005",
        given: "Aisha",
        family: "Rahman",
        years: 51,
        days: 3,
        sex: "female",
        weight_kg: 124.0,
        height_cm: 162.0,
        indications: &["Complex regional pain syndrome"],
        psychiatric: "Adjustment disorder",
        substance: "None",
        medications: &[
            "Oxycodone 10 mg every 8 hours",
            "Gabapentin 600 mg three times daily",
        ],
        allergies: &["Sulfa"],
        guardian: None,
    },
    DemoPatient {
        mrn: "KC-1006",
        given: "Daniel",
        family: "Kowalski",
        years: 38,
        days: 45,
        sex: "male",
        weight_kg: 77.0,
        height_cm: 180.0,
        indications: &["Post-traumatic stress disorder"],
        psychiatric: "PTSD after military service",
        substance: "Cannabis, occasional",
        medications: &["Prazosin 2 mg nightly"],
        allergies: &[],
        guardian: None,
    },
    DemoPatient {
        mrn: "KC-1007",
        given: "Sofia",
        family: "Rossi",
        years: 26,
        days: 150,
        sex: "female",
        weight_kg: 60.0,
        height_cm: 170.0,
        indications: &["Generalised anxiety disorder"],
        psychiatric: "GAD, social anxiety",
        substance: "None",
        medications: &["Buspirone 10 mg twice daily"],
        allergies: &[],
        guardian: None,
    },
    DemoPatient {
        mrn: "KC-1008",
        given: "Grace",
        family: "Thompson",
        years: 58,
        days: 77,
        sex: "female",
        weight_kg: 72.0,
        height_cm: 168.0,
        indications: &["Fibromyalgia", "Depression"],
        psychiatric: "MDD",
        substance: "None",
        medications: &["Duloxetine 60 mg daily"],
        allergies: &["Codeine"],
        guardian: None,
    },
    DemoPatient {
        mrn: "KC-1009",
        given: "Kenji",
        family: "Tanaka",
        years: 45,
        days: 10,
        sex: "male",
        weight_kg: 70.0,
        height_cm: 172.0,
        indications: &["Neuropathic pain"],
        psychiatric: "None",
        substance: "None",
        medications: &["Pregabalin 150 mg twice daily"],
        allergies: &[],
        guardian: None,
    },
    DemoPatient {
        mrn: "KC-1010",
        given: "Fatima",
        family: "Haddad",
        years: 33,
        days: 260,
        sex: "female",
        weight_kg: 64.0,
        height_cm: 163.0,
        indications: &["Treatment-resistant depression"],
        psychiatric: "Bipolar II depression",
        substance: "None",
        medications: &["Lamotrigine 200 mg daily"],
        allergies: &[],
        guardian: None,
    },
    DemoPatient {
        mrn: "KC-1011",
        given: "Oliver",
        family: "Brown",
        years: 72,
        days: 5,
        sex: "male",
        weight_kg: 69.0,
        height_cm: 171.0,
        indications: &["Treatment-resistant depression"],
        psychiatric: "MDD",
        substance: "None",
        medications: &["Sertraline 100 mg daily", "Atorvastatin 20 mg daily"],
        allergies: &[],
        guardian: None,
    },
    DemoPatient {
        mrn: "KC-1012",
        given: "Chloe",
        family: "Martin",
        years: 19,
        days: 20,
        sex: "female",
        weight_kg: 57.0,
        height_cm: 166.0,
        indications: &["Treatment-resistant depression"],
        psychiatric: "MDD since age 15",
        substance: "None",
        medications: &["Fluoxetine 40 mg daily"],
        allergies: &[],
        guardian: None,
    },
    DemoPatient {
        mrn: "KC-2001",
        given: "Ethan",
        family: "Walker",
        years: 16,
        days: 90,
        sex: "male",
        weight_kg: 63.0,
        height_cm: 175.0,
        indications: &["Treatment-resistant depression"],
        psychiatric: "MDD; failed fluoxetine and sertraline",
        substance: "None",
        medications: &["Escitalopram 10 mg daily"],
        allergies: &[],
        guardian: Some(("Helen Walker", "mother", "+1 555 0101")),
    },
    DemoPatient {
        mrn: "KC-2002",
        given: "Ava",
        family: "Lopez",
        years: 14,
        days: 200,
        sex: "female",
        weight_kg: 48.0,
        height_cm: 157.0,
        indications: &["Treatment-resistant depression"],
        psychiatric: "MDD with self-harm history",
        substance: "None",
        medications: &["Fluoxetine 20 mg daily"],
        allergies: &["Latex"],
        guardian: Some(("Carlos Lopez", "father", "+1 555 0102")),
    },
    DemoPatient {
        mrn: "KC-2003",
        given: "Noah",
        family: "Schmidt",
        years: 13,
        days: 30,
        sex: "male",
        weight_kg: 45.0,
        height_cm: 155.0,
        indications: &["Complex regional pain syndrome"],
        psychiatric: "None",
        substance: "None",
        medications: &["Gabapentin 300 mg three times daily"],
        allergies: &[],
        guardian: Some(("Anna Schmidt", "mother", "+1 555 0103")),
    },
    DemoPatient {
        mrn: "KC-3001",
        given: "Mia",
        family: "Johnson",
        years: 9,
        days: 60,
        sex: "female",
        weight_kg: 28.0,
        height_cm: 133.0,
        indications: &["Acute pain: forearm fracture"],
        psychiatric: "None",
        substance: "None",
        medications: &[],
        allergies: &[],
        guardian: Some(("Laura Johnson", "mother", "+1 555 0104")),
    },
    DemoPatient {
        mrn: "KC-3002",
        given: "Leo",
        family: "Dubois",
        years: 6,
        days: 150,
        sex: "male",
        weight_kg: 21.0,
        height_cm: 117.0,
        indications: &["Procedural sedation: laceration repair"],
        psychiatric: "None",
        substance: "None",
        medications: &[],
        allergies: &["Egg"],
        guardian: Some(("Marc Dubois", "father", "+1 555 0105")),
    },
    DemoPatient {
        mrn: "KC-3003",
        given: "Zara",
        family: "Ahmed",
        years: 11,
        days: 300,
        sex: "female",
        weight_kg: 38.0,
        height_cm: 146.0,
        indications: &["Acute pain: ankle fracture"],
        psychiatric: "None",
        substance: "None",
        medications: &[],
        allergies: &[],
        guardian: Some(("Samira Ahmed", "legal_guardian", "+1 555 0106")),
    },
    DemoPatient {
        mrn: "KC-4001",
        given: "Ivy",
        family: "Chen",
        years: 1,
        days: 100,
        sex: "female",
        weight_kg: 10.5,
        height_cm: 78.0,
        indications: &["Procedural sedation: imaging"],
        psychiatric: "None",
        substance: "None",
        medications: &[],
        allergies: &[],
        guardian: Some(("Wei Chen", "mother", "+1 555 0107")),
    },
    DemoPatient {
        mrn: "KC-4002",
        given: "Theo",
        family: "Novak",
        years: 3,
        days: 10,
        sex: "male",
        weight_kg: 14.5,
        height_cm: 96.0,
        indications: &["Procedural sedation: fracture reduction"],
        psychiatric: "None",
        substance: "None",
        medications: &[],
        allergies: &[],
        guardian: Some(("Petra Novak", "mother", "+1 555 0108")),
    },
];

fn born(today: Date, years: i16, days: i16) -> Result<Date> {
    today
        .checked_sub(jiff::Span::new().years(years).days(days))
        .context("demo date of birth")
}

/// Seeds the demo clinic unless it is already there. Returns true when it seeded.
pub async fn seed(store: &dyn Store, today: Date) -> Result<bool> {
    let admin = Actor::system(Role::Administrator);
    // A database that holds anything is seeded never: if it is the demo clinic (its settings say
    // so) there is nothing to do; otherwise it is a clinic's own data, and demo accounts with a
    // published password and fictional patients must not be added to it.
    if !store.list_users(&admin).await?.is_empty() {
        let (settings, _) = ketcare_app::clinical::settings(store)
            .await
            .map_err(|e| anyhow::anyhow!("reading the site settings: {e}"))?;
        if settings.value(ketcare_app::settings_registry::DEMO_CLINIC) == Some(1.0) {
            return Ok(false);
        }
        anyhow::bail!(
            "--demo refused: this database already holds a clinic's own accounts and records \
             (it is not the demo clinic). Start the demo on an empty data folder, e.g. \
             `ketcare serve --demo --data ketcare-demo`."
        );
    }
    let hash = hash_password(DEMO_PASSWORD).map_err(anyhow::Error::msg)?;
    for account in STAFF {
        create_account(store, &hash, account).await?;
    }
    let intake = Actor::system(Role::Nurse);
    let measured = today
        .checked_sub(jiff::Span::new().days(7))
        .context("demo measurement date")?
        .to_string();
    for p in PATIENTS {
        let input = PatientInput {
            mrn: p.mrn.into(),
            given_name: p.given.into(),
            family_name: p.family.into(),
            date_of_birth: born(today, p.years, p.days)?.to_string(),
            sex: p.sex.into(),
            weight_value: Some(NumberInput::Number(p.weight_kg)),
            weight_unit: Some("kg".into()),
            weight_measured_on: Some(measured.clone()),
            height_value: Some(NumberInput::Number(p.height_cm)),
            height_unit: Some("cm".into()),
            height_measured_on: Some(measured.clone()),
            indications: Some(ListInput::Items(
                p.indications.iter().map(|s| s.to_string()).collect(),
            )),
            psychiatric_history: Some(p.psychiatric.into()),
            substance_use_history: Some(p.substance.into()),
            medications: Some(ListInput::Items(
                p.medications.iter().map(|s| s.to_string()).collect(),
            )),
            allergies: Some(ListInput::Items(
                p.allergies.iter().map(|s| s.to_string()).collect(),
            )),
            phone: Some("+1 555 0100".into()),
            email: None,
            ..Default::default()
        };
        let record = NewPatient::parse(&input, today)
            .map_err(|e| anyhow::anyhow!("demo patient {}: {e}", p.mrn))?;
        let created = store.create_patient(&intake, &record).await?;
        if let Some((name, relationship, phone)) = p.guardian {
            let g = NewGuardian::parse(&GuardianInput {
                name: name.into(),
                relationship: relationship.into(),
                phone: phone.into(),
                email: String::new(),
            })
            .map_err(|e| anyhow::anyhow!("demo guardian: {e}"))?;
            store.add_guardian(&intake, created.id, &g).await?;
        }
    }
    seed_settings(store).await?;
    crate::demo_measures::seed(store, today).await?;
    crate::demo_ops::seed(store, today).await?;
    crate::demo_sessions::seed(store).await?;
    crate::demo_sites::seed(store, today, &hash).await?;
    Ok(true)
}

/// Creates a demo account (username, name, role) with the demo password's `hash`.
pub async fn create_account(
    store: &dyn Store,
    hash: &str,
    (username, name, role): (&str, &str, Role),
) -> Result<ketcare_store::User> {
    store
        .create_user(
            &Actor::system(Role::Administrator),
            &NewUser {
                username: username.into(),
                display_name: name.into(),
                role,
                password_hash: hash.to_owned(),
            },
        )
        .await
        .with_context(|| format!("creating demo user {username}"))
}

/// The demo clinic's own site settings (`demo/settings.toml`): its choices, not ketcare's.
const DEMO_SETTINGS: &str = include_str!("../demo/settings.toml");

/// Why the demo's settings were saved, as the settings history shows it.
pub const DEMO_SETTINGS_REASON: &str = "Demo clinic's choice — not a recommendation";

/// Saves the demo clinic's settings as one version, through the same checks an administrator's
/// change passes (every key known to the registry, every value in its range).
async fn seed_settings(store: &dyn Store) -> Result<()> {
    let settings: ketcare_clinical::SiteSettings =
        toml::from_str(DEMO_SETTINGS).context("demo/settings.toml")?;
    let library = ketcare_clinical::Library::builtin().context("the protocol library")?;
    let admin = Actor::system(Role::Administrator);
    ketcare_app::clinical::save_values(
        store,
        &library,
        &admin,
        &settings,
        DEMO_SETTINGS_REASON,
        jiff::Timestamp::now(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("demo/settings.toml: {e:?}"))?;
    Ok(())
}

pub fn print_logins() {
    println!("Demo clinic — every account's password is `{DEMO_PASSWORD}`:");
    for (username, name, role) in STAFF {
        println!("  {username:<16} {role:<14} {name}");
    }
    for (username, name, role) in crate::demo_sites::NORTH_STAFF {
        println!("  {username:<16} {role:<14} {name} (North clinic only)");
    }
    let (username, name, own, at_north) = crate::demo_sites::FLOAT;
    println!("  {username:<16} {own:<14} {name} (main site; {at_north} at North clinic)");
    println!(
        "  Two sites: the main site and North clinic. nurse, pharmacist, scheduler and therapist \
         work at the main site only; prescriber (the medical director), admin and researcher at both."
    );
}
