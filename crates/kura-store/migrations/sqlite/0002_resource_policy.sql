-- PutResourcePolicy's document, stored as sent (after validation).
ALTER TABLE secrets ADD COLUMN resource_policy TEXT;
