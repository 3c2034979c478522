-- The predicted exposure of what each signed session gave: the PK engine's Cmax and AUC
-- (ketcare-pk, run by the application layer when the session is signed, for the weight charted
-- then; the synthetic clinic runs the same function when it writes its sessions). Beside
-- registry_session_facts rather than in it: a facts row is forgotten on every write to its
-- session and derived again by the store, which cannot run the engine; this row is written
-- only by the application and only for a signed record, which no later command changes (an
-- addendum is text), so it is kept.
CREATE TABLE registry_session_exposure (
    session_id BIGINT PRIMARY KEY REFERENCES treatment_sessions(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    -- The PK model's id (ketcare-pk's library).
    model TEXT NOT NULL,
    -- The charted weight the prediction used (kg).
    weight_kg DOUBLE PRECISION NOT NULL,
    -- The highest predicted plasma concentration on the engine's 1-minute grid (ng/mL).
    cmax_ng_ml DOUBLE PRECISION NOT NULL,
    -- The exact AUC from the first administration to auc_horizon_min (ng·min/mL).
    auc_ng_min_ml DOUBLE PRECISION NOT NULL,
    auc_horizon_min DOUBLE PRECISION NOT NULL,
    predicted_at TEXT NOT NULL
);
CREATE INDEX registry_session_exposure_patient ON registry_session_exposure (patient_id, session_id);
CREATE TRIGGER registry_session_exposure_registry AFTER INSERT OR UPDATE OR DELETE ON registry_session_exposure
    FOR EACH ROW EXECUTE FUNCTION registry_mark_row();
-- The cached subject's format gains each session's predicted Cmax and AUC: every cached row is
-- derived again on the next read.
INSERT INTO registry_dirty (patient_id, gen) SELECT id, 1 FROM patients
    ON CONFLICT (patient_id) DO UPDATE SET gen = registry_dirty.gen + 1;

-- A counter that every change to what a registry subject is derived from moves, in the writing
-- transaction (a trigger on registry_dirty, which every source table's trigger writes): a
-- process that keeps the decoded subjects in memory reads this one row, and serves its copy
-- only while the counter is the one it loaded at — so a write by any code or any process shows
-- in the next read. One move per writing transaction is enough (its changes commit together)
-- and spares the row a new version for every patient a bulk write marks.
CREATE TABLE registry_version (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL,
    -- The transaction that moved it last.
    moved_by BIGINT
);
INSERT INTO registry_version (id, version) VALUES (1, 1);
CREATE FUNCTION registry_version_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE registry_version SET version = version + 1, moved_by = txid_current()
        WHERE id = 1 AND moved_by IS DISTINCT FROM txid_current();
    RETURN NULL;
END;
$$;
CREATE TRIGGER registry_dirty_version AFTER INSERT OR UPDATE ON registry_dirty
    FOR EACH ROW EXECUTE FUNCTION registry_version_move();
-- A new session has no facts yet (the next read derives them): it moves the version too, so a
-- read that finds the version unchanged knows there is nothing to derive.
CREATE TRIGGER treatment_sessions_registry_version AFTER INSERT ON treatment_sessions
    FOR EACH ROW EXECUTE FUNCTION registry_version_move();
