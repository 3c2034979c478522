//! Sites' time zones. A site records an IANA time zone (`sites.time_zone`; empty: the server's
//! own). The day a recorded time falls on — a session's dose day, a booking's instant, "today"
//! on a site's pages — is read in the zone of the site the record belongs to (a session's chair,
//! a booking's chair) or, for what has no site of its own, the site the user works at. A zone
//! the time-zone database does not know (stored before it was checked, or removed from the
//! database since) is read as the server's, never refused: a date is still shown.

use crate::Result;
use jiff::tz::TimeZone;
use ketcare_store::Store;
use std::collections::HashMap;

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
