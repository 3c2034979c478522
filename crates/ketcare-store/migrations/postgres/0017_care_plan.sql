-- A care plan per treatment course: goals (a symptom target tied to an instrument, function,
-- sleep, exercise, substance use, mindfulness practice, other) and the adjuncts agreed
-- (psychotherapy, medication changes, lifestyle, other), each with an owner and a review date.
-- Progress is appended by staff or by the patient (or guardian) through their link; a status or
-- review-date change is a progress entry, so the plan's history is never rewritten.
-- The patient's own view: whether the patient agrees that their guardians' view shows their
-- questionnaire scores (the newest row decides; none = not shared).
CREATE TABLE care_plan_items (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    course_id BIGINT REFERENCES ops_courses(id),
    item TEXT NOT NULL,
    category TEXT NOT NULL,
    description TEXT NOT NULL,
    instrument TEXT,
    target_at_most BIGINT,
    owner TEXT NOT NULL,
    review_on TEXT,
    created_by TEXT NOT NULL,
    created_by_id BIGINT REFERENCES users(id),
    created_at TEXT NOT NULL
);
CREATE INDEX care_plan_items_patient ON care_plan_items (patient_id, id);

CREATE TABLE care_plan_progress (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id BIGINT NOT NULL REFERENCES care_plan_items(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    status TEXT,
    review_on TEXT,
    effort TEXT,
    note TEXT NOT NULL,
    by_patient BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_by_id BIGINT REFERENCES users(id),
    recorded_at TEXT NOT NULL
);
CREATE INDEX care_plan_progress_item ON care_plan_progress (item_id, id);
CREATE INDEX care_plan_progress_patient ON care_plan_progress (patient_id, id);

CREATE TABLE patient_view_sharing (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    shares_scores_with_guardians BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_by_id BIGINT REFERENCES users(id),
    recorded_at TEXT NOT NULL
);
CREATE INDEX patient_view_sharing_patient ON patient_view_sharing (patient_id, id);

CREATE FUNCTION care_plan_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER care_plan_items_append_only BEFORE UPDATE OR DELETE ON care_plan_items
    FOR EACH ROW EXECUTE FUNCTION care_plan_append_only();
CREATE TRIGGER care_plan_items_no_truncate BEFORE TRUNCATE ON care_plan_items
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
CREATE TRIGGER care_plan_progress_append_only BEFORE UPDATE OR DELETE ON care_plan_progress
    FOR EACH ROW EXECUTE FUNCTION care_plan_append_only();
CREATE TRIGGER care_plan_progress_no_truncate BEFORE TRUNCATE ON care_plan_progress
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
CREATE TRIGGER patient_view_sharing_append_only BEFORE UPDATE OR DELETE ON patient_view_sharing
    FOR EACH ROW EXECUTE FUNCTION care_plan_append_only();
CREATE TRIGGER patient_view_sharing_no_truncate BEFORE TRUNCATE ON patient_view_sharing
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
