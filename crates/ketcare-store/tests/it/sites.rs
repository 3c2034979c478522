//! Sites, on SQLite and PostgreSQL: each site's records are seen and changed only by its own
//! staff (another site's row is "not found"), the medical director sees every site, and each
//! site's ledger is its own chain, numbered and verified on its own.

use jiff::civil::date;
use ketcare_core::patient::{NewPatient, PatientInput};
use ketcare_core::{Actor, BookingId, PatientId, Role, UserId};
use ketcare_ops::ledger::{BusinessTime, InventoryKind, LedgerEvent};
use ketcare_ops::schedule::{Booking, BookingStatus, PhaseKind, Staffing};
use ketcare_session::{Command, VitalReading, VitalSource, Vitals};
use ketcare_store::testing::{BACKENDS, fresh_store};
use ketcare_store::{BookOutcome, NewSite, NewUser, SiteScope, Store, StoreError};

async fn user(store: &dyn Store, name: &str, role: Role, sites: SiteScope) -> Actor {
    let admin = Actor::system(Role::Administrator);
    let u = store
        .create_user(
            &admin,
            &NewUser {
                username: name.into(),
                display_name: name.into(),
                role,
                password_hash: "x".into(),
            },
        )
        .await
        .unwrap();
    store.set_user_sites(&admin, u.id, &sites).await.unwrap();
    Actor::user(u.id, name, role, "127.0.0.1")
}

/// A new site named `name` with registration `dea` (empty: none on record); its id.
async fn new_site(store: &dyn Store, name: &str, dea: &str) -> i64 {
    store
        .create_site(
            &Actor::system(Role::Administrator),
            &NewSite {
                name: name.into(),
                dea_registration: dea.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id
}

fn field_of<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::Invalid(e)) => e.0.first().map(|f| f.field.clone()).unwrap_or_default(),
        Err(StoreError::NotFound { .. }) => "not found".into(),
        other => format!("{other:?}"),
    }
}

fn receive(lot: &str) -> LedgerEvent {
    LedgerEvent::Receive {
        product: "ketamine-50".into(),
        ndc: "67457-108-10".into(),
        lot: lot.into(),
        expiry: date(2030, 1, 31),
        quantity: 2,
        invoice: "INV-1".into(),
        supplier: "Wholesaler".into(),
    }
}

