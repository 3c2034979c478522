//! Sites' time zones. A site records an IANA time zone (`sites.time_zone`; empty: the server's
//! own). The day a recorded time falls on — a session's dose day, a booking's instant — is read
//! in the zone of the site the record belongs to (a session's chair, a booking's chair:
//! [`Zones`]). "Today" — the day of care a dose order, a screening or a session's questionnaires
//! are decided on, and every page's date — is the day at the site the acting user works at: the
//! web's route guard runs each request [`within`] that site's zone, and [`crate::today`] reads
//! it ([`here`]). Outside a request (the MLLP listener, the CLI, background jobs) and for a user
//! of several sites who chose none, it is the server's zone. Patient outreach belongs to the
//! organisation and runs in the organisation's zone ([`organisation`]: its first site's). A zone the time-zone
//! database does not know (stored before it was checked, or removed from the database since) is
//! read as the server's, never refused: a date is still shown.

use crate::Result;
use jiff::tz::TimeZone;
use ketcare_store::Store;
use std::collections::HashMap;

tokio::task_local! {
    static ZONE: TimeZone;
}

/// Runs `f` with `zone` as the zone of the site the acting user works at.
pub async fn within<F: std::future::Future>(zone: TimeZone, f: F) -> F::Output {
    ZONE.scope(zone, f).await
}

/// The zone of the site the acting user works at ([`within`]); the server's outside it.
pub fn here() -> TimeZone {
    ZONE.try_with(TimeZone::clone)
        .unwrap_or_else(|_| TimeZone::system())
}

/// The organisation's zone, from the record: its first site's (the site every database has from
/// its migrations), the server's where that site names none. Patient outreach — course
/// schedules, reminders, quiet hours, questionnaire links — is timed in it, whichever site a
/// patient is seen at, so a server kept in UTC still sends within the clinic's hours.
pub async fn organisation(store: &dyn Store) -> Result<TimeZone> {
    Ok(store
        .site_zones()
        .await?
        .first()
        .map_or_else(TimeZone::system, |(_, name)| named(name)))
}

/// The zone an IANA name stands for; empty or unknown: the server's own.
pub fn named(name: &str) -> TimeZone {
    let name = name.trim();
    if name.is_empty() {
        return TimeZone::system();
    }
    TimeZone::get(name).unwrap_or_else(|_| TimeZone::system())
}

/// Every site's zone, loaded once for a use case that reads records of several sites.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    sites: HashMap<i64, TimeZone>,
    /// Each chair's site.
    chairs: HashMap<i64, i64>,
}

impl Zones {
    /// The organisation's sites and their zones (one small read, not patient data).
    pub async fn load(store: &dyn Store) -> Result<Zones> {
        Ok(Zones {
            sites: store
                .site_zones()
                .await?
                .into_iter()
                .map(|(id, name)| (id, named(&name)))
                .collect(),
            chairs: store.chair_sites().await?.into_iter().collect(),
        })
    }

    /// The zone of the site chair `chair` is at (a booking's wall clock).
    pub fn of_chair(&self, chair: i64) -> TimeZone {
        self.chairs
            .get(&chair)
            .map_or_else(TimeZone::system, |site| self.of(*site))
    }

    /// Site `site`'s zone (the server's for a site not on record).
    pub fn of(&self, site: i64) -> TimeZone {
        self.sites
            .get(&site)
            .cloned()
            .unwrap_or_else(TimeZone::system)
    }
}

/// One site's zone.
pub async fn of_site(store: &dyn Store, site: i64) -> Result<TimeZone> {
    Ok(Zones::load(store).await?.of(site))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn today_is_the_acting_sites_within_a_request_and_the_servers_outside() {
        assert_eq!(here(), TimeZone::system());
        let z = TimeZone::get("Pacific/Kiritimati").unwrap();
        let t: jiff::Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        let (inside, today) =
            within(z.clone(), async { (here(), crate::today(t.as_second())) }).await;
        assert_eq!(inside, z);
        assert_eq!(today, jiff::civil::date(2026, 12, 8));
        assert_eq!(here(), TimeZone::system());
    }

    #[test]
    fn an_empty_or_unknown_zone_is_the_servers_and_a_known_one_is_itself() {
        assert_eq!(named(""), TimeZone::system());
        assert_eq!(named("Not/AZone"), TimeZone::system());
        let z = named(" Pacific/Kiritimati ");
        assert_eq!(z.iana_name(), Some("Pacific/Kiritimati"));
        // 10:00 UTC is already the next day at UTC+14.
        let t: jiff::Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        assert_eq!(
            crate::today_in(t.as_second(), &z),
            jiff::civil::date(2026, 12, 8)
        );
        assert_eq!(
            Zones::default().of(7),
            TimeZone::system(),
            "a site not on record"
        );
    }
}
