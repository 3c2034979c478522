-- Treatment sessions: the session record (JSON document with a revision), vitals (one row per
-- reading; a monitor message's key is UNIQUE so a repeated message is not stored twice), and
-- addenda to signed records. A signed record cannot change; vitals cannot be added to it.
CREATE TABLE treatment_sessions (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    chair TEXT NOT NULL,
    phase TEXT NOT NULL,
    body TEXT NOT NULL,
    revision INTEGER NOT NULL,
    signed INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX treatment_sessions_patient ON treatment_sessions (patient_id);
CREATE INDEX treatment_sessions_phase ON treatment_sessions (phase);

CREATE TABLE session_vitals (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES treatment_sessions(id),
    at TEXT NOT NULL,
    at_epoch INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    source TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    message_key TEXT UNIQUE,
    systolic REAL,
    diastolic REAL,
    heart_rate REAL,
    spo2 REAL,
    resp_rate REAL,
    etco2 REAL,
    temperature_c REAL
);
CREATE INDEX session_vitals_session ON session_vitals (session_id, at_epoch);

CREATE TABLE session_addenda (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES treatment_sessions(id),
    at TEXT NOT NULL,
    written_by TEXT NOT NULL,
    text TEXT NOT NULL
);

CREATE TRIGGER treatment_sessions_signed_locked BEFORE UPDATE ON treatment_sessions
WHEN OLD.signed = 1
BEGIN
    SELECT RAISE(ABORT, 'signed session records are locked');
END;

CREATE TRIGGER treatment_sessions_no_delete BEFORE DELETE ON treatment_sessions
BEGIN
    SELECT RAISE(ABORT, 'session records are never deleted');
END;

CREATE TRIGGER session_vitals_signed_locked BEFORE INSERT ON session_vitals
WHEN (SELECT signed FROM treatment_sessions WHERE id = NEW.session_id) = 1
BEGIN
    SELECT RAISE(ABORT, 'signed session records are locked');
END;

CREATE TRIGGER session_vitals_append_only BEFORE UPDATE ON session_vitals
BEGIN
    SELECT RAISE(ABORT, 'vitals are append-only');
END;

CREATE TRIGGER session_addenda_append_only BEFORE UPDATE ON session_addenda
BEGIN
    SELECT RAISE(ABORT, 'addenda are append-only');
END;

CREATE TRIGGER session_vitals_no_delete BEFORE DELETE ON session_vitals
BEGIN
    SELECT RAISE(ABORT, 'vitals are append-only');
END;

CREATE TRIGGER session_addenda_no_delete BEFORE DELETE ON session_addenda
BEGIN
    SELECT RAISE(ABORT, 'addenda are append-only');
END;
