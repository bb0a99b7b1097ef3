-- Which kura process wrote each audit record (one chain may be written by several nodes).
-- Records from before this migration have none.
ALTER TABLE audit_log ADD COLUMN node TEXT NOT NULL DEFAULT '';
