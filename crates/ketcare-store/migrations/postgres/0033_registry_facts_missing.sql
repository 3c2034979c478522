-- The sessions whose registry facts are not derived: a new session, or one whose facts a write
-- forgot (every vital and every change of the record forgets them). Kept by triggers in the
-- writing transaction, so filling the facts reads this short list instead of scanning every
-- session of the clinic for a missing row.
CREATE TABLE registry_facts_missing (
    session_id BIGINT PRIMARY KEY
);
INSERT INTO registry_facts_missing (session_id)
    SELECT s.id FROM treatment_sessions s
    LEFT JOIN registry_session_facts f ON f.session_id = s.id
    WHERE f.session_id IS NULL;
CREATE FUNCTION registry_facts_missing_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO registry_facts_missing (session_id) VALUES (NEW.id)
            ON CONFLICT (session_id) DO NOTHING;
    ELSE
        INSERT INTO registry_facts_missing (session_id) VALUES (OLD.session_id)
            ON CONFLICT (session_id) DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;
CREATE FUNCTION registry_facts_missing_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM registry_facts_missing WHERE session_id = NEW.session_id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER treatment_sessions_facts_missing AFTER INSERT ON treatment_sessions
    FOR EACH ROW EXECUTE FUNCTION registry_facts_missing_add();
CREATE TRIGGER registry_session_facts_forgotten AFTER DELETE ON registry_session_facts
    FOR EACH ROW EXECUTE FUNCTION registry_facts_missing_add();
CREATE TRIGGER registry_session_facts_derived AFTER INSERT ON registry_session_facts
    FOR EACH ROW EXECUTE FUNCTION registry_facts_missing_remove();
