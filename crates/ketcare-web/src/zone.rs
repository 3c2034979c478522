//! The time zone a request is read and answered in: the time zone of the site its user works at
//! ([`crate::auth::Principal::zone`]), set by the route guard around the handler, so that
//! "today" ([`crate::AppState::today`]), a worklist's day and every time a page shows
//! ([`crate::fmt::when`]) are that site's. A site without a zone of its own, a user with several
//! sites and none chosen, and work outside a request (the MLLP listener, background jobs) read
//! the server's zone. What a record's own site decides — a session's dose day, a booking's
//! instant — the application layer reads in that site's zone ([`ketcare_app::zones`]).

use jiff::tz::TimeZone;
use std::future::Future;

tokio::task_local! {
    static ZONE: TimeZone;
}

/// Runs `f` with `zone` as the request's zone.
pub async fn within<F: Future>(zone: TimeZone, f: F) -> F::Output {
    ZONE.scope(zone, f).await
}

/// The request's zone (the server's outside a request).
pub fn here() -> TimeZone {
    ZONE.try_with(TimeZone::clone)
        .unwrap_or_else(|_| TimeZone::system())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_reads_its_sites_zone_and_anything_else_the_servers() {
        assert_eq!(here(), TimeZone::system());
        let z = TimeZone::get("Pacific/Kiritimati").unwrap();
        let inside = within(z.clone(), async { here() }).await;
        assert_eq!(inside, z);
        assert_eq!(here(), TimeZone::system());
    }
}
