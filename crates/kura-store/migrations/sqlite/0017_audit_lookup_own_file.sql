-- The audit lookup tables move to a file of their own beside the database (`kura.db-lookup`,
-- see kura-store's sqlite/lookup.rs): a pass that fills them no longer holds this file's
-- writer. They are derived from audit_log and are filled again there from the start.
DROP TABLE audit_by_resource;
DROP TABLE audit_by_principal;
DROP TABLE audit_indexed;
