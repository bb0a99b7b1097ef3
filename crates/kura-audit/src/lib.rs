//! The audit trail: the record, the HMAC chain over it, the JSON-lines file that follows the
//! database, the group-commit writer, and `kura audit verify`'s check of both.
//!
//! The trail reaches its database only through [`AuditStore`], which every `kura_store`
//! backend implements, so this crate sits below `kura-store` and knows no SQL.

mod log;
mod record;

pub use log::{AUDIT_FILE, AuditLog, FileHolds, VerifyReport, verify};
pub use record::{AuditChain, AuditQuery, AuditRecord, AuditStore};
