-- Function names are at most 48 characters (Lua cuts a chunk's name in its messages
-- past that). Names already stored keep working; new ones are held to the limit.
ALTER TABLE functions DROP CONSTRAINT functions_name_check;
ALTER TABLE functions ADD CONSTRAINT functions_name_check
    CHECK (name ~ '^[A-Za-z][A-Za-z0-9_-]{0,47}$') NOT VALID;
