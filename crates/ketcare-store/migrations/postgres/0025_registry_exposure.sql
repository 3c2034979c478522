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
