//! The demo clinic's second site: "North clinic" with its own (fictional) DEA registration, two
//! chairs, its own staff and stock, and the medical director (the demo prescriber) across both
//! sites. Main-site staff work at the main site only, so the demo shows site scoping.

use anyhow::{Context, Result};
use jiff::ToSpan;
use jiff::civil::{Date, Weekday};
use ketcare_core::{Actor, Role};
use ketcare_ops::ledger::LedgerEvent;
use ketcare_store::sites::DEFAULT_SITE;
use ketcare_store::{NewSite, SiteScope, Store};

/// The second site's staff (username, name, role); password as every demo account's.
pub const NORTH_STAFF: [(&str, &str, Role); 2] = [
    ("north-nurse", "Nora North", Role::Nurse),
    ("north-pharmacist", "Piet North", Role::Pharmacist),
];

/// A nurse at the main site who covers North's front desk as its scheduler: one account, a
/// different role at each site (username, name, account role, role at North).
pub const FLOAT: (&str, &str, Role, Role) = ("float", "Flo Float", Role::Nurse, Role::Scheduler);

/// The demo main site's DEA registration: made up, of the registration's form (its check digit
/// is right).
pub const MAIN_DEA: &str = "AB1234563";

/// Main-site accounts that work at the main site only (the others work at every site: the
/// administrator, the medical director and the researcher).
const MAIN_ONLY: [&str; 4] = ["nurse", "pharmacist", "scheduler", "therapist"];

/// Seeds the second site; `hash` is the demo password's (as every demo account's).
pub async fn seed(store: &dyn Store, today: Date, hash: &str) -> Result<()> {
    let admin = Actor::system(Role::Administrator);
    let north = store
        .create_site(
            &admin,
            &NewSite {
                name: "North clinic".into(),
                address: "200 North Avenue (fictional)".into(),
                time_zone: String::new(),
                // A made-up number of the registration's form (its check digit is right).
                dea_registration: "FN1234563".into(),
            },
        )
        .await?;
    // The main site's registration (made up, of the right form): inventories and transfers
    // between the two sites carry both.
    store
        .update_site(
            &admin,
            DEFAULT_SITE,
            &NewSite {
                name: "Main site".into(),
                address: "1 Main Street (fictional)".into(),
                time_zone: String::new(),
                dea_registration: MAIN_DEA.into(),
            },
        )
        .await?;
    for account in NORTH_STAFF {
        let u = crate::demo::create_account(store, hash, account).await?;
        store
            .set_user_sites(&admin, u.id, &SiteScope::Only(vec![north.id]))
            .await?;
    }
    let (username, name, own, at_north) = FLOAT;
    let u = crate::demo::create_account(store, hash, (username, name, own)).await?;
    store
        .assign_user_sites(
            &admin,
            u.id,
            &SiteScope::Only(vec![DEFAULT_SITE, north.id]),
            &[(north.id, at_north)],
        )
        .await?;
    for username in MAIN_ONLY {
        let u = store
            .user_by_username(username)
            .await?
            .with_context(|| format!("demo user {username}"))?;
        store
            .set_user_sites(&admin, u.id, &SiteScope::Only(vec![DEFAULT_SITE]))
            .await?;
    }
    let scheduling = Actor::system(Role::Scheduler);
    for name in ["North 1", "North 2"] {
        store
            .add_chair_at(&scheduling, Some(north.id), name)
            .await?;
    }
    // The medical director is on site at North on Tuesdays and Thursdays.
    let director = store
        .user_by_username("prescriber")
        .await?
        .context("demo prescriber")?;
    for d in 0..20 * 7 {
        let day = today.checked_add(d.days())?;
        if matches!(day.weekday(), Weekday::Tuesday | Weekday::Thursday) {
            store
                .add_on_site_at(
                    &scheduling,
                    Some(north.id),
                    director.id,
                    day.at(8, 0, 0, 0),
                    day.at(18, 0, 0, 0),
                )
                .await?;
        }
    }
    let pharmacist = store
        .user_by_username("north-pharmacist")
        .await?
        .context("demo north pharmacist")?;
    let pharmacist = Actor::user(
        pharmacist.id,
        &pharmacist.username,
        pharmacist.role,
        "local",
    );
    store
        .ledger_append(
            &pharmacist,
            &LedgerEvent::Receive {
                product: "ketamine-50".into(),
                ndc: "99999-0050-01".into(),
                lot: "DEMO-K50-N1".into(),
                expiry: today.checked_add(18.months())?,
                quantity: 2,
                invoice: "DEMO-INV-N1".into(),
                supplier: "Demo wholesaler".into(),
            },
        )
        .await?;
    // North sets one key of its own sessions for itself, to show a site's own settings: a
    // heart-rate alarm of its own (the demo's choice for North, not a recommendation).
    let mut own = ketcare_clinical::SiteSettings::default();
    own.values
        .insert(NORTH_HEART_RATE_ALARM.0.into(), NORTH_HEART_RATE_ALARM.1);
    ketcare_app::clinical::save_settings_of_site(
        store,
        &ketcare_clinical::Library::builtin().context("the protocol library")?,
        &admin,
        north.id,
        &own,
        "Demo clinic's choice for North — not a recommendation",
        jiff::Timestamp::now(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("North's own settings: {e:?}"))?;
    Ok(())
}

/// The key North sets for itself in the demo, and its value (the demo's choice).
pub const NORTH_HEART_RATE_ALARM: (&str, f64) = ("session.alarm.heart_rate_high_bpm", 100.0);
