-- Web console sessions, shared by every node that opens this database, so a browser may be
-- sent to any of them. `id` is the SHA-256 of the cookie's random id (a copy of the database
-- opens no session); the principal is who signed in; times are wall-clock milliseconds.
CREATE TABLE console_sessions (
    id               TEXT PRIMARY KEY,
    user_name        TEXT NOT NULL,
    arn              TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    access_key_id    TEXT NOT NULL,
    scope_secret_id  BIGINT,
    csrf             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_seen        BIGINT NOT NULL
);
CREATE INDEX console_sessions_last_seen ON console_sessions(last_seen);
