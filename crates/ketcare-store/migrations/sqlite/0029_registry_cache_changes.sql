-- Which cached subjects changed since a process last read them. Every refresh of the cache takes
-- the next value of one counter (its row locked until the refresh commits, so refreshes commit in
-- counter order) and stamps the rows it writes with it. A process holding the subjects in memory
-- at counter value N reads only the rows stamped above N: every refresh stamped N or less had
-- committed when N was read, so none of its rows is missed.
ALTER TABLE registry_subject_cache ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX registry_subject_cache_changed ON registry_subject_cache (changed);
CREATE TABLE registry_cache_seq (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO registry_cache_seq (id, seq) VALUES (1, 0);
