-- The research registry's key table: one random study id per patient, never derived from any
-- identifier. Only the registry read (the researcher's `RegistryRead`) uses it; nothing joins a
-- study id back to a patient outside the store.
CREATE TABLE registry_keys (
    patient_id INTEGER NOT NULL UNIQUE REFERENCES patients(id),
    study_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TRIGGER registry_keys_append_only BEFORE UPDATE ON registry_keys
BEGIN
    SELECT RAISE(ABORT, 'study ids never change');
END;
CREATE TRIGGER registry_keys_no_delete BEFORE DELETE ON registry_keys
BEGIN
    SELECT RAISE(ABORT, 'study ids never change');
END;

-- Saved cohorts: a researcher's query under a name; saving the same name again is a new version,
-- and every version stays (a published table can name the version it came from).
CREATE TABLE registry_cohorts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    query TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (name, version)
);
CREATE TRIGGER registry_cohorts_append_only BEFORE UPDATE ON registry_cohorts
BEGIN
    SELECT RAISE(ABORT, 'a saved cohort version never changes');
END;
