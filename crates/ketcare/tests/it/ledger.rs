//! `ketcare ledger verify` on an embedded SQLite file: intact, then named after an edit.

use crate::common::{ketcare, text};
use jiff::civil::date;
use ketcare_core::{Actor, Role};
use ketcare_ops::ledger::LedgerEvent;
use ketcare_store::NewUser;

#[tokio::test]
async fn ledger_verify_detects_an_edit() {
    let data = std::env::temp_dir().join(format!("ketcare-ledger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    let url = format!("sqlite://{}?mode=rwc", data.join("ketcare.db").display());
    let store = ketcare_store::open(&url).await.unwrap();
    let u = store
        .create_user(
            &Actor::system(Role::Administrator),
            &NewUser {
                username: "pharm".into(),
                display_name: "Pharmacist".into(),
                role: Role::Pharmacist,
                password_hash: "x".into(),
            },
        )
        .await
        .unwrap();
    let pharm = Actor::user(u.id, "pharm", Role::Pharmacist, "test");
    for lot in ["A1", "B2"] {
        store
            .ledger_append(
                &pharm,
                &LedgerEvent::Receive {
                    product: "ketamine-10".into(),
                    ndc: "67457-108-10".into(),
                    lot: lot.into(),
                    expiry: date(2030, 1, 1),
                    quantity: 3,
                    invoice: "INV-1".into(),
                    supplier: "Wholesaler".into(),
                },
            )
            .await
            .unwrap();
    }

    let o = ketcare(&data, &["ledger", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("ledger chain intact: 2 entries"),
        "{}",
        text(&o)
    );

    let o = ketcare(&data, &["ledger", "show", "--as", "pharm"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("6 containers"), "{}", text(&o));
    let o = ketcare(&data, &["ledger", "show", "--as", "nobody"]);
    assert!(!o.status.success());

    // The shell acts in the role the account holds: North's pharmacist who is the main site's
    // scheduler reads North's ledger, and not the main site's.
    let admin = Actor::system(Role::Administrator);
    let north = ketcare_store::testing::new_site(store.as_ref(), "North").await;
    let flo = store
        .create_user(
            &admin,
            &NewUser {
                username: "flo".into(),
                display_name: "Flo".into(),
                role: Role::Scheduler,
                password_hash: "x".into(),
            },
        )
        .await
        .unwrap();
    store
        .assign_user_sites(
            &admin,
            flo.id,
            &ketcare_store::SiteScope::Only(vec![1, north]),
            &[(north, Role::Pharmacist)],
        )
        .await
        .unwrap();
    let o = ketcare(&data, &["ledger", "show", "--as", "flo"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !text(&o).contains("6 containers") && text(&o).contains("no open discrepancies"),
        "North's stock is empty: {}",
        text(&o)
    );
    let o = ketcare(&data, &["ledger", "show", "--as", "flo", "--site", "1"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("flo is a scheduler at site 1, who may not read the ledger"),
        "{}",
        text(&o)
    );

    store
        .execute_raw("DROP TRIGGER ops_ledger_no_update")
        .await
        .unwrap();
    store
        .execute_raw("UPDATE ops_ledger SET body = replace(body, '\"quantity\":3', '\"quantity\":2') WHERE seq = 1")
        .await
        .unwrap();
    let o = ketcare(&data, &["ledger", "verify"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("ledger chain broken at entry 1"),
        "{}",
        text(&o)
    );

    // Prices are the site's own, set from the shell as an administrator.
    let o = ketcare(&data, &["billing", "price", "96365", "300.50"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !ketcare(&data, &["billing", "price", "96365", "3.005"])
            .status
            .success()
    );
    assert!(
        !ketcare(&data, &["billing", "price", "00000", "1"])
            .status
            .success()
    );
    let prices = store
        .prices(&Actor::system(Role::Administrator))
        .await
        .unwrap();
    assert_eq!(prices.0.get("96365"), Some(&30_050));
    std::fs::remove_dir_all(&data).ok();
}
