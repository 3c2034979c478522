-- Measurement-based care: questionnaire responses (stored once per submission key), patient
-- links (only a hash of the token), suicide-risk safety alerts with every action on them,
-- opioid list entries, and per-course outcome and booster settings.
CREATE TABLE measure_links (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    token_hash TEXT NOT NULL UNIQUE,
    instruments TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    opened_at TEXT,
    completed_at TEXT
);
CREATE INDEX measure_links_patient ON measure_links (patient_id);

CREATE TABLE measure_responses (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    instrument TEXT NOT NULL,
    answers TEXT NOT NULL,
    total INTEGER,
    result TEXT NOT NULL,
    taken_on TEXT NOT NULL,
    link_id INTEGER REFERENCES measure_links(id),
    submission_key TEXT NOT NULL UNIQUE,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX measure_responses_patient ON measure_responses (patient_id, taken_on);

CREATE TABLE safety_alerts (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    response_id INTEGER REFERENCES measure_responses(id),
    instrument TEXT NOT NULL,
    item INTEGER NOT NULL,
    answer INTEGER NOT NULL,
    detail TEXT NOT NULL,
    status TEXT NOT NULL,
    raised_by TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    closed_by TEXT,
    closed_at TEXT,
    follow_up TEXT
);
CREATE INDEX safety_alerts_open ON safety_alerts (status, patient_id);

CREATE TABLE safety_alert_actions (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES safety_alerts(id),
    action TEXT NOT NULL,
    note TEXT NOT NULL,
    done_by TEXT NOT NULL,
    done_at TEXT NOT NULL
);

CREATE TABLE opioid_entries (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    drug TEXT NOT NULL,
    dose REAL NOT NULL,
    unit TEXT NOT NULL,
    per_day REAL,
    route TEXT,
    started_on TEXT NOT NULL,
    stopped_on TEXT,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX opioid_entries_patient ON opioid_entries (patient_id);

CREATE TABLE measure_courses (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    label TEXT NOT NULL,
    instrument TEXT NOT NULL,
    started_on TEXT NOT NULL,
    ended_on TEXT,
    booster_score_at_least INTEGER,
    booster_days INTEGER,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX measure_courses_patient ON measure_courses (patient_id);
