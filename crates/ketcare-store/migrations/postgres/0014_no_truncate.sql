-- TRUNCATE fires no row triggers, so the append-only tables refuse it with a statement trigger
-- (SQLite has no TRUNCATE; its DELETE triggers already refuse).
CREATE FUNCTION refuse_truncate() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: TRUNCATE is refused', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
CREATE TRIGGER ops_ledger_no_truncate BEFORE TRUNCATE ON ops_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
CREATE TRIGGER session_vitals_no_truncate BEFORE TRUNCATE ON session_vitals
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
CREATE TRIGGER session_addenda_no_truncate BEFORE TRUNCATE ON session_addenda
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
