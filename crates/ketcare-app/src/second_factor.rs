//! A second factor for staff: TOTP (RFC 6238) with the parameters every authenticator app uses —
//! HMAC-SHA1, 6 digits, 30-second steps — accepting one step either side for a clock that
//! drifts, and never the same step twice for an account (RFC 6238 §5.2), with ten one-time
//! recovery codes for a lost phone.
//!
//! The same use cases serve the account page, the sign-in's second step, the users page, the API
//! and the CLI (an administrator's reset is [`AccountChange::ResetSecondFactor`] through
//! [`crate::accounts`]). Secrets and codes never reach an audit record: the store records the
//! action and the account id only, and [`SecretText`] prints nothing under `Debug`.

use crate::error::{Error, Result};
use crate::password::token_hash;
use ketcare_core::{Actor, Role};
use ketcare_store::{AccountChange, SecondFactorProof, SecretText, Store, User};
use rand::RngExt;
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// The issuer an authenticator app shows beside the account name.
pub const ISSUER: &str = "ketcare";
/// Recovery codes made at enrolment, each usable once.
pub const RECOVERY_CODES: usize = 10;
/// How long a sign-in whose password was right waits for its second step.
pub const CHALLENGE_SECONDS: i64 = 5 * 60;
/// Site setting: 1 makes a second factor required for administrators and prescribers.
pub const REQUIRED_SETTING: &str = "security.second_factor_required";
/// The roles the site setting applies to: those who change accounts, settings and doses.
pub const REQUIRED_FOR: [Role; 2] = [Role::Administrator, Role::Prescriber];

/// Where an account's second factor stands, for its own page.
#[derive(Debug, Clone)]
pub struct Status {
    pub on: bool,
    pub recovery_codes_left: i64,
    /// A set-up begun and not confirmed: what the user copies into their app.
    pub pending: Option<Enrolment>,
}

/// A secret being set up, as the user copies it into an authenticator app: the base32 text, the
/// `otpauth://` URI and that URI as a QR code (an SVG document); all three are the secret, and
/// `Debug` prints none.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub secret: SecretText,
    pub uri: SecretText,
    pub qr_svg: SecretText,
}

/// The TOTP of a base32 secret for `username`.
fn totp(secret_base32: &str, username: &str) -> Result<Totp> {
    let bytes = Secret::try_from_base32(secret_base32)
        .map_err(|e| {
            tracing::error!(error = %e, "a stored second-factor secret is not base32");
            Error::Internal
        })?
        .as_bytes()
        .to_vec();
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(bytes)
        .with_account_name(username)
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|e| {
            tracing::error!(error = %e, "could not build a TOTP");
            Error::Internal
        })
}

fn enrolment(secret: &SecretText, username: &str) -> Result<Enrolment> {
    let uri = totp(secret.expose(), username)?.to_url().map_err(|e| {
        tracing::error!(error = %e, "could not write an otpauth URI");
        Error::Internal
    })?;
    // The page shows the code inline: the XML declaration has no place inside HTML.
    let qr_svg = qrcode::QrCode::new(uri.as_bytes())
        .map(|q| {
            let svg = q
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .build();
            match svg.find("<svg") {
                Some(i) => svg[i..].to_owned(),
                None => svg,
            }
        })
        .unwrap_or_default();
    Ok(Enrolment {
        secret: secret.clone(),
        uri: SecretText::new(uri),
        qr_svg: SecretText::new(qr_svg),
    })
}

/// The time step a 6-digit `code` matches at `now` (this step or one either side), if any.
fn matching_step(t: &Totp, code: &str, now: i64) -> Option<i64> {
    t.check(code, u64::try_from(now).ok()?)
        .and_then(|s| i64::try_from(s).ok())
}

/// A code as typed: spaces and dashes removed, letters in lower case.
fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_totp_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// Ten random recovery codes, `xxxxx-xxxxx` in the base32 alphabet (50 bits each: with the
/// sign-in throttle, far beyond guessing; high-entropy, so a plain SHA-256 is the stored form).
fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars: String = (0..10)
                .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                .collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect()
}

/// The stored form of a recovery code (SHA-256 of its normalised text).
pub fn recovery_code_hash(code: &str) -> String {
    token_hash(&normalise(code))
}

fn own_id(actor: &Actor) -> Result<ketcare_core::UserId> {
    actor
        .user_id
        .ok_or_else(|| Error::invalid("user", "sign in first"))
}

async fn own_user(store: &dyn Store, actor: &Actor) -> Result<User> {
    let id = own_id(actor)?;
    store
        .user_by_id(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {id}")))
}

/// The signed-in user's second factor: on or off, recovery codes left, a set-up under way.
pub async fn status(store: &dyn Store, actor: &Actor) -> Result<Status> {
    let user = own_user(store, actor).await?;
    let state = store.second_factor(user.id).await?;
    let pending = match (&state.secret, &state.pending) {
        (None, Some(p)) => Some(enrolment(p, &user.username)?),
        _ => None,
    };
    Ok(Status {
        on: state.secret.is_some(),
        recovery_codes_left: state.recovery_codes_left,
        pending,
    })
}

/// Begins setting up a second factor for the signed-in user: a new random 160-bit secret (RFC
/// 4226 §4's recommended length) waits, unconfirmed, until a code from it is entered. Refused
/// while the account has one: it must be turned off first, with a current code.
pub async fn begin(store: &dyn Store, actor: &Actor) -> Result<Enrolment> {
    let user = own_user(store, actor).await?;
    if user.second_factor {
        return Err(Error::Conflict(
            "a second factor is already on: turn it off first, with a current code".into(),
        ));
    }
    let bytes: [u8; 20] = rand::rng().random();
    let secret = SecretText::new(Secret::from(bytes.to_vec()).to_base32());
    store.begin_second_factor(actor, &secret).await?;
    enrolment(&secret, &user.username)
}

/// Confirms the set-up with a current `code` from the app: the secret becomes the account's
/// second factor (that code's step counts as used) and ten recovery codes are returned, to be
/// shown this once; only their hashes are kept.
pub async fn confirm(
    store: &dyn Store,
    actor: &Actor,
    code: &str,
    now: i64,
) -> Result<(User, Vec<String>)> {
    let user = own_user(store, actor).await?;
    let state = store.second_factor(user.id).await?;
    let Some(pending) = state.pending else {
        return Err(Error::invalid(
            "code",
            "no set-up is under way: begin again",
        ));
    };
    let code = normalise(code);
    let t = totp(pending.expose(), &user.username)?;
    let step = if is_totp_code(&code) {
        matching_step(&t, &code, now)
    } else {
        None
    }
    .ok_or_else(|| {
        Error::invalid(
            "code",
            "that is not the app's current 6-digit code: check the phone's time and try again",
        )
    })?;
    let codes = new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| recovery_code_hash(c)).collect();
    let user = store
        .confirm_second_factor(actor, &pending, step, &hashes)
        .await?;
    Ok((user, codes))
}

