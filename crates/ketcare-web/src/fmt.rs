//! One formatting layer for pages: times in the time zone of the site the user works at
//! ([`ketcare_app::zones::here`]) to the minute, and enum values
//! as words (numbers without float noise are `ketcare_core::units::trim_float`). Nothing
//! internal — RFC 3339 nanoseconds, `NotApplicable`, `racemic_ketamine` — reaches a page through
//! these.

use serde::Serialize;

/// An RFC 3339 timestamp as the clinic reads it: local date and time to the minute
/// ("2026-12-06 09:15"); text that is not a timestamp is shown as it is.
pub fn when(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t
            .to_zoned(ketcare_app::zones::here())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

/// An enum value (or any value that serialises to a string) in words: `not_applicable` →
/// "not applicable", `racemic_ketamine` → "racemic ketamine".
pub fn words<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|x| x.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_words_and_numbers_as_people_read_them() {
        let t = when("2026-12-06T02:15:50.016704679Z");
        assert_eq!(t.len(), "2026-12-06 02:15".len(), "{t}");
        assert!(!t.contains('T') && !t.contains('Z'));
        assert_eq!(when("not a time"), "not a time");
        assert_eq!(words(&"not_applicable"), "not applicable");
    }
}
