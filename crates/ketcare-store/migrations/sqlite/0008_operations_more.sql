-- Operations, continued: who withdrew a consent and why (the time is `withdrawn_at`).
ALTER TABLE ops_consent_signatures ADD COLUMN withdrawn_by TEXT;
ALTER TABLE ops_consent_signatures ADD COLUMN withdrawal_reason TEXT;
