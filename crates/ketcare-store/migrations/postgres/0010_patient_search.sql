-- The folded text a patient is found by (names both ways round, MRN, indications: lower case,
-- accents removed), written by the store with every patient write. Rows from before this
-- migration are filled in when the store opens (see SqlStore::connect).
ALTER TABLE patients ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
