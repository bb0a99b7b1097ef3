-- LookupAuditEvents' usual questions, "what happened to this secret" and "what did this
-- principal do", answered from an index rather than a scan of the whole trail.
CREATE INDEX audit_log_resource ON audit_log(resource, seq);
CREATE INDEX audit_log_principal ON audit_log(principal, seq);
