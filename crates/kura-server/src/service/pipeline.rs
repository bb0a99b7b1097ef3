//! The one request pipeline: every door authenticates a caller, decodes an [`Operation`] and
//! calls [`Service::call`], which authorizes it, runs it and writes its audit record (and the
//! request's log line) from the typed outcome. A request a door refuses before it becomes an
//! operation (unauthenticated, unreadable, too large) is recorded by [`Service::refuse`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use kura_core::model::SecretRecord;
use kura_core::{Error, ErrorCode, Result};
use kura_store::{AuditRecord, AuditSlot};

use super::authz::RequestMeta;
use super::operation::{Operation, Outcome, RequestFacts};
use super::{Principal, Service};

/// What a door knows of a request apart from its operation.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The id the answer carries (`x-amzn-RequestId`) and the audit record keeps.
    pub id: String,
    pub started: Instant,
    pub meta: RequestMeta,
    /// The access key id the request claimed, recorded when authentication fails.
    pub claimed_key: String,
}

impl RequestInfo {
    pub fn new(id: String, meta: RequestMeta) -> Self {
        RequestInfo {
            id,
            started: Instant::now(),
            meta,
            claimed_key: String::new(),
        }
    }
}

/// An authenticated caller of one request.
pub struct Caller {
    pub principal: Principal,
    pub request: RequestInfo,
    /// The secret authorization resolved, keyed by the `SecretId` as sent, so the operation
    /// does not read it again.
    resolved: Mutex<Option<(String, SecretRecord)>>,
    /// The request's audit record, waiting for the write that makes the request's change
    /// (the operation passes it to the store's write methods).
    pub(crate) audit: AuditSlot,
}

impl std::ops::Deref for Caller {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl Caller {
    pub fn new(principal: Principal, request: RequestInfo) -> Self {
        Caller {
            principal,
            request,
            resolved: Mutex::new(None),
            audit: AuditSlot::empty(),
        }
    }

    /// kura itself, for work it does on its own behalf (built-in rotation steps).
    pub(crate) fn system(account: &str) -> Self {
        Caller::new(
            Principal::system(account),
            RequestInfo::new(String::new(), RequestMeta::default()),
        )
    }

    pub(crate) fn remember(&self, secret_id: &str, s: SecretRecord) {
        if let Ok(mut slot) = self.resolved.lock() {
            *slot = Some((secret_id.to_string(), s));
        }
    }

    pub(crate) fn take_resolved(&self, secret_id: &str) -> Option<SecretRecord> {
        let mut slot = self.resolved.lock().ok()?;
        match slot.as_ref() {
            Some((id, _)) if id == secret_id => slot.take().map(|(_, s)| s),
            _ => None,
        }
    }
}

impl Service {
    /// Authorizes `op` for `c`, runs it, and records it. The answer goes out only once its
    /// audit record is durable (fail closed).
    pub async fn call(self: &Arc<Self>, c: &Caller, op: Operation) -> Result<Outcome> {
        let name = op.name();
        let mut line = LogLine::new(&c.request, name, &c.arn, Some(&c.audit));
        let allowed = self.authorize(c, &op).await;
        let decision = if allowed.is_ok() { "Allow" } else { "Deny" };
        let mut record = self.request_record(
            &c.request,
            Some(&c.principal),
            &op.action(),
            &op.facts(),
            decision,
        );
        // An allowed call runs with its record as a draft: the transaction that makes its
        // change commits the record too, so a request refused for want of its record did
        // nothing.
        let (result, recorded) = match allowed {
            Err(e) => (Err(e), false),
            Ok(()) => {
                c.audit.offer(kura_store::AuditDraft {
                    record: record.clone(),
                    started: c.request.started,
                    clock: self.clock.clone(),
                });
                let result = self.run(c, op).await;
                (result, c.audit.committed())
            }
        };
        let result = if recorded {
            if let Err(e) = &result {
                // Its change committed (with a Success record); only what came after failed.
                tracing::warn!(
                    request_id = c.request.id.as_str(),
                    op = name,
                    code = e.code.as_str(),
                    "the request's change was committed and audited, then the request failed"
                );
            }
            result
        } else {
            finish(&mut record, self.now_ms(), &c.request, result.as_ref());
            match self.audit_telling(record, &mut line.recorded).await {
                Ok(()) => result,
                Err(e) => Err(audit_failed(&e)),
            }
        };
        line.write(result.as_ref().map(|_| ()));
        result
    }

    /// Records a request refused before it became an operation and returns the error to
    /// answer: `e`, or the audit trail's own failure (then nothing is answered but that).
    pub async fn refuse(
        &self,
        request: &RequestInfo,
        principal: Option<&Principal>,
        action: &str,
        resource: &str,
        e: Error,
    ) -> Error {
        let facts = RequestFacts {
            name: Some(resource),
            ..Default::default()
        };
        let mut record = self.request_record(request, principal, action, &facts, "-");
        finish(&mut record, self.now_ms(), request, Err::<&Outcome, _>(&e));
        let who = principal.map(|p| p.arn.as_str()).unwrap_or("-");
        let mut line = LogLine::new(request, action, who, None);
        let e = match self.audit_telling(record, &mut line.recorded).await {
            Ok(()) => e,
            Err(audit) => audit_failed(&audit),
        };
        line.write(Err(&e));
        e
    }

