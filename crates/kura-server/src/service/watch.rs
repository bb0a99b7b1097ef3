//! Kura.WatchSecrets: a long-poll over the audit trail. Every change to a secret (a request's
//! write, an engine rotation step, a purge) already has its record there, numbered in commit
//! order on every backend, so a record's `seq` is the cursor: it survives restarts and means
//! the same on every node. A waiting call holds no connection: it sleeps on an in-process
//! signal raised when change records commit, plus (on a shared database, where other nodes
//! commit too) a short re-check.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kura_core::names::SecretRef;
use kura_core::{Error, Result};
use kura_store::{AuditQuery, AuditRecord};
use tokio::sync::watch;

use super::types::{WatchChange, WatchSecretsRequest, WatchSecretsResponse};
use super::{Caller, Service};

const DEFAULT_WAIT_SECONDS: i64 = 20;
const MAX_WAIT_SECONDS: i64 = 60;
const DEFAULT_MAX_RESULTS: i64 = 100;
/// Audit records read per query while scanning for changes.
const SCAN_PAGE: usize = 1000;
/// Pages one call reads at most: a cursor far behind is caught up over several calls, each
/// answering promptly with the cursor moved on.
const SCAN_PAGES: usize = 50;
/// How often a waiting call looks at a shared database for other nodes' changes.
const CLUSTER_RECHECK: Duration = Duration::from_millis(400);

/// What wakes waiting watches.
pub(crate) struct WatchHub {
    /// The sequence number of the last change record this process saw commit.
    changed: Arc<watch::Sender<i64>>,
    /// Set at shutdown: waiting watches answer at once.
    stopping: watch::Sender<bool>,
}

impl Default for WatchHub {
    fn default() -> Self {
        WatchHub {
            changed: Arc::new(watch::Sender::new(0)),
            stopping: watch::Sender::new(false),
        }
    }
}

impl WatchHub {
    /// The audit log's observer: raises the signal when a commit holds a change record.
    pub(crate) fn observer(&self) -> kura_audit::Observer {
        let changed = self.changed.clone();
        Box::new(move |records: &[AuditRecord]| {
            if let Some(last) = records.iter().rev().find(|r| classify(r).is_some()) {
                changed.send_replace(last.seq);
            }
        })
    }
}

/// What an audit record says happened to a secret, if it records a change to one.
pub(crate) fn classify(r: &AuditRecord) -> Option<&'static str> {
    if r.outcome != "Success" || r.decision == "Deny" {
        return None;
    }
    Some(match r.action.as_str() {
        "secretsmanager:CreateSecret" => "Created",
        "secretsmanager:PutSecretValue" => "ValueChanged",
        // UpdateSecret names a version only when it stored a new value.
        "secretsmanager:UpdateSecret" if r.version_id.is_some() => "ValueChanged",
        "secretsmanager:UpdateSecret" => "MetadataChanged",
        "secretsmanager:UpdateSecretVersionStage" => "StagesMoved",
        "secretsmanager:RotateSecret" => "RotationStarted",
        // The engine writes this record after the step moved AWSCURRENT.
        "rotation:finishSecret" => "Rotated",
        "secretsmanager:CancelRotateSecret"
        | "secretsmanager:TagResource"
        | "secretsmanager:UntagResource"
        | "secretsmanager:PutResourcePolicy"
        | "secretsmanager:DeleteResourcePolicy" => "MetadataChanged",
        "secretsmanager:DeleteSecret" => "Deleted",
        "secretsmanager:RestoreSecret" => "Restored",
        "job:PurgeSecret" => "Purged",
        _ => return None,
    })
}

/// The name in a secret's ARN (`…:secret:NAME-AbCdEf`).
fn name_of_arn(arn: &str) -> &str {
    let tail = arn.rsplit_once(":secret:").map(|(_, t)| t).unwrap_or(arn);
    match tail.len().checked_sub(7) {
        Some(i) if tail.is_char_boundary(i) && tail[i..].starts_with('-') => &tail[..i],
        _ => tail,
    }
}

/// Whether a `SecretIds` entry (a name, a full ARN or an ARN without its suffix) names
/// the secret `arn`.
fn names(id: &str, arn: &str, name: &str) -> bool {
    if id.starts_with("arn:") {
        id == arn || (arn.starts_with(id) && arn.len() == id.len() + 7)
    } else {
        id == name
    }
}

impl Service {
    /// Wakes every waiting watch (shutdown): each answers with what it has.
    pub fn stop_watches(&self) {
        self.watch.stopping.send_replace(true);
    }

    pub(crate) fn watch_observer(&self) -> kura_audit::Observer {
        self.watch.observer()
    }

