//! Audit records inside write transactions.
//!
//! A request's record is committed in the same transaction as the change it records, so a
//! request refused because its record could not be written made no change. The service hands
//! the record to the store as a draft in an [`AuditSlot`], passed to every write method a
//! request can call; the first write transaction that changes something takes it, marks it a
//! success, numbers and chains it (reading the chain's tail inside the transaction) and
//! inserts it before COMMIT. A request whose draft no transaction took (a read, a failure, a
//! no-op) is recorded by the service afterwards. Writes that are no request's change
//! (bookkeeping, jobs, rotation steps) pass [`NO_AUDIT`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use kura_core::Clock;

// The backends import the chain from here, beside the slot.
pub(crate) use kura_audit::AuditChain;
use kura_audit::AuditRecord;

/// A request's audit record before its outcome is known.
pub struct AuditDraft {
    /// Everything the request itself says: request id, principal, action, resource, meta.
    pub record: AuditRecord,
    pub started: Instant,
    pub clock: Arc<dyn Clock>,
}

/// What a write transaction changed, for the record it commits.
#[derive(Debug, Default, Clone)]
pub(crate) struct Changed {
    /// The secret the transaction changed.
    pub arn: Option<String>,
    /// The version it wrote or began rotating.
    pub version_id: Option<String>,
}

enum Slot {
    /// No request's record: the write commits none.
    Empty,
    Waiting(Box<AuditDraft>),
    /// A transaction took the draft and is committing it.
    Taken,
    Committed,
}

/// Where one request's audit record waits for the transaction that makes its change.
pub struct AuditSlot {
    slot: Mutex<Slot>,
}

/// For writes that are no request's change.
pub static NO_AUDIT: AuditSlot = AuditSlot::empty();

impl AuditSlot {
    pub const fn empty() -> Self {
        AuditSlot {
            slot: Mutex::new(Slot::Empty),
        }
    }

    /// Offers `draft` to the next write that changes something.
    pub fn offer(&self, draft: AuditDraft) {
        *self.lock() = Slot::Waiting(Box::new(draft));
    }

    /// Whether a transaction committed the draft (then the request has its record).
    pub fn committed(&self) -> bool {
        matches!(*self.lock(), Slot::Committed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The draft's record, finished as a success of `changed`, if one is waiting. Pair with
    /// [`settle`](Self::settle).
    pub(crate) fn take(&self, changed: &Changed) -> Option<AuditDraft> {
        let mut guard = self.lock();
        if !matches!(*guard, Slot::Waiting(_)) {
            return None;
        }
        let Slot::Waiting(draft) = std::mem::replace(&mut *guard, Slot::Taken) else {
            return None;
        };
        let mut draft = *draft;
        let r = &mut draft.record;
        r.time = draft.clock.now().0;
        r.outcome = "Success".into();
        r.error_code = None;
        r.duration_us = draft.started.elapsed().as_micros() as i64;
        if let Some(arn) = &changed.arn {
            r.resource = arn.clone();
        }
        if r.version_id.is_none() {
            r.version_id = changed.version_id.clone();
        }
        Some(draft)
    }

    /// After the transaction that took the draft: committed, or rolled back (then the draft
    /// is offered again, and failing that the service records the request's error).
    pub(crate) fn settle(&self, draft: AuditDraft, committed: bool) {
        *self.lock() = if committed {
            Slot::Committed
        } else {
            Slot::Waiting(Box::new(draft))
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> AuditDraft {
        AuditDraft {
            record: AuditRecord {
                resource: "my-secret".into(),
                outcome: "Error".into(),
                ..Default::default()
            },
            started: Instant::now(),
            clock: Arc::new(kura_core::ManualClock::new(kura_core::Timestamp(42))),
        }
    }

    #[test]
    fn a_draft_is_recorded_only_once_its_transaction_commits() {
        let changed = Changed {
            arn: Some("arn:secret".into()),
            version_id: Some("v1".into()),
        };
        let slot = AuditSlot::empty();
        assert!(slot.take(&changed).is_none(), "nothing offered");
        slot.offer(draft());
        assert!(!slot.committed(), "no transaction took it");
        let d = slot.take(&changed).expect("offered");
        assert_eq!(
            (
                d.record.outcome.as_str(),
                d.record.resource.as_str(),
                d.record.time
            ),
            ("Success", "arn:secret", 42)
        );
        assert_eq!(d.record.version_id.as_deref(), Some("v1"));
        assert!(slot.take(&changed).is_none(), "taken once");
        slot.settle(d, false);
        // Rolled back: the next change may still take it.
        let d = slot.take(&changed).expect("offered again");
        slot.settle(d, true);
        assert!(slot.take(&changed).is_none());
        assert!(slot.committed());
    }

    #[test]
    fn writes_that_are_no_requests_change_take_nothing() {
        assert!(NO_AUDIT.take(&Changed::default()).is_none());
        assert!(!NO_AUDIT.committed());
    }
}
