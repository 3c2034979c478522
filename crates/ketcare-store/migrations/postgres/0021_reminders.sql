-- Reminders of an unanswered link, each at most once: a reminder is numbered (1, 2, …; one a day
-- after the first, up to the site's count) and recorded under the UNIQUE key (link, number) in
-- the unit that gives the link its new token and queues the reminder's message, so a second
-- pass, a restart or a second server sends none twice.
CREATE TABLE link_reminders (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    link_id BIGINT NOT NULL REFERENCES measure_links(id),
    number BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (link_id, number)
);

-- The reminders sent before: each link had at most one, its first.
INSERT INTO link_reminders (link_id, number, created_at)
SELECT link_id, 1, MIN(created_at) FROM outbox
WHERE kind = 'reminder' AND link_id IS NOT NULL
GROUP BY link_id;
