//! Malformed data files are refused naming file, line and field; U values block protocols.

mod common;
use common::*;

use ketcare_clinical::protocol::BUILTIN_PROTOCOLS;
use ketcare_clinical::{DataError, Library, SiteSettings};

const GOOD: &str = r#"id = "site-test"
version = 3
title = "Site test protocol"
indication = "trd"
drug = "racemic_ketamine"
route = "iv_infusion"
population = "adult"
evidence = { text = "test", source = ["R17"], status = "V" }
weight_basis = { basis = "actual", source = ["R17"], status = "V" }

[infusion]
basis = "per_kg"
default = { value = 0.5, source = ["R17"], status = "V" }
duration_minutes = { value = 40, source = ["R17"], status = "V" }

[[limits]]
id = "cap"
label = "site cap"
applies_to = "infusion"
quantity = "mg"
bound = "max"
severity = "hard"
value = { site_setting = "site-test.max_mg", status = "U" }
"#;

fn refused(text: &str) -> DataError {
    match Library::load_from_strs(&[("site/site-test.toml", text)]) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

fn parts(e: &DataError) -> (String, usize, String, String) {
    match e {
        DataError::Malformed {
            file,
            line,
            field,
            message,
        }
        | DataError::Invalid {
            file,
            line,
            field,
            message,
        } => (file.clone(), *line, field.clone(), message.clone()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn good_site_file_loads_next_to_the_builtin_library() {
    let lib = match Library::builtin_with_site(&[("site/site-test.toml", GOOD)]) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(lib.list().len(), BUILTIN_PROTOCOLS.len() + 1);
    assert_eq!(lib.get("site-test").map(|p| p.version).ok(), Some(3));
}

#[test]
fn syntax_error_names_file_and_line() {
    let e = refused(&GOOD.replace("version = 3", "version = = 3"));
    let (file, line, _, _) = parts(&e);
    assert_eq!((file.as_str(), line), ("site/site-test.toml", 2));
    assert!(e.to_string().starts_with("site/site-test.toml:2:"));
}

#[test]
fn missing_source_names_field_and_line() {
    let e = refused(&GOOD.replace(
        r#"default = { value = 0.5, source = ["R17"], status = "V" }"#,
        r#"default = { value = 0.5, status = "V" }"#,
    ));
    let (file, line, field, message) = parts(&e);
    assert_eq!(file, "site/site-test.toml");
    assert_eq!(line, 13);
    assert_eq!(field, "infusion.default");
    assert!(message.contains("source"), "{message}");
}

#[test]
fn wrong_type_names_field_and_line() {
    let e = refused(&GOOD.replace("value = 0.5,", "value = \"half\","));
    let (_, line, field, message) = parts(&e);
    assert_eq!((line, field.as_str()), (13, "infusion.default.value"));
    assert!(message.contains("expected f64"), "{message}");
}

#[test]
fn unknown_field_and_unknown_enum_are_refused() {
    let (_, line, field, _) = parts(&refused(
        &GOOD.replace("basis = \"per_kg\"", "basis = \"per_kg\"\nbasiss = 1"),
    ));
    assert_eq!((line, field.as_str()), (13, "infusion.basiss"));
    let (_, line, field, message) = parts(&refused(
        &GOOD.replace("route = \"iv_infusion\"", "route = \"rectal\""),
    ));
    assert_eq!((line, field.as_str()), (6, "route"));
    assert!(message.contains("iv_infusion"), "{message}");
}

#[test]
fn u_value_with_a_number_is_refused() {
    let e = refused(&GOOD.replace(
        r#"{ site_setting = "site-test.max_mg", status = "U" }"#,
        r#"{ value = 60, site_setting = "site-test.max_mg", status = "U" }"#,
    ));
    let (_, line, field, message) = parts(&e);
    assert!(matches!(e, DataError::Invalid { .. }));
    assert_eq!((line, field.as_str()), (23, "limits[cap].value"));
    assert!(message.contains("never hard-coded"), "{message}");
}

#[test]
fn unknown_source_and_missing_value_are_refused() {
    let (_, line, field, message) = parts(&refused(&GOOD.replace(
        r#"duration_minutes = { value = 40, source = ["R17"]"#,
        r#"duration_minutes = { value = 40, source = ["R999"]"#,
    )));
    assert_eq!((line, field.as_str()), (14, "infusion.duration_minutes"));
    assert!(message.contains("R999"));
    let (_, _, field, message) = parts(&refused(&GOOD.replace(
        r#"{ value = 40, source = ["R17"], status = "V" }"#,
        r#"{ source = ["R17"], status = "V" }"#,
    )));
    assert_eq!(field, "infusion.duration_minutes");
    assert!(message.contains("needs `value`"));
    let (_, _, field, _) = parts(&refused(&GOOD.replace("version = 3", "version = 0")));
    assert_eq!(field, "version");
}

#[test]
fn wrong_shape_for_route_is_refused() {
    let (_, _, field, _) = parts(&refused(&GOOD.replace("[infusion]", "[dose]")));
    assert_eq!(field, "route");
}

#[test]
fn duplicate_protocol_ids_are_refused() {
    let e = match Library::load_from_strs(&[("a.toml", GOOD), ("b.toml", GOOD)]) {
        Ok(_) => panic!("accepted duplicate"),
        Err(e) => e,
    };
    assert!(matches!(e, DataError::DuplicateProtocol { .. }));
    assert!(e.to_string().contains("b.toml") && e.to_string().contains("a.toml"));
}

#[test]
fn a_required_u_value_blocks_its_protocol_until_set() {
    let lib = match Library::builtin_with_site(&[("site/site-test.toml", GOOD)]) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let s = settings_a();
    let r = lib.readiness("site-test", &s).ok();
    assert_eq!(r.as_ref().map(|r| r.ready), Some(false));
    assert_eq!(
        r.map(|r| r.missing.iter().map(|m| m.key.clone()).collect::<Vec<_>>()),
        Some(vec!["site-test.max_mg".to_string()])
    );
    let blocked = ketcare_clinical::calculate(&lib, &s, &req("site-test", 70.0));
    assert!(
        matches!(blocked, Err(ketcare_clinical::DoseError::Blocked { .. })),
        "{blocked:?}"
    );
    let s = s.with("site-test.max_mg", 60.0);
    assert_eq!(
        lib.readiness("site-test", &s).map(|r| r.ready).ok(),
        Some(true)
    );
    assert!(ketcare_clinical::calculate(&lib, &s, &req("site-test", 70.0)).is_ok());
}

#[test]
fn every_builtin_protocol_cites_known_sources_and_shows() {
    let lib = lib();
    let s = SiteSettings::new();
    for p in lib.list() {
        let view = match lib.show(&p.id, &s) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert!(!view.citations.is_empty(), "{}", p.id);
        for (path, c) in view.protocol.cited_values() {
            for id in &c.source {
                assert!(
                    lib.sources().citation(id).is_some(),
                    "{}: {path} cites {id}",
                    p.id
                );
            }
        }
        // The view serialises (pages, API and CLI print it).
        assert!(serde_json::to_string(&view).is_ok());
    }
    assert!(lib.show("nope", &s).is_err());
}

#[test]
fn the_issue_regimens_are_present() {
    let lib = lib();
    let ids: Vec<String> = lib.list().into_iter().map(|p| p.id).collect();
    for id in [
        "trd-adult-iv-ketamine",
        "trd-adolescent-iv-ketamine-yale",
        "trd-adult-esketamine",
        "mdsi-adult-esketamine",
        "ptsd-adult-iv-ketamine",
        "anxiety-adult-sc-ketamine",
        "crps-adult-iv-ketamine-22mgh",
        "chronic-pain-adult-iv-ketamine",
        "acute-pain-adult-iv-ketamine",
        "paediatric-pain-in-ketamine",
        "sedation-child-iv-ketamine",
        "sedation-adult-iv-ketamine",
        "sedation-child-im-ketamine",
        "sedation-adult-im-ketamine",
        "trd-adult-oral-ketamine-fixed",
        "depression-adult-sl-ketamine",
    ] {
        assert!(ids.iter().any(|i| i == id), "{id}");
    }
}

#[test]
fn top_level_problems_name_their_line() {
    let (_, line, field, _) = parts(&refused(&GOOD.replace("[infusion]", "[dose]")));
    assert_eq!((line, field.as_str()), (6, "route"));
    let (_, line, field, _) = parts(&refused(&GOOD.replace(
        r#"evidence = { text = "test", source = ["R17"]"#,
        r#"evidence = { text = "test", source = ["R0"]"#,
    )));
    assert_eq!((line, field.as_str()), (8, "evidence"));
}

#[test]
fn ideal_or_adjusted_weight_is_refused_because_the_reference_gives_no_formula() {
    let text = GOOD.replace(r#"basis = "actual""#, r#"basis = "ideal""#);
    let lib = match Library::builtin_with_site(&[("site/site-test.toml", &text)]) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let s = settings_a().with("site-test.max_mg", 60.0);
    let e = ketcare_clinical::calculate(&lib, &s, &req("site-test", 70.0))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("no formula") && e.contains("R39"), "{e}");
}
