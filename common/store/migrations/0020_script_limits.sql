-- An environment's script limits per kind of run (scripts/limits.h): a JSON object the
-- gateway checked before storing it; {} keeps every default.
ALTER TABLE environments ADD COLUMN script_limits jsonb NOT NULL DEFAULT '{}'::jsonb;
