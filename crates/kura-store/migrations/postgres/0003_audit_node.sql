-- Which node wrote each audit record (the nodes of a cluster write one chain).
ALTER TABLE audit_log ADD COLUMN node TEXT NOT NULL DEFAULT '';
