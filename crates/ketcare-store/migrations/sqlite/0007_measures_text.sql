-- Measurement-based care, second part: the clinic's licensed item wording (one version per
-- upload and instrument; the newest version is the one shown), and to whom a questionnaire
-- link was sent (the patient, or a named guardian of record — the name is kept as it was).
CREATE TABLE measure_text_versions (
    id INTEGER PRIMARY KEY,
    instrument TEXT NOT NULL,
    version INTEGER NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    UNIQUE (instrument, version)
);

CREATE TABLE measure_item_texts (
    version_id INTEGER NOT NULL REFERENCES measure_text_versions(id),
    item INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (version_id, item)
);

ALTER TABLE measure_links ADD COLUMN guardian_id INTEGER;
ALTER TABLE measure_links ADD COLUMN sent_to TEXT NOT NULL DEFAULT 'patient';
