-- The audit trail: one row per request, rotation step and background job, chained by an HMAC
-- (mac = HMAC(key, previous mac || the record)) whose key only an unsealed kura holds.
CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY,
    time          INTEGER NOT NULL,
    request_id    TEXT NOT NULL,
    kind          TEXT NOT NULL,
    principal     TEXT NOT NULL,
    access_key_id TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource      TEXT NOT NULL,
    version_id    TEXT,
    version_stage TEXT,
    source_ip     TEXT,
    user_agent    TEXT,
    decision      TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    error_code    TEXT,
    duration_us   INTEGER NOT NULL,
    mac           TEXT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log(time, seq);
