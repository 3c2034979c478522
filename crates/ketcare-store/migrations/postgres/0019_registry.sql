-- The research registry's key table: one random study id per patient, never derived from any
-- identifier. Only the registry read (the researcher's `RegistryRead`) uses it; nothing joins a
-- study id back to a patient outside the store.
CREATE TABLE registry_keys (
    patient_id BIGINT NOT NULL UNIQUE REFERENCES patients(id),
    study_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE FUNCTION registry_keys_fixed() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% never changes', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER registry_keys_append_only BEFORE UPDATE OR DELETE ON registry_keys
    FOR EACH ROW EXECUTE FUNCTION registry_keys_fixed();
CREATE TRIGGER registry_keys_no_truncate BEFORE TRUNCATE ON registry_keys
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();

-- Saved cohorts: a researcher's query under a name; saving the same name again is a new version,
-- and every version stays (a published table can name the version it came from).
CREATE TABLE registry_cohorts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    query TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (name, version)
);
CREATE TRIGGER registry_cohorts_append_only BEFORE UPDATE OR DELETE ON registry_cohorts
    FOR EACH ROW EXECUTE FUNCTION registry_keys_fixed();
