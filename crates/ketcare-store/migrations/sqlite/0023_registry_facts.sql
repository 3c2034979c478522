-- The registry's per-session facts, derived from a session's record and its vital signs (the
-- dose's start, the protocol, the mg given, adverse events, alarms, the highest dissociation
-- score, the systolic rise over the pre-dose reading), so that the registry reads one small row
-- per session instead of every record body and every vital. A cache, never a source: every write
-- to a session or its vitals deletes its row in the same transaction, and the registry read
-- derives the rows that are missing (so a database from before this table fills on first read).
CREATE TABLE registry_session_facts (
    session_id INTEGER PRIMARY KEY REFERENCES treatment_sessions(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    dose_epoch INTEGER,
    protocol_id TEXT NOT NULL,
    given_mg REAL,
    adverse_events INTEGER NOT NULL,
    alarms INTEGER NOT NULL,
    max_dissociation INTEGER,
    systolic_rise REAL
);
CREATE INDEX registry_session_facts_patient ON registry_session_facts (patient_id, session_id);
