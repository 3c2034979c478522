//! Feeds arbitrary JSON to what the API does with a request body before the store: the patient
//! form's parse, eligibility screening and the dose calculator (with the site's settings as
//! empty, or as fuzzed too). The first byte picks the body; none may panic.
#![no_main]
use ketcare_clinical::dose::DoseRequest;
use ketcare_clinical::eligibility::ScreeningInput;
use ketcare_clinical::{Library, SiteSettings};
use ketcare_core::patient::{NewPatient, PatientInput};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn library() -> &'static Library {
    static LIB: OnceLock<Library> = OnceLock::new();
    LIB.get_or_init(|| Library::builtin().expect("the embedded library loads"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let today = jiff::civil::date(2026, 12, 6);
    match which % 4 {
        0 => {
            if let Ok(input) = serde_json::from_slice::<PatientInput>(body) {
                let _ = NewPatient::parse(&input, today);
            }
        }
        1 => {
            if let Ok(input) = serde_json::from_slice::<ScreeningInput>(body) {
                let _ = library().screen(&input, &SiteSettings::new());
            }
        }
        2 => {
            if let Ok(request) = serde_json::from_slice::<DoseRequest>(body) {
                let _ = library().calculate(&SiteSettings::new(), &request);
            }
        }
        _ => {
            if let Ok((settings, request)) =
                serde_json::from_slice::<(SiteSettings, DoseRequest)>(body)
            {
                let _ = library().calculate(&settings, &request);
                if let Ok(input) = serde_json::from_slice::<ScreeningInput>(body) {
                    let _ = library().screen(&input, &settings);
                }
            }
        }
    }
});
