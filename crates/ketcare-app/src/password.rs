//! Password hashing (argon2id, PHC strings) and random secrets for sessions and API tokens.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rand::RngExt;
use sha2::{Digest, Sha256};

/// The shortest password ketcare accepts for a staff account.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// The least zxcvbn score (0–4) a password a person chooses must reach: 3, "safely
/// unguessable" (an estimated 10^8–10^10 guesses), the level zxcvbn's authors suggest for
/// accounts protected by a slow hash and online throttling, as ketcare's are.
pub const MIN_STRENGTH: u8 = 3;

/// Checks a password a person chooses (a new account, a changed password) with the zxcvbn
/// strength estimator, which knows common passwords, names, dictionary words, keyboard patterns,
/// dates and repeats, and here also the account's own `user_inputs` (username, name); a
/// character-class rule would accept `Password1!` and refuse a long phrase.
pub fn check_strength(password: &str, user_inputs: &[&str]) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    // Each word of a name counts on its own ("Nina Nurse" → "nina", "nurse").
    let words: Vec<String> = user_inputs
        .iter()
        .flat_map(|i| i.split_whitespace().chain(std::iter::once(*i)))
        .map(str::to_lowercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let e = zxcvbn::zxcvbn(password, &words);
    if (e.score() as u8) < MIN_STRENGTH {
        let why = e
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        return Err(format!(
            "too easy to guess{why}: use a longer phrase of unrelated words"
        ));
    }
    Ok(())
}

/// Hashes a password with argon2id and a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("could not hash password: {e}"))
}

/// True when `password` matches the stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the same work as a real check, so an unknown username takes as long as a wrong password.
pub fn verify_dummy(password: &str) {
    // A valid argon2id hash of a random string nobody knows.
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Zr5Yj0a0bSsoJ3lqdFAlq8ucbN1Vw7pRjAg3K+f1Vuw";
    let _ = verify_password(password, DUMMY);
}

/// 32 random bytes as hex: session tokens, CSRF tokens.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// A new API token as shown once to its owner.
pub fn new_api_token() -> String {
    format!("kc_{}", random_token())
}

/// Tokens are stored only as their SHA-256, so a copy of the database holds no usable secret.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn common_and_personal_passwords_are_refused_long_phrases_accepted() {
        for weak in [
            "password1234",
            "Password1234!",
            "qwertyuiop12",
            "nina12345678",
        ] {
            assert!(
                check_strength(weak, &["nina", "Nina Nurse"]).is_err(),
                "{weak}"
            );
        }
        assert!(check_strength("correct horse battery staple", &["nina"]).is_ok());
        assert!(check_strength("a much longer pass phrase", &["nina"]).is_ok());
        assert!(check_strength("a long enough password", &["nina"]).is_ok());
        assert!(check_strength("tess chooses a long phrase", &["therapist"]).is_ok());
    }

    #[test]
    fn tokens_are_unique_and_hashed() {
        let (a, b) = (new_api_token(), new_api_token());
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
