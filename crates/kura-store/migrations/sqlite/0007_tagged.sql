-- Whether a secret ever had a tag: once all are removed DescribeSecret answers `Tags: []`
-- (as AWS does), where a never-tagged secret has no `Tags` at all.
ALTER TABLE secrets ADD COLUMN tagged INTEGER NOT NULL DEFAULT 0;
UPDATE secrets SET tagged = 1 WHERE id IN (SELECT secret_id FROM tags);
