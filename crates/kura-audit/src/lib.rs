//! The audit trail: one record per request, rotation step and background job, written to the
//! database and to an append-only JSON-lines file before the request is answered (fail
//! closed). Records are chained with an HMAC whose key is sealed by the root key, so someone
//! who can write the database but cannot unseal kura cannot edit, drop or reorder records
//! unnoticed (`kura audit verify`).
//!
//! A request that changes something commits its record in the transaction of the change
//! (the `kura_store::AuditSlot` the request carries to the store), so a request refused for
//! want of its record did nothing. Every other record goes through the group-commit
//! [`AuditLog`]. Both paths number records from the chain's tail inside their transaction
//! (the [`AuditChain`] signs them) and append them to the file before the next
//! audit-writing transaction may begin.
//!
//! The trail reaches its database only through [`AuditStore`], which every `kura_store`
//! backend implements, so this crate sits below `kura-store` and knows no SQL.
//!
//! - `record`: [`AuditRecord`], [`AuditQuery`], and the two traits between trail and store;
//! - `chain`: the MAC over the previous MAC and the record, and the walk that checks it;
//! - `file`: the JSON-lines file, which signs records for the store and follows its commits;
//! - `writer`: the group-commit [`AuditLog`];
//! - `verify`: the database's chain and the file beside it.

mod chain;
mod file;
mod record;
mod verify;
mod writer;

pub use file::{AUDIT_FILE, LatencyObserver, Observer};
pub use record::{AuditChain, AuditQuery, AuditRecord, AuditStore};
pub use verify::{FileHolds, VerifyReport, verify};
pub use writer::AuditLog;
