-- Sites: a clinic of the organisation with its own DEA registration, chairs, bookings, sessions
-- and controlled-substance ledger. Patients belong to the organisation and are seen at sites.
-- An existing database becomes site 1 ("Main site"), and every existing row belongs to it, so a
-- single-site clinic sees no difference. `time_zone` is an IANA name; empty means the server's
-- own time zone (what a single-site install has always used).
CREATE TABLE sites (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL DEFAULT '',
    time_zone TEXT NOT NULL DEFAULT '',
    dea_registration TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
INSERT INTO sites (id, name, created_by, created_at)
VALUES (1, 'Main site', 'migration', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));

-- The sites a user works at. `users.all_sites` = 1: every site, now and later (an existing
-- account, the medical director, the administrator); 0: exactly the sites listed here.
CREATE TABLE user_sites (
    user_id INTEGER NOT NULL REFERENCES users(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    PRIMARY KEY (user_id, site_id)
);
ALTER TABLE users ADD COLUMN all_sites INTEGER NOT NULL DEFAULT 1;

-- SQLite refuses a REFERENCES clause on an added column with a non-NULL default: the store
-- checks these site ids against `sites` (PostgreSQL also has the foreign keys).
ALTER TABLE ops_chairs ADD COLUMN site_id INTEGER NOT NULL DEFAULT 1;
ALTER TABLE ops_bookings ADD COLUMN site_id INTEGER NOT NULL DEFAULT 1;
ALTER TABLE treatment_sessions ADD COLUMN site_id INTEGER NOT NULL DEFAULT 1;
ALTER TABLE ops_on_site ADD COLUMN site_id INTEGER NOT NULL DEFAULT 1;
CREATE INDEX ops_bookings_site ON ops_bookings (site_id, start_at);
CREATE INDEX treatment_sessions_site ON treatment_sessions (site_id, phase);

-- One ledger chain per site (per DEA registration). `seq` stays the row's key across the
-- organisation; `site_seq` is the entry's number in its site's chain (what the hash covers and
-- what the ledger shows). The existing chain is site 1's, numbered as it was.
ALTER TABLE ops_ledger ADD COLUMN site_id INTEGER NOT NULL DEFAULT 1;
ALTER TABLE ops_ledger ADD COLUMN site_seq INTEGER NOT NULL DEFAULT 0;
DROP TRIGGER ops_ledger_no_update;
UPDATE ops_ledger SET site_seq = seq;
CREATE TRIGGER ops_ledger_no_update BEFORE UPDATE ON ops_ledger
BEGIN SELECT RAISE(ABORT, 'ops_ledger is append-only'); END;
CREATE UNIQUE INDEX ops_ledger_site_seq ON ops_ledger (site_id, site_seq);

-- Each site's chain head (`ops_ledger_head` was the single chain's; it is kept, unused).
CREATE TABLE ops_ledger_heads (
    site_id INTEGER PRIMARY KEY REFERENCES sites(id),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO ops_ledger_heads (site_id, seq, hash) SELECT 1, seq, hash FROM ops_ledger_head WHERE id = 1;
