-- kura's first schema. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- Key-encryption keys, each version wrapped by the root key.
CREATE TABLE keys (
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    wrapped    BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE users (
    name       TEXT PRIMARY KEY,
    arn        TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- The secret access key is sealed like a secret value, never stored in the clear.
CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    user_name     TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    ciphertext    BLOB NOT NULL,
    wrapped_key   BLOB NOT NULL,
    key_name      TEXT NOT NULL,
    key_version   INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
);
CREATE INDEX access_keys_user ON access_keys(user_name);

CREATE TABLE secrets (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    arn         TEXT NOT NULL UNIQUE,
    description TEXT,
    kms_key_id  TEXT,
    created_at  INTEGER NOT NULL,
    changed_at  INTEGER NOT NULL,
    accessed_at INTEGER,
    deleted_at  INTEGER,
    purge_at    INTEGER
);
-- A name belongs to one secret, including one scheduled for deletion.
CREATE UNIQUE INDEX secrets_name ON secrets(name);
CREATE INDEX secrets_created ON secrets(created_at, id);
CREATE INDEX secrets_changed ON secrets(changed_at, id);
CREATE INDEX secrets_accessed ON secrets(accessed_at, id);
CREATE INDEX secrets_purge ON secrets(purge_at) WHERE purge_at IS NOT NULL;

-- A row without ciphertext is a value-less placeholder (the AWSPENDING version rotation creates).
CREATE TABLE secret_versions (
    secret_id   INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    version_id  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    accessed_at INTEGER,
    value_kind  TEXT CHECK (value_kind IN ('string', 'binary')),
    ciphertext  BLOB,
    wrapped_key BLOB,
    key_name    TEXT,
    key_version INTEGER,
    PRIMARY KEY (secret_id, version_id),
    CHECK ((value_kind IS NULL) = (ciphertext IS NULL))
);

-- The primary key makes "a label is on at most one version" impossible to break.
CREATE TABLE version_stages (
    secret_id  INTEGER NOT NULL,
    stage      TEXT NOT NULL,
    version_id TEXT NOT NULL,
    PRIMARY KEY (secret_id, stage),
    FOREIGN KEY (secret_id, version_id) REFERENCES secret_versions(secret_id, version_id) ON DELETE CASCADE
);

CREATE TABLE tags (
    secret_id INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (secret_id, key)
);
CREATE INDEX tags_key ON tags(key, secret_id);
