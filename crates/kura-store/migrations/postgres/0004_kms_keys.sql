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
    created_at       BIGINT NOT NULL,
    rewrap_target    BIGINT,
    rewrap_done      BIGINT NOT NULL DEFAULT 0,
    rewrap_running   BIGINT NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    -- Set by ScheduleKeyDeletion: the key is destroyed then (unless cancelled or in use).
    deletion_date    BIGINT
);

-- The re-wrap finds the data keys still under a key's older versions without a scan.
CREATE INDEX secret_versions_key ON secret_versions(key_name, key_version);

-- Nodes keep the keyring and the key catalog in memory: a key created, rotated or given a
-- new policy on one node is announced on kura_keys, and every node reloads its keys.
CREATE FUNCTION kura_keys_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('kura_keys', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER keys_changed AFTER INSERT OR UPDATE OF wrapped ON keys
    FOR EACH STATEMENT EXECUTE FUNCTION kura_keys_changed();
CREATE TRIGGER kms_keys_changed AFTER INSERT OR UPDATE OF policy, alias, description, deletion_date OR DELETE ON kms_keys
    FOR EACH STATEMENT EXECUTE FUNCTION kura_keys_changed();