    /// The audit record of one request, before its outcome: named, non-secret fields of the
    /// request, never a value, a password or a policy document.
    fn request_record(
        &self,
        request: &RequestInfo,
        principal: Option<&Principal>,
        action: &str,
        facts: &RequestFacts<'_>,
        decision: &str,
    ) -> AuditRecord {
        let resource = facts
            .secret_id
            .map(str::to_string)
            .or_else(|| facts.name.map(str::to_string))
            .or_else(|| facts.user_name.map(|u| self.user_arn(u)))
            .or_else(|| facts.target_id.map(str::to_string))
            .or_else(|| facts.key_id.map(|k| self.key_resource(k)))
            .unwrap_or_else(|| "*".to_string());
        AuditRecord {
            time: self.now_ms(),
            request_id: request.id.clone(),
            kind: "request".into(),
            principal: principal
                .map(|p| p.arn.clone())
                .unwrap_or_else(|| "-".into()),
            // Unauthenticated requests are recorded with the key id they claimed, if any.
            access_key_id: principal
                .map(|p| p.access_key_id.clone())
                .unwrap_or_else(|| request.claimed_key.clone()),
            action: action.chars().take(256).collect(),
            resource: resource.chars().take(2048).collect(),
            version_id: facts.version_id.map(str::to_string),
            version_stage: facts.version_stage.map(str::to_string),
            source_ip: request.meta.source_ip.map(|ip| ip.to_string()),
            user_agent: request.meta.user_agent.clone(),
            decision: decision.into(),
            outcome: "Error".into(),
            node: self.node_id.clone(),
            ..Default::default()
        }
    }
}

/// Completes a request's record with its outcome: the secret and version the answer names.
fn finish(
    record: &mut AuditRecord,
    now_ms: i64,
    request: &RequestInfo,
    result: std::result::Result<&Outcome, &Error>,
) {
    record.time = now_ms;
    record.duration_us = request.started.elapsed().as_micros() as i64;
    match result {
        Ok(outcome) => {
            let (arn, version_id) = outcome.audit_target();
            if let Some(arn) = arn {
                record.resource = arn.chars().take(2048).collect();
            }
            if record.version_id.is_none() {
                record.version_id = version_id.map(str::to_string);
            }
            record.outcome = "Success".into();
            record.error_code = None;
        }
        Err(e) => {
            record.outcome = "Error".into();
            record.error_code = Some(e.code.as_str().to_string());
        }
    }
}

/// The target of the one log line every request gets, whichever door it came through.
pub const REQUEST_LOG_TARGET: &str = "kura::request";

/// The request's one log line; an internal error's detail goes to the log only.
pub(super) fn log_request(
    request: &RequestInfo,
    op: &str,
    who: &str,
    outcome: std::result::Result<(), &Error>,
) {
    let request_id = request.id.as_str();
    let ms = request.started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(()) => tracing::info!(
            target: REQUEST_LOG_TARGET,
            request_id,
            op,
            principal = who,
            outcome = "ok",
            duration_ms = ms
        ),
        Err(e) if e.code == ErrorCode::InternalServiceError => tracing::error!(
            target: REQUEST_LOG_TARGET,
            request_id,
            op,
            principal = who,
            outcome = e.code.as_str(),
            duration_ms = ms,
            detail = e.detail.as_deref().unwrap_or("")
        ),
        Err(e) => tracing::info!(
            target: REQUEST_LOG_TARGET,
            request_id,
            op,
            principal = who,
            outcome = e.code.as_str(),
            duration_ms = ms
        ),
    }
}

/// A request's one log line. Written when the request ends, and also when its future is
/// dropped first (the client went away while its record was being written) if its record
/// will exist anyway (committed with its change, or queued to the writer), so every audited
/// request is logged; one dropped before that left no record and logs nothing.
struct LogLine<'a> {
    request: &'a RequestInfo,
    op: &'a str,
    who: &'a str,
    /// The draft a store transaction may have committed with the request's change.
    draft: Option<&'a AuditSlot>,
    /// The record is queued to the audit writer.
    recorded: bool,
    written: bool,
}

impl<'a> LogLine<'a> {
    fn new(
        request: &'a RequestInfo,
        op: &'a str,
        who: &'a str,
        draft: Option<&'a AuditSlot>,
    ) -> Self {
        LogLine {
            request,
            op,
            who,
            draft,
            recorded: false,
            written: false,
        }
    }

    fn write(&mut self, outcome: std::result::Result<(), &Error>) {
        self.written = true;
        log_request(self.request, self.op, self.who, outcome);
    }
}

impl Drop for LogLine<'_> {
    fn drop(&mut self) {
        let recorded = self.recorded || self.draft.is_some_and(AuditSlot::committed);
        if self.written || !recorded {
            return;
        }
        tracing::info!(
            target: REQUEST_LOG_TARGET,
            request_id = self.request.id.as_str(),
            op = self.op,
            principal = self.who,
            // The client went away before the answer; the request is in the audit trail.
            outcome = "abandoned",
            duration_ms = self.request.started.elapsed().as_secs_f64() * 1000.0
        );
    }
}

/// The answer to give when a request's audit record could not be written (fail closed).
fn audit_failed(e: &Error) -> Error {
    let detail = Some(format!(
        "audit record not written, request not answered: {}",
        e.detail.as_deref().unwrap_or(&e.message)
    ));
    // A full disk and an unreachable database are what the client should hear: both pass,
    // and the second tells it to retry.
    if e.is_disk_full() || e.is_unavailable() {
        return Error {
            detail,
            ..e.clone()
        };
    }
    Error {
        detail,
        ..Error::new(
            ErrorCode::InternalServiceError,
            "kura could not record this request in its audit trail, so it does not answer it. See the server log.",
        )
    }
}
