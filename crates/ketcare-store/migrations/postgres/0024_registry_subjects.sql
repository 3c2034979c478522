-- The registry's per-subject cache: each treated patient's de-identified subject (sessions as
-- days since the first treatment with their facts, questionnaire totals, alert days, opioids,
-- intake, age and BMI; no study id), so that the registry reads one row per subject instead of
-- every session fact and score. A cache, never a source: a trigger on every table the subject is
-- derived from marks the patient dirty (a generation counter) in the same transaction as the
-- write, whatever code writes it; the registry read re-derives the dirty patients and clears a
-- mark only if its generation is the one it read (a write during the read leaves it dirty).
CREATE TABLE registry_subject_cache (
    patient_id BIGINT PRIMARY KEY REFERENCES patients(id),
    -- JSON of the subject; NULL: the patient is not a subject (no dosed session).
    subject TEXT
);
CREATE TABLE registry_dirty (
    patient_id BIGINT PRIMARY KEY,
    gen BIGINT NOT NULL
);
INSERT INTO registry_dirty (patient_id, gen) SELECT id, 1 FROM patients;

CREATE FUNCTION registry_mark(pid BIGINT) RETURNS void LANGUAGE sql AS $$
    INSERT INTO registry_dirty (patient_id, gen) VALUES (pid, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = registry_dirty.gen + 1;
$$;
-- Tables with a patient_id column: the row's patient before and after the change.
CREATE FUNCTION registry_mark_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM registry_mark(OLD.patient_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM registry_mark(NEW.patient_id);
    END IF;
    RETURN NULL;
END;
$$;
CREATE FUNCTION registry_mark_patient() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM registry_mark(NEW.id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER registry_session_facts_registry AFTER INSERT OR UPDATE OR DELETE ON registry_session_facts
    FOR EACH ROW EXECUTE FUNCTION registry_mark_row();
CREATE TRIGGER therapy_encounters_registry AFTER INSERT OR UPDATE OR DELETE ON therapy_encounters
    FOR EACH ROW EXECUTE FUNCTION registry_mark_row();
CREATE TRIGGER measure_responses_registry AFTER INSERT OR UPDATE OR DELETE ON measure_responses
    FOR EACH ROW EXECUTE FUNCTION registry_mark_row();
CREATE TRIGGER safety_alerts_registry AFTER INSERT OR UPDATE OR DELETE ON safety_alerts
    FOR EACH ROW EXECUTE FUNCTION registry_mark_row();
CREATE TRIGGER opioid_entries_registry AFTER INSERT OR UPDATE OR DELETE ON opioid_entries
    FOR EACH ROW EXECUTE FUNCTION registry_mark_row();
CREATE TRIGGER patients_registry AFTER INSERT OR UPDATE ON patients
    FOR EACH ROW EXECUTE FUNCTION registry_mark_patient();
