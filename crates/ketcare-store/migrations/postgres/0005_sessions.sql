-- Treatment sessions: the session record (JSON document with a revision), vitals (one row per
-- reading; a monitor message's key is UNIQUE so a repeated message is not stored twice), and
-- addenda to signed records. A signed record cannot change; vitals cannot be added to it.
CREATE TABLE treatment_sessions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    chair TEXT NOT NULL,
    phase TEXT NOT NULL,
    body TEXT NOT NULL,
    revision BIGINT NOT NULL,
    signed BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX treatment_sessions_patient ON treatment_sessions (patient_id);
CREATE INDEX treatment_sessions_phase ON treatment_sessions (phase);

CREATE TABLE session_vitals (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES treatment_sessions(id),
    at TEXT NOT NULL,
    at_epoch BIGINT NOT NULL,
    received_at TEXT NOT NULL,
    source TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    message_key TEXT UNIQUE,
    systolic DOUBLE PRECISION,
    diastolic DOUBLE PRECISION,
    heart_rate DOUBLE PRECISION,
    spo2 DOUBLE PRECISION,
    resp_rate DOUBLE PRECISION,
    etco2 DOUBLE PRECISION,
    temperature_c DOUBLE PRECISION
);
CREATE INDEX session_vitals_session ON session_vitals (session_id, at_epoch);

CREATE TABLE session_addenda (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES treatment_sessions(id),
    at TEXT NOT NULL,
    written_by TEXT NOT NULL,
    text TEXT NOT NULL
);

CREATE FUNCTION treatment_sessions_locked() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'session records are never deleted';
    END IF;
    IF OLD.signed = 1 THEN
        RAISE EXCEPTION 'signed session records are locked';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION session_vitals_locked() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF (SELECT signed FROM treatment_sessions WHERE id = NEW.session_id) = 1 THEN
            RAISE EXCEPTION 'signed session records are locked';
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER treatment_sessions_locked BEFORE UPDATE OR DELETE ON treatment_sessions
    FOR EACH ROW EXECUTE FUNCTION treatment_sessions_locked();
CREATE TRIGGER session_vitals_locked BEFORE INSERT OR UPDATE OR DELETE ON session_vitals
    FOR EACH ROW EXECUTE FUNCTION session_vitals_locked();
CREATE TRIGGER session_addenda_locked BEFORE UPDATE OR DELETE ON session_addenda
    FOR EACH ROW EXECUTE FUNCTION session_vitals_locked();
