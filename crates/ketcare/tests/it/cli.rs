//! The `ketcare` command end to end on an embedded SQLite file: users, tokens, and an audit chain
//! that `ketcare audit verify` checks and, after tampering, names the first broken record.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn ketcare(data: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ketcare"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("KETCARE_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn users_tokens_and_audit_verify() {
    let data = std::env::temp_dir().join(format!("ketcare-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);

    let o = ketcare(
        &data,
        &["user", "add", "--username", "nina", "--role", "nurse"],
        "a long enough password\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = ketcare(
        &data,
        &["user", "add", "--username", "x", "--role", "surgeon"],
        "a long enough password\n",
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("unknown role `surgeon`"), "{}", text(&o));
    let o = ketcare(
        &data,
        &["user", "add", "--username", "y", "--role", "nurse"],
        "short\n",
    );
    assert!(!o.status.success());
    // A common password is refused by the strength estimator, saying why.
    let o = ketcare(
        &data,
        &["user", "add", "--username", "z", "--role", "nurse"],
        "password1234\n",
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("too easy to guess"), "{}", text(&o));

    let o = ketcare(&data, &["token", "create", "--user", "nina"], "");
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(token.starts_with("kc_"));
    let o = ketcare(&data, &["token", "list", "--user", "nina"], "");
    assert!(
        text(&o).contains("active") && !text(&o).contains(&token),
        "secrets are never listed"
    );
    let o = ketcare(&data, &["token", "revoke", "--id", "1"], "");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&ketcare(&data, &["token", "list", "--user", "nina"], "")).contains("revoked"));

    let o = ketcare(&data, &["audit", "verify"], "");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("audit chain intact: 3 records"),
        "{}",
        text(&o)
    );

    // Someone edits the log directly in the database file.
    let url = format!("sqlite://{}?mode=rw", data.join("ketcare.db").display());
    let store = ketcare_store::open(&url).await.unwrap();
    store
        .execute_raw("DROP TRIGGER audit_log_no_update")
        .await
        .unwrap();
    store
        .execute_raw("UPDATE audit_log SET detail = 'nothing to see' WHERE seq = 2")
        .await
        .unwrap();
    let o = ketcare(&data, &["audit", "verify"], "");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("audit chain broken at record 2"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&data).ok();
}

