-- Bedside monitors: a monitor message is identified by three columns — MSH-3 sending
-- application, MSH-4 sending facility and MSH-10 control id — with one unique index over the
-- three, so two senders whose names contain the separator can no longer collide (the old
-- `message_key` joined them with '|'). Rows stored before this migration keep their
-- `message_key` (vitals are append-only: they are not rewritten); the store still finds a
-- repeat of such a message by that key. New rows leave `message_key` empty.
ALTER TABLE session_vitals ADD COLUMN sending_application TEXT;
ALTER TABLE session_vitals ADD COLUMN sending_facility TEXT;
ALTER TABLE session_vitals ADD COLUMN control_id TEXT;
CREATE UNIQUE INDEX session_vitals_message
    ON session_vitals (sending_application, sending_facility, control_id);