    pub async fn watch_secrets(
        &self,
        c: &Caller,
        req: WatchSecretsRequest,
    ) -> Result<WatchSecretsResponse> {
        let wait = match req.wait_seconds {
            None => DEFAULT_WAIT_SECONDS,
            Some(n @ 0..=MAX_WAIT_SECONDS) => n,
            Some(n) => {
                return Err(Error::invalid_parameter(format!(
                    "WaitSeconds must be between 0 and {MAX_WAIT_SECONDS}; got {n}."
                )));
            }
        };
        let limit = match req.max_results {
            None => DEFAULT_MAX_RESULTS as usize,
            Some(n @ 1..=1000) => n as usize,
            Some(n) => {
                return Err(Error::invalid_parameter(format!(
                    "MaxResults must be between 1 and 1000; got {n}."
                )));
            }
        };
        let ids = req.secret_ids.unwrap_or_default();
        for id in &ids {
            SecretRef::parse(id)?;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
        // Subscribed before the first read, so a change committing in between still wakes us.
        let mut changed = self.watch.changed.subscribe();
        let mut stopping = self.watch.stopping.subscribe();
        let head = self.store.last_audit().await?.map(|r| r.seq).unwrap_or(0);
        let mut cursor = match req.cursor.as_deref() {
            None => head,
            Some(t) => t.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                Error::invalid_parameter(format!(
                    "Cursor {t:?} is not a cursor WatchSecrets answered; leave it out to watch from now."
                ))
            })?,
        };
        if cursor > head {
            // Not this trail's cursor (another installation, or a database restored from an
            // older backup): the caller cannot know what it missed.
            return Ok(WatchSecretsResponse {
                changes: Vec::new(),
                cursor: head.to_string(),
                reset: true,
            });
        }
        let clustered = self.store.changes().is_some();
        let mut allowed: HashMap<String, bool> = HashMap::new();
        loop {
            changed.borrow_and_update();
            let (changes, more) = self.scan(c, &ids, &mut cursor, limit, &mut allowed).await?;
            let now = tokio::time::Instant::now();
            if !changes.is_empty() || more || now >= deadline || *stopping.borrow_and_update() {
                return Ok(WatchSecretsResponse {
                    changes,
                    cursor: cursor.to_string(),
                    reset: false,
                });
            }
            let recheck = if clustered {
                now + CLUSTER_RECHECK
            } else {
                deadline
            };
            tokio::select! {
                _ = changed.changed() => {}
                _ = stopping.changed() => {}
                _ = tokio::time::sleep_until(recheck.min(deadline)) => {}
            }
        }
    }

    /// The changes after `cursor` the caller may see, at most `limit`; moves `cursor` past
    /// what was read. `true` when records are left to read (SCAN_PAGES were read).
    async fn scan(
        &self,
        c: &Caller,
        ids: &[String],
        cursor: &mut i64,
        limit: usize,
        allowed: &mut HashMap<String, bool>,
    ) -> Result<(Vec<WatchChange>, bool)> {
        let mut out = Vec::new();
        for _ in 0..SCAN_PAGES {
            let page = self
                .store
                .query_audit(&AuditQuery {
                    after_seq: Some(*cursor),
                    limit: SCAN_PAGE,
                    ..Default::default()
                })
                .await?;
            let full = page.len() == SCAN_PAGE;
            for r in page {
                if let Some(change) = classify(&r)
                    && let Some(w) = self.visible(c, ids, &r, change, allowed).await?
                {
                    out.push(w);
                }
                *cursor = r.seq;
                if out.len() == limit {
                    return Ok((out, false));
                }
            }
            if !full {
                return Ok((out, false));
            }
        }
        Ok((out, true))
    }

    /// A change record as the caller may see it: only for secrets it may describe.
    async fn visible(
        &self,
        c: &Caller,
        ids: &[String],
        r: &AuditRecord,
        change: &str,
        allowed: &mut HashMap<String, bool>,
    ) -> Result<Option<WatchChange>> {
        // A request that failed to name an ARN in its answer (TagResource answers nothing)
        // is recorded with the id as sent.
        let found = match SecretRef::parse(&r.resource) {
            Ok(secret) => self.store.find_secret(&secret).await?,
            Err(_) => return Ok(None),
        };
        let arn = match (&found, r.resource.starts_with("arn:")) {
            (Some(s), _) => s.arn.clone(),
            (None, true) => r.resource.clone(),
            (None, false) => return Ok(None),
        };
        let name = found
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_else(|| name_of_arn(&arn).to_string());
        if !ids.is_empty() && !ids.iter().any(|id| names(id, &arn, &name)) {
            return Ok(None);
        }
        let may = match allowed.get(&arn) {
            Some(may) => *may,
            None => {
                let action = "secretsmanager:DescribeSecret";
                let may = match &found {
                    Some(s) => self.authorize_on_secret(c, action, s).await.is_ok(),
                    None => self.authorize_on_arn(c, action, &arn).await.is_ok(),
                };
                allowed.insert(arn.clone(), may);
                may
            }
        };
        if !may {
            return Ok(None);
        }
        Ok(Some(WatchChange {
            seq: r.seq,
            time: r.time as f64 / 1000.0,
            arn,
            name,
            change: change.to_string(),
            action: r.action.clone(),
            version_id: r.version_id.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_arns_without_their_suffix() {
        let arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-AbCdEf";
        assert_eq!(name_of_arn(arn), "prod/db");
        assert!(names("prod/db", arn, "prod/db"));
        assert!(names(arn, arn, "prod/db"));
        assert!(names(
            "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db",
            arn,
            "prod/db"
        ));
        assert!(!names("prod", arn, "prod/db"));
        assert!(!names(
            "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod",
            arn,
            "prod/db"
        ));
    }

    #[test]
    fn only_successful_writes_are_changes() {
        let r = |action: &str, outcome: &str| AuditRecord {
            action: action.into(),
            outcome: outcome.into(),
            decision: "Allow".into(),
            ..Default::default()
        };
        assert_eq!(
            classify(&r("secretsmanager:PutSecretValue", "Success")),
            Some("ValueChanged")
        );
        assert_eq!(
            classify(&r("rotation:finishSecret", "Success")),
            Some("Rotated")
        );
        assert_eq!(classify(&r("secretsmanager:PutSecretValue", "Error")), None);
        assert_eq!(
            classify(&r("secretsmanager:GetSecretValue", "Success")),
            None
        );
        assert_eq!(
            classify(&r("secretsmanager:UpdateSecret", "Success")),
            Some("MetadataChanged")
        );
    }
}
