-- Named keys (Kura.CreateKey) and the default key, one row each; a key's versions are the
-- rows of `keys` under `name` (the name data keys record in `key_name`): the default key's
-- name is alias/kura/default, a created key's is its id. A rotation's background re-wrap
-- keeps its progress here: `rewrap_target` is the version data keys move to, `rewrap_running`
-- whether some are still on older versions, and the lease says which node moves them.
CREATE TABLE kms_keys (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    alias            TEXT UNIQUE,
    description      TEXT,
    policy           TEXT,
    -- JSON: [[key, value], ...]
    tags             TEXT NOT NULL DEFAULT '[]',
    created_at       INTEGER NOT NULL,
    rewrap_target    INTEGER,
    rewrap_done      INTEGER NOT NULL DEFAULT 0,
    rewrap_running   INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    -- Set by ScheduleKeyDeletion: the key is destroyed then (unless cancelled or in use).
    deletion_date    INTEGER
);

-- The re-wrap finds the data keys still under a key's older versions without a scan.
CREATE INDEX secret_versions_key ON secret_versions(key_name, key_version);
