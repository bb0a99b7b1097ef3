//! Notifications: events about secrets, queued in the database (the outbox) and POSTed,
//! signed, to every subscribed target, with retries.

use kura_core::model::OutboxEvent;
use kura_core::{Error, Result, Timestamp};
use kura_rotation::functions::webhook::post_signed;
use kura_store::NotificationTargetRecord;
use zeroize::Zeroizing;

use super::functions::validate_hook_url;
use crate::service::types::*;
use crate::service::{Caller, Service, new_uuid};

const DELIVERY_BATCH: usize = 16;
/// How long a node holds the items it is delivering: every POST of a batch timing out (30 s
/// each), and a minute more. A node that dies lets them come due again after that.
const DELIVERY_CLAIM_MS: i64 = DELIVERY_BATCH as i64 * 30_000 + 60_000;
/// A target that keeps failing gets this many tries per event.
const MAX_DELIVERY_ATTEMPTS: i64 = 8;
const DELIVERY_BACKOFF_MS: i64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    RotationStarted,
    RotationSucceeded,
    RotationFailed,
    SecretValueChanged,
    SecretScheduledForDeletion,
    SecretDeleted,
    /// Days before the secret's expiration (each target names the days; see `ExpiringDays`).
    SecretExpiring,
    SecretExpired,
}

impl Event {
    pub const ALL: [Event; 8] = [
        Event::RotationStarted,
        Event::RotationSucceeded,
        Event::RotationFailed,
        Event::SecretValueChanged,
        Event::SecretScheduledForDeletion,
        Event::SecretDeleted,
        Event::SecretExpiring,
        Event::SecretExpired,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Event::RotationStarted => "RotationStarted",
            Event::RotationSucceeded => "RotationSucceeded",
            Event::RotationFailed => "RotationFailed",
            Event::SecretValueChanged => "SecretValueChanged",
            Event::SecretScheduledForDeletion => "SecretScheduledForDeletion",
            Event::SecretDeleted => "SecretDeleted",
            Event::SecretExpiring => "SecretExpiring",
            Event::SecretExpired => "SecretExpired",
        }
    }
}

pub(crate) fn target_context(id: &str) -> Vec<u8> {
    format!("kura/notification-target/{id}").into_bytes()
}

fn entry(t: &NotificationTargetRecord) -> NotificationTargetEntry {
    NotificationTargetEntry {
        target_id: t.id.clone(),
        url: t.url.clone(),
        events: t.events.clone(),
        expiring_days: (!t.expiring_days.is_empty()).then(|| t.expiring_days.clone()),
        created_date: t.created_at,
    }
}

/// A target's `ExpiringDays`: only with `SecretExpiring`, each from 1 to 365, at most 10;
/// the default 30, 7 and 1. Largest first, without repeats.
fn expiring_days(events: &[String], asked: Option<Vec<i64>>) -> Result<Vec<i64>> {
    use kura_core::expiry::{DEFAULT_NOTICE_DAYS, MAX_NOTICE_DAYS};
    let wanted = events.iter().any(|e| e == Event::SecretExpiring.as_str());
    let mut days = match (wanted, asked) {
        (false, None) => return Ok(Vec::new()),
        (false, Some(_)) => {
            return Err(Error::invalid_parameter(
                "ExpiringDays is for targets of SecretExpiring: add it to Events, or leave ExpiringDays out.",
            ));
        }
        (true, None) => DEFAULT_NOTICE_DAYS.to_vec(),
        (true, Some(d)) => d,
    };
    if days.is_empty() || days.len() > 10 {
        return Err(Error::invalid_parameter(
            "ExpiringDays must list 1 to 10 numbers of days (e.g. [30, 7, 1]).",
        ));
    }
    if let Some(bad) = days.iter().find(|d| !(1..=MAX_NOTICE_DAYS).contains(*d)) {
        return Err(Error::invalid_parameter(format!(
            "ExpiringDays {bad} is out of range: each must be from 1 to {MAX_NOTICE_DAYS} days."
        )));
    }
    days.sort_unstable_by(|a, b| b.cmp(a));
    days.dedup();
    Ok(days)
}

impl Service {
    /// An event about a secret, ready for the outbox. Changes made with `Store::modify` put it
    /// into their state (`st.events`), so the change and its notification commit together.
    pub(crate) fn event(
        &self,
        event: Event,
        arn: &str,
        name: &str,
        version_id: Option<&str>,
        error: Option<&str>,
    ) -> OutboxEvent {
        let now = self.clock.now();
        let mut body = serde_json::json!({
            "EventId": new_uuid(),
            "Event": event.as_str(),
            "Time": now.epoch_seconds(),
            "ARN": arn,
            "Name": name,
        });
        if let Some(v) = version_id {
            body["VersionId"] = v.into();
        }
        if let Some(e) = error {
            body["Error"] = e.into();
        }
        OutboxEvent {
            event: event.as_str().to_string(),
            body: body.to_string(),
            at: now,
        }
    }

    /// `SecretExpiring` (`days` before) or, without `days`, `SecretExpired`, for the secret
    /// expiring at `expires`. A `SecretExpiring` is queued by its days too (targets hear only
    /// the days they asked for).
    pub(crate) fn expiry_event(
        &self,
        arn: &str,
        name: &str,
        expires: Timestamp,
        days: Option<i64>,
    ) -> OutboxEvent {
        let kind = match days {
            Some(_) => Event::SecretExpiring,
            None => Event::SecretExpired,
        };
        let mut e = self.event(kind, arn, name, None, None);
        if let Ok(mut body) = serde_json::from_str::<serde_json::Value>(&e.body) {
            body["ExpirationDate"] = expires.epoch_seconds().into();
            if let Some(d) = days {
                body["DaysBefore"] = d.into();
            }
            e.body = body.to_string();
        }
        if let Some(d) = days {
            e.event = format!("{}:{d}", kind.as_str());
        }
        e
    }

