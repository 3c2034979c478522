-- The registry now reads each session's day in its site's zone: every cached subject was
-- derived in the server's zone, so each is derived again at the next read. From now on a change
-- of a site's zone marks the subjects it can move: every patient for the first site (the
-- organisation's zone), the patients treated at the site for any other.
INSERT INTO registry_dirty (patient_id, gen) SELECT id, 1 FROM patients
    ON CONFLICT (patient_id) DO UPDATE SET gen = registry_dirty.gen + 1;
CREATE FUNCTION registry_mark_site_zone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO registry_dirty (patient_id, gen)
        SELECT id, 1 FROM patients
        WHERE NEW.id = (SELECT MIN(id) FROM sites)
           OR id IN (SELECT patient_id FROM treatment_sessions WHERE site_id = NEW.id)
        ON CONFLICT (patient_id) DO UPDATE SET gen = registry_dirty.gen + 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER sites_zone_registry AFTER UPDATE OF time_zone ON sites
    FOR EACH ROW WHEN (OLD.time_zone IS DISTINCT FROM NEW.time_zone)
    EXECUTE FUNCTION registry_mark_site_zone();
