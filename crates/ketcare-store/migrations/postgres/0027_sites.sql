-- Sites: a clinic of the organisation with its own DEA registration, chairs, bookings, sessions
-- and controlled-substance ledger. Patients belong to the organisation and are seen at sites.
-- An existing database becomes site 1 ("Main site"), and every existing row belongs to it, so a
-- single-site clinic sees no difference. `time_zone` is an IANA name; empty means the server's
-- own time zone (what a single-site install has always used).
CREATE TABLE sites (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL DEFAULT '',
    time_zone TEXT NOT NULL DEFAULT '',
    dea_registration TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
INSERT INTO sites (name, created_by, created_at)
VALUES ('Main site', 'migration', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));

-- The sites a user works at. `users.all_sites` = 1: every site, now and later (an existing
-- account, the medical director, the administrator); 0: exactly the sites listed here.
CREATE TABLE user_sites (
    user_id BIGINT NOT NULL REFERENCES users(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    PRIMARY KEY (user_id, site_id)
);
ALTER TABLE users ADD COLUMN all_sites BIGINT NOT NULL DEFAULT 1;

ALTER TABLE ops_chairs ADD COLUMN site_id BIGINT NOT NULL DEFAULT 1 REFERENCES sites(id);
ALTER TABLE ops_bookings ADD COLUMN site_id BIGINT NOT NULL DEFAULT 1 REFERENCES sites(id);
ALTER TABLE treatment_sessions ADD COLUMN site_id BIGINT NOT NULL DEFAULT 1 REFERENCES sites(id);
ALTER TABLE ops_on_site ADD COLUMN site_id BIGINT NOT NULL DEFAULT 1 REFERENCES sites(id);
CREATE INDEX ops_bookings_site ON ops_bookings (site_id, start_at);
CREATE INDEX treatment_sessions_site ON treatment_sessions (site_id, phase);

-- One ledger chain per site (per DEA registration). `seq` stays the row's key across the
-- organisation; `site_seq` is the entry's number in its site's chain (what the hash covers and
-- what the ledger shows). The existing chain is site 1's, numbered as it was.
ALTER TABLE ops_ledger ADD COLUMN site_id BIGINT NOT NULL DEFAULT 1 REFERENCES sites(id);
ALTER TABLE ops_ledger ADD COLUMN site_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ops_ledger DISABLE TRIGGER ops_ledger_no_change;
UPDATE ops_ledger SET site_seq = seq;
ALTER TABLE ops_ledger ENABLE TRIGGER ops_ledger_no_change;
CREATE UNIQUE INDEX ops_ledger_site_seq ON ops_ledger (site_id, site_seq);

-- Each site's chain head (`ops_ledger_head` was the single chain's; it is kept, unused).
CREATE TABLE ops_ledger_heads (
    site_id BIGINT PRIMARY KEY REFERENCES sites(id),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO ops_ledger_heads (site_id, seq, hash) SELECT 1, seq, hash FROM ops_ledger_head WHERE id = 1;
