-- LookupAuditEvents by secret or by principal is answered from these tables, filled behind
-- the trail (at most about a second behind, in one sorted statement) instead of two indexes
-- on audit_log that every record had to update at once: under load, records of a thousand
-- secrets touched a thousand index pages per commit. Records after `upto` are not in them
-- yet; a lookup reads those from audit_log by sequence number.
CREATE TABLE audit_by_resource (
    resource TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (resource, seq)
) WITHOUT ROWID;
CREATE TABLE audit_by_principal (
    principal TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (principal, seq)
) WITHOUT ROWID;
CREATE TABLE audit_indexed (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    upto INTEGER NOT NULL
);
INSERT INTO audit_by_resource (resource, seq) SELECT resource, seq FROM audit_log;
INSERT INTO audit_by_principal (principal, seq) SELECT principal, seq FROM audit_log;
INSERT INTO audit_indexed (only, upto) VALUES (1, (SELECT coalesce(max(seq), 0) FROM audit_log));
DROP INDEX audit_log_resource;
DROP INDEX audit_log_principal;