/// The signed-in user turns their second factor off: only with a current code (one not used
/// before), so a session left open cannot remove it.
pub async fn turn_off(store: &dyn Store, actor: &Actor, code: &str, now: i64) -> Result<User> {
    let user = own_user(store, actor).await?;
    let state = store.second_factor(user.id).await?;
    let Some(secret) = state.secret else {
        return Err(Error::Conflict("no second factor is on".into()));
    };
    let code = normalise(code);
    let t = totp(secret.expose(), &user.username)?;
    let fresh = is_totp_code(&code)
        && matching_step(&t, &code, now).is_some_and(|step| step > state.last_step);
    if !fresh {
        return Err(Error::invalid(
            "code",
            "that is not the app's current code (or it was used already)",
        ));
    }
    Ok(store
        .change_account(actor, user.id, &AccountChange::ResetSecondFactor)
        .await?)
}

/// The second step of a sign-in: a current TOTP code of a later step than the last accepted, or
/// an unused recovery code (used up by this). Anything else is recorded as a failure, audited
/// and counted like a wrong password. True when accepted.
pub async fn second_step(
    store: &dyn Store,
    user: &User,
    address: &str,
    code: &str,
    now: i64,
) -> Result<bool> {
    let state = store.second_factor(user.id).await?;
    let code = normalise(code);
    let proof = match &state.secret {
        None => SecondFactorProof::Wrong,
        Some(secret) if is_totp_code(&code) => {
            match matching_step(&totp(secret.expose(), &user.username)?, &code, now) {
                Some(step) => SecondFactorProof::Step(step),
                None => SecondFactorProof::Wrong,
            }
        }
        Some(_) if code.len() == 10 => SecondFactorProof::RecoveryCodeHash(token_hash(&code)),
        Some(_) => SecondFactorProof::Wrong,
    };
    Ok(store.second_factor_sign_in(user, address, &proof).await?)
}

/// Whether the site requires a second factor of this account and it has none: then, signed in,
/// it may do nothing but set one up. Only administrators and prescribers, and only when the site
/// setting [`REQUIRED_SETTING`] is 1 (yes).
pub async fn must_enrol(store: &dyn Store, user: &User) -> Result<bool> {
    if user.second_factor || !REQUIRED_FOR.contains(&user.role) {
        return Ok(false);
    }
    let (settings, _) = crate::clinical::settings(store).await?;
    Ok(settings.value(REQUIRED_SETTING) == Some(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors() {
        // RFC 6238 Appendix B: the SHA-1 key "12345678901234567890", 8 digits there; the last
        // six digits are the 6-digit code of the same step (the code is the value mod 10^6).
        let secret = Secret::from(b"12345678901234567890".to_vec()).to_base32();
        let t = totp(&secret, "test").unwrap();
        for (time, eight) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(t.generate(time).to_string(), eight[2..], "t = {time}");
        }
    }

    #[test]
    fn one_step_either_side_and_no_further() {
        let secret = Secret::from([7u8; 20].to_vec()).to_base32();
        let t = totp(&secret, "test").unwrap();
        let now = 1_795_348_800;
        let code = t.generate(now as u64).to_string();
        assert_eq!(matching_step(&t, &code, now), Some(now / 30));
        assert_eq!(matching_step(&t, &code, now + 30), Some(now / 30));
        assert_eq!(matching_step(&t, &code, now - 30), Some(now / 30));
        assert_eq!(matching_step(&t, &code, now + 60), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_read_however_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let c = &codes[0];
        assert_eq!(c.len(), 11);
        assert_eq!(
            recovery_code_hash(c),
            recovery_code_hash(&c.to_uppercase().replace('-', " "))
        );
    }

    #[test]
    fn the_qr_code_is_an_inline_svg() {
        let secret = SecretText::new(Secret::from([9u8; 20].to_vec()).to_base32());
        let e = enrolment(&secret, "nina").unwrap();
        let svg = e.qr_svg.expose();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(!svg.contains("<?xml") && !svg.contains("style"), "{svg}");
    }

    #[test]
    fn secrets_do_not_print() {
        let e = Enrolment {
            secret: SecretText::new("JBSWY3DPEHPK3PXP"),
            uri: SecretText::new("otpauth://totp/ketcare:a?secret=JBSWY3DPEHPK3PXP"),
            qr_svg: SecretText::new("<svg>JBSWY3DPEHPK3PXP</svg>"),
        };
        assert!(!format!("{e:?}").contains("JBSWY3DPEHPK3PXP"));
    }
}
