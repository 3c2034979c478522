-- A protocol file may be one site's own (its local protocol, used only at that site); NULL: the
-- organisation's, used at every site (every file added before sites). A file keeps its owner
-- across versions.
ALTER TABLE site_protocols ADD COLUMN site_id INTEGER;
