-- The least-privilege role ketcare serves as on PostgreSQL (README, "PostgreSQL: the server
-- does not own its tables"). Run it as the owner of the tables, in ketcare's database, after
-- `ketcare migrate` (as that owner) has created or updated them, and again after every upgrade
-- that adds a table. The role itself is made by the database administrator:
--     CREATE ROLE ketcare_app LOGIN PASSWORD '…';
-- The server role owns nothing: it cannot drop or alter a table, disable a trigger, or rewrite
-- the migration history; it may not update, delete or truncate the append-only tables.
GRANT USAGE ON SCHEMA public TO ketcare_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ketcare_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ketcare_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, ops_ledger, session_vitals, session_addenda,
    therapy_encounters, therapy_notes
    FROM ketcare_app;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON _sqlx_migrations FROM ketcare_app;
