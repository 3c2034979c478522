-- Reaching patients between sessions. A contact preference is recorded per patient, or per
-- guardian of record: the channel (email, sms, none) and consent to be contacted, with who
-- recorded it and when. Rows are never changed: a new row replaces the preference in force
-- (the newest row of its patient and guardian), so the history of consent stays.
CREATE TABLE contact_preferences (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    guardian_id INTEGER REFERENCES guardians(id),
    channel TEXT NOT NULL,
    consented INTEGER NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX contact_preferences_patient ON contact_preferences (patient_id, id);

CREATE TRIGGER contact_preferences_no_update BEFORE UPDATE ON contact_preferences
BEGIN
    SELECT RAISE(ABORT, 'contact_preferences is append-only');
END;
CREATE TRIGGER contact_preferences_no_delete BEFORE DELETE ON contact_preferences
BEGIN
    SELECT RAISE(ABORT, 'contact_preferences is append-only');
END;

-- The outbox: one row per message, inserted in the transaction of the link it carries. `body`
-- holds the link (its token) only while the message waits: it is emptied once the message is
-- sent or failed. `next_attempt_at` is epoch seconds; a worker holds a message it is sending by
-- moving it forward (a claim), so a crash mid-send only delays the next try.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    guardian_id INTEGER REFERENCES guardians(id),
    link_id INTEGER REFERENCES measure_links(id),
    preference_id INTEGER NOT NULL REFERENCES contact_preferences(id),
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    -- When it was first due (epoch seconds), and whether it is the link's first message or a
    -- reminder (which carries a new token for the same link).
    first_due_at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    last_error TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    finished_at TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_patient ON outbox (patient_id);

-- Schedules that send a course's questionnaire by themselves, and each occurrence sent. The
-- UNIQUE key on (schedule, occurrence key) is what makes an occurrence go once: the runner
-- inserts it in the unit that creates its link and queues its message, so two runners, a second
-- pass or a restart find it there and send nothing more.
CREATE TABLE measure_schedules (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    course_id INTEGER NOT NULL REFERENCES measure_courses(id),
    guardian_id INTEGER REFERENCES guardians(id),
    schedule TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_epoch INTEGER NOT NULL
);
CREATE INDEX measure_schedules_patient ON measure_schedules (patient_id);

CREATE TABLE schedule_occurrences (
    id INTEGER PRIMARY KEY,
    schedule_id INTEGER NOT NULL REFERENCES measure_schedules(id),
    occurrence TEXT NOT NULL,
    link_id INTEGER REFERENCES measure_links(id),
    created_at TEXT NOT NULL,
    UNIQUE (schedule_id, occurrence)
);
