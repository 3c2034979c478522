-- The predicted exposure of what each signed session gave: the PK engine's Cmax and AUC
-- (ketcare-pk, run by the application layer when the session is signed, for the weight charted
-- then; the synthetic clinic runs the same function when it writes its sessions). Beside
-- registry_session_facts rather than in it: a facts row is forgotten on every write to its
-- session and derived again by the store, which cannot run the engine; this row is written
-- only by the application and only for a signed record, which no later command changes (an
-- addendum is text), so it is kept.
CREATE TABLE registry_session_exposure (
    session_id INTEGER PRIMARY KEY REFERENCES treatment_sessions(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    -- The PK model's id (ketcare-pk's library).
    model TEXT NOT NULL,
    -- The charted weight the prediction used (kg).
    weight_kg REAL NOT NULL,
    -- The highest predicted plasma concentration on the engine's 1-minute grid (ng/mL).
    cmax_ng_ml REAL NOT NULL,
    -- The exact AUC from the first administration to auc_horizon_min (ng·min/mL).
    auc_ng_min_ml REAL NOT NULL,
    auc_horizon_min REAL NOT NULL,
    predicted_at TEXT NOT NULL
);
CREATE INDEX registry_session_exposure_patient ON registry_session_exposure (patient_id, session_id);
CREATE TRIGGER registry_session_exposure_registry_insert AFTER INSERT ON registry_session_exposure BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER registry_session_exposure_registry_update AFTER UPDATE ON registry_session_exposure BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER registry_session_exposure_registry_delete AFTER DELETE ON registry_session_exposure BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (OLD.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER registry_session_exposure_registry_update_old AFTER UPDATE ON registry_session_exposure BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (OLD.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
-- The cached subject's format gains each session's predicted Cmax and AUC: every cached row is
-- derived again on the next read.
INSERT INTO registry_dirty (patient_id, gen) SELECT id, 1 FROM patients WHERE true
    ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;

-- A counter that every change to what a registry subject is derived from moves, in the writing
-- transaction (a trigger on registry_dirty, which every source table's trigger writes): a
-- process that keeps the decoded subjects in memory reads this one row, and serves its copy
-- only while the counter is the one it loaded at — so a write by any code or any process shows
-- in the next read.
CREATE TABLE registry_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO registry_version (id, version) VALUES (1, 1);
CREATE TRIGGER registry_dirty_version_insert AFTER INSERT ON registry_dirty BEGIN
    UPDATE registry_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER registry_dirty_version_update AFTER UPDATE ON registry_dirty BEGIN
    UPDATE registry_version SET version = version + 1 WHERE id = 1;
END;
-- A new session has no facts yet (the next read derives them): it moves the version too, so a
-- read that finds the version unchanged knows there is nothing to derive.
CREATE TRIGGER treatment_sessions_registry_version AFTER INSERT ON treatment_sessions BEGIN
    UPDATE registry_version SET version = version + 1 WHERE id = 1;
END;