/// `ketcare dose` for every protocol shape (infusion, bolus only, bolus + infusion, per kg per
/// hour, fixed dose, esketamine devices) gives the numbers of the pure library for the same
/// typed request — the function the API and the pages call — and refuses what it must.
#[test]
fn dose_for_every_protocol_shape_matches_the_library() {
    use ketcare_clinical::dose::{Amount, DoseChoice, DoseRequest, Preparation};
    use ketcare_clinical::eligibility::Age;
    use ketcare_clinical::units::*;
    use ketcare_clinical::{Library, SiteSettings, Timestamp, Username};

    let data = std::env::temp_dir().join(format!("ketcare-cli-dose-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let values = [
        ("rounding.dose_mg_increment", "1"),
        ("rounding.pump_ml_per_h_increment", "0.1"),
        ("rounding.syringe_ml_increment", "0.1"),
        ("observation.ketamine_psychiatric_minutes", "120"),
        ("observation.ketamine_pain_minutes", "120"),
    ];
    let mut settings = SiteSettings::new();
    for (k, v) in values {
        let o = ketcare(
            &data,
            &["settings", "set", k, v, "--reason", "test clinic"],
            "",
        );
        assert!(o.status.success(), "{}", text(&o));
        settings = settings.with(k, v.parse().unwrap());
    }
    let lib = Library::builtin().unwrap();
    let base = |protocol: &str| {
        let mut r = DoseRequest::new(
            protocol,
            WeightKg::new(70.0).unwrap(),
            Username::new("cli").unwrap(),
            Timestamp::parse("2026-12-01T09:00:00Z").unwrap(),
        );
        r.patient.age = Some(Age {
            years: 40,
            months: 0,
        });
        r
    };
    let prep = |c: f64, v: Option<f64>| {
        Some(Preparation {
            concentration_mg_per_ml: ConcentrationMgPerMl::new(c).unwrap(),
            final_volume_ml: v.map(|v| VolumeMl::new(v).unwrap()),
        })
    };
    let per_kg = |x: f64| DoseChoice {
        amount: Some(Amount::MgPerKg(MgPerKg::new(x).unwrap())),
        ..DoseChoice::default()
    };
    let cases: Vec<(&[&str], DoseRequest, &str)> = vec![
        (
            &[
                "--protocol",
                "trd-adult-iv-ketamine",
                "--concentration-mg-per-ml",
                "10",
                "--final-volume-ml",
                "50",
            ],
            {
                let mut r = base("trd-adult-iv-ketamine");
                r.preparation = prep(10.0, Some(50.0));
                r
            },
            "pump 75 mL/h for 40 min",
        ),
        (
            &[
                "--protocol",
                "sedation-adult-iv-ketamine",
                "--mg-per-kg",
                "0.5",
            ],
            {
                let mut r = base("sedation-adult-iv-ketamine");
                r.bolus = per_kg(0.5);
                r
            },
            "Bolus: 0.5 mg/kg → 35 mg",
        ),
        (
            &[
                "--protocol",
                "acute-pain-adult-iv-ketamine",
                "--bolus-mg-per-kg",
                "0.3",
                "--mg-per-kg-per-h",
                "0.2",
                "--duration-min",
                "60",
            ],
            {
                let mut r = base("acute-pain-adult-iv-ketamine");
                r.bolus = per_kg(0.3);
                r.infusion = DoseChoice {
                    amount: Some(Amount::MgPerKgPerHour(MgPerKgPerHour::new(0.2).unwrap())),
                    duration_minutes: Some(Minutes::new(60.0).unwrap()),
                    ..DoseChoice::default()
                };
                r
            },
            "Infusion: 0.2 mg/kg/h → 14 mg",
        ),
        (
            &[
                "--protocol",
                "crps-adult-iv-ketamine-035mgkgh",
                "--mg-per-kg-per-h",
                "0.3",
            ],
            {
                let mut r = base("crps-adult-iv-ketamine-035mgkgh");
                r.infusion = DoseChoice {
                    amount: Some(Amount::MgPerKgPerHour(MgPerKgPerHour::new(0.3).unwrap())),
                    ..DoseChoice::default()
                };
                r
            },
            "Infusion: 0.3 mg/kg/h → 84 mg",
        ),
        (
            &["--protocol", "trd-adult-oral-ketamine-fixed"],
            base("trd-adult-oral-ketamine-fixed"),
            "Dose: 50 mg → 50 mg",
        ),
        (
            &[
                "--protocol",
                "trd-adult-esketamine",
                "--esketamine-dose-mg",
                "56",
                "--first-dose-of-course",
            ],
            {
                let mut r = base("trd-adult-esketamine");
                r.esketamine_dose_mg = Some(DoseMg::new(56.0).unwrap());
                r.first_dose_of_course = true;
                r
            },
            "esketamine 56 mg = 2 devices of 28 mg",
        ),
    ];
    let common = ["dose", "--weight-kg", "70", "--age-years", "40"];
    for (args, request, line) in cases {
        let mut all: Vec<&str> = common.to_vec();
        all.extend_from_slice(args);
        let o = ketcare(&data, &all, "");
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(line), "{args:?}: {}", text(&o));
        all.push("--json");
        let o = ketcare(&data, &all, "");
        let cli: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let lib_order = lib.calculate(&settings, &request).unwrap();
        let ours = serde_json::to_value(&lib_order.calculation).unwrap();
        for key in ["components", "esketamine", "limit_checks", "weight"] {
            assert_eq!(cli["calculation"][key], ours[key], "{args:?} {key}");
        }
    }
    // Refusals name the field and the reason.
    for (args, want) in [
        (
            &[
                "--protocol",
                "sedation-adult-iv-ketamine",
                "--mg-per-kg",
                "5",
            ][..],
            "iv-max-hard",
        ),
        (
            &["--protocol", "ptsd-adult-iv-ketamine", "--age-years", "5"][..],
            "patient.age",
        ),
        (
            &[
                "--protocol",
                "trd-adult-esketamine",
                "--esketamine-dose-mg",
                "84",
                "--first-dose-of-course",
            ][..],
            "esketamine_dose_mg",
        ),
    ] {
        let mut all = vec!["dose", "--weight-kg", "70"];
        all.extend_from_slice(args);
        if !args.contains(&"--age-years") {
            all.extend(["--age-years", "40"]);
        }
        let o = ketcare(&data, &all, "");
        assert!(!o.status.success(), "{args:?}");
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
    let o = ketcare(
        &data,
        &[
            "dose",
            "--weight-kg",
            "700",
            "--age-years",
            "40",
            "--protocol",
            "trd-adult-iv-ketamine",
        ],
        "",
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("not a possible human weight"),
        "{}",
        text(&o)
    );
}

/// Generated `ketcare dose` invocations with out-of-range, non-finite and contradictory values:
/// each either prints an order whose every hard limit holds and whose weight is a human one, or
/// fails with a message that starts by naming the field.
#[test]
fn generated_dose_commands_keep_hard_limits_and_name_the_field() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    let data = std::env::temp_dir().join(format!("ketcare-cli-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    for (k, v) in [
        ("rounding.dose_mg_increment", "1"),
        ("rounding.pump_ml_per_h_increment", "0.1"),
        ("rounding.syringe_ml_increment", "0.1"),
        ("observation.ketamine_psychiatric_minutes", "120"),
        ("observation.ketamine_pain_minutes", "120"),
    ] {
        assert!(
            ketcare(&data, &["settings", "set", k, v, "--reason", "t"], "")
                .status
                .success()
        );
    }
    let number = prop_oneof![
        (0.0f64..10.0).prop_map(|x| format!("{x}")),
        (10.0f64..2000.0).prop_map(|x| format!("{x}")),
        Just("0".to_owned()),
        Just("nan".to_owned()),
        Just("inf".to_owned()),
        Just("1e308".to_owned()),
    ];
    let protocols = ketcare_clinical::Library::builtin()
        .unwrap()
        .list()
        .into_iter()
        .map(|p| p.id)
        .collect::<Vec<_>>();
    let option = prop::sample::select(vec![
        "--mg-per-kg",
        "--mg-per-kg-per-h",
        "--bolus-mg-per-kg",
        "--duration-min",
        "--esketamine-dose-mg",
        "--concentration-mg-per-ml",
        "--final-volume-ml",
    ]);
    let strategy = (
        prop::sample::select(protocols),
        number.clone(),
        0u32..90,
        prop::collection::vec((option, number), 0..3),
    );
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]),
    );
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..60 {
        let (protocol, weight, age, extra) = strategy.new_tree(&mut runner).unwrap().current();
        let age = age.to_string();
        let mut args: Vec<&str> = vec![
            "dose",
            "--json",
            "--protocol",
            &protocol,
            "--weight-kg",
            &weight,
            "--age-years",
            &age,
        ];
        let mut seen = std::collections::HashSet::new();
        for (o, v) in &extra {
            if seen.insert(*o) {
                args.extend([*o, v.as_str()]);
            }
        }
        let o = ketcare(&data, &args, "");
        if o.status.success() {
            ok += 1;
            let order: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let c = &order["calculation"];
            let kg = c["weight"]["actual_kg"]["value"].as_f64().unwrap();
            assert!((0.212..=635.0).contains(&kg), "{args:?}: {kg} kg");
            for check in c["limit_checks"].as_array().unwrap() {
                if check["severity"] == "hard" {
                    assert_eq!(check["within"], true, "{args:?}: {check}");
                }
            }
        } else {
            refused += 1;
            let err = String::from_utf8_lossy(&o.stderr);
            let named = err.lines().any(|l| {
                l.starts_with("Error: ")
                    && l["Error: ".len()..]
                        .split(':')
                        .next()
                        .is_some_and(|f| !f.is_empty() && !f.contains(' '))
            }) || err.contains("error: invalid value");
            assert!(named, "{args:?}: {err}");
        }
    }
    assert!(ok > 3 && refused > 3, "{ok} ok, {refused} refused");
}

