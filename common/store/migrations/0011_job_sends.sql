-- When a job's message was last sent to Kafka, so that the scheduler's recovery resends a
-- job at most once per interval however many schedulers run.
ALTER TABLE jobs ADD COLUMN sent_at timestamptz NOT NULL DEFAULT now();
