-- The intake questions the outcome analyses use (family history of alcohol use disorder, prior
-- suicide attempt, prior ECT/TMS, comorbid anxiety, PTSD, chronic pain): part of the clinical
-- record, each yes, no or not asked, kept as one JSON object.
ALTER TABLE patients ADD COLUMN intake TEXT NOT NULL DEFAULT '{}';
