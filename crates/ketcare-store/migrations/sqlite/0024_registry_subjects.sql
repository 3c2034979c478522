-- The registry's per-subject cache: each treated patient's de-identified subject (sessions as
-- days since the first treatment with their facts, questionnaire totals, alert days, opioids,
-- intake, age and BMI; no study id), so that the registry reads one row per subject instead of
-- every session fact and score. A cache, never a source: a trigger on every table the subject is
-- derived from marks the patient dirty (a generation counter) in the same transaction as the
-- write, whatever code writes it; the registry read re-derives the dirty patients and clears a
-- mark only if its generation is the one it read (a write during the read leaves it dirty).
CREATE TABLE registry_subject_cache (
    patient_id INTEGER PRIMARY KEY REFERENCES patients(id),
    -- JSON of the subject; NULL: the patient is not a subject (no dosed session).
    subject TEXT
);
CREATE TABLE registry_dirty (
    patient_id INTEGER PRIMARY KEY,
    gen INTEGER NOT NULL
);
INSERT INTO registry_dirty (patient_id, gen) SELECT id, 1 FROM patients;
CREATE TRIGGER registry_session_facts_registry_insert AFTER INSERT ON registry_session_facts BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER registry_session_facts_registry_update AFTER UPDATE ON registry_session_facts BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER registry_session_facts_registry_delete AFTER DELETE ON registry_session_facts BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (OLD.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER registry_session_facts_registry_update_old AFTER UPDATE ON registry_session_facts BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (OLD.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER therapy_encounters_registry_insert AFTER INSERT ON therapy_encounters BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER therapy_encounters_registry_update AFTER UPDATE ON therapy_encounters BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER therapy_encounters_registry_delete AFTER DELETE ON therapy_encounters BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (OLD.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER therapy_encounters_registry_update_old AFTER UPDATE ON therapy_encounters BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (OLD.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER measure_responses_registry_insert AFTER INSERT ON measure_responses BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER measure_responses_registry_update AFTER UPDATE ON measure_responses BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER measure_responses_registry_delete AFTER DELETE ON measure_responses BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (OLD.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER measure_responses_registry_update_old AFTER UPDATE ON measure_responses BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (OLD.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER safety_alerts_registry_insert AFTER INSERT ON safety_alerts BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER safety_alerts_registry_update AFTER UPDATE ON safety_alerts BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER safety_alerts_registry_delete AFTER DELETE ON safety_alerts BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (OLD.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER safety_alerts_registry_update_old AFTER UPDATE ON safety_alerts BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (OLD.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER opioid_entries_registry_insert AFTER INSERT ON opioid_entries BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER opioid_entries_registry_update AFTER UPDATE ON opioid_entries BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER opioid_entries_registry_delete AFTER DELETE ON opioid_entries BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (OLD.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER opioid_entries_registry_update_old AFTER UPDATE ON opioid_entries BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (OLD.patient_id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER patients_registry_insert AFTER INSERT ON patients BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER patients_registry_update AFTER UPDATE ON patients BEGIN
    INSERT INTO registry_dirty (patient_id, gen) VALUES (NEW.id, 1)
        ON CONFLICT (patient_id) DO UPDATE SET gen = gen + 1;
END;