#[tokio::test]
async fn each_site_sees_its_own_records_and_keeps_its_own_ledger() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let admin = Actor::system(Role::Administrator);
        // A site is checked as it is created: a DEA number's check digit, an IANA zone.
        let bad = s
            .create_site(
                &admin,
                &NewSite {
                    name: "North".into(),
                    dea_registration: "FN1234567".into(),
                    ..Default::default()
                },
            )
            .await;
        assert_eq!(field_of(bad), "dea_registration", "{backend:?}");
        let bad = s
            .create_site(
                &admin,
                &NewSite {
                    name: "North".into(),
                    time_zone: "Mars/Olympus".into(),
                    ..Default::default()
                },
            )
            .await;
        assert_eq!(field_of(bad), "time_zone", "{backend:?}");
        let north = s
            .create_site(
                &admin,
                &NewSite {
                    name: "North".into(),
                    time_zone: "America/Chicago".into(),
                    dea_registration: "FN1234563".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id;
        let main = 1;
        let only = |id| SiteScope::Only(vec![id]);
        let nurse_a = user(s, "nurse-a", Role::Nurse, only(main)).await;
        let nurse_b = user(s, "nurse-b", Role::Nurse, only(north)).await;
        let pharm_a = user(s, "pharm-a", Role::Pharmacist, only(main)).await;
        let pharm_b = user(s, "pharm-b", Role::Pharmacist, only(north)).await;
        let director = user(s, "director", Role::Prescriber, SiteScope::All).await;
        assert_eq!(s.my_sites(&nurse_b).await.unwrap(), only(north));
        // A refused change leaves the account's sites as they were (nothing half-written).
        let b_id = nurse_b.user_id.unwrap();
        assert_eq!(
            field_of(
                s.set_user_sites(&admin, b_id, &SiteScope::Only(vec![main, 77]))
                    .await
            ),
            "sites"
        );
        assert_eq!(s.my_sites(&nurse_b).await.unwrap(), only(north));
        assert_eq!(s.sites(&nurse_b).await.unwrap().len(), 1);
        assert_eq!(s.sites(&director).await.unwrap().len(), 2);

        // Chairs belong to a site; a user of one site adds to it without naming it, and sees
        // only its chairs. A user of several sites names the site.
        let chair_a = s.add_chair(&nurse_a, "Chair 1").await.unwrap();
        assert_eq!(chair_a.site_id, main);
        let chair_b = s.add_chair(&nurse_b, "North 1").await.unwrap();
        assert_eq!(chair_b.site_id, north);
        assert_eq!(field_of(s.add_chair(&director, "X").await), "site");
        assert_eq!(
            field_of(s.add_chair_at(&nurse_b, Some(main), "Y").await),
            "site"
        );
        let names =
            |v: Vec<ketcare_store::Chair>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names(s.chairs(&nurse_b).await.unwrap()), ["North 1"]);
        assert_eq!(
            names(s.chairs(&director).await.unwrap()),
            ["Chair 1", "North 1"]
        );

        // A session is held at its chair's site.
        let input = PatientInput {
            mrn: "S1".into(),
            given_name: "Pat".into(),
            family_name: "Site".into(),
            date_of_birth: "1980-01-01".into(),
            sex: "female".into(),
            ..Default::default()
        };
        let patient: PatientId = s
            .create_patient(
                &nurse_a,
                &NewPatient::parse(&input, date(2026, 12, 1)).unwrap(),
            )
            .await
            .unwrap()
            .id;
        let sid = ketcare_store::testing::session_with_order(
            s,
            &nurse_a,
            patient,
            "trd-adult-iv-ketamine",
            0,
        )
        .await;
        let rec = s.session_record(&nurse_a, sid).await.unwrap();
        assert_eq!(rec.site_id, main);
        // Site B's nurse: not found on every read and write of it; not on the suite.
        assert_eq!(field_of(s.session_record(&nurse_b, sid).await), "not found");
        assert_eq!(field_of(s.session_vitals(&nurse_b, sid).await), "not found");
        assert_eq!(
            field_of(
                s.apply_session_command(
                    &nurse_b,
                    sid,
                    &Command::Cancel { reason: "x".into() },
                    jiff::Timestamp::now()
                )
                .await
            ),
            "not found"
        );
        let reading = VitalReading {
            at: jiff::Timestamp::now(),
            source: VitalSource::Manual,
            by: "nurse-b".into(),
            control_id: None,
            vitals: Vitals {
                heart_rate: Some(70.0),
                ..Default::default()
            },
        };
        assert_eq!(
            field_of(s.record_vital(&nurse_b, sid, &reading, None).await),
            "not found"
        );
        assert!(s.active_sessions(&nurse_b).await.unwrap().is_empty());
        // The patient belongs to the organisation: their chart (and every decision made on
        // their sessions) is whole wherever they are seen.
        assert_eq!(
            s.patient_sessions(&nurse_b, patient).await.unwrap().len(),
            1
        );
        // The director sees both sites.
        assert_eq!(s.session_record(&director, sid).await.unwrap().id, sid);
        // Site B's nurse cannot open a session in site A's chair.
        let mut other = rec.session.clone();
        other.chair = "Chair 1".into();
        assert_eq!(
            field_of(s.create_treatment_session(&nurse_b, patient, &other).await),
            "chair"
        );

        // Each site's ledger is its own chain, numbered from 1.
        let a1 = s.ledger_append(&pharm_a, &receive("LA")).await.unwrap();
        let b1 = s.ledger_append(&pharm_b, &receive("LB")).await.unwrap();
        let a2 = s.ledger_append(&pharm_a, &receive("LA2")).await.unwrap();
        assert_eq!((a1.site_id, a1.seq), (main, 1));
        assert_eq!((b1.site_id, b1.seq), (north, 1));
        assert_eq!((a2.site_id, a2.seq), (main, 2));
        assert_ne!(a1.hash, b1.hash);
        let lots = |st: ketcare_ops::ledger::LedgerState| {
            st.containers
                .iter()
                .map(|c| c.lot.clone())
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(
            lots(s.ledger_state(&pharm_b).await.unwrap()),
            ["LB".to_owned()].into()
        );
        assert_eq!(
            field_of(s.ledger_records_at(&pharm_b, Some(main)).await),
            "site"
        );
        // The director works at both: the site is named.
        assert_eq!(field_of(s.ledger_state(&director).await), "site");
        assert_eq!(
            s.ledger_records_at(&director, Some(north))
                .await
                .unwrap()
                .len(),
            1
        );
        // A draw goes to its session's site: site B's nurse cannot draw for it, and naming
        // another site contradicts the record.
        let draw = LedgerEvent::Draw {
            container: 1,
            session_id: sid.get(),
            patient_id: patient.get(),
            volume_ul: 500,
        };
        assert_eq!(
            field_of(s.ledger_append(&nurse_b, &draw).await),
            "not found"
        );
        assert_eq!(
            field_of(s.ledger_append_at(&nurse_a, Some(north), &draw).await),
            "site"
        );
        let drawn = s.ledger_append(&nurse_a, &draw).await.unwrap();
        assert_eq!((drawn.site_id, drawn.seq), (main, 3));
        assert_eq!(
            s.session_ledger_state(&director, sid.get())
                .await
                .unwrap()
                .sessions
                .get(&sid.get())
                .map(|l| l.drawn_ug),
            Some(25_000)
        );
        // An inventory is the site's: its DEA registration, whatever the request says.
        let inventory = |dea: &str| LedgerEvent::Inventory {
            inventory: InventoryKind::Biennial,
            taken: date(2026, 12, 1),
            time: BusinessTime::Close,
            registrant_name: "North".into(),
            registrant_address: "1 North St".into(),
            dea_number: dea.into(),
            lines: vec![],
        };
        assert_eq!(
            field_of(s.ledger_append(&pharm_b, &inventory("AB1234563")).await),
            "dea_number"
        );
        let inv = s.ledger_append(&pharm_b, &inventory("")).await.unwrap();
        assert!(inv.body.contains("FN1234563"), "{}", inv.body);
        assert_eq!((inv.site_id, inv.seq), (north, 2));
        let v = s.verify_ledger().await.unwrap();
        assert_eq!(
            (v.entries, v.broken, v.site_id),
            (5, None, None),
            "{backend:?}"
        );

        // Bookings: at the chair's site, by its staff; another site's booking is not found.
        let start = date(2026, 12, 9).at(9, 0, 0, 0);
        let booking = |chair: i64, nurse: &Actor| Booking {
            id: BookingId::new(0),
            course_id: None,
            patient_id: patient.get(),
            chair_id: chair,
            nurse_id: nurse.user_id.map(UserId::get).unwrap(),
            prescriber_required: false,
            start,
            end: start.checked_add(jiff::Span::new().minutes(90)).unwrap(),
            status: BookingStatus::Booked,
            phase: PhaseKind::Induction,
        };
        assert_eq!(
            field_of(
                s.book(
                    &nurse_a,
                    None,
                    &[booking(chair_b.id, &nurse_a)],
                    Staffing::default()
                )
                .await
            ),
            "chair_id"
        );
        assert_eq!(
            field_of(
                s.book(
                    &director,
                    None,
                    &[booking(chair_b.id, &nurse_a)],
                    Staffing::default()
                )
                .await
            ),
            "nurse_id"
        );
        let BookOutcome::Booked { bookings, .. } = s
            .book(
                &nurse_a,
                None,
                &[booking(chair_a.id, &nurse_a)],
                Staffing::default(),
            )
            .await
            .unwrap()
        else {
            panic!("booked")
        };
        let bid = bookings[0].id;
        assert_eq!(field_of(s.booking(&nurse_b, bid).await), "not found");
        assert_eq!(
            field_of(
                s.set_booking_status(&nurse_b, bid, BookingStatus::Cancelled, "x")
                    .await
            ),
            "not found"
        );
        let day = (start.date().at(0, 0, 0, 0), start.date().at(23, 59, 0, 0));
        assert!(s.bookings(&nurse_b, day.0, day.1).await.unwrap().is_empty());
        assert_eq!(s.bookings(&director, day.0, day.1).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_site_keeps_its_own_settings_versions_beside_the_organisations() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let admin = Actor::system(Role::Administrator);
        let north = new_site(s, "North", "").await;
        let org = s
            .save_site_settings(&admin, r#"{"values":{"a":1}}"#, "organisation")
            .await
            .unwrap();
        let own = s
            .save_settings_of_site(&admin, north, r#"{"values":{"a":2}}"#, "North's own")
            .await
            .unwrap();
        // One sequence numbers both; the organisation's newest is still its own.
        assert!(own.version > org.version, "{backend:?}");
        assert_eq!(
            s.site_settings().await.unwrap().unwrap().version,
            org.version
        );
        assert_eq!(
            s.settings_of_site(north).await.unwrap().unwrap().body,
            r#"{"values":{"a":2}}"#
        );
        assert!(s.settings_of_site(1).await.unwrap().is_none());
        // A later organisation version does not hide the site's.
        let org2 = s
            .save_site_settings(&admin, r#"{"values":{"a":3}}"#, "organisation again")
            .await
            .unwrap();
        assert!(org2.version > own.version);
        assert_eq!(
            s.settings_of_site(north).await.unwrap().unwrap().version,
            own.version
        );
        // An administrator of the main site only cannot set North's; an unknown site is not
        // found; a reason is required; other roles may not.
        let main_admin = user(
            s,
            "main-admin",
            Role::Administrator,
            SiteScope::Only(vec![1]),
        )
        .await;
        assert_eq!(
            field_of(s.save_settings_of_site(&main_admin, north, "{}", "x").await),
            "not found"
        );
        assert_eq!(
            field_of(s.save_settings_of_site(&admin, 99, "{}", "x").await),
            "not found"
        );
        assert_eq!(
            field_of(s.save_settings_of_site(&admin, north, "{}", " ").await),
            "reason"
        );
        let nurse = user(s, "nurse", Role::Nurse, SiteScope::All).await;
        assert!(matches!(
            s.save_settings_of_site(&nurse, north, "{}", "x").await,
            Err(StoreError::Forbidden { .. })
        ));
        assert_eq!(
            s.settings_of_site(north).await.unwrap().unwrap().version,
            own.version,
            "nothing refused was stored"
        );
    }
}

#[tokio::test]
async fn a_transfer_is_a_pair_of_entries_one_in_each_sites_ledger() {
    use ketcare_ops::ledger::ContainerStatus;
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let admin = Actor::system(Role::Administrator);
        let north = new_site(s, "North", "FN1234563").await;
        let pharm_a = user(s, "pharm-a", Role::Pharmacist, SiteScope::Only(vec![1])).await;
        let pharm_b = user(s, "pharm-b", Role::Pharmacist, SiteScope::Only(vec![north])).await;
        s.ledger_append(&pharm_a, &receive("LA")).await.unwrap();
        s.ledger_append(&pharm_a, &receive("LA2")).await.unwrap();
        let out = |containers: Vec<i64>, to_site: i64| LedgerEvent::TransferOut {
            to_site,
            to_registration: String::new(),
            from_registration: String::new(),
            containers,
            invoice: "TR-9".into(),
            lines: Vec::new(),
        };
        // The main site has no registration on record yet: a transfer between registrations
        // waits for it.
        assert_eq!(
            field_of(s.ledger_append(&pharm_a, &out(vec![2, 3], north)).await),
            "to_site"
        );
        s.update_site(
            &admin,
            1,
            &NewSite {
                name: "Main site".into(),
                // Typed in lower case: kept as the registration is written.
                dea_registration: "ab1234563".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // Wrong inputs, each refused naming its field, nothing written.
        assert_eq!(
            field_of(s.ledger_append(&pharm_a, &out(vec![2], 1)).await),
            "to_site"
        );
        assert_eq!(
            field_of(s.ledger_append(&pharm_a, &out(vec![2], 99)).await),
            "to_site"
        );
        assert_eq!(
            field_of(s.ledger_append(&pharm_a, &out(vec![9], north)).await),
            "containers"
        );
        let mut wrong = out(vec![2], north);
        if let LedgerEvent::TransferOut {
            to_registration, ..
        } = &mut wrong
        {
            *to_registration = "AB1234563".into();
        }
        assert_eq!(
            field_of(s.ledger_append(&pharm_a, &wrong).await),
            "to_registration"
        );
        // Sent: the sending side carries the lines from its book and North's registration.
        let sent = s
            .ledger_append(&pharm_a, &out(vec![2, 3], north))
            .await
            .unwrap();
        assert_eq!(sent.site_id, 1);
        let body: serde_json::Value = serde_json::from_str(&sent.body).unwrap();
        assert_eq!(body["to_registration"], "FN1234563");
        assert_eq!(body["from_registration"], "AB1234563");
        assert_eq!(body["lines"].as_array().unwrap().len(), 2);
        assert_eq!(body["lines"][1]["lot"], "LA2");
        let a = s.ledger_state(&pharm_a).await.unwrap();
        assert_eq!(
            a.container(2).map(|c| c.status),
            Some(ContainerStatus::Transferred)
        );
        let on_hand = a.inventory_lines();
        let ketamine = on_hand.iter().find(|l| l.product == "ketamine-50").unwrap();
        assert_eq!(
            ketamine.containers, 2,
            "{backend:?}: four received, two sent"
        );
        // North sees it due; the sending site does not.
        let due = s.ledger_transfers_due(&pharm_b, None).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].from_site, due[0].from_entry), (1, sent.seq));
        assert!(
            s.ledger_transfers_due(&pharm_a, None)
                .await
                .unwrap()
                .is_empty()
        );
        let receive_it = |from_entry: i64, invoice: &str| LedgerEvent::TransferIn {
            from_site: 1,
            from_entry,
            from_registration: String::new(),
            invoice: invoice.into(),
            lines: Vec::new(),
        };
        // Not a transfer, another invoice, the sender receiving its own: refused.
        assert_eq!(
            field_of(s.ledger_append(&pharm_b, &receive_it(1, "")).await),
            "from_entry"
        );
        assert_eq!(
            field_of(
                s.ledger_append(&pharm_b, &receive_it(sent.seq, "OTHER"))
                    .await
            ),
            "invoice"
        );
        assert_eq!(
            field_of(s.ledger_append(&pharm_a, &receive_it(sent.seq, "")).await),
            "from_site"
        );
        let got = s
            .ledger_append(&pharm_b, &receive_it(sent.seq, ""))
            .await
            .unwrap();
        assert_eq!(got.site_id, north);
        let body: serde_json::Value = serde_json::from_str(&got.body).unwrap();
        assert_eq!(
            (body["invoice"].as_str(), body["from_registration"].as_str()),
            (Some("TR-9"), Some("AB1234563"))
        );
        let b = s.ledger_state(&pharm_b).await.unwrap();
        let lots: Vec<(&str, ContainerStatus)> = b
            .containers
            .iter()
            .map(|c| (c.lot.as_str(), c.status))
            .collect();
        assert_eq!(
            lots,
            vec![
                ("LA", ContainerStatus::Sealed),
                ("LA2", ContainerStatus::Sealed)
            ]
        );
        // Received once; nothing is due any more; both chains verify.
        assert_eq!(
            field_of(s.ledger_append(&pharm_b, &receive_it(sent.seq, "")).await),
            "from_entry"
        );
        assert!(
            s.ledger_transfers_due(&pharm_b, None)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(s.verify_ledger().await.unwrap().broken.is_none());
    }
}

#[tokio::test]
async fn an_account_holds_its_own_role_at_each_site() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let admin = Actor::system(Role::Administrator);
        let north = new_site(s, "North", "").await;
        // A nurse at the main site who is North's pharmacist.
        let nurse = user(s, "float", Role::Nurse, SiteScope::Only(vec![1])).await;
        let id = nurse.user_id.unwrap();
        let both = SiteScope::Only(vec![1, north]);
        // Refused, naming `roles`: a role at a site not listed, a site named twice, a role for
        // an account of every site; nothing is written.
        for (scope, roles) in [
            (SiteScope::Only(vec![1]), vec![(north, Role::Pharmacist)]),
            (
                both.clone(),
                vec![(north, Role::Pharmacist), (north, Role::Nurse)],
            ),
            (SiteScope::All, vec![(north, Role::Pharmacist)]),
        ] {
            assert_eq!(
                field_of(s.assign_user_sites(&admin, id, &scope, &roles).await),
                "roles",
                "{backend:?}"
            );
        }
        assert_eq!(s.user_sites(&admin, id).await.unwrap(), only(1));
        s.assign_user_sites(&admin, id, &both, &[(north, Role::Pharmacist)])
            .await
            .unwrap();
        assert_eq!(
            s.user_site_roles(&admin, id).await.unwrap(),
            [(north, Role::Pharmacist)]
        );
        let held: Vec<(i64, Role)> = s
            .sites_held(id)
            .await
            .unwrap()
            .into_iter()
            .map(|(site, role)| (site.id, role))
            .collect();
        assert_eq!(held, [(1, Role::Nurse), (north, Role::Pharmacist)]);
        // Acting as a nurse reaches the main site only; as the pharmacist, North only; in a role
        // the account does not hold, no site.
        let pharmacist = Actor::user(id, "float", Role::Pharmacist, "127.0.0.1");
        assert_eq!(s.my_sites(&nurse).await.unwrap(), only(1));
        assert_eq!(s.my_sites(&pharmacist).await.unwrap(), only(north));
        let therapist = Actor::user(id, "float", Role::Therapist, "127.0.0.1");
        assert_eq!(s.my_sites(&therapist).await.unwrap(), only_none());
        // North's stock is the pharmacist's there; the nurse's role never reaches it.
        s.ledger_append(&pharmacist, &receive("LN")).await.unwrap();
        assert_eq!(
            s.ledger_records(&pharmacist).await.unwrap()[0].site_id,
            north,
            "{backend:?}"
        );
        assert!(
            s.ledger_records(&nurse).await.is_err()
                || s.ledger_records(&nurse)
                    .await
                    .unwrap()
                    .iter()
                    .all(|r| r.site_id == 1)
        );
        // The staff of a site are those holding the role there.
        let director = user(s, "director", Role::Prescriber, SiteScope::All).await;
        let names = |v: Vec<(i64, String, String)>| v.into_iter().map(|r| r.1).collect::<Vec<_>>();
        let nurses_at_north = Actor::user(
            user(s, "nn", Role::Nurse, only(north))
                .await
                .user_id
                .unwrap(),
            "nn",
            Role::Nurse,
            "127.0.0.1",
        );
        assert_eq!(
            names(s.staff(&nurses_at_north, Role::Nurse).await.unwrap()),
            ["nn"]
        );
        assert_eq!(
            names(s.staff(&nurses_at_north, Role::Pharmacist).await.unwrap()),
            ["float"]
        );
        assert!(
            names(s.staff(&director, Role::Nurse).await.unwrap()).contains(&"float".to_string())
        );
        // A change of sites alone keeps each kept site's role; the audit record names them.
        s.set_user_sites(&admin, id, &both).await.unwrap();
        assert_eq!(
            s.user_site_roles(&admin, id).await.unwrap(),
            [(north, Role::Pharmacist)]
        );
        let detail = last_change_of_sites(s).await;
        assert!(detail.contains("pharmacist at"), "{detail:?}");
        // Rostered on site only where they are a prescriber.
        let scheduling = Actor::system(Role::Scheduler);
        let start = date(2027, 1, 5).at(8, 0, 0, 0);
        let end = date(2027, 1, 5).at(18, 0, 0, 0);
        assert_eq!(
            field_of(
                s.add_on_site_at(&scheduling, Some(north), id, start, end)
                    .await
            ),
            "user_id"
        );
        // Back to one role everywhere: the roles given replace the ones held.
        s.assign_user_sites(&admin, id, &both, &[]).await.unwrap();
        assert_eq!(s.my_sites(&nurse).await.unwrap(), both);
        assert_eq!(s.my_sites(&pharmacist).await.unwrap(), only_none());
    }
}

/// An adult patient, created by `actor`.
async fn adult(store: &dyn Store, actor: &Actor, mrn: &str) -> PatientId {
    let input = PatientInput {
        mrn: mrn.into(),
        given_name: "Sam".into(),
        family_name: format!("Patient {mrn}"),
        date_of_birth: "1980-02-02".into(),
        sex: "female".into(),
        ..Default::default()
    };
    store
        .create_patient(
            actor,
            &NewPatient::parse(&input, date(2026, 12, 1)).unwrap(),
        )
        .await
        .unwrap()
        .id
}

/// A booking of `patient` in `chair` with `nurse` that needs a prescriber on site.
fn needing_a_prescriber(
    patient: PatientId,
    chair: i64,
    nurse: UserId,
    start: jiff::civil::DateTime,
    end: jiff::civil::DateTime,
) -> Booking {
    Booking {
        id: BookingId::new(0),
        course_id: None,
        patient_id: patient.get(),
        chair_id: chair,
        nurse_id: nurse.get(),
        prescriber_required: true,
        start,
        end,
        status: BookingStatus::Booked,
        phase: PhaseKind::Induction,
    }
}

/// The detail of the newest `user.sites` audit record.
async fn last_change_of_sites(store: &dyn Store) -> String {
    let records = store
        .audit_records(
            &Actor::system(Role::Administrator),
            &ketcare_store::AuditFilter {
                action: Some("user.sites".into()),
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    records[0].detail.clone()
}

fn only(id: i64) -> SiteScope {
    SiteScope::Only(vec![id])
}

fn only_none() -> SiteScope {
    SiteScope::Only(Vec::new())
}

/// A change of role or sites that would leave an account booked as a session's nurse, or on the
/// roster as the prescriber on site, where it no longer holds that role is refused, naming the
/// field changed; a change elsewhere goes through.
#[tokio::test]
async fn a_change_of_role_that_strands_a_booking_or_roster_is_refused() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let admin = Actor::system(Role::Administrator);
        let north = new_site(s, "North", "").await;
        let both = SiteScope::Only(vec![1, north]);
        let nurse = user(s, "float", Role::Nurse, both.clone()).await;
        let doc = user(s, "doc", Role::Prescriber, both.clone()).await;
        let (nurse_id, doc_id) = (nurse.user_id.unwrap(), doc.user_id.unwrap());
        let scheduling = Actor::system(Role::Scheduler);
        let chair = s
            .add_chair_at(&scheduling, Some(north), "North 1")
            .await
            .unwrap();
        let patient = adult(s, &nurse, "S-1").await;
        let start = date(2030, 3, 4).at(9, 0, 0, 0);
        let end = start.checked_add(jiff::Span::new().hours(2)).unwrap();
        let entry = s
            .add_on_site_at(&scheduling, Some(north), doc_id, start, end)
            .await
            .unwrap();
        let booked = s
            .book(
                &scheduling,
                None,
                &[needing_a_prescriber(
                    patient, chair.id, nurse_id, start, end,
                )],
                Staffing::default(),
            )
            .await
            .unwrap();
        let BookOutcome::Booked { bookings, .. } = booked else {
            panic!("{backend:?}: {booked:?}");
        };
        // North's nurse made its scheduler, or moved off North; North's prescriber made its
        // nurse, or a therapist everywhere: each is refused, and nothing changes.
        assert_eq!(
            field_of(
                s.assign_user_sites(&admin, nurse_id, &both, &[(north, Role::Scheduler)])
                    .await
            ),
            "roles",
            "{backend:?}"
        );
        assert_eq!(
            field_of(s.set_user_sites(&admin, nurse_id, &only(1)).await),
            "sites",
            "{backend:?}"
        );
        let refused = s
            .assign_user_sites(&admin, doc_id, &both, &[(north, Role::Nurse)])
            .await;
        assert!(
            matches!(&refused, Err(StoreError::Invalid(e)) if e.0[0].field == "roles" && e.0[0].message.contains("roster entry")),
            "{backend:?}: {refused:?}"
        );
        assert_eq!(
            field_of(
                s.change_account(
                    &admin,
                    doc_id,
                    &ketcare_store::AccountChange::SetRole(Role::Therapist)
                )
                .await
            ),
            "role",
            "{backend:?}"
        );
        assert_eq!(s.user_sites(&admin, nurse_id).await.unwrap(), both);
        assert!(s.user_site_roles(&admin, doc_id).await.unwrap().is_empty());
        // The roster entry alone covers a booking that needs a prescriber: it stays until the
        // booking is cancelled; then it comes off, and the prescriber's role can change.
        assert_eq!(
            field_of(s.remove_on_site(&scheduling, entry.id).await),
            "on_site",
            "{backend:?}"
        );
        s.set_booking_status(
            &scheduling,
            bookings[0].id,
            BookingStatus::Cancelled,
            "patient moved away",
        )
        .await
        .unwrap();
        // An entry comes off the schedule's roster by itself, or with a change of role: the
        // prescriber made North's nurse leaves North's roster, and the audit record says so.
        let later = start.checked_add(jiff::Span::new().days(1)).unwrap();
        let second = s
            .add_on_site_at(
                &scheduling,
                Some(north),
                doc_id,
                later,
                later.checked_add(jiff::Span::new().hours(8)).unwrap(),
            )
            .await
            .unwrap();
        s.remove_on_site(&scheduling, second.id).await.unwrap();
        assert_eq!(
            s.on_site(&scheduling, start, later).await.unwrap().len(),
            1,
            "{backend:?}"
        );
        s.assign_user_sites(&admin, doc_id, &both, &[(north, Role::Nurse)])
            .await
            .unwrap();
        assert!(
            s.on_site(&scheduling, start, end).await.unwrap().is_empty(),
            "{backend:?}"
        );
        let detail = last_change_of_sites(s).await;
        assert!(
            detail.contains(&format!("1 on-site roster entry taken off: {}", entry.id)),
            "{backend:?}: {detail}"
        );
        // A role at the main site, where neither has a duty, is changed.
        s.assign_user_sites(&admin, nurse_id, &both, &[(1, Role::Scheduler)])
            .await
            .unwrap();
        s.assign_user_sites(
            &admin,
            doc_id,
            &both,
            &[(1, Role::Nurse), (north, Role::Nurse)],
        )
        .await
        .unwrap();
        // A disabled account is rostered, booked and a witness nowhere.
        let other = user(s, "doc2", Role::Prescriber, both.clone()).await;
        let other_id = other.user_id.unwrap();
        s.change_account(&admin, other_id, &ketcare_store::AccountChange::Disable)
            .await
            .unwrap();
        assert_eq!(
            field_of(
                s.add_on_site_at(&scheduling, Some(north), other_id, start, end)
                    .await
            ),
            "user_id",
            "{backend:?}"
        );
        // A booking that runs past the entry taken off is covered by the entries after it; an
        // entry that has begun stays, as the record of who was on site.
        let third = user(s, "doc3", Role::Prescriber, both.clone()).await;
        let third = third.user_id.unwrap();
        let day = date(2030, 4, 1);
        let at = |h: i8| day.at(h, 0, 0, 0);
        let mut entries = Vec::new();
        for (from, to) in [(8, 12), (9, 12), (12, 16)] {
            entries.push(
                s.add_on_site_at(&scheduling, Some(north), third, at(from), at(to))
                    .await
                    .unwrap(),
            );
        }
        let booked = s
            .book(
                &scheduling,
                None,
                &[needing_a_prescriber(
                    patient,
                    chair.id,
                    nurse_id,
                    at(10),
                    at(14),
                )],
                Staffing::default(),
            )
            .await
            .unwrap();
        assert!(matches!(booked, BookOutcome::Booked { .. }), "{booked:?}");
        s.remove_on_site(&scheduling, entries[0].id).await.unwrap();
        let began = date(2020, 1, 6);
        let past = s
            .add_on_site_at(
                &scheduling,
                Some(north),
                third,
                began.at(8, 0, 0, 0),
                began.at(12, 0, 0, 0),
            )
            .await
            .unwrap();
        assert_eq!(
            field_of(s.remove_on_site(&scheduling, past.id).await),
            "on_site",
            "{backend:?}"
        );
    }
}

/// The registry counts a subject's days from the first treatment's day at the site it was given
/// (its chair's), not the server's: an instant on 1 March at the main site (UTC−11) is 2 March at
/// North (UTC+14), so an opioid started on 2 March is day 0 of a North patient.
#[tokio::test]
async fn registry_days_are_counted_at_the_sessions_site() {
    for backend in BACKENDS {
        let store = fresh_store(backend).await;
        let s = store.as_ref();
        let admin = Actor::system(Role::Administrator);
        let main = s.sites(&admin).await.unwrap().remove(0);
        s.update_site(
            &admin,
            main.id,
            &NewSite {
                name: main.name.clone(),
                time_zone: "Pacific/Pago_Pago".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let north = s
            .create_site(
                &admin,
                &NewSite {
                    name: "North".into(),
                    time_zone: "Pacific/Kiritimati".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id;
        s.add_chair_at(&Actor::system(Role::Scheduler), Some(north), "Chair 1")
            .await
            .unwrap();
        let nurse = Actor::system(Role::Nurse);
        let patient = adult(s, &nurse, "Z-1").await;
        ketcare_store::testing::dosed_session(
            s,
            &nurse,
            patient,
            "2027-03-01T12:00:00Z".parse().unwrap(),
        )
        .await;
        s.add_opioid(
            &nurse,
            patient,
            &ketcare_store::measures::NewOpioid {
                drug: "oxycodone".into(),
                dose: 5.0,
                unit: "mg".into(),
                per_day: Some(4.0),
                route: Some("oral".into()),
                started_on: "2027-03-02".into(),
            },
        )
        .await
        .unwrap();
        let program = s.program(&Actor::system(Role::Prescriber)).await.unwrap();
        let (_, subject) = program
            .iter()
            .find(|(p, _)| p.patient_id == patient.get())
            .expect("the patient is in the program");
        assert_eq!(subject.sessions[0].day, 0, "{backend:?}");
        assert_eq!(subject.opioids[0].start_day, 0, "{backend:?}");
    }
}
