-- A second factor for staff (TOTP, RFC 6238): the account's shared secret (base32; NULL when it
-- has none), one being set up and not yet confirmed with a code, and the last time step a code
-- was accepted for, so no code is accepted twice. Recovery codes are kept as SHA-256 hashes only.
-- A sign-in whose password was right waits for its second step as a challenge: its token's hash,
-- the account and when it expires. A challenge is not a session: nothing but the second step
-- reads it.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_pending TEXT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;

CREATE TABLE recovery_codes (
    user_id BIGINT NOT NULL REFERENCES users(id),
    code_hash TEXT NOT NULL,
    used_at TEXT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE sign_in_challenges (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    expires_at BIGINT NOT NULL
);
