-- Psychotherapy integration. A therapy encounter's structured part belongs to the medical record
-- (read with the clinical-read right). The psychotherapy note (HIPAA §164.501) is kept apart in
-- its own table: the store reads it only for its author and, where the site allows, the
-- patient's treating therapists. Both are append-only: a note is corrected by an amendment
-- (a new row naming the note it amends), never edited in place.
CREATE TABLE therapy_encounters (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    course_id BIGINT REFERENCES ops_courses(id),
    session_id BIGINT REFERENCES treatment_sessions(id),
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    duration_minutes BIGINT NOT NULL,
    modality TEXT NOT NULL,
    themes TEXT NOT NULL,
    intentions TEXT NOT NULL,
    homework TEXT NOT NULL,
    suicide_risk TEXT NOT NULL,
    risk_note TEXT NOT NULL,
    alert_id BIGINT REFERENCES safety_alerts(id),
    recorded_by TEXT NOT NULL,
    recorded_by_id BIGINT REFERENCES users(id),
    recorded_at TEXT NOT NULL
);
CREATE INDEX therapy_encounters_patient ON therapy_encounters (patient_id, at);

CREATE TABLE therapy_notes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    encounter_id BIGINT NOT NULL REFERENCES therapy_encounters(id),
    amends_id BIGINT REFERENCES therapy_notes(id),
    text TEXT NOT NULL,
    written_by TEXT NOT NULL,
    written_by_id BIGINT NOT NULL REFERENCES users(id),
    written_at TEXT NOT NULL
);
CREATE INDEX therapy_notes_encounter ON therapy_notes (encounter_id);

CREATE FUNCTION therapy_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER therapy_encounters_append_only BEFORE UPDATE OR DELETE ON therapy_encounters
    FOR EACH ROW EXECUTE FUNCTION therapy_append_only();
CREATE TRIGGER therapy_notes_append_only BEFORE UPDATE OR DELETE ON therapy_notes
    FOR EACH ROW EXECUTE FUNCTION therapy_append_only();
CREATE TRIGGER therapy_encounters_no_truncate BEFORE TRUNCATE ON therapy_encounters
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
CREATE TRIGGER therapy_notes_no_truncate BEFORE TRUNCATE ON therapy_notes
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
