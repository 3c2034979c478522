-- Staff may stop a course's schedule: who stopped it and when (RFC 3339). A stopped schedule
-- sends nothing more; its occurrences already sent stay, with their links.
ALTER TABLE measure_schedules ADD COLUMN stopped_by TEXT;
ALTER TABLE measure_schedules ADD COLUMN stopped_at TEXT;
