-- Measurement-based care, second part: the clinic's licensed item wording (one version per
-- upload and instrument; the newest version is the one shown), and to whom a questionnaire
-- link was sent (the patient, or a named guardian of record — the name is kept as it was).
CREATE TABLE measure_text_versions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instrument TEXT NOT NULL,
    version BIGINT NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    UNIQUE (instrument, version)
);

CREATE TABLE measure_item_texts (
    version_id BIGINT NOT NULL REFERENCES measure_text_versions(id),
    item BIGINT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (version_id, item)
);

ALTER TABLE measure_links ADD COLUMN guardian_id BIGINT;
ALTER TABLE measure_links ADD COLUMN sent_to TEXT NOT NULL DEFAULT 'patient';
