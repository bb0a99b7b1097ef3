-- Rotation: configuration, the current cycle's progress, and the lease of the server running it.
ALTER TABLE secrets ADD COLUMN rotation_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE secrets ADD COLUMN rotation_function TEXT;
ALTER TABLE secrets ADD COLUMN rotation_after_days INTEGER;
ALTER TABLE secrets ADD COLUMN rotation_schedule TEXT;
ALTER TABLE secrets ADD COLUMN rotation_duration TEXT;
ALTER TABLE secrets ADD COLUMN last_rotated_at INTEGER;
ALTER TABLE secrets ADD COLUMN next_rotation_at INTEGER;
ALTER TABLE secrets ADD COLUMN next_rotation_end INTEGER;
ALTER TABLE secrets ADD COLUMN rotation_state TEXT NOT NULL DEFAULT 'Idle';
ALTER TABLE secrets ADD COLUMN rotation_token TEXT;
ALTER TABLE secrets ADD COLUMN rotation_step TEXT;
ALTER TABLE secrets ADD COLUMN rotation_attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE secrets ADD COLUMN rotation_error TEXT;
ALTER TABLE secrets ADD COLUMN rotation_attempted_at INTEGER;
ALTER TABLE secrets ADD COLUMN rotation_resume_at INTEGER;
ALTER TABLE secrets ADD COLUMN rotation_window_end INTEGER;
-- Which server runs this secret's rotation, until when. Only the claim/release statements
-- write these, never a general update of the row.
ALTER TABLE secrets ADD COLUMN lease_owner TEXT;
ALTER TABLE secrets ADD COLUMN lease_expires_at INTEGER;

-- The scheduler reads only due rows, from these two indexes.
CREATE INDEX secrets_next_rotation ON secrets(next_rotation_at) WHERE next_rotation_at IS NOT NULL;
CREATE INDEX secrets_rotation_resume ON secrets(rotation_resume_at) WHERE rotation_resume_at IS NOT NULL;
CREATE INDEX secrets_rotation_function ON secrets(rotation_function) WHERE rotation_function IS NOT NULL;

-- Rotation functions other than the built-in ones. `config` is JSON without secrets; a
-- webhook's signing secret is sealed like a secret value.
CREATE TABLE rotation_functions (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    config      TEXT NOT NULL,
    ciphertext  BLOB,
    wrapped_key BLOB,
    key_name    TEXT,
    key_version INTEGER,
    created_at  INTEGER NOT NULL
);

-- Where events go (RotationSucceeded, ...), and what is still to be delivered.
CREATE TABLE notification_targets (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    ciphertext  BLOB NOT NULL,
    wrapped_key BLOB NOT NULL,
    key_name    TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE notification_outbox (
    id              INTEGER PRIMARY KEY,
    target_id       TEXT NOT NULL REFERENCES notification_targets(id) ON DELETE CASCADE,
    body            TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT
);
CREATE INDEX notification_outbox_due ON notification_outbox(next_attempt_at);

-- Short-lived keys handed to a rotation function: they expire, and they reach one secret only.
ALTER TABLE access_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE access_keys ADD COLUMN scope_secret_id INTEGER;
CREATE INDEX access_keys_expiry ON access_keys(expires_at) WHERE expires_at IS NOT NULL;
