-- The vitals writer asks, for every batch, whether any reading from before migration 0009 (a
-- message key without its control id) is left. Walking the message key's index to answer it
-- grew with every reading stored (seconds per batch on a clinic with millions of readings): this
-- index holds exactly those rows, so the answer is one lookup in a (usually empty) index.
CREATE INDEX session_vitals_legacy_keys ON session_vitals (id)
    WHERE message_key IS NOT NULL AND control_id IS NULL;
