-- A browser session ends after a time without use (its last request is kept, coarsely), and an
-- API token has an end date.
ALTER TABLE web_sessions ADD COLUMN last_seen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
