-- Settings of one site: a version whose `site_id` is set holds only the keys that site sets for
-- itself (alarm thresholds, the vitals interval, the BP gate, booking and billing switches),
-- over the organisation's versions (`site_id` NULL). Versions share one sequence, so the newest
-- of the organisation's and a site's versions names the settings in force at that site.
ALTER TABLE site_settings ADD COLUMN site_id BIGINT REFERENCES sites(id);
CREATE INDEX site_settings_site ON site_settings (site_id, version);
