//! `ketcare score`, `ketcare instrument list` and `ketcare mme` end to end.

use crate::common::ketcare;
use std::process::Output;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn score_list_and_mme() {
    let data = std::env::temp_dir().join(format!("ketcare-cli-measures-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);

    let o = ketcare(
        &data,
        &[
            "score",
            "--instrument",
            "phq9",
            "--answers",
            "1,2,3,0,1,2,0,1,2",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let t = out(&o);
    assert!(t.contains("PHQ-9: 12"), "{t}");
    assert!(t.contains("band: moderate"), "{t}");
    assert!(t.contains("SAFETY: item 9"), "{t}");

    let o = ketcare(
        &data,
        &[
            "score",
            "--instrument",
            "gad7",
            "--answers",
            "3,3,3,3,3,3,3",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["total"], 21);
    assert_eq!(v["band"]["label"], "severe");

    // Missing items are refused by number.
    let o = ketcare(
        &data,
        &[
            "score",
            "--instrument",
            "phq9",
            "--answers",
            "1,,3,0,1,2,0,1,-",
        ],
    );
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("answers: items 2, 9 of PHQ-9 are not answered"),
        "{e}"
    );

    let o = ketcare(&data, &["score", "--instrument", "nope", "--answers", "1"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("instrument: unknown instrument"));

    // CADSS needs the site's item scale; the CLI reads the site settings like the pages do.
    let o = ketcare(
        &data,
        &[
            "score",
            "--instrument",
            "cadss",
            "--answers",
            &["1"; 23].join(","),
        ],
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("measures.cadss.item_max"),
        "{o:?}"
    );
    let o = ketcare(
        &data,
        &[
            "settings",
            "set",
            "measures.cadss.item_max",
            "4",
            "--reason",
            "clinic form 0-4",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let o = ketcare(
        &data,
        &[
            "score",
            "--instrument",
            "cadss",
            "--answers",
            &["1"; 23].join(","),
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["total"], 23);
    assert_eq!(v["total_max"], 92);
    assert_eq!(v["item_scale_set_by_site"], "measures.cadss.item_max");

    let o = ketcare(&data, &["instrument", "list"]);
    let t = out(&o);
    for id in [
        "phq9",
        "phq_a",
        "phq2",
        "gad7",
        "asq",
        "pain_nrs",
        "peg3",
        "moaas",
        "aldrete_mod",
        "cadss",
        "madrs",
        "qids_sr16",
    ] {
        assert!(t.contains(id), "{id}: {t}");
    }

    let o = ketcare(
        &data,
        &[
            "mme",
            "--drug",
            "oxycodone",
            "--dose",
            "10",
            "--per-day",
            "2",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["mme_per_day"], 30.0);
    let o = ketcare(
        &data,
        &[
            "mme",
            "--drug",
            "fentanyl_transdermal",
            "--dose",
            "25",
            "--unit",
            "mcg/h",
        ],
    );
    assert!(out(&o).contains("60 MME/day"), "{o:?}");
    let o = ketcare(
        &data,
        &[
            "mme",
            "--drug",
            "buprenorphine",
            "--dose",
            "8",
            "--per-day",
            "1",
        ],
    );
    assert!(out(&o).contains("flagged"));
    let o = ketcare(&data, &["mme", "--drug", "morphine", "--dose", "10"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("per_day"));
    let _ = std::fs::remove_dir_all(&data);
}
