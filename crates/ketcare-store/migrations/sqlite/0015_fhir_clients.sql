-- SMART Backend Services (client credentials with a signed JWT assertion): a backend client an
-- administrator registered, with the public JWK Set its assertions are checked against, the
-- scopes it may be granted (space-separated, `system/*.read` or `system/<Type>.read`) and the
-- ketcare account it acts as (whose role decides what it reads; the audit names that account).
-- `client_id` is generated at registration.
CREATE TABLE fhir_clients (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id),
    jwks TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled_at TEXT
);

-- The `jti` of every assertion accepted, kept until the assertion's `exp`, so none is accepted
-- twice (the primary key makes the check and the insert one statement).
CREATE TABLE fhir_client_jtis (
    client_id TEXT NOT NULL REFERENCES fhir_clients(client_id),
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);

-- Access tokens granted to backend clients, stored as SHA-256 hashes only, with the scopes
-- granted and when they expire.
CREATE TABLE fhir_access_tokens (
    token_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES fhir_clients(client_id),
    scopes TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
