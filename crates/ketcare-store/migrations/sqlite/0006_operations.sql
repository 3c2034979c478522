-- Operations: chairs, prescriber rosters, courses and bookings, consent documents and signatures,
-- the controlled-substance ledger (append-only, hash-chained), the site's billing prices.
-- Wall-clock times of the clinic are ISO text (YYYY-MM-DDTHH:MM:SS), which sorts in time order.
CREATE TABLE ops_chairs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE ops_on_site (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    start_at TEXT NOT NULL,
    end_at TEXT NOT NULL
);
CREATE INDEX ops_on_site_time ON ops_on_site (start_at);

CREATE TABLE ops_courses (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    template_id TEXT NOT NULL,
    protocol_id TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE ops_bookings (
    id INTEGER PRIMARY KEY,
    course_id INTEGER REFERENCES ops_courses(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    chair_id INTEGER NOT NULL REFERENCES ops_chairs(id),
    nurse_id INTEGER NOT NULL REFERENCES users(id),
    prescriber_required INTEGER NOT NULL,
    start_at TEXT NOT NULL,
    end_at TEXT NOT NULL,
    status TEXT NOT NULL,
    phase TEXT NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
);
CREATE INDEX ops_bookings_time ON ops_bookings (start_at);
CREATE INDEX ops_bookings_patient ON ops_bookings (patient_id);

CREATE TABLE ops_consent_documents (
    id INTEGER PRIMARY KEY,
    protocol_id TEXT NOT NULL,
    protocol_version INTEGER NOT NULL,
    version INTEGER NOT NULL,
    title TEXT NOT NULL,
    sections TEXT NOT NULL,
    valid_days INTEGER,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (protocol_id, version)
);

CREATE TABLE ops_consent_signatures (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    document_id INTEGER NOT NULL REFERENCES ops_consent_documents(id),
    protocol_id TEXT NOT NULL,
    document_version INTEGER NOT NULL,
    protocol_version INTEGER NOT NULL,
    signer TEXT NOT NULL,
    assent TEXT,
    signed_at TEXT NOT NULL,
    expires_at TEXT,
    withdrawn_at TEXT,
    recorded_by INTEGER NOT NULL REFERENCES users(id)
);
CREATE INDEX ops_consent_signatures_patient ON ops_consent_signatures (patient_id);

CREATE TABLE ops_ledger (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    username TEXT NOT NULL,
    role TEXT NOT NULL,
    kind TEXT NOT NULL,
    session_id INTEGER,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX ops_ledger_session ON ops_ledger (session_id);

CREATE TABLE ops_ledger_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO ops_ledger_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TRIGGER ops_ledger_no_update BEFORE UPDATE ON ops_ledger
BEGIN SELECT RAISE(ABORT, 'ops_ledger is append-only'); END;
CREATE TRIGGER ops_ledger_no_delete BEFORE DELETE ON ops_ledger
BEGIN SELECT RAISE(ABORT, 'ops_ledger is append-only'); END;

CREATE TABLE ops_billing_prices (
    code TEXT PRIMARY KEY,
    cents INTEGER NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL
);