/// `ketcare user reset-second-factor` removes a lost second factor (the same use case as the
/// users page and the API), audited by action and account id.
/// A public P-384 key (ES384) as a JWK Set: the public half of the web tests' `ec384.pem`.
const JWKS: &str = r#"{"keys": [{"kty": "EC", "crv": "P-384", "x": "qDp-_6h0xhHYFUaBTMw89HQD0J0uCC-HvW0TAYywCn4_YK6nYSLpj3FydIztXVUo", "y": "1gRCsB5niHQPhnQIodhYzDH4MRIEC7HizeQf6oVIgdauC2JnCWBO5uYTmjI7MaKs", "kid": "ec-1", "alg": "ES384"}]}"#;

#[tokio::test]
async fn fhir_backend_clients_from_the_shell() {
    let data = std::env::temp_dir().join(format!("ketcare-cli-fhir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let o = ketcare(
        &data,
        &["user", "add", "--username", "feed", "--role", "pharmacist"],
        "a long enough password\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    std::fs::create_dir_all(&data).unwrap();
    let jwks = data.join("feed-jwks.json");
    std::fs::write(&jwks, JWKS).unwrap();
    let jwks = jwks.to_str().unwrap();
    let add = |name: &str, user: &str, scopes: &[&str]| {
        let mut args = vec![
            "fhir-client",
            "add",
            "--name",
            name,
            "--user",
            user,
            "--jwks",
            jwks,
        ];
        for s in scopes {
            args.extend(["--scope", s]);
        }
        ketcare(&data, &args, "")
    };
    // Refused by field: an unknown account, a write scope.
    for (user, scope, refusal) in [
        (
            "nobody",
            "system/*.read",
            "user: there is no account `nobody`",
        ),
        ("feed", "system/*.write", "scope: scope `system/*.write`"),
    ] {
        let o = add("feed", user, &[scope]);
        assert!(!o.status.success());
        assert!(text(&o).contains(refusal), "{}", text(&o));
    }
    let o = add(
        "registry feed",
        "feed",
        &["system/Patient.read", "system/Observation.read"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let client_id = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(client_id.starts_with("kc-client-"), "{client_id}");
    let listed = text(&ketcare(&data, &["fhir-client", "list"], ""));
    assert!(
        listed.contains(&client_id)
            && listed.contains("enabled")
            && listed.contains("ec-1")
            && listed.contains("system/Patient.read system/Observation.read"),
        "{listed}"
    );
    let o = ketcare(&data, &["fhir-client", "disable", &client_id], "");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&ketcare(&data, &["fhir-client", "list"], "")).contains("disabled"));
    let o = ketcare(&data, &["fhir-client", "disable", &client_id], "");
    assert!(!o.status.success());
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn an_administrator_resets_a_second_factor_from_the_shell() {
    let data = std::env::temp_dir().join(format!("ketcare-cli-2fa-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let o = ketcare(
        &data,
        &["user", "add", "--username", "nina", "--role", "nurse"],
        "a long enough password\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    // Nina set one up on the web (here written straight into the file: the enrolment itself is
    // tested through the pages).
    let url = format!("sqlite://{}?mode=rw", data.join("ketcare.db").display());
    let store = ketcare_store::open(&url).await.unwrap();
    store
        .execute_raw("UPDATE users SET totp_secret = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP' WHERE username = 'nina'")
        .await
        .unwrap();
    let o = ketcare(&data, &["user", "list"], "");
    assert!(text(&o).contains("active, second factor"), "{}", text(&o));
    let o = ketcare(
        &data,
        &["user", "reset-second-factor", "--username", "nina"],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("nina: reset second factor"),
        "{}",
        text(&o)
    );
    let o = ketcare(&data, &["user", "list"], "");
    assert!(!text(&o).contains("second factor"), "{}", text(&o));
    let o = ketcare(
        &data,
        &["user", "reset-second-factor", "--username", "ghost"],
        "",
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("no user `ghost`"), "{}", text(&o));
    let o = ketcare(&data, &["audit", "verify"], "");
    assert!(o.status.success(), "{}", text(&o));
    let detail: Vec<(String, String)> = audit_pairs(&data).await;
    assert!(
        detail
            .iter()
            .any(|(a, d)| a == "user.second_factor_reset" && d.ends_with(": second factor reset")),
        "{detail:?}"
    );
    std::fs::remove_dir_all(&data).ok();
}

/// The audit log's (action, detail) pairs, read through the store as an administrator.
async fn audit_pairs(data: &std::path::Path) -> Vec<(String, String)> {
    use ketcare_core::{Actor, Role};
    let url = format!("sqlite://{}?mode=rw", data.join("ketcare.db").display());
    let store = ketcare_store::open(&url).await.unwrap();
    store
        .audit_records(
            &Actor::system(Role::Administrator),
            &ketcare_store::AuditFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.detail))
        .collect()
}

#[tokio::test]
async fn registry_export_as_a_researcher_writes_csv_or_parquet_and_its_dictionary() {
    let data = std::env::temp_dir().join(format!("ketcare-registry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    for (user, role) in [("rae", "researcher"), ("nina", "nurse")] {
        let o = ketcare(
            &data,
            &["user", "add", "--username", user, "--role", role],
            "a long enough password\n",
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    let out = data.join("export");
    let out_s = out.to_str().unwrap();
    let export = |who: &str| {
        ketcare(
            &data,
            &["registry", "export", "--as", who, "--out", out_s],
            "",
        )
    };
    let o = export("nina");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("may not read the research registry"),
        "{}",
        text(&o)
    );
    let o = export("rae");
    assert!(!o.status.success(), "nothing until the site sets k");
    assert!(
        text(&o).contains("research.small_cell_patients"),
        "{}",
        text(&o)
    );
    let o = ketcare(
        &data,
        &[
            "settings",
            "set",
            "research.small_cell_patients",
            "5",
            "--reason",
            "t",
        ],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = export("rae");
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read_to_string(out.join("registry.csv")).unwrap();
    assert!(csv.starts_with("study_id,age,age_band,sex,"), "{csv}");
    let dict = std::fs::read_to_string(out.join("registry-dictionary.csv")).unwrap();
    assert!(dict.contains("durability_days,integer,days,"), "{dict}");
    let o = ketcare(
        &data,
        &[
            "registry", "export", "--as", "rae", "--out", out_s, "--format", "parquet",
        ],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let parquet = std::fs::read(out.join("registry.parquet")).unwrap();
    assert!(parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"));
    let o = ketcare(
        &data,
        &[
            "registry", "export", "--as", "rae", "--out", out_s, "--format", "xlsx",
        ],
        "",
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("--format"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn a_synthetic_clinic_is_generated_and_its_registry_benchmarked() {
    let data = std::env::temp_dir().join(format!("ketcare-synthetic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let o = ketcare(
        &data,
        &["demo", "--patients", "40", "--years", "1", "--seed", "3"],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("synthetic clinic (seed 3): 40 patients"),
        "{}",
        text(&o)
    );
    let o = ketcare(&data, &["bench", "registry", "--runs", "1"], "");
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("registry outcome table (Sqlite, indication trd)"),
        "{out}"
    );
    assert!(out.contains("parquet export: "), "{out}");
    // Its de-identified export holds no name, MRN, date, phone or email of any patient.
    let dir = data.join("export");
    let o = ketcare(
        &data,
        &[
            "registry",
            "export",
            "--as",
            "researcher",
            "--out",
            dir.to_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read_to_string(dir.join("registry.csv")).unwrap();
    assert!(csv.lines().count() > 30, "{csv}");
    for needle in ["SYN-", "Synthetic", "Patient 0", "@", "KC-"] {
        assert!(!csv.contains(needle), "{needle} in the export");
    }
    let date = |b: &[u8]| {
        b.windows(10).any(|w| {
            w[..4].iter().all(u8::is_ascii_digit)
                && w[4] == b'-'
                && w[5..7].iter().all(u8::is_ascii_digit)
                && w[7] == b'-'
                && w[8..10].iter().all(u8::is_ascii_digit)
        })
    };
    assert!(!date(csv.as_bytes()), "a date in the export");
    // The same seed again is refused (its patients are there), naming the MRN.
    let o = ketcare(
        &data,
        &["demo", "--patients", "5", "--years", "1", "--seed", "3"],
        "",
    );
    assert!(!o.status.success());
    let _ = std::fs::remove_dir_all(&data);
}
