-- The sessions whose registry facts are not derived: a new session, or one whose facts a write
-- forgot (every vital and every change of the record forgets them). Kept by triggers in the
-- writing transaction, so filling the facts reads this short list instead of scanning every
-- session of the clinic for a missing row (a scan of 800,000 sessions took seconds on SQLite,
-- inside the writer's turn the bedside feed waits for).
CREATE TABLE registry_facts_missing (
    session_id INTEGER PRIMARY KEY
);
INSERT INTO registry_facts_missing (session_id)
    SELECT s.id FROM treatment_sessions s
    LEFT JOIN registry_session_facts f ON f.session_id = s.id
    WHERE f.session_id IS NULL;
CREATE TRIGGER treatment_sessions_facts_missing AFTER INSERT ON treatment_sessions BEGIN
    INSERT INTO registry_facts_missing (session_id) VALUES (NEW.id)
        ON CONFLICT (session_id) DO NOTHING;
END;
CREATE TRIGGER registry_session_facts_forgotten AFTER DELETE ON registry_session_facts BEGIN
    INSERT INTO registry_facts_missing (session_id) VALUES (OLD.session_id)
        ON CONFLICT (session_id) DO NOTHING;
END;
CREATE TRIGGER registry_session_facts_derived AFTER INSERT ON registry_session_facts BEGIN
    DELETE FROM registry_facts_missing WHERE session_id = NEW.session_id;
END;
