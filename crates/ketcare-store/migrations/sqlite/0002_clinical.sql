-- Site settings (versioned, append-only) and clinical documents (screenings, dose orders).
CREATE TABLE site_settings (
    version INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL,
    reason TEXT NOT NULL
);

CREATE TABLE clinical_records (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    body TEXT NOT NULL,
    revision INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX clinical_records_patient ON clinical_records (patient_id, kind);
