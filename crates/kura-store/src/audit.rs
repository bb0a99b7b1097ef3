//! Audit records inside write transactions.
//!
//! A request's record is committed in the same transaction as the change it records, so a
//! request refused because its record could not be written made no change. The HTTP layer
//! hands the record down as a draft ([`with_audit_draft`]); the first write transaction of
//! the request that changes something takes it, marks it a success, numbers and chains it
//! (reading the chain's tail inside the transaction) and inserts it before COMMIT. A
//! request whose draft no transaction took (a read, a failure, a no-op) is recorded by the
//! caller as before.
//!
//! The draft travels in a task-local because every `Store` method would otherwise need an
//! extra parameter that only requests use; this module is the only place that reads it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use kura_core::Clock;

use crate::AuditRecord;

/// The audit chain as a store sees it: kura-server owns the MAC key and the file.
pub trait AuditChain: Send + Sync + 'static {
    /// The MAC of `record` (its own `mac` ignored), chained after `prev`, the MAC of the
    /// record before it (`None` for the first record).
    fn mac(&self, prev: Option<&str>, record: &AuditRecord) -> String;
    /// Called right after `records` committed and before any other audit-writing
    /// transaction can begin, so calls come in commit order, which is seq order.
    fn committed(&self, records: &[AuditRecord]) -> kura_core::Result<()>;
}

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
    Waiting(Box<AuditDraft>),
    /// A transaction took the draft and is committing it.
    Taken,
    Committed,
    /// Background work run inside a request (test clock jobs) is not the request's change.
    Hidden(Box<Slot>),
}

tokio::task_local! {
    static DRAFT: Arc<Mutex<Slot>>;
}

/// Runs `f` (one request's operation) with `draft` available to its write transactions.
/// Returns `f`'s output and whether a transaction committed the record.
pub async fn with_audit_draft<F: std::future::Future>(
    draft: AuditDraft,
    f: F,
) -> (F::Output, bool) {
    let slot = Arc::new(Mutex::new(Slot::Waiting(Box::new(draft))));
    let out = DRAFT.scope(slot.clone(), f).await;
    let committed = matches!(
        *slot.lock().unwrap_or_else(|p| p.into_inner()),
        Slot::Committed
    );
    (out, committed)
}

/// Runs `f` inside a request without offering it the request's draft: for work that is not
/// the request's own change (jobs a test-clock move runs inline).
pub async fn without_audit_draft<F: std::future::Future>(f: F) -> F::Output {
    let Ok(slot) = DRAFT.try_with(Arc::clone) else {
        return f.await;
    };
    swap(&slot, |s| Slot::Hidden(Box::new(s)));
    let out = f.await;
    swap(&slot, |s| match s {
        Slot::Hidden(inner) => *inner,
        other => other,
    });
    out
}

fn swap(slot: &Mutex<Slot>, f: impl FnOnce(Slot) -> Slot) {
    let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
    let old = std::mem::replace(&mut *guard, Slot::Taken);
    *guard = f(old);
}

/// The draft's record, finished as a success of `changed`, if this task has one waiting.
/// Pair with [`settle`].
pub(crate) fn take(changed: &Changed) -> Option<AuditDraft> {
    let slot = DRAFT.try_with(Arc::clone).ok()?;
    let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
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

/// After the transaction that took the draft: committed, or rolled back (then the draft is
/// offered again, and failing that the caller records the request's error).
pub(crate) fn settle(draft: AuditDraft, committed: bool) {
    let Ok(slot) = DRAFT.try_with(Arc::clone) else {
        return;
    };
    let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
    *guard = if committed {
        Slot::Committed
    } else {
        Slot::Waiting(Box::new(draft))
    };
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

    #[tokio::test]
    async fn a_draft_is_recorded_only_once_its_transaction_commits() {
        let changed = Changed {
            arn: Some("arn:secret".into()),
            version_id: Some("v1".into()),
        };
        let ((), recorded) = with_audit_draft(draft(), async {}).await;
        assert!(!recorded, "no transaction took it");

        let ((), recorded) = with_audit_draft(draft(), async {
            let d = take(&changed).expect("offered");
            assert_eq!(
                (
                    d.record.outcome.as_str(),
                    d.record.resource.as_str(),
                    d.record.time
                ),
                ("Success", "arn:secret", 42)
            );
            assert_eq!(d.record.version_id.as_deref(), Some("v1"));
            assert!(take(&changed).is_none(), "taken once");
            settle(d, false);
            // Rolled back: the next change may still take it.
            let d = take(&changed).expect("offered again");
            settle(d, true);
            assert!(take(&changed).is_none());
        })
        .await;
        assert!(recorded);
    }

    #[tokio::test]
    async fn background_work_inside_a_request_does_not_take_its_draft() {
        let changed = Changed::default();
        let ((), recorded) = with_audit_draft(draft(), async {
            without_audit_draft(async { assert!(take(&changed).is_none()) }).await;
            assert!(take(&changed).is_some(), "offered again afterwards");
        })
        .await;
        assert!(!recorded, "taken but never settled as committed");
        assert!(take(&changed).is_none(), "no request, no draft");
    }
}
