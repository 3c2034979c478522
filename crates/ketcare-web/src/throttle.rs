//! Sign-in throttling that cannot be turned against someone else.
//!
//! A hard account lock that anyone can trigger lets any stranger lock out the administrator with
//! five wrong passwords. Instead, failures are counted per (address, account) and per address:
//!
//! - after `attempts` failures for one account from one address within the window, that address
//!   may not try that account again until the window ends, and each further block doubles it
//!   (capped at a day) — the account itself stays open to everyone else;
//! - after `attempts × ADDRESS_FACTOR` failures from one address, whatever the accounts, that
//!   address is refused with 429 and `Retry-After` until its window ends.
//!
//! The counts live in memory (a restart forgets them, which only helps the legitimate user).
//! Unknown usernames count like known ones, so the throttle says nothing about who exists.

use std::collections::HashMap;
use std::sync::Mutex;

/// An address may fail this many times the per-account attempts before it is refused outright.
pub const ADDRESS_FACTOR: i64 = 4;

/// The longest block (one day), whatever the back-off.
const MAX_BLOCK_SECONDS: i64 = 86_400;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    failures: i64,
    window_start: i64,
    blocked_until: i64,
    blocks: u32,
}

/// What the sign-in may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// This address may not try this account for this many seconds.
    AccountPaused(i64),
    /// This address may not sign in at all for this many seconds (answered 429).
    AddressPaused(i64),
}

#[derive(Debug, Default)]
pub struct SignInThrottle {
    buckets: Mutex<HashMap<String, Bucket>>,
}

fn pair(address: &str, username: &str) -> String {
    format!("{address}\u{1f}{}", username.trim().to_lowercase())
}

fn addr(address: &str) -> String {
    format!("{address}\u{1f}")
}

impl SignInThrottle {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Bucket>) -> T) -> T {
        match self.buckets.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// May `address` try `username` at `now`?
    pub fn check(&self, address: &str, username: &str, now: i64) -> Verdict {
        self.with(|m| {
            if let Some(b) = m.get(&addr(address)).filter(|b| b.blocked_until > now) {
                return Verdict::AddressPaused(b.blocked_until - now);
            }
            match m.get(&pair(address, username)) {
                Some(b) if b.blocked_until > now => Verdict::AccountPaused(b.blocked_until - now),
                _ => Verdict::Allowed,
            }
        })
    }

    /// Counts a failed sign-in; `attempts` and `window` (seconds) are the site's settings.
    pub fn failed(&self, address: &str, username: &str, now: i64, attempts: i64, window: i64) {
        self.with(|m| {
            // Forget what has aged out, so the map does not grow without bound; a pause is
            // remembered for a day after it ends, so the next one is longer.
            m.retain(|_, b| {
                b.blocked_until > now
                    || now - b.window_start < window
                    || (b.blocks > 0 && now - b.blocked_until < MAX_BLOCK_SECONDS)
            });
            for (key, limit) in [
                (pair(address, username), attempts),
                (addr(address), attempts * ADDRESS_FACTOR),
            ] {
                let b = m.entry(key).or_default();
                if now - b.window_start >= window {
                    b.failures = 0;
                    b.window_start = now;
                }
                b.failures += 1;
                if b.failures >= limit {
                    let length = window
                        .saturating_mul(1 << b.blocks.min(16))
                        .min(MAX_BLOCK_SECONDS);
                    b.blocked_until = now + length;
                    b.blocks += 1;
                    b.failures = 0;
                    b.window_start = now;
                }
            }
        })
    }

    /// A successful sign-in clears its own (address, account) count.
    pub fn succeeded(&self, address: &str, username: &str) {
        self.with(|m| {
            m.remove(&pair(address, username));
        })
    }

    /// An administrator's unlock: every address may try `username` again.
    pub fn clear_account(&self, username: &str) {
        let suffix = format!("\u{1f}{}", username.trim().to_lowercase());
        self.with(|m| m.retain(|k, _| !k.ends_with(&suffix)))
    }
}

/// A token bucket per credential: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, f64)>>,
}

