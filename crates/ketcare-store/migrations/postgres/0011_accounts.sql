-- Account administration: an account can be disabled (its sessions and tokens end; it cannot sign
-- in) and made to change a temporary password at its next sign-in.
ALTER TABLE users ADD COLUMN disabled_at TEXT;
ALTER TABLE users ADD COLUMN must_change_password BIGINT NOT NULL DEFAULT 0;