    /// After events committed: every one is logged, and delivery is woken.
    pub(crate) fn announce(&self, events: &[OutboxEvent]) {
        for e in events {
            tracing::info!(event = %e.event, body = %e.body, "event");
        }
        if !events.is_empty() {
            self.rotation.kick();
        }
    }

    /// For changes made outside `Store::modify` (a secret destroyed): queues the event in a
    /// transaction of its own. A failure is logged, never returned: the change stands.
    pub(crate) async fn emit(
        &self,
        event: Event,
        arn: &str,
        name: &str,
        version_id: Option<&str>,
        error: Option<&str>,
    ) {
        let e = self.event(event, arn, name, version_id, error);
        if let Err(err) = self
            .store
            .enqueue_notification(&e.event, &e.body, e.at)
            .await
        {
            tracing::error!(event = %e.event, detail = ?err, "cannot queue a notification");
            return;
        }
        self.announce(std::slice::from_ref(&e));
    }

    /// Sends what is due in the outbox; one failing target does not hold up the others.
    pub(crate) async fn deliver_notifications(&self) -> Result<()> {
        let _one_pass = self.rotation.delivering.lock().await;
        let now = self.clock.now();
        // Claimed, so of several nodes on one database only one delivers an item.
        let due = self
            .store
            .claim_notifications(now, now.plus_ms(DELIVERY_CLAIM_MS), DELIVERY_BATCH)
            .await?;
        if due.is_empty() {
            return Ok(());
        }
        let targets = self.store.list_notification_targets().await?;
        for item in due {
            let Some(t) = targets.iter().find(|t| t.id == item.target_id) else {
                self.store.finish_notification(item.id).await?;
                continue;
            };
            let secret = self.open_internal(&target_context(&t.id), &t.sealed_secret)?;
            match post_signed(
                self.rotation.http(),
                self.clock.now(),
                &t.url,
                &secret,
                "notification",
                item.body.clone(),
            )
            .await
            {
                Ok(()) => self.store.finish_notification(item.id).await?,
                Err(e) if item.attempts + 1 >= MAX_DELIVERY_ATTEMPTS => {
                    tracing::warn!(target_id = %t.id, error = %e, "giving up on a notification");
                    self.store.finish_notification(item.id).await?;
                }
                Err(e) => {
                    let wait = DELIVERY_BACKOFF_MS << item.attempts.clamp(0, 10);
                    let at: Timestamp = self.clock.now().plus_ms(wait);
                    tracing::info!(target_id = %t.id, error = %e, "notification not delivered; will retry");
                    self.store.retry_notification(item.id, at, &e).await?;
                }
            }
        }
        Ok(())
    }

    pub async fn create_notification_target(
        &self,
        p: &Caller,
        req: CreateNotificationTargetRequest,
    ) -> Result<CreateNotificationTargetResponse> {
        validate_hook_url("Url", &req.url)?;
        if req.events.is_empty() {
            return Err(Error::invalid_parameter(format!(
                "Events must list at least one of {}.",
                Event::ALL.map(Event::as_str).join(", ")
            )));
        }
        for e in &req.events {
            if !Event::ALL.iter().any(|k| k.as_str() == e) {
                return Err(Error::invalid_parameter(format!(
                    "Event {e:?} is unknown; kura sends {}.",
                    Event::ALL.map(Event::as_str).join(", ")
                )));
            }
        }
        let (secret, generated) = match req.signing_secret {
            Some(s) if s.0.len() >= 16 => (s.0, false),
            Some(_) => {
                return Err(Error::invalid_parameter(
                    "SigningSecret must be at least 16 characters; omit it to have kura generate one.",
                ));
            }
            None => (Zeroizing::new(kura_crypto::random::alnum(40)?), true),
        };
        let expiring_days = expiring_days(&req.events, req.expiring_days)?;
        let id = new_uuid();
        let sealed_secret = self.seal_internal(&target_context(&id), secret.as_bytes())?;
        let mut events = req.events.clone();
        events.sort();
        events.dedup();
        let rec = NotificationTargetRecord {
            id,
            url: req.url,
            events,
            expiring_days,
            sealed_secret,
            created_at: self.clock.now(),
        };
        self.store
            .insert_notification_target(&rec, &p.audit)
            .await?;
        tracing::info!(target_id = %rec.id, url = %rec.url, by = %p.arn, "notification target created");
        Ok(CreateNotificationTargetResponse {
            target: entry(&rec),
            signing_secret: generated.then_some(SecretText(secret)),
        })
    }

    pub async fn list_notification_targets(
        &self,
        _p: &Caller,
        _req: Empty,
    ) -> Result<ListNotificationTargetsResponse> {
        Ok(ListNotificationTargetsResponse {
            notification_targets: self
                .store
                .list_notification_targets()
                .await?
                .iter()
                .map(entry)
                .collect(),
        })
    }

    pub async fn delete_notification_target(
        &self,
        p: &Caller,
        req: TargetIdRequest,
    ) -> Result<Empty> {
        if !self
            .store
            .delete_notification_target(&req.target_id, &p.audit)
            .await?
        {
            return Err(Error::not_found(format!(
                "The notification target {} does not exist.",
                req.target_id
            )));
        }
        tracing::info!(target_id = %req.target_id, by = %p.arn, "notification target deleted");
        Ok(Empty {})
    }
}