impl RateLimiter {
    /// Takes one request for `key` at `now` (seconds, fractional); `Err(wait)` with the whole
    /// seconds until one is available again.
    pub fn take(&self, key: &str, now: f64, burst: f64, per_second: f64) -> Result<(), i64> {
        let mut m = match self.buckets.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if m.len() > 100_000 {
            // Forget full buckets (idle callers): they would be full again anyway.
            m.retain(|_, (tokens, at)| *tokens + (now - *at) * per_second < burst);
        }
        let (tokens, at) = m.entry(key.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + (now - *at).max(0.0) * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / per_second).ceil().max(1.0) as i64)
        }
    }
}

/// Refusals are audited as counted summaries: the first refusal of a user in a minute is a
/// record of its own; the rest of that minute are counted, and the count goes into the next
/// record, so a user probing routes cannot grow the log without bound.
#[derive(Debug, Default)]
pub struct RefusalLog {
    windows: Mutex<HashMap<i64, (i64, u64)>>,
}

/// The window of [`RefusalLog`], in seconds.
pub const REFUSAL_WINDOW_SECONDS: i64 = 60;

impl RefusalLog {
    /// `Some(suppressed before)` when this refusal is to be audited (with how many were counted
    /// but not written since the last record), `None` when it is only counted.
    pub fn note(&self, user: i64, now: i64) -> Option<u64> {
        let mut m = match self.windows.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let w = m.entry(user).or_insert((i64::MIN / 2, 0));
        if now - w.0 >= REFUSAL_WINDOW_SECONDS {
            let before = w.1;
            *w = (now, 0);
            Some(before)
        } else {
            w.1 += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stranger_cannot_lock_the_account_for_everyone() {
        let t = SignInThrottle::default();
        for i in 0..5 {
            assert_eq!(t.check("6.6.6.6", "admin", i), Verdict::Allowed);
            t.failed("6.6.6.6", "admin", i, 5, 900);
        }
        // The stranger's address is paused for this account…
        assert!(matches!(t.check("6.6.6.6", "Admin", 10), Verdict::AccountPaused(s) if s > 0));
        // …but the administrator at the clinic signs in as ever.
        assert_eq!(t.check("10.0.0.7", "admin", 10), Verdict::Allowed);
        // The pause ends with the window; a second round doubles it.
        assert_eq!(t.check("6.6.6.6", "admin", 4 + 900), Verdict::Allowed);
        for i in 0..5 {
            t.failed("6.6.6.6", "admin", 1000 + i, 5, 900);
        }
        assert_eq!(
            t.check("6.6.6.6", "admin", 1004 + 1799),
            Verdict::AccountPaused(1)
        );
        t.clear_account("admin");
        assert_eq!(t.check("6.6.6.6", "admin", 1004 + 10), Verdict::Allowed);
    }

    #[test]
    fn the_api_bucket_allows_a_burst_then_the_rate() {
        let r = RateLimiter::default();
        for _ in 0..10 {
            assert!(r.take("t", 0.0, 10.0, 2.0).is_ok());
        }
        assert_eq!(r.take("t", 0.0, 10.0, 2.0), Err(1));
        assert!(r.take("other", 0.0, 10.0, 2.0).is_ok());
        assert!(r.take("t", 0.5, 10.0, 2.0).is_ok());
        assert!(r.take("t", 0.5, 10.0, 2.0).is_err());
    }

    #[test]
    fn refusals_are_written_once_a_minute_with_the_count() {
        let l = RefusalLog::default();
        assert_eq!(l.note(7, 100), Some(0));
        for t in 101..130 {
            assert_eq!(l.note(7, t), None);
        }
        assert_eq!(l.note(8, 120), Some(0));
        assert_eq!(l.note(7, 160), Some(29));
    }

    #[test]
    fn one_address_spraying_many_accounts_is_refused() {
        let t = SignInThrottle::default();
        for i in 0..20 {
            t.failed("6.6.6.6", &format!("user{i}"), i, 5, 900);
        }
        assert!(matches!(t.check("6.6.6.6", "nobody", 20), Verdict::AddressPaused(s) if s > 0));
        assert_eq!(t.check("10.0.0.7", "nobody", 20), Verdict::Allowed);
    }
}
