-- Limit changes awaiting a second administrator, and protocols a site adds to the library.
CREATE TABLE settings_proposals (
    id INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL,
    proposed_by TEXT NOT NULL,
    decided_by TEXT,
    created_at TEXT NOT NULL,
    decided_at TEXT
);

CREATE TABLE site_protocols (
    id INTEGER PRIMARY KEY,
    file_name TEXT NOT NULL,
    body TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE INDEX site_protocols_file ON site_protocols (file_name);
