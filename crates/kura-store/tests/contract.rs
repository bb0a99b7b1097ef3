//! The store contract: what the service layer relies on from any [`Store`], checked without a
//! server. Each behaviour is a function taking `&dyn Store` on an empty store, so a second
//! backend runs the same suite by adding its own `backend_tests!` line.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Instant;

mod common;

use common::{PgDatabase, with_database};
use kura_core::filter::{self, FilterKey, ListFilter};
use kura_core::labels::Stages;
use kura_core::model::{
    NewVersion, OutboxEvent, RotationPhase, SealedValue, SecretRecord, Tag, ValueKind,
};
use kura_core::names::SecretRef;
use kura_core::{ManualClock, Timestamp};
use kura_store::prelude::*;
use kura_store::{
    AccessKeyRecord, AcmeAccountRecord, AuditChain, AuditDraft, AuditQuery, AuditRecord, AuditSlot,
    AuthorityRecord, Cursor, IssuedCertificateRecord, KeyPlace, KeyRewrap, KmsKeyRecord, ListPage,
    ListQuery, NO_AUDIT, NotificationTargetRecord, PgStore, SessionCutoff, SessionRecord,
    SettingSwap, SortKey, SqliteStore, Store, TemplateRecord, UserRecord, VersionSelector,
};

const T0: Timestamp = Timestamp(1_800_000_000_000);
const MINUTE: i64 = 60_000;

// ---------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------

fn record(name: &str) -> SecretRecord {
    SecretRecord {
        id: 0,
        name: name.to_string(),
        arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"),
        description: None,
        kms_key_id: None,
        created_at: T0,
        changed_at: T0,
        accessed_at: None,
        deleted_at: None,
        purge_at: None,
        resource_policy: None,
        tags: Vec::new(),
        tagged: false,
        rotation: Default::default(),
        run: Default::default(),
        expires_at: None,
        expiry_notice_at: None,
    }
}

/// A stand-in for a sealed value: the store keeps the bytes opaque, so any bytes do.
fn sealed(marker: &str) -> SealedValue {
    SealedValue {
        kind: ValueKind::String,
        ciphertext: marker.as_bytes().to_vec(),
        wrapped_key: b"wrapped".to_vec(),
        key_name: "root".into(),
        key_version: 1,
    }
}

fn version(id: &str, marker: Option<&str>) -> NewVersion {
    NewVersion {
        version_id: id.into(),
        created_at: T0,
        value: marker.map(sealed),
    }
}

fn stages(pairs: &[(&str, &str)]) -> Stages {
    pairs
        .iter()
        .map(|(s, v)| (s.to_string(), v.to_string()))
        .collect()
}

/// Creates `name` with version `v1` labelled AWSCURRENT; returns its id.
async fn create(store: &dyn Store, name: &str) -> i64 {
    store
        .create_secret(
            &record(name),
            Some(&version("v1", Some("value-1"))),
            &stages(&[("AWSCURRENT", "v1")]),
            &NO_AUDIT,
        )
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e:?}"))
}

async fn stages_now(store: &dyn Store, id: i64) -> Stages {
    store.versions(id).await.unwrap().1
}

async fn version_ids(store: &dyn Store, id: i64) -> Vec<String> {
    let mut ids: Vec<String> = store
        .versions(id)
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|v| v.version_id)
        .collect();
    ids.sort();
    ids
}

// ---------------------------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------------------------

/// Labels move through `modify` as one change: a new version and its labels commit together,
/// a failing mutation leaves nothing behind, and a version the mutation drops is pruned.
async fn label_moves(store: &dyn Store) {
    let id = create(store, "labels/app").await;
    assert_eq!(stages_now(store, id).await, stages(&[("AWSCURRENT", "v1")]));

    let state = store
        .modify(
            id,
            &mut |st| {
                st.new_versions.push(version("v2", Some("value-2")));
                st.stages.insert("AWSCURRENT".into(), "v2".into());
                st.stages.insert("AWSPREVIOUS".into(), "v1".into());
                st.stages.insert("blue".into(), "v1".into());
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    assert_eq!(state.stages["AWSCURRENT"], "v2");
    let expected = stages(&[("AWSCURRENT", "v2"), ("AWSPREVIOUS", "v1"), ("blue", "v1")]);
    assert_eq!(stages_now(store, id).await, expected);
    assert_eq!(version_ids(store, id).await, ["v1", "v2"]);
    let current = store
        .read_version(id, VersionSelector::Stage("AWSCURRENT"))
        .await
        .unwrap()
        .expect("AWSCURRENT");
    assert_eq!(current.meta.version_id, "v2");
    assert_eq!(current.value, Some(sealed("value-2")));
    let mut labels = current.stages.clone();
    labels.sort();
    assert_eq!(labels, ["AWSCURRENT"]);
    let previous = store
        .read_version(id, VersionSelector::Id("v1"))
        .await
        .unwrap()
        .expect("v1");
    let mut labels = previous.stages.clone();
    labels.sort();
    assert_eq!(labels, ["AWSPREVIOUS", "blue"]);

    // A custom label moves alone.
    store
        .modify(
            id,
            &mut |st| {
                st.stages.insert("blue".into(), "v2".into());
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    assert_eq!(stages_now(store, id).await["blue"], "v2");

    // An error from the mutation rolls back its version, its labels and its events.
    let err = store
        .modify(
            id,
            &mut |st| {
                st.new_versions.push(version("v3", Some("value-3")));
                st.stages.insert("AWSCURRENT".into(), "v3".into());
                st.events.push(OutboxEvent {
                    event: "SecretValueChanged".to_string(),
                    body: "{}".into(),
                    at: T0,
                });
                Err(kura_core::Error::invalid_request("refused by the test"))
            },
            &NO_AUDIT,
        )
        .await
        .expect_err("the mutation failed");
    assert_eq!(err.message, "refused by the test");
    assert_eq!(version_ids(store, id).await, ["v1", "v2"]);
    assert_eq!(stages_now(store, id).await["AWSCURRENT"], "v2");
    assert!(
        store
            .read_version(id, VersionSelector::Id("v3"))
            .await
            .unwrap()
            .is_none()
    );

    // A version dropped from `versions` (with no label) is pruned.
    store
        .modify(
            id,
            &mut |st| {
                st.stages.remove("AWSPREVIOUS");
                st.versions.retain(|v| v.version_id != "v1");
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    assert_eq!(version_ids(store, id).await, ["v2"]);
    assert_eq!(
        stages_now(store, id).await,
        stages(&[("AWSCURRENT", "v2"), ("blue", "v2")])
    );
}

/// Creating twice is refused with ResourceExistsException (by name, and by ARN); a value-less
/// placeholder is filled in place; a mutation that changes nothing changes nothing.
/// A change sees the secret's versions as `versions` lists them: oldest first, those of one
/// millisecond in the order they were written (not by id), each with what it holds (a
/// placeholder has no value).
async fn versions_a_change_sees(store: &dyn Store) {
    let id = create(store, "versions/order").await;
    store
        .modify(
            id,
            &mut |st| {
                // Written after v1 in the same millisecond, yet sorting before it by id.
                st.new_versions.push(version("v0", Some("value-0")));
                st.new_versions.push(version("pending", None));
                st.stages.insert("AWSCURRENT".into(), "v0".into());
                st.stages.insert("AWSPREVIOUS".into(), "v1".into());
                st.stages.insert("AWSPENDING".into(), "pending".into());
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    let listed = store.versions(id).await.unwrap().0;
    let ids: Vec<&str> = listed.iter().map(|v| v.version_id.as_str()).collect();
    assert_eq!(ids, ["v1", "v0", "pending"]);
    assert_eq!(
        listed.iter().map(|v| v.has_value).collect::<Vec<_>>(),
        [true, true, false]
    );
    let mut seen = Vec::new();
    let state = store
        .modify(
            id,
            &mut |st| {
                seen = st.versions.clone();
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    assert_eq!(seen, listed);
    assert_eq!(state.stages, stages_now(store, id).await);
}

async fn idempotency(store: &dyn Store) {
    let id = create(store, "idem/app").await;
    let again = store
        .create_secret(
            &record("idem/app"),
            Some(&version("other", Some("value-x"))),
            &stages(&[("AWSCURRENT", "other")]),
            &NO_AUDIT,
        )
        .await
        .expect_err("a taken name");
    assert_eq!(again.code.as_str(), "ResourceExistsException");
    let mut same_arn = record("idem/other-name");
    same_arn.arn = record("idem/app").arn;
    let again = store
        .create_secret(&same_arn, None, &Stages::new(), &NO_AUDIT)
        .await
        .expect_err("a taken ARN");
    assert_eq!(again.code.as_str(), "ResourceExistsException");
    assert!(
        store
            .find_secret(&SecretRef::Name("idem/other-name".into()))
            .await
            .unwrap()
            .is_none(),
        "a refused create leaves nothing"
    );
    let found = store
        .find_secret(&SecretRef::Name("idem/app".into()))
        .await
        .unwrap()
        .expect("by name");
    assert_eq!(found.id, id);

    // A placeholder (rotation's AWSPENDING before createSecret ran) is filled, not duplicated.
    store
        .modify(
            id,
            &mut |st| {
                st.new_versions.push(version("pending", None));
                st.stages.insert("AWSPENDING".into(), "pending".into());
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    let (metas, _) = store.versions(id).await.unwrap();
    let pending = metas.iter().find(|v| v.version_id == "pending").unwrap();
    assert!(!pending.has_value);
    store
        .modify(
            id,
            &mut |st| {
                st.new_versions
                    .push(version("pending", Some("value-pending")));
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    let (metas, stages_after) = store.versions(id).await.unwrap();
    assert_eq!(
        metas.iter().filter(|v| v.version_id == "pending").count(),
        1
    );
    assert!(
        metas
            .iter()
            .find(|v| v.version_id == "pending")
            .unwrap()
            .has_value
    );
    assert_eq!(stages_after["AWSPENDING"], "pending");
    let read = store
        .read_version(id, VersionSelector::Stage("AWSPENDING"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.value, Some(sealed("value-pending")));

    // Nothing changed: the same state comes back.
    let before = store.versions(id).await.unwrap().1;
    store.modify(id, &mut |_| Ok(()), &NO_AUDIT).await.unwrap();
    store.modify(id, &mut |_| Ok(()), &NO_AUDIT).await.unwrap();
    assert_eq!(store.versions(id).await.unwrap().1, before);
    assert_eq!(store.versions(id).await.unwrap().0.len(), metas.len());
}

async fn list_all(
    store: &dyn Store,
    sort: SortKey,
    descending: bool,
    limit: usize,
) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut after: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_secrets(&ListQuery {
                include_deleted: false,
                filters: Vec::new(),
                sort,
                descending,
                limit,
                after: after.clone(),
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.secrets.len() <= limit);
        names.extend(page.secrets.into_iter().map(|(s, _)| s.name));
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
        assert!(pages <= 100, "paging does not end");
    }
    (names, pages)
}

/// Pages chained by their cursors list every live secret once, in order, both ways, with
/// ties on the sort key broken by id; deleted secrets are left out unless asked for.
async fn pagination(store: &dyn Store) {
    let names = ["p/c", "p/a", "p/g", "p/e", "p/b", "p/f", "p/d"];
    for (i, name) in names.iter().enumerate() {
        let mut r = record(name);
        // Pairs share a creation time: the cursor must break the tie.
        r.created_at = Timestamp(T0.0 + (i as i64 / 2) * 1000);
        store
            .create_secret(
                &r,
                Some(&version("v1", Some("x"))),
                &stages(&[("AWSCURRENT", "v1")]),
                &NO_AUDIT,
            )
            .await
            .unwrap();
    }
    let mut sorted: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    let (listed, pages) = list_all(store, SortKey::Name, false, 3).await;
    assert_eq!(listed, sorted);
    assert_eq!(pages, 3);
    let (listed, _) = list_all(store, SortKey::Name, true, 2).await;
    let mut reversed = sorted.clone();
    reversed.reverse();
    assert_eq!(listed, reversed);
    let (listed, _) = list_all(store, SortKey::Created, false, 2).await;
    assert_eq!(listed, names, "creation order, ties by id");
    let (listed, _) = list_all(store, SortKey::Created, true, 3).await;
    let mut newest_first: Vec<&str> = names.to_vec();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    // Exactly one page: no cursor.
    let (listed, pages) = list_all(store, SortKey::Name, false, 7).await;
    assert_eq!((listed.len(), pages), (7, 1));

    // Deleted ones are skipped unless asked for.
    let id = store
        .find_secret(&SecretRef::Name("p/d".into()))
        .await
        .unwrap()
        .unwrap()
        .id;
    store
        .modify(
            id,
            &mut |st| {
                st.secret.deleted_at = Some(T0);
                st.secret.purge_at = Some(T0.plus_ms(7 * 86_400_000));
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    let (listed, _) = list_all(store, SortKey::Name, false, 2).await;
    assert!(!listed.contains(&"p/d".to_string()));
    assert_eq!(listed.len(), 6);
    let page = store
        .list_secrets(&ListQuery {
            include_deleted: true,
            filters: Vec::new(),
            sort: SortKey::Name,
            descending: false,
            limit: 100,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(page.secrets.len(), 7);
    assert!(store.due_for_purge(T0, 10).await.unwrap().is_empty());
    assert_eq!(
        store
            .due_for_purge(T0.plus_ms(7 * 86_400_000), 10)
            .await
            .unwrap(),
        [id]
    );
}

/// A scheduled rotation is overdue once its window closed with no cycle started, leased or
/// not, or while its cycle runs past the window's end; not while the window is open, nor
/// once the cycle ended.
async fn overdue_rotations(store: &dyn Store) {
    let hour = 60 * MINUTE;
    let end = T0.plus_ms(hour);
    let late = create(store, "overdue/late").await;
    let running = create(store, "overdue/running").await;
    create(store, "overdue/idle").await;
    store
        .modify(
            late,
            &mut |st| {
                st.secret.rotation.enabled = true;
                st.secret.rotation.next_rotation_at = Some(T0);
                st.secret.rotation.next_rotation_end = Some(end);
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    store
        .modify(
            running,
            &mut |st| {
                st.secret.run.phase = RotationPhase::InProgress;
                st.secret.run.token = Some("v2".into());
                st.secret.run.attempt = 1;
                st.secret.run.resume_at = Some(T0);
                st.secret.run.window_end = Some(end);
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    let overdue = async |at: Timestamp, limit: usize| {
        let mut ids = store.rotation_overdue(at, limit).await.unwrap();
        ids.sort();
        ids
    };
    assert!(overdue(T0, 10).await.is_empty(), "the window is open");
    assert!(overdue(end.plus_ms(-1), 10).await.is_empty());
    assert_eq!(overdue(end, 10).await, [late, running]);
    assert_eq!(overdue(end, 1).await.len(), 1, "counted up to the limit");
    // A lease (a node that took it and is gone) does not make it on time.
    assert!(
        store
            .claim_rotation(late, "gone", end, end.plus_ms(hour))
            .await
            .unwrap()
    );
    assert_eq!(overdue(end, 10).await, [late, running]);
    // Both ran: the next window is tomorrow.
    store
        .modify(
            late,
            &mut |st| {
                st.secret.rotation.next_rotation_at = Some(T0.plus_ms(24 * hour));
                st.secret.rotation.next_rotation_end = Some(end.plus_ms(24 * hour));
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    store
        .modify(
            running,
            &mut |st| {
                st.secret.run.phase = RotationPhase::Succeeded;
                st.secret.run.resume_at = None;
                st.secret.run.window_end = None;
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    assert!(overdue(end.plus_ms(hour), 10).await.is_empty());
}

/// A rotation lease is held by one owner until released or expired; a held secret is not due.
async fn leases(store: &dyn Store) {
    let id = create(store, "lease/app").await;
    // A secret with nothing due: never listed below.
    create(store, "lease/idle").await;
    store
        .modify(
            id,
            &mut |st| {
                st.secret.run.phase = RotationPhase::InProgress;
                st.secret.run.token = Some("v2".into());
                st.secret.run.attempt = 1;
                st.secret.run.resume_at = Some(T0);
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    assert_eq!(
        store.rotation_due(T0.plus_ms(-1), 10).await.unwrap(),
        Vec::<i64>::new()
    );
    assert_eq!(store.rotation_due(T0, 10).await.unwrap(), [id]);

    let until = T0.plus_ms(MINUTE);
    assert!(store.claim_rotation(id, "a", T0, until).await.unwrap());
    assert!(
        !store.claim_rotation(id, "b", T0, until).await.unwrap(),
        "held by a"
    );
    assert!(
        store.rotation_due(T0, 10).await.unwrap().is_empty(),
        "held: not due"
    );
    // The owner renews.
    assert!(
        store
            .claim_rotation(id, "a", T0, until.plus_ms(MINUTE))
            .await
            .unwrap()
    );
    // Another owner's release does nothing.
    store.release_rotation(id, "b").await.unwrap();
    assert!(
        !store
            .claim_rotation(id, "b", until, until.plus_ms(MINUTE))
            .await
            .unwrap()
    );
    // Expired: due again, and another owner may take it.
    let expired = until.plus_ms(MINUTE);
    assert_eq!(store.rotation_due(expired, 10).await.unwrap(), [id]);
    assert!(
        store
            .claim_rotation(id, "b", expired, expired.plus_ms(MINUTE))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_rotation(id, "a", expired, expired.plus_ms(MINUTE))
            .await
            .unwrap()
    );
    // Released by its owner: free at once.
    store.release_rotation(id, "b").await.unwrap();
    assert!(
        store
            .claim_rotation(id, "a", expired, expired.plus_ms(MINUTE))
            .await
            .unwrap()
    );
}

/// The keys the sweeper deletes at `now`: id, user, whether a rotation step's.
async fn swept(store: &dyn Store, now: Timestamp) -> Vec<(String, String, bool)> {
    store
        .delete_expired_access_keys(now)
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.access_key_id, k.user_name, k.step_key))
        .collect()
}

fn target(id: &str, events: &[&str]) -> NotificationTargetRecord {
    NotificationTargetRecord {
        id: id.into(),
        url: format!("http://127.0.0.1:9/{id}"),
        events: events.iter().map(|e| e.to_string()).collect(),
        expiring_days: Vec::new(),
        sealed_secret: sealed("signing"),
        created_at: T0,
    }
}

/// The outbox: one item per subscribed target, due at once; a retry counts the attempt and
/// waits; a finished item is gone; a deleted target takes its items with it; an event queued
/// in a failed `modify` is never queued.
async fn outbox(store: &dyn Store) {
    store
        .insert_notification_target(
            &target("t-a", &["SecretValueChanged", "RotationFailed"]),
            &NO_AUDIT,
        )
        .await
        .unwrap();
    store
        .insert_notification_target(&target("t-b", &["RotationFailed"]), &NO_AUDIT)
        .await
        .unwrap();
    store
        .insert_notification_target(&target("t-c", &["SecretValueChanged"]), &NO_AUDIT)
        .await
        .unwrap();
    let listed: Vec<String> = store
        .list_notification_targets()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");

    store
        .enqueue_notification("SecretValueChanged", r#"{"n":1}"#, T0)
        .await
        .unwrap();
    store
        .enqueue_notification("SecretDeleted", r#"{"n":2}"#, T0)
        .await
        .unwrap();
    let due = store.due_notifications(T0, 50).await.unwrap();
    let mut to: Vec<&str> = due.iter().map(|i| i.target_id.as_str()).collect();
    to.sort();
    assert_eq!(to, ["t-a", "t-c"], "only subscribers: {due:?}");
    assert!(
        due.iter()
            .all(|i| i.attempts == 0 && i.body == r#"{"n":1}"#)
    );
    assert!(
        store
            .due_notifications(T0.plus_ms(-1), 50)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.due_notifications(T0, 1).await.unwrap().len(),
        1,
        "the limit holds"
    );

    let a = due.iter().find(|i| i.target_id == "t-a").unwrap().id;
    let c = due.iter().find(|i| i.target_id == "t-c").unwrap().id;
    store
        .retry_notification(a, T0.plus_ms(30_000), "HTTP 500")
        .await
        .unwrap();
    store.finish_notification(c).await.unwrap();
    assert!(
        store
            .due_notifications(T0.plus_ms(29_999), 50)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store
        .due_notifications(T0.plus_ms(30_000), 50)
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!((due[0].id, due[0].attempts), (a, 1));
    store
        .retry_notification(a, T0.plus_ms(90_000), "HTTP 500")
        .await
        .unwrap();
    assert_eq!(
        store
            .due_notifications(T0.plus_ms(90_000), 50)
            .await
            .unwrap()[0]
            .attempts,
        2
    );

    // Deleting a target drops what was queued for it.
    assert!(
        store
            .delete_notification_target("t-a", &NO_AUDIT)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_notification_target("t-a", &NO_AUDIT)
            .await
            .unwrap()
    );
    assert!(
        store
            .due_notifications(T0.plus_ms(86_400_000), 50)
            .await
            .unwrap()
            .is_empty()
    );

    // Events travel with their change: a rolled-back modify queues nothing, a committed one does.
    let id = create(store, "outbox/app").await;
    let event = || OutboxEvent {
        event: "RotationFailed".to_string(),
        body: r#"{"n":3}"#.into(),
        at: T0,
    };
    let _ = store
        .modify(
            id,
            &mut |st| {
                st.events.push(event());
                Err(kura_core::Error::invalid_request("no"))
            },
            &NO_AUDIT,
        )
        .await
        .expect_err("refused");
    assert!(store.due_notifications(T0, 50).await.unwrap().is_empty());
    store
        .modify(
            id,
            &mut |st| {
                st.events.push(event());
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    let due = store.due_notifications(T0, 50).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(
        (due[0].target_id.as_str(), due[0].body.as_str()),
        ("t-b", r#"{"n":3}"#)
    );
}

/// One server alone on its database (SQLite): at start-up every lease belongs to a process
/// that is gone, so recovery frees them all and makes the steps they were running due now.
async fn single_server_recovery(store: &dyn Store) {
    let id = in_flight_rotation(store, "recover/app").await;
    let restart = T0.plus_ms(1);
    assert!(store.rotation_due(restart, 10).await.unwrap().is_empty());
    assert_eq!(store.recover_rotations(restart).await.unwrap(), 1);
    assert_eq!(store.rotation_due(restart, 10).await.unwrap(), [id]);
    assert!(
        store
            .claim_rotation(id, "c", restart, restart.plus_ms(MINUTE))
            .await
            .unwrap()
    );
}

/// Several nodes on one database (PostgreSQL): a lease at start-up may be a live node's, so
/// recovery releases nothing; the secret comes due when the lease expires.
async fn shared_database_recovery(store: &dyn Store) {
    let id = in_flight_rotation(store, "recover/app").await;
    let restart = T0.plus_ms(1);
    assert_eq!(store.recover_rotations(restart).await.unwrap(), 0);
    assert!(store.rotation_due(restart, 10).await.unwrap().is_empty());
    assert!(
        !store
            .claim_rotation(id, "c", restart, restart.plus_ms(MINUTE))
            .await
            .unwrap(),
        "still a's"
    );
    let expired = T0.plus_ms(MINUTE);
    assert!(
        store.rotation_due(expired, 10).await.unwrap().is_empty(),
        "resumes later"
    );
    let resume = T0.plus_ms(60 * MINUTE);
    assert_eq!(store.rotation_due(resume, 10).await.unwrap(), [id]);
    assert!(
        store
            .claim_rotation(id, "c", resume, resume.plus_ms(MINUTE))
            .await
            .unwrap()
    );
}

/// A secret whose rotation step (due to resume in an hour) is held by owner `a` until T0+1m.
async fn in_flight_rotation(store: &dyn Store, name: &str) -> i64 {
    let id = create(store, name).await;
    store
        .modify(
            id,
            &mut |st| {
                st.secret.run.phase = RotationPhase::InProgress;
                st.secret.run.token = Some("v2".into());
                st.secret.run.resume_at = Some(T0.plus_ms(60 * MINUTE));
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_rotation(id, "a", T0, T0.plus_ms(MINUTE))
            .await
            .unwrap()
    );
    id
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

fn f(key: FilterKey, values: &[&str]) -> ListFilter {
    ListFilter {
        key,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

/// Names listed for `filters`, one page at a time of `limit`.
async fn filtered(store: &dyn Store, filters: &[ListFilter], limit: usize) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut after = None;
    for _ in 0..100 {
        let page = store
            .list_secrets(&ListQuery {
                include_deleted: false,
                filters: filters.to_vec(),
                sort: SortKey::Name,
                descending: false,
                limit,
                after: after.take(),
            })
            .await
            .unwrap();
        names.extend(page.secrets.into_iter().map(|(s, _)| s.name));
        match page.next {
            Some(c) => after = Some(c),
            None => return names,
        }
    }
    panic!("paging does not end");
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// The first ten secrets by name, deleted ones left out.
async fn first_page_by_name(store: &dyn Store) -> ListPage {
    store
        .list_secrets(&ListQuery {
            include_deleted: false,
            filters: vec![],
            sort: SortKey::Name,
            descending: false,
            limit: 10,
            after: None,
        })
        .await
        .unwrap()
}

/// Tags come back in code point order of their keys on every backend, one secret read or
/// a page of them (PostgreSQL would otherwise sort by its locale: `_x a b B Z`).
async fn tag_order(store: &dyn Store) {
    let mut r = record("tagged");
    r.tags = ["b", "B", "a", "_x", "Z"]
        .iter()
        .map(|k| tag(k, "v"))
        .collect();
    store
        .create_secret(&r, None, &Stages::new(), &NO_AUDIT)
        .await
        .unwrap();
    let want = ["B", "Z", "_x", "a", "b"];
    let keys = |tags: &[Tag]| tags.iter().map(|t| t.key.clone()).collect::<Vec<_>>();
    let found = store
        .find_secret(&SecretRef::Name("tagged".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys(&found.tags), want, "one secret read");
    let page = first_page_by_name(store).await;
    assert_eq!(keys(&page.secrets[0].0.tags), want, "a page of secrets");
}

/// A page carries each secret as a read of it does: its row, its tags (values with quotes,
/// backslashes, control and non-ASCII characters kept as they are) and every label, on
/// secrets with several versions and labels, with none, and with no tags.
async fn page_contents(store: &dyn Store) {
    let mut r = record("page/full");
    r.description = Some("described".into());
    r.tags = vec![
        tag("quote\"key", "back\\slash"),
        tag("ctl", "a\u{1}b\tc\nd"),
        tag("uni", "蔵 é 🗝"),
        tag("empty", ""),
    ];
    let full = store
        .create_secret(
            &r,
            Some(&version("v1", Some("one"))),
            &stages(&[("AWSCURRENT", "v1")]),
            &NO_AUDIT,
        )
        .await
        .unwrap();
    store
        .modify(
            full,
            &mut |st| {
                st.new_versions.push(version("v2", Some("two")));
                st.stages = stages(&[
                    ("AWSCURRENT", "v2"),
                    ("AWSPREVIOUS", "v1"),
                    ("custom", "v2"),
                    ("AWSPENDING", "v1"),
                ]);
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    create(store, "page/plain").await;
    store
        .create_secret(&record("page/bare"), None, &Stages::new(), &NO_AUDIT)
        .await
        .unwrap();

    let page = first_page_by_name(store).await;
    let names: Vec<&str> = page.secrets.iter().map(|(s, _)| s.name.as_str()).collect();
    assert_eq!(names, ["page/bare", "page/full", "page/plain"]);
    for (listed, listed_stages) in &page.secrets {
        let read = store
            .find_secret(&SecretRef::Name(listed.name.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            format!("{listed:?}"),
            format!("{read:?}"),
            "{}",
            listed.name
        );
        assert_eq!(
            *listed_stages,
            stages_now(store, read.id).await,
            "{}",
            listed.name
        );
    }
    let (full_listed, full_stages) = &page.secrets[1];
    assert_eq!(full_listed.tags.len(), 4);
    assert_eq!(full_listed.tags[0], tag("ctl", "a\u{1}b\tc\nd"));
    assert_eq!(full_stages.len(), 4);
    assert!(page.secrets[0].0.tags.is_empty() && page.secrets[0].1.is_empty());
}

/// ListSecrets' filters: prefixes of name, tag key and tag value; words of the description
/// and of everything; negation; alternatives within a filter, conjunction across filters;
/// what the store answers agrees with kura_core's matcher, also after a change and across
/// pages.
async fn filters(store: &dyn Store) {
    let mut secrets = vec![
        (
            "app/db",
            Some("Primary database credentials"),
            vec![tag("env", "prod"), tag("team", "payments")],
        ),
        (
            "app/cache",
            Some("Redis cache"),
            vec![tag("env", "staging")],
        ),
        ("ops/backupKey", None, vec![tag("owner", "ops")]),
        ("Ünïcode/名前", Some("naïve café"), vec![]),
    ];
    let mut records = Vec::new();
    for (name, description, tags) in &secrets {
        let mut r = record(name);
        r.description = description.map(str::to_string);
        r.tags = tags.clone();
        r.id = store
            .create_secret(&r, None, &Stages::new(), &NO_AUDIT)
            .await
            .unwrap();
        records.push(r);
    }
    let cases: Vec<(Vec<ListFilter>, BTreeSet<String>)> = vec![
        (
            vec![f(FilterKey::Name, &["app/"])],
            set(&["app/cache", "app/db"]),
        ),
        (
            vec![f(FilterKey::Name, &["!app/"])],
            set(&["ops/backupKey", "Ünïcode/名前"]),
        ),
        (vec![f(FilterKey::Name, &["Ünï"])], set(&["Ünïcode/名前"])),
        (vec![f(FilterKey::Name, &["App/"])], set(&[])),
        (
            vec![f(FilterKey::TagKey, &["en"])],
            set(&["app/cache", "app/db"]),
        ),
        (
            vec![f(FilterKey::TagKey, &["!env"])],
            set(&["ops/backupKey", "Ünïcode/名前"]),
        ),
        (vec![f(FilterKey::TagValue, &["prod"])], set(&["app/db"])),
        (
            vec![f(FilterKey::TagValue, &["prod", "staging"])],
            set(&["app/cache", "app/db"]),
        ),
        (
            vec![f(FilterKey::Description, &["database"])],
            set(&["app/db"]),
        ),
        (
            vec![f(FilterKey::Description, &["CRED data"])],
            set(&["app/db"]),
        ),
        (
            vec![f(FilterKey::Description, &["caf"])],
            set(&["Ünïcode/名前"]),
        ),
        (
            vec![f(FilterKey::Description, &["!redis"])],
            set(&["app/db", "ops/backupKey", "Ünïcode/名前"]),
        ),
        (
            vec![f(FilterKey::Description, &["!!"])],
            set(&["app/cache", "app/db", "ops/backupKey", "Ünïcode/名前"]),
        ),
        (vec![f(FilterKey::Description, &["--"])], set(&[])),
        (
            vec![f(FilterKey::All, &["backup"])],
            set(&["ops/backupKey"]),
        ),
        (vec![f(FilterKey::All, &["key"])], set(&["ops/backupKey"])),
        (vec![f(FilterKey::All, &["pay"])], set(&["app/db"])),
        (vec![f(FilterKey::All, &["ops"])], set(&["ops/backupKey"])),
        (
            vec![
                f(FilterKey::Name, &["app/"]),
                f(FilterKey::TagValue, &["staging"]),
            ],
            set(&["app/cache"]),
        ),
        (vec![f(FilterKey::PrimaryRegion, &["us-east-1"])], set(&[])),
        (
            vec![f(FilterKey::OwningService, &["!x"])],
            set(&["app/cache", "app/db", "ops/backupKey", "Ünïcode/名前"]),
        ),
    ];
    let check = |records: &[SecretRecord], filters: &[ListFilter]| -> BTreeSet<String> {
        records
            .iter()
            .filter(|r| {
                filter::matches(
                    filters,
                    &filter::SecretText {
                        name: &r.name,
                        description: r.description.as_deref(),
                        tags: &r.tags,
                        expires_at: r.expires_at,
                    },
                )
            })
            .map(|r| r.name.clone())
            .collect()
    };
    for (filters, expected) in &cases {
        assert_eq!(
            &check(&records, filters),
            expected,
            "the matcher on {filters:?}"
        );
        assert_eq!(
            &filtered(store, filters, 100).await,
            expected,
            "{filters:?}"
        );
        assert_eq!(
            &filtered(store, filters, 1).await,
            expected,
            "{filters:?} by pages of 1"
        );
    }

    // Changed description and tags are what later filters see.
    let cache = records.iter().position(|r| r.name == "app/cache").unwrap();
    store
        .modify(
            records[cache].id,
            &mut |st| {
                st.secret.description = Some("Session store".into());
                st.secret.tags = vec![tag("env", "prod")];
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    records[cache].description = Some("Session store".into());
    records[cache].tags = vec![tag("env", "prod")];
    secrets.clear();
    for (filters, expected) in [
        (vec![f(FilterKey::Description, &["redis"])], set(&[])),
        (vec![f(FilterKey::All, &["session"])], set(&["app/cache"])),
        (
            vec![f(FilterKey::TagValue, &["prod"])],
            set(&["app/cache", "app/db"]),
        ),
        (vec![f(FilterKey::TagValue, &["staging"])], set(&[])),
    ] {
        assert_eq!(
            check(&records, &filters),
            expected,
            "the matcher on {filters:?}"
        );
        assert_eq!(
            filtered(store, &filters, 1).await,
            expected,
            "{filters:?} after a change"
        );
    }

    // An expiration is stored, filtered on (epoch seconds or RFC 3339), and its notice due.
    let db = records.iter().position(|r| r.name == "app/db").unwrap();
    let expires = T0.plus_ms(10 * 24 * 60 * MINUTE);
    store
        .modify(
            records[db].id,
            &mut |st| {
                st.secret.set_expiration(Some(expires), T0);
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    records[db].set_expiration(Some(expires), T0);
    let stored = store.secret_by_id(records[db].id).await.unwrap().unwrap();
    assert_eq!(stored.expires_at, Some(expires));
    assert_eq!(stored.expiry_notice_at, Some(T0.plus_ms(24 * 60 * MINUTE)));
    let secs = |t: Timestamp| (t.0 / 1000).to_string();
    for (filters, expected) in [
        (
            vec![f(FilterKey::ExpiresBefore, &[&secs(expires.plus_ms(1000))])],
            set(&["app/db"]),
        ),
        (
            vec![f(FilterKey::ExpiresBefore, &[&secs(expires)])],
            set(&[]),
        ),
        (
            vec![f(FilterKey::ExpiresBefore, &["2999-01-01T00:00:00Z"])],
            set(&["app/db"]),
        ),
        (
            vec![f(FilterKey::ExpiresBefore, &["!2999-01-01T00:00:00Z"])],
            set(&["app/cache", "ops/backupKey", "Ünïcode/名前"]),
        ),
    ] {
        assert_eq!(
            check(&records, &filters),
            expected,
            "the matcher on {filters:?}"
        );
        assert_eq!(filtered(store, &filters, 1).await, expected, "{filters:?}");
    }
    assert!(store.expiry_notices_due(T0, 10).await.unwrap().is_empty());
    assert_eq!(
        store.expiry_notices_due(expires, 10).await.unwrap(),
        [records[db].id]
    );
}

/// A stand-in for kura-server's HMAC chain: a hash of the previous MAC and the record's
/// fields (its own `mac` ignored); remembers what was handed to `committed`, in order.
#[derive(Default)]
struct TestChain {
    committed: Mutex<Vec<i64>>,
}

impl AuditChain for TestChain {
    fn mac(&self, prev: Option<&str>, r: &AuditRecord) -> String {
        let mut h = std::hash::DefaultHasher::new();
        let unmacked = AuditRecord {
            mac: String::new(),
            ..r.clone()
        };
        (prev, serde_json::to_string(&unmacked).unwrap()).hash(&mut h);
        format!("{:016x}", h.finish())
    }

    fn committed(&self, records: &[AuditRecord]) -> kura_core::Result<()> {
        self.committed
            .lock()
            .unwrap()
            .extend(records.iter().map(|r| r.seq));
        Ok(())
    }
}

fn audit_record(request_id: &str, principal: &str, action: &str, time: Timestamp) -> AuditRecord {
    AuditRecord {
        time: time.0,
        request_id: request_id.into(),
        kind: "request".into(),
        principal: principal.into(),
        access_key_id: "AKIATEST".into(),
        action: action.into(),
        resource: "-".into(),
        decision: "Allow".into(),
        outcome: "Success".into(),
        ..Default::default()
    }
}

async fn all_audit(store: &dyn Store) -> Vec<AuditRecord> {
    store
        .query_audit(&AuditQuery {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
}

/// `n` single-record appends, one after the other.
async fn append_many(store: &dyn Store, who: &str, n: usize) {
    for i in 0..n {
        store
            .append_audit(vec![audit_record(
                &format!("{who}-{i}"),
                who,
                "ListSecrets",
                T0,
            )])
            .await
            .unwrap();
    }
}

/// The whole trail numbered 1..n without a gap, each record's MAC chained to the one before.
fn assert_chained(chain: &TestChain, records: &[AuditRecord]) {
    let mut prev: Option<&str> = None;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1, "contiguous");
        assert_eq!(
            r.mac,
            chain.mac(prev, r),
            "record {} chains to the one before",
            r.seq
        );
        prev = Some(&r.mac);
    }
}

fn seqs(records: &[AuditRecord]) -> Vec<i64> {
    records.iter().map(|r| r.seq).collect()
}

/// The audit chain: appends are numbered and chained after the stored tail, found again by
/// principal, time, action, resource, outcome and position; a request's record commits with
/// its change and only then; concurrent appenders leave one contiguous, correctly chained
/// sequence, handed to `committed` in seq order.
async fn audit_chain(store: &dyn Store) {
    let chain = Arc::new(TestChain::default());
    store.set_audit_chain(chain.clone());
    assert!(store.last_audit().await.unwrap().is_none());

    store
        .append_audit(vec![
            audit_record("r1", "alice", "GetSecretValue", T0),
            audit_record("r2", "bob", "CreateSecret", T0.plus_ms(MINUTE)),
        ])
        .await
        .unwrap();
    store
        .append_audit(vec![audit_record(
            "r3",
            "alice",
            "CreateSecret",
            T0.plus_ms(2 * MINUTE),
        )])
        .await
        .unwrap();
    let last = store.last_audit().await.unwrap().expect("a record");
    assert_eq!((last.seq, last.request_id.as_str()), (3, "r3"));
    let all = all_audit(store).await;
    assert_chained(&chain, &all);
    assert_eq!(all[1].principal, "bob");
    assert_eq!(*chain.committed.lock().unwrap(), [1, 2, 3]);

    let query = |q: AuditQuery| async move {
        seqs(
            &store
                .query_audit(&AuditQuery {
                    limit: if q.limit == 0 { 100 } else { q.limit },
                    ..q
                })
                .await
                .unwrap(),
        )
    };
    assert_eq!(
        query(AuditQuery {
            principal: Some("alice".into()),
            ..Default::default()
        })
        .await,
        [1, 3]
    );
    assert_eq!(
        query(AuditQuery {
            action: Some("CreateSecret".into()),
            ..Default::default()
        })
        .await,
        [2, 3]
    );
    assert_eq!(
        query(AuditQuery {
            start_time: Some(T0.plus_ms(MINUTE).0),
            end_time: Some(T0.plus_ms(MINUTE).0),
            ..Default::default()
        })
        .await,
        [2]
    );
    assert_eq!(
        query(AuditQuery {
            principal: Some("alice".into()),
            start_time: Some(T0.plus_ms(1).0),
            ..Default::default()
        })
        .await,
        [3]
    );
    // Newest first, paged backwards from a sequence number, alone and with a filter.
    assert_eq!(
        query(AuditQuery {
            newest_first: true,
            ..Default::default()
        })
        .await,
        [3, 2, 1]
    );
    assert_eq!(
        query(AuditQuery {
            newest_first: true,
            limit: 1,
            ..Default::default()
        })
        .await,
        [3]
    );
    assert_eq!(
        query(AuditQuery {
            newest_first: true,
            before_seq: Some(3),
            ..Default::default()
        })
        .await,
        [2, 1]
    );
    assert_eq!(
        query(AuditQuery {
            principal: Some("alice".into()),
            newest_first: true,
            ..Default::default()
        })
        .await,
        [3, 1]
    );
    assert_eq!(
        query(AuditQuery {
            after_seq: Some(1),
            limit: 1,
            ..Default::default()
        })
        .await,
        [2]
    );
    assert_eq!(
        query(AuditQuery {
            outcome: Some("Error".into()),
            ..Default::default()
        })
        .await,
        Vec::<i64>::new()
    );

    // A request's record commits in its change's transaction, with the change's resource.
    let draft = || AuditDraft {
        record: AuditRecord {
            request_id: "r-req".into(),
            kind: "request".into(),
            principal: "carol".into(),
            access_key_id: "AKIATEST".into(),
            action: "CreateSecret".into(),
            resource: "audit/app".into(),
            decision: "Allow".into(),
            outcome: "Error".into(),
            ..Default::default()
        },
        started: Instant::now(),
        clock: Arc::new(ManualClock::new(T0.plus_ms(3 * MINUTE))),
    };
    let slot = AuditSlot::empty();
    slot.offer(draft());
    let id = store
        .create_secret(
            &record("audit/app"),
            Some(&version("v1", Some("value-1"))),
            &stages(&[("AWSCURRENT", "v1")]),
            &slot,
        )
        .await
        .unwrap();
    assert!(slot.committed(), "the change committed its record");
    let last = store.last_audit().await.unwrap().unwrap();
    assert_eq!(last.seq, 4);
    assert_eq!(
        (
            last.principal.as_str(),
            last.outcome.as_str(),
            last.resource.as_str()
        ),
        ("carol", "Success", record("audit/app").arn.as_str())
    );
    assert_eq!(last.version_id.as_deref(), Some("v1"));
    assert_eq!(last.time, T0.plus_ms(3 * MINUTE).0);
    // A refused change commits no record (the caller records the error).
    let slot = AuditSlot::empty();
    slot.offer(draft());
    let result = store
        .modify(
            id,
            &mut |_| Err(kura_core::Error::invalid_request("no")),
            &slot,
        )
        .await;
    assert!(result.is_err());
    assert!(!slot.committed());
    assert_eq!(store.last_audit().await.unwrap().unwrap().seq, 4);

    // Concurrent appenders (and request changes) still make one contiguous chain.
    let appender = |who: &'static str| async move {
        for i in 0..15 {
            store
                .append_audit(vec![audit_record(
                    &format!("{who}-{i}"),
                    who,
                    "ListSecrets",
                    T0,
                )])
                .await
                .unwrap();
        }
    };
    let changer = async {
        for i in 0..5 {
            let slot = AuditSlot::empty();
            slot.offer(draft());
            store
                .modify(
                    id,
                    &mut |st| {
                        st.secret.description = Some(format!("change {i}"));
                        Ok(())
                    },
                    &slot,
                )
                .await
                .unwrap();
            assert!(slot.committed());
        }
    };
    tokio::join!(appender("x"), appender("y"), changer);
    let all = all_audit(store).await;
    assert_eq!(all.len(), 4 + 15 + 15 + 5);
    assert_chained(&chain, &all);
    let committed = chain.committed.lock().unwrap().clone();
    assert_eq!(
        committed,
        (1..=all.len() as i64).collect::<Vec<_>>(),
        "seq order"
    );
}

fn user(name: &str) -> UserRecord {
    UserRecord {
        name: name.into(),
        arn: format!("arn:aws:iam::123456789012:user/{name}"),
        user_id: format!("AIDA{:0>16}", name.to_uppercase()),
        created_at: T0,
        tags: vec![tag("team", "infra")],
    }
}

fn key(id: &str, user: &str, expires_at: Option<Timestamp>) -> AccessKeyRecord {
    AccessKeyRecord {
        access_key_id: id.into(),
        user_name: user.into(),
        user_arn: String::new(),
        user_id: String::new(),
        sealed_secret: sealed(id),
        active: true,
        created_at: T0,
        expires_at,
        scope_secret_id: expires_at.map(|_| 7),
        last_used_at: None,
    }
}

async fn key_ids(store: &dyn Store, user: &str) -> Vec<String> {
    store
        .list_access_keys(user)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.access_key_id)
        .collect()
}

/// Users, their access keys (with a per-user maximum checked in the insert's transaction,
/// short-lived keys apart) and inline policies; deleting a user takes its keys and policies.
async fn identity(store: &dyn Store) {
    store.create_user(&user("bob"), &NO_AUDIT).await.unwrap();
    store.create_user(&user("alice"), &NO_AUDIT).await.unwrap();
    let again = store
        .create_user(&user("alice"), &NO_AUDIT)
        .await
        .expect_err("taken");
    assert_eq!(again.code.as_str(), "ResourceExistsException");
    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let alice = store.get_user("alice").await.unwrap().expect("alice");
    assert_eq!(alice.user_id, user("alice").user_id);
    assert_eq!(alice.tags, [tag("team", "infra")]);
    assert!(store.get_user("carol").await.unwrap().is_none());
    assert!(store.user_exists("alice").await.unwrap());
    assert!(!store.user_exists("carol").await.unwrap());

    // At most two long-term keys; a short-lived (rotation) key does not count and is not listed.
    store
        .insert_access_key(&key("AKIA1", "alice", None), Some(2), &NO_AUDIT)
        .await
        .unwrap();
    store
        .insert_access_key(&key("AKIA2", "alice", None), Some(2), &NO_AUDIT)
        .await
        .unwrap();
    let over = store
        .insert_access_key(&key("AKIA3", "alice", None), Some(2), &NO_AUDIT)
        .await
        .expect_err("over the maximum");
    assert_eq!(over.code.as_str(), "LimitExceededException");
    let expiry = T0.plus_ms(15 * MINUTE);
    store
        .insert_access_key(&key("ASIA1", "alice", Some(expiry)), None, &NO_AUDIT)
        .await
        .unwrap();
    let dup = store
        .insert_access_key(&key("AKIA1", "bob", None), Some(2), &NO_AUDIT)
        .await
        .expect_err("a taken key id");
    assert_eq!(dup.code.as_str(), "ResourceExistsException");
    assert_eq!(key_ids(store, "alice").await, ["AKIA1", "AKIA2"]);
    assert!(key_ids(store, "bob").await.is_empty());
    let short = store
        .find_access_key("ASIA1")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(
        (
            short.expires_at,
            short.scope_secret_id,
            short.user_arn.as_str()
        ),
        (Some(expiry), Some(7), user("alice").arn.as_str())
    );
    let k1 = store.find_access_key("AKIA1").await.unwrap().unwrap();
    assert_eq!(k1.sealed_secret, sealed("AKIA1"));
    assert_eq!(
        (k1.active, k1.user_id.as_str()),
        (true, alice.user_id.as_str())
    );

    // Status, last use (at day granularity, never backwards), deletion.
    assert!(
        store
            .set_access_key_status("AKIA1", false, &NO_AUDIT)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_access_key_status("AKIA9", false, &NO_AUDIT)
            .await
            .unwrap()
    );
    assert!(
        !store
            .find_access_key("AKIA1")
            .await
            .unwrap()
            .unwrap()
            .active
    );
    let day = Timestamp(T0.0 + 86_400_000);
    store.touch_access_key("AKIA1", day).await.unwrap();
    store.touch_access_key("AKIA1", T0).await.unwrap();
    assert_eq!(
        store
            .find_access_key("AKIA1")
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(day)
    );
    store.delete_access_key("AKIA2", &NO_AUDIT).await.unwrap();
    assert_eq!(key_ids(store, "alice").await, ["AKIA1"]);
    store
        .insert_access_key(&key("AKIA3", "alice", None), Some(2), &NO_AUDIT)
        .await
        .unwrap();

    // Short-lived keys go when their time is up.
    assert!(
        store
            .delete_expired_access_keys(T0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        swept(store, expiry).await,
        [("ASIA1".to_string(), "alice".to_string(), true)]
    );
    assert!(store.find_access_key("ASIA1").await.unwrap().is_none());

    // A user's key given an expiry: still listed, kept a week past it, then swept; a later
    // expiry does not extend a sooner one.
    store
        .insert_access_key(&key("AKIA5", "alice", None), None, &NO_AUDIT)
        .await
        .unwrap();
    assert!(
        store
            .expire_access_key("AKIA5", expiry, &NO_AUDIT)
            .await
            .unwrap()
    );
    assert!(
        store
            .expire_access_key("AKIA5", expiry.plus_ms(MINUTE), &NO_AUDIT)
            .await
            .unwrap()
    );
    assert!(
        !store
            .expire_access_key("AKIANONE", expiry, &NO_AUDIT)
            .await
            .unwrap()
    );
    let kept = store.find_access_key("AKIA5").await.unwrap().unwrap();
    assert_eq!(kept.expires_at, Some(expiry));
    assert_eq!(kept.scope_secret_id, None);
    assert_eq!(key_ids(store, "alice").await, ["AKIA1", "AKIA3", "AKIA5"]);
    assert!(
        store
            .delete_expired_access_keys(expiry)
            .await
            .unwrap()
            .is_empty()
    );
    let week = expiry.plus_ms(7 * 24 * 60 * MINUTE);
    assert_eq!(
        swept(store, week).await,
        [("AKIA5".to_string(), "alice".to_string(), false)],
        "the sweeper names what it deleted, for its audit record"
    );
    assert_eq!(key_ids(store, "alice").await, ["AKIA1", "AKIA3"]);

    // Inline policies: put replaces, listed by name, deleted once.
    store
        .put_user_policy("alice", "read", "{\"v\":1}", T0, &NO_AUDIT)
        .await
        .unwrap();
    store
        .put_user_policy("alice", "admin", "{}", T0, &NO_AUDIT)
        .await
        .unwrap();
    store
        .put_user_policy("alice", "read", "{\"v\":2}", T0, &NO_AUDIT)
        .await
        .unwrap();
    store
        .put_user_policy("bob", "read", "{}", T0, &NO_AUDIT)
        .await
        .unwrap();
    assert_eq!(
        store.user_policies("alice").await.unwrap(),
        [
            ("admin".to_string(), "{}".to_string()),
            ("read".to_string(), "{\"v\":2}".to_string())
        ]
    );
    assert!(
        store
            .delete_user_policy("alice", "admin", &NO_AUDIT)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_user_policy("alice", "admin", &NO_AUDIT)
            .await
            .unwrap()
    );

    // Deleting a user takes its keys and policies, and nobody else's.
    assert!(store.delete_user("alice", &NO_AUDIT).await.unwrap());
    assert!(!store.delete_user("alice", &NO_AUDIT).await.unwrap());
    assert!(store.get_user("alice").await.unwrap().is_none());
    assert!(store.find_access_key("AKIA1").await.unwrap().is_none());
    assert!(store.find_access_key("AKIA3").await.unwrap().is_none());
    assert!(store.user_policies("alice").await.unwrap().is_empty());
    assert_eq!(store.user_policies("bob").await.unwrap().len(), 1);
    // The name is free again, and a new user starts with no keys.
    store.create_user(&user("alice"), &NO_AUDIT).await.unwrap();
    assert!(key_ids(store, "alice").await.is_empty());
}

/// Settings keep the first value stored, also when several starts race to store one; the
/// keyring's keys come back by name and version, and a version is written once.
async fn settings(store: &dyn Store) {
    assert!(store.get_setting("audit-key").await.unwrap().is_none());
    let init = |v: &'static [u8]| store.init_setting("audit-key", v);
    let (a, b, c, d) = tokio::join!(init(b"a"), init(b"b"), init(b"c"), init(b"d"));
    let (a, b, c, d) = (a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap());
    assert!(
        [&b"a"[..], b"b", b"c", b"d"].contains(&a.as_slice()),
        "{a:?}"
    );
    assert_eq!(
        [&b, &c, &d],
        [&a, &a, &a],
        "every racer got the stored value"
    );
    assert_eq!(
        store.get_setting("audit-key").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.init_setting("audit-key", b"later").await.unwrap(), a);
    // Arbitrary bytes survive.
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(store.init_setting("bytes", &bytes).await.unwrap(), bytes);
    // Replacing is compare-and-set: only from the value the writer saw, so of two writers
    // that saw the same value one wins.
    let seal = "seal";
    assert!(store.replace_setting(seal, None, None).await.unwrap());
    assert!(
        store
            .replace_setting(seal, None, Some(b"shamir"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .replace_setting(seal, None, Some(b"other"))
            .await
            .unwrap()
    );
    let swap = |v: &'static [u8]| store.replace_setting(seal, Some(b"shamir"), Some(v));
    let (x, y) = tokio::join!(swap(b"pkcs11"), swap(b"file?"));
    assert!(x.unwrap() ^ y.unwrap(), "exactly one replacement wins");
    let now = store.get_setting(seal).await.unwrap().unwrap();
    assert!(now == b"pkcs11" || now == b"file?", "{now:?}");
    assert!(
        !store
            .replace_setting(seal, Some(b"shamir"), None)
            .await
            .unwrap()
    );
    assert!(store.replace_setting(seal, Some(&now), None).await.unwrap());
    assert!(store.get_setting(seal).await.unwrap().is_none());

    store.insert_key("secrets", 2, b"w2", T0).await.unwrap();
    store.insert_key("secrets", 1, b"w1", T0).await.unwrap();
    store.insert_key("audit", 1, b"a1", T0).await.unwrap();
    assert!(store.insert_key("secrets", 1, b"other", T0).await.is_err());
    assert_eq!(
        store.load_keys().await.unwrap(),
        [
            ("audit".to_string(), 1, b"a1".to_vec()),
            ("secrets".to_string(), 1, b"w1".to_vec()),
            ("secrets".to_string(), 2, b"w2".to_vec()),
        ]
    );

    // Root key rotation: every key re-wrapped and the settings swapped in one transaction,
    // refused whole when the keys are not the ones the rotation saw.
    let rewrap = |name: &str, version: i64, old: &[u8], new: &[u8]| KeyRewrap {
        name: name.into(),
        version,
        old: old.to_vec(),
        new: new.to_vec(),
    };
    let all = [
        rewrap("audit", 1, b"a1", b"A1"),
        rewrap("secrets", 1, b"w1", b"W1"),
        rewrap("secrets", 2, b"w2", b"W2"),
    ];
    let generation = SettingSwap {
        key: "root-generation",
        expected: None,
        value: Some(b"2"),
    };
    let before = store.load_keys().await.unwrap();
    // A key missing from the list (added by another node meanwhile): nothing changes.
    assert!(!store.rewrap_keys(&all[..2], &[generation]).await.unwrap());
    // A key whose stored wrapping is not the one seen.
    let mut stale = all.clone();
    stale[0].old = b"a0".to_vec();
    assert!(!store.rewrap_keys(&stale, &[generation]).await.unwrap());
    // A setting that moved.
    let moved = SettingSwap {
        expected: Some(b"1"),
        ..generation
    };
    assert!(!store.rewrap_keys(&all, &[moved]).await.unwrap());
    assert_eq!(store.load_keys().await.unwrap(), before);
    assert!(
        store
            .get_setting("root-generation")
            .await
            .unwrap()
            .is_none()
    );
    // Two rotations from the same state: exactly one wins.
    let other = [
        rewrap("audit", 1, b"a1", b"B1"),
        rewrap("secrets", 1, b"w1", b"X1"),
        rewrap("secrets", 2, b"w2", b"X2"),
    ];
    let swaps = [generation];
    let (x, y) = tokio::join!(
        store.rewrap_keys(&all, &swaps),
        store.rewrap_keys(&other, &swaps)
    );
    assert!(x.unwrap() ^ y.unwrap(), "exactly one rotation wins");
    let after = store.load_keys().await.unwrap();
    let won = if after[0].2 == b"A1" { &all } else { &other };
    assert_eq!(
        after,
        won.iter()
            .map(|k| (k.name.clone(), k.version, k.new.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store.get_setting("root-generation").await.unwrap(),
        Some(b"2".to_vec())
    );
}

/// Client text with a NUL character (which PostgreSQL cannot store) finds nothing where a
/// lookup takes it, and does not stop its request's audit record from being written.
async fn nul_characters(store: &dyn Store) {
    let id = create(store, "nul/app").await;
    assert!(
        store
            .find_secret(&SecretRef::Name("nul/app\0".into()))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_secret(&SecretRef::Arn {
                arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:nul/app\0".into(),
                name_part: "nul/app\0".into(),
            })
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .read_version(id, VersionSelector::Stage("AWSCURRENT\0"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .read_version(id, VersionSelector::Id("v1\0"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.find_access_key("AKIA\0").await.unwrap().is_none());
    assert!(store.get_user("a\0").await.unwrap().is_none());
    assert!(!store.user_exists("a\0").await.unwrap());
    assert!(store.rotation_function("f\0").await.unwrap().is_none());
    assert!(
        store
            .list_secrets(&ListQuery {
                include_deleted: false,
                filters: vec![
                    f(FilterKey::Name, &["nul\0"]),
                    f(FilterKey::TagKey, &["!\0"])
                ],
                sort: SortKey::Name,
                descending: false,
                limit: 10,
                after: None,
            })
            .await
            .unwrap()
            .secrets
            .is_empty()
    );

    let chain = Arc::new(TestChain::default());
    store.set_audit_chain(chain.clone());
    let mut r = audit_record("r\0", "p", "GetSecretValue", T0);
    r.resource = "nul/app\0".into();
    r.user_agent = Some("agent\0".into());
    store.append_audit(vec![r]).await.unwrap();
    let all = all_audit(store).await;
    assert_eq!(all.len(), 1);
    assert_chained(&chain, &all);
    assert!(all[0].resource.starts_with("nul/app"));
    // A rotation's error output is kept, whatever it holds.
    store
        .modify(
            id,
            &mut |st| {
                st.secret.run.last_error = Some("exit 1: \0garbage".into());
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    let err = store
        .secret_by_id(id)
        .await
        .unwrap()
        .unwrap()
        .run
        .last_error;
    assert!(err.is_some_and(|e| e.starts_with("exit 1: ") && e.ends_with("garbage")));
}

// ---------------------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------------------

/// Claims on the outbox: a claimed item is nobody else's (nor due) until its claim ends,
/// then due again if not finished; concurrent claimants get disjoint items, all of them.
async fn outbox_claims(store: &dyn Store) {
    store
        .insert_notification_target(&target("t", &["SecretValueChanged"]), &NO_AUDIT)
        .await
        .unwrap();
    for i in 0..20 {
        store
            .enqueue_notification(
                "SecretValueChanged",
                &format!("{{\"n\":{i}}}"),
                T0.plus_ms(i),
            )
            .await
            .unwrap();
    }
    let now = T0.plus_ms(20);
    let until = now.plus_ms(MINUTE);
    let first = store.claim_notifications(now, until, 3).await.unwrap();
    let bodies: Vec<&str> = first.iter().map(|i| i.body.as_str()).collect();
    assert_eq!(
        bodies,
        [r#"{"n":0}"#, r#"{"n":1}"#, r#"{"n":2}"#],
        "soonest first"
    );
    let due = store.due_notifications(now, 50).await.unwrap();
    assert_eq!(due.len(), 17, "claimed items are not due");
    assert!(due.iter().all(|d| first.iter().all(|f| f.id != d.id)));

    let claim = || store.claim_notifications(now, until, 10);
    let (a, b) = tokio::join!(claim(), claim());
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut ids: Vec<i64> = a.iter().chain(&b).map(|i| i.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 17, "disjoint and complete: {a:?} {b:?}");
    assert!(
        store
            .claim_notifications(now, until, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Finished: gone. Retried: due at its retry time. Neither: due again when the claim ends.
    store.finish_notification(first[0].id).await.unwrap();
    store
        .retry_notification(first[1].id, until.plus_ms(MINUTE), "HTTP 500")
        .await
        .unwrap();
    let again = store
        .claim_notifications(until, until.plus_ms(MINUTE), 50)
        .await
        .unwrap();
    assert_eq!(again.len(), 18, "all but the finished and the retried");
    assert!(
        again
            .iter()
            .all(|i| i.id != first[0].id && i.id != first[1].id)
    );
    let retried = store
        .claim_notifications(until.plus_ms(MINUTE), until.plus_ms(2 * MINUTE), 50)
        .await
        .unwrap();
    assert!(
        retried
            .iter()
            .any(|i| i.id == first[1].id && i.attempts == 1)
    );
}

// ---------------------------------------------------------------------------------------------------------
// Named keys and the re-wrap after a rotation
// ---------------------------------------------------------------------------------------------------------

fn kms_key(id: &str, alias: &str) -> KmsKeyRecord {
    KmsKeyRecord {
        id: id.into(),
        name: id.into(),
        alias: Some(alias.into()),
        description: None,
        policy: None,
        tags: vec![tag("team", "a")],
        created_at: T0,
        rewrap_target: None,
        rewrap_done: 0,
        rewrap_running: false,
        deletion_date: None,
    }
}

fn under(key: &str, marker: &str) -> NewVersion {
    let mut v = version(marker, Some(marker));
    if let Some(s) = &mut v.value {
        s.key_name = key.into();
    }
    v
}

/// A key and its first version are stored together; an alias is taken once; a rotation starts
/// the re-wrap, whose lease goes to one owner; a batch rewrites only rows still on the version
/// it read (a value written meanwhile keeps what it has) and counts what it moved; a finished
/// re-wrap can run again; a key in use is not deleted, an unused one past its date is.
async fn named_keys(store: &dyn Store) {
    store
        .create_kms_key(&kms_key("k1", "alias/a"), b"v1", "arn-k1", &NO_AUDIT)
        .await
        .unwrap();
    let e = store
        .create_kms_key(&kms_key("k2", "alias/a"), b"v1", "arn-k2", &NO_AUDIT)
        .await
        .unwrap_err();
    assert_eq!(e.code, kura_core::ErrorCode::ResourceExists, "{e:?}");
    assert!(e.message.contains("alias/a"), "{e:?}");
    let keys = store.kms_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].tags, vec![tag("team", "a")]);
    assert!(
        store
            .load_keys()
            .await
            .unwrap()
            .contains(&("k1".to_string(), 1, b"v1".to_vec()))
    );

    // Three values under k1 version 1.
    let id = store
        .create_secret(
            &record("keyed"),
            Some(&under("k1", "a1")),
            &stages(&[("AWSCURRENT", "a1")]),
            &NO_AUDIT,
        )
        .await
        .unwrap();
    for v in ["a2", "a3"] {
        store
            .modify(
                id,
                &mut |st| {
                    st.new_versions.push(under("k1", v));
                    st.versions.push(kura_core::model::VersionMeta {
                        version_id: v.into(),
                        created_at: T0,
                        accessed_at: None,
                        has_value: true,
                    });
                    Ok(())
                },
                &NO_AUDIT,
            )
            .await
            .unwrap();
    }
    assert_eq!(store.rewrap_remaining("k1", 2).await.unwrap(), 3);
    assert!(store.rewrap_due(T0).await.unwrap().is_empty());

    // Rotation: version 2 stored, the re-wrap runs; version 2 again is a conflict.
    store
        .add_key_version("k1", 2, b"v2", T0, "arn-k1", &NO_AUDIT)
        .await
        .unwrap();
    let e = store
        .add_key_version("k1", 2, b"v2", T0, "arn-k1", &NO_AUDIT)
        .await
        .unwrap_err();
    assert_eq!(e.code, kura_core::ErrorCode::ResourceExists, "{e:?}");
    assert_eq!(store.rewrap_due(T0).await.unwrap(), vec!["k1".to_string()]);
    assert!(
        store
            .claim_rewrap("k1", "node-a", T0, T0.plus_ms(MINUTE))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_rewrap("k1", "node-b", T0, T0.plus_ms(MINUTE))
            .await
            .unwrap()
    );
    assert!(store.rewrap_due(T0).await.unwrap().is_empty());

    let found = store.rewrap_candidates("k1", 2, 10).await.unwrap();
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|w| w.key_version == 1));
    assert!(matches!(
        &found[0].place,
        KeyPlace::SecretVersion { secret_id, .. } if *secret_id == id
    ));
    // One of them is rewritten meanwhile (a concurrent re-wrap or write): the batch leaves it.
    let (raced, rest) = found.split_first().unwrap();
    assert_eq!(
        store
            .apply_rewrap("k1", &[(raced.clone(), b"theirs".to_vec(), 3)])
            .await
            .unwrap(),
        1
    );
    let batch: Vec<_> = found
        .iter()
        .map(|w| (w.clone(), b"ours".to_vec(), 2))
        .collect();
    assert_eq!(store.apply_rewrap("k1", &batch).await.unwrap(), 2);
    assert_eq!(store.rewrap_remaining("k1", 2).await.unwrap(), 0);
    let k = store.kms_keys().await.unwrap().remove(0);
    assert_eq!(
        (k.rewrap_target, k.rewrap_done, k.rewrap_running),
        (Some(2), 3, true)
    );
    let raced_id = match &raced.place {
        KeyPlace::SecretVersion { version_id, .. } => version_id.clone(),
        p => panic!("{p:?}"),
    };
    let kept = store
        .read_version(id, VersionSelector::Id(&raced_id))
        .await
        .unwrap()
        .unwrap()
        .value
        .unwrap();
    assert_eq!(
        (kept.wrapped_key.as_slice(), kept.key_version),
        (&b"theirs"[..], 3)
    );
    for w in rest {
        let KeyPlace::SecretVersion { version_id, .. } = &w.place else {
            panic!()
        };
        let v = store
            .read_version(id, VersionSelector::Id(version_id))
            .await
            .unwrap()
            .unwrap()
            .value
            .unwrap();
        assert_eq!((v.wrapped_key.as_slice(), v.key_version), (&b"ours"[..], 2));
    }

    // Finished; a straggler under version 1 runs it again.
    store.finish_rewrap("k1", 2).await.unwrap();
    let k = store.kms_keys().await.unwrap().remove(0);
    assert!(!k.rewrap_running);
    store.restart_rewrap("k1", 2).await.unwrap();
    assert_eq!(
        store.rewrap_due(T0.plus_ms(2 * MINUTE)).await.unwrap(),
        vec!["k1".to_string()]
    );
    store.finish_rewrap("k1", 2).await.unwrap();

    // Deletion: k1 is in use; an unused k2 goes once its date has passed.
    let refs = vec!["k1".to_string()];
    assert!(store.key_uses("k1", &refs).await.unwrap() >= 3);
    store
        .set_key_deletion("k1", Some(T0), "arn-k1", &NO_AUDIT)
        .await
        .unwrap();
    assert!(
        !store
            .delete_kms_key("k1", &refs, T0.plus_ms(MINUTE))
            .await
            .unwrap()
    );
    store
        .create_kms_key(&kms_key("k2", "alias/b"), b"v1", "arn-k2", &NO_AUDIT)
        .await
        .unwrap();
    let refs2 = vec!["k2".to_string(), "alias/b".to_string()];
    assert_eq!(store.key_uses("k2", &refs2).await.unwrap(), 0);
    store
        .set_key_deletion("k2", Some(T0.plus_ms(MINUTE)), "arn-k2", &NO_AUDIT)
        .await
        .unwrap();
    assert!(!store.delete_kms_key("k2", &refs2, T0).await.unwrap());
    assert!(
        store
            .delete_kms_key("k2", &refs2, T0.plus_ms(MINUTE))
            .await
            .unwrap()
    );
    let names: Vec<String> = store
        .kms_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(names, vec!["k1".to_string()]);
    assert!(
        !store
            .load_keys()
            .await
            .unwrap()
            .iter()
            .any(|(n, _, _)| n == "k2")
    );
}

/// A SQLite store on a fresh temporary file (kept alive by the returned directory).
async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::Builder::new()
        .prefix("kura-store-contract-")
        .tempdir()
        .unwrap();
    let store = SqliteStore::open(&dir.path().join("kura.db"))
        .await
        .unwrap();
    (dir, store)
}

/// A PostgreSQL store on a fresh database of its own, listening for changes as a server's
/// does (so its read cache is in use once the listener is connected).
async fn postgres() -> (PgDatabase, PgStore) {
    let db = PgDatabase::create().await;
    let store = PgStore::connect(&db.url())
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e:?}", db.url()));
    let _ = store.changes();
    (db, store)
}

/// One test per contract function for a backend; `$open` yields `(guard, store)`.
/// Certificate authorities, templates and issued certificates: a CA in use is not deleted, a
/// pending intermediate takes its certificate once, revocation is kept once, the CRL's list
/// leaves out what expired, and a CA's certificates go with it.
async fn pki(store: &dyn Store) {
    let authority = |name: &str, parent: Option<&str>, certificate: Option<&str>| AuthorityRecord {
        name: name.into(),
        kind: if parent.is_some() {
            "intermediate"
        } else {
            "root"
        }
        .into(),
        parent: parent.map(str::to_string),
        common_name: name.into(),
        key_algorithm: "EC_P256".into(),
        certificate: certificate.map(str::to_string),
        chain: String::new(),
        csr: certificate.is_none().then(|| "CSR".to_string()),
        not_after: certificate.map(|_| T0.plus_days(365)),
        sealed_key: sealed(name),
        created_at: T0,
    };
    store
        .insert_authority(&authority("root", None, Some("ROOT")), &NO_AUDIT)
        .await
        .unwrap();
    store
        .insert_authority(&authority("int", Some("root"), None), &NO_AUDIT)
        .await
        .unwrap();
    let e = store
        .insert_authority(&authority("root", None, Some("X")), &NO_AUDIT)
        .await
        .unwrap_err();
    assert_eq!(e.code, kura_core::ErrorCode::ResourceExists);
    let names: Vec<String> = store
        .list_authorities()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["int", "root"]);
    let int = store.authority("int").await.unwrap().unwrap();
    assert_eq!((int.certificate, int.csr.as_deref()), (None, Some("CSR")));
    assert_eq!(int.sealed_key, sealed("int"));
    assert!(
        store
            .set_authority_certificate("int", "INT", "", T0.plus_days(30), &NO_AUDIT)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_authority_certificate("int", "AGAIN", "", T0, &NO_AUDIT)
            .await
            .unwrap(),
        "only once"
    );
    let int = store.authority("int").await.unwrap().unwrap();
    assert_eq!(
        (int.certificate.as_deref(), int.csr, int.not_after),
        (Some("INT"), None, Some(T0.plus_days(30)))
    );

    let template = |name: &str, authority: &str| TemplateRecord {
        name: name.into(),
        authority: authority.into(),
        config: "{}".into(),
        created_at: T0,
    };
    let e = store
        .insert_template(&template("t", "absent"), &NO_AUDIT)
        .await
        .unwrap_err();
    assert_eq!(e.code, kura_core::ErrorCode::ResourceNotFound);
    store
        .insert_template(&template("t", "int"), &NO_AUDIT)
        .await
        .unwrap();
    assert_eq!(store.template("t").await.unwrap().unwrap().authority, "int");
    assert_eq!(store.list_templates().await.unwrap().len(), 1);
    let e = store.delete_authority("int", &NO_AUDIT).await.unwrap_err();
    assert!(e.message.contains("t"), "{}", e.message);
    let e = store.delete_authority("root", &NO_AUDIT).await.unwrap_err();
    assert!(e.message.contains("int"), "{}", e.message);

    let cert = |serial: &str, not_after: Timestamp| IssuedCertificateRecord {
        authority: "int".into(),
        serial: serial.into(),
        template: Some("t".into()),
        common_name: "a.example.test".into(),
        secret_arn: None,
        issued_at: T0,
        not_after,
        revoked_at: None,
    };
    store
        .insert_certificate(&cert("0a", T0.plus_days(10)))
        .await
        .unwrap();
    store
        .insert_certificate(&cert("0b", T0.plus_days(1)))
        .await
        .unwrap();
    assert!(
        store.insert_certificate(&cert("0a", T0)).await.is_err(),
        "a serial once per CA"
    );
    assert!(
        store
            .revoke_certificate("int", "0a", T0.plus_ms(MINUTE), &NO_AUDIT)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_certificate("int", "0a", T0.plus_days(2), &NO_AUDIT)
            .await
            .unwrap(),
        "revoked once"
    );
    assert!(
        store
            .revoke_certificate("int", "0b", T0, &NO_AUDIT)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_certificate("int", "0c", T0, &NO_AUDIT)
            .await
            .unwrap()
    );
    let got = store.certificate("int", "0a").await.unwrap().unwrap();
    assert_eq!(got.revoked_at, Some(T0.plus_ms(MINUTE)));
    assert_eq!(
        store
            .revoked_certificates("int", T0.plus_days(5))
            .await
            .unwrap(),
        [("0a".to_string(), T0.plus_ms(MINUTE))],
        "0b expired: off the CRL"
    );

    assert!(store.delete_template("t", &NO_AUDIT).await.unwrap());
    assert!(!store.delete_template("t", &NO_AUDIT).await.unwrap());
    assert!(store.delete_authority("int", &NO_AUDIT).await.unwrap());
    assert!(
        store.certificate("int", "0a").await.unwrap().is_none(),
        "its certificates went with it"
    );
    assert!(store.delete_authority("root", &NO_AUDIT).await.unwrap());
    assert!(!store.delete_authority("root", &NO_AUDIT).await.unwrap());
}

fn session(id: &str, at: Timestamp) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        user_name: "alice".into(),
        arn: "arn:aws:iam::123456789012:user/alice".into(),
        user_id: "AIDAALICE".into(),
        access_key_id: "AKIAALICE".into(),
        scope_secret_id: None,
        csrf: format!("csrf-{id}"),
        created_at: at,
        last_seen: at,
    }
}

/// Sessions end after 10 minutes unused or an hour after they began.
fn cutoff(now: Timestamp) -> SessionCutoff {
    SessionCutoff {
        idle_before: Timestamp(now.0 - 10 * MINUTE),
        started_before: Timestamp(now.0 - 60 * MINUTE),
    }
}

async fn sessions(store: &dyn Store) {
    assert!(
        store
            .open_session(&session("a", T0), cutoff(T0), 3)
            .await
            .unwrap()
    );
    let got = store
        .use_session("a", cutoff(T0), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            got.user_name.as_str(),
            got.csrf.as_str(),
            got.scope_secret_id
        ),
        ("alice", "csrf-a", None)
    );
    assert!(
        store
            .use_session("nobody", cutoff(T0), T0)
            .await
            .unwrap()
            .is_none()
    );

    // A use answers the session as it was before, and marks it used.
    let t = Timestamp(T0.0 + MINUTE);
    let got = store.use_session("a", cutoff(t), t).await.unwrap().unwrap();
    assert_eq!(got.last_seen, T0, "the use before this one");
    let got = store.use_session("a", cutoff(t), t).await.unwrap().unwrap();
    assert_eq!(got.last_seen, t);

    // Each use keeps it alive past the idle timeout, until its lifetime is over.
    let mut t = t;
    for _ in 0..6 {
        t = Timestamp(t.0 + 9 * MINUTE);
        assert!(
            store
                .use_session("a", cutoff(t), t)
                .await
                .unwrap()
                .is_some()
        );
    }
    t = Timestamp(t.0 + 9 * MINUTE);
    assert!(t.0 - T0.0 > 60 * MINUTE);
    assert!(
        store
            .use_session("a", cutoff(t), t)
            .await
            .unwrap()
            .is_none()
    );

    // Unused for longer than the idle timeout: ended, and forgotten.
    assert!(
        store
            .open_session(&session("b", t), cutoff(t), 3)
            .await
            .unwrap()
    );
    let late = Timestamp(t.0 + 11 * MINUTE);
    assert!(
        store
            .use_session("b", cutoff(late), late)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .use_session("b", cutoff(t), t)
            .await
            .unwrap()
            .is_none()
    );

    // At most `max` live sessions; ended ones do not count.
    for id in ["c", "d", "e"] {
        assert!(
            store
                .open_session(&session(id, late), cutoff(late), 3)
                .await
                .unwrap()
        );
    }
    assert!(
        !store
            .open_session(&session("f", late), cutoff(late), 3)
            .await
            .unwrap()
    );
    store.end_session("c").await.unwrap();
    assert!(
        store
            .use_session("c", cutoff(late), late)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .open_session(&session("f", late), cutoff(late), 3)
            .await
            .unwrap()
    );
    let later = Timestamp(late.0 + 11 * MINUTE);
    assert!(
        store
            .open_session(&session("g", later), cutoff(later), 1)
            .await
            .unwrap()
    );
}

/// ACME accounts: one per directory and email, the first kept when two rotations race to make
/// it, and its sealed credentials re-wrapped like every other data key.
async fn acme_accounts(store: &dyn Store) {
    let account = |email: &str, marker: &str| AcmeAccountRecord {
        directory_url: "https://acme.test/dir".into(),
        email: email.into(),
        sealed_credentials: sealed(marker),
        created_at: T0,
    };
    assert!(
        store
            .acme_account("https://acme.test/dir", "a@example.test")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .insert_acme_account(&account("a@example.test", "first"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_acme_account(&account("a@example.test", "second"))
            .await
            .unwrap(),
        "the first account made is the one kept"
    );
    assert!(
        store
            .insert_acme_account(&account("b@example.test", "other"))
            .await
            .unwrap(),
        "another email is another account"
    );
    let got = store
        .acme_account("https://acme.test/dir", "a@example.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.sealed_credentials.ciphertext, b"first");
    assert_eq!(got.created_at, T0);
    assert!(
        store
            .acme_account("https://acme.test/other", "a@example.test")
            .await
            .unwrap()
            .is_none(),
        "accounts are per directory"
    );

    // Sealed under version 1 of `root`: a re-wrap to version 2 finds and moves both.
    assert_eq!(store.rewrap_remaining("root", 2).await.unwrap(), 2);
    let found = store.rewrap_candidates("root", 2, 10).await.unwrap();
    let places: Vec<KeyPlace> = found.iter().map(|w| w.place.clone()).collect();
    assert!(places.contains(&KeyPlace::AcmeAccount {
        directory_url: "https://acme.test/dir".into(),
        email: "a@example.test".into()
    }));
    let batch: Vec<_> = found
        .into_iter()
        .map(|w| (w, b"rewrapped".to_vec(), 2))
        .collect();
    assert_eq!(store.apply_rewrap("root", &batch).await.unwrap(), 2);
    assert_eq!(store.rewrap_remaining("root", 2).await.unwrap(), 0);
    let got = store
        .acme_account("https://acme.test/dir", "a@example.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.sealed_credentials.wrapped_key, b"rewrapped");
    assert_eq!(got.sealed_credentials.key_version, 2);
    assert_eq!(got.sealed_credentials.ciphertext, b"first");
}

macro_rules! backend_tests {
    ($backend:ident, $open:expr, [$($case:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (guard, store) = $open.await;
                    super::$case(&store).await;
                    store.close().await;
                    drop(guard);
                }
            )*
        }
    };
}

backend_tests!(
    sqlite_store,
    sqlite(),
    [
        label_moves,
        versions_a_change_sees,
        idempotency,
        pagination,
        leases,
        overdue_rotations,
        outbox,
        outbox_claims,
        filters,
        tag_order,
        page_contents,
        audit_chain,
        identity,
        settings,
        nul_characters,
        single_server_recovery,
        named_keys,
        pki,
        sessions,
        acme_accounts,
    ]
);

backend_tests!(
    pg_store,
    postgres(),
    [
        label_moves,
        versions_a_change_sees,
        idempotency,
        pagination,
        leases,
        overdue_rotations,
        outbox,
        outbox_claims,
        filters,
        tag_order,
        page_contents,
        audit_chain,
        identity,
        settings,
        nul_characters,
        shared_database_recovery,
        named_keys,
        pki,
        sessions,
        acme_accounts,
    ]
);

/// Nodes on one PostgreSQL database: their migrations race harmlessly, their audit appends
/// make one contiguous chain, a rotation lease goes to exactly one of them, and the last
/// start's settings race leaves one value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_nodes_share_one_database() {
    let db = PgDatabase::create().await;
    let url = db.url();
    let (a, b, c) = tokio::join!(
        PgStore::connect(&url),
        PgStore::connect(&url),
        PgStore::connect(&url)
    );
    let nodes = [a.unwrap(), b.unwrap(), c.unwrap()];
    let chains: Vec<Arc<TestChain>> = nodes
        .iter()
        .map(|n| {
            let chain = Arc::new(TestChain::default());
            n.set_audit_chain(chain.clone());
            chain
        })
        .collect();
    tokio::join!(
        append_many(&nodes[0], "a", 20),
        append_many(&nodes[1], "b", 20),
        append_many(&nodes[2], "c", 20)
    );
    let all = all_audit(&nodes[0]).await;
    assert_eq!(all.len(), 60);
    assert_chained(&chains[0], &all);
    for chain in &chains {
        let seen = chain.committed.lock().unwrap().clone();
        assert_eq!(seen.len(), 20);
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "each node in seq order: {seen:?}"
        );
    }

    let id = create(&nodes[0], "nodes/app").await;
    let until = T0.plus_ms(MINUTE);
    let (x, y, z) = tokio::join!(
        nodes[0].claim_rotation(id, "a", T0, until),
        nodes[1].claim_rotation(id, "b", T0, until),
        nodes[2].claim_rotation(id, "c", T0, until)
    );
    let won = [x.unwrap(), y.unwrap(), z.unwrap()];
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");

    // Read-modify-write from every node at once loses no update (the secret's row lock).
    tokio::join!(
        bump(&nodes[0], id, "a"),
        bump(&nodes[1], id, "b"),
        bump(&nodes[2], id, "c")
    );
    let s = nodes[2].secret_by_id(id).await.unwrap().unwrap();
    assert_eq!(s.description.map(|d| d.len()), Some(30), "no lost update");
    assert_eq!(nodes[1].versions(id).await.unwrap().0.len(), 31);

    // The per-user key maximum holds when nodes create keys at once.
    nodes[0]
        .create_user(&user("racer"), &NO_AUDIT)
        .await
        .unwrap();
    let made = tokio::join!(
        make_key(&nodes[0], 0),
        make_key(&nodes[1], 1),
        make_key(&nodes[2], 2),
        make_key(&nodes[0], 3),
        make_key(&nodes[1], 4)
    );
    let made = [made.0, made.1, made.2, made.3, made.4];
    assert_eq!(made.iter().filter(|m| **m).count(), 2, "{made:?}");
    assert_eq!(key_ids(&nodes[2], "racer").await.len(), 2);

    for n in &nodes {
        n.close().await;
    }
    drop(db);
}

/// Two nodes, each with its read cache: a label moved (or a description changed) by one node
/// is what the other reads as soon as the move is acknowledged, though it had the old one in
/// memory; and it does answer from memory while nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_a_node_never_reads_what_another_node_changed() {
    let db = PgDatabase::create().await;
    let a = PgStore::connect(&db.url()).await.unwrap();
    let b = PgStore::connect(&db.url()).await.unwrap();
    let (_ra, _rb) = (a.changes(), b.changes());
    let id = create(&a, "moving").await;
    let current = || b.read_version(id, VersionSelector::Stage("AWSCURRENT"));
    // Until B's listener is connected its cache is off: wait for a read from memory.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.cache_stats().hits == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "B never used its cache"
        );
        current().await.unwrap();
        b.find_secret(&SecretRef::Name("moving".into()))
            .await
            .unwrap();
    }
    let hits = b.cache_stats().hits;
    for i in 0..100 {
        let v = format!("v{}", i + 2);
        a.modify(
            id,
            &mut |st| {
                st.new_versions.push(version(&v, Some("value")));
                st.stages.insert("AWSCURRENT".into(), v.clone());
                st.secret.description = Some(v.clone());
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
        for _ in 0..2 {
            let seen = current().await.unwrap().unwrap();
            assert_eq!(seen.meta.version_id, v, "round {i}: B read a moved label");
            let s = b
                .find_secret(&SecretRef::Name("moving".into()))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(s.description.as_deref(), Some(v.as_str()), "round {i}");
        }
    }
    // The second read of each round came from memory.
    assert!(b.cache_stats().hits >= hits + 200, "{:?}", b.cache_stats());
    a.close().await;
    b.close().await;
    drop(db);
}

/// Ten read-modify-writes of one secret: a description one longer and a version each time.
async fn bump(node: &dyn Store, id: i64, who: &str) {
    for _ in 0..10 {
        node.modify(
            id,
            &mut |st| {
                let n = st.secret.description.as_deref().map_or(0, str::len);
                st.secret.description = Some("x".repeat(n + 1));
                st.new_versions
                    .push(version(&format!("{who}-{n}"), Some("v")));
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    }
}

/// Whether `racer` got key number `i` (at most two allowed).
async fn make_key(node: &dyn Store, i: usize) -> bool {
    node.insert_access_key(
        &key(&format!("AKIARACE{i}"), "racer", None),
        Some(2),
        &NO_AUDIT,
    )
    .await
    .is_ok()
}

/// An unreachable database fails fast, with the retryable error, instead of hanging.
#[tokio::test]
async fn pg_unreachable_answers_unavailable() {
    // A port nothing listens on (the discard port on loopback).
    let started = Instant::now();
    let err = match PgStore::connect("postgres://postgres@127.0.0.1:9/kura").await {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e,
    };
    assert!(err.is_unavailable(), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

#[test]
fn test_urls_name_the_test_database() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "k"),
        "postgres://postgres@127.0.0.1:5432/k"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=require", "k"),
        "postgres://u:p@h/k?sslmode=require"
    );
    assert_eq!(
        with_database("postgres://h:5432", "k"),
        "postgres://h:5432/k"
    );
}

/// A PostgreSQL outage (every connection cut, the server refusing new ones): calls fail
/// within seconds with the retryable error instead of hanging, nothing acknowledged before
/// is lost, and the same store works again by itself once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_outage_fails_fast_and_recovers() {
    use std::net::ToSocketAddrs;
    let db = PgDatabase::create().await;
    let url = db.url();
    let opts: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let target = (opts.get_host(), opts.get_port())
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let mut relay = Relay::start(target).await;
    let via_relay = url.replacen(
        &format!("{}:{}", opts.get_host(), opts.get_port()),
        &format!("127.0.0.1:{}", relay.port),
        1,
    );
    assert_ne!(via_relay, url, "the URL names host:port");
    let store = PgStore::connect(&via_relay).await.unwrap();
    let id = create(&store, "outage/app").await;

    relay.cut();
    let started = Instant::now();
    let err = store
        .find_secret(&SecretRef::Name("outage/app".into()))
        .await
        .expect_err("the database is gone");
    assert!(err.is_unavailable(), "{err:?}");
    let err = store
        .modify(
            id,
            &mut |st| {
                st.secret.description = Some("lost?".into());
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .expect_err("the database is gone");
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "failed fast: {:?}",
        started.elapsed()
    );

    relay.restore().await;
    let found = store
        .find_secret(&SecretRef::Name("outage/app".into()))
        .await
        .unwrap()
        .expect("acknowledged before the outage");
    assert_eq!(found.description, None, "the failed modify changed nothing");
    store
        .modify(
            id,
            &mut |st| {
                st.secret.description = Some("after".into());
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    store.close().await;
    drop(relay);
    drop(db);
}

/// A TCP relay to PostgreSQL that a test can cut (every connection closed, the port refusing)
/// and restore on the same port: a database outage without stopping the shared server.
struct Relay {
    port: u16,
    target: std::net::SocketAddr,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut relay = Relay {
            port,
            target,
            running: None,
        };
        relay.running = Some(tokio::spawn(serve(listener, target)));
        relay
    }

    /// Closes every relayed connection and stops listening.
    fn cut(&mut self) {
        if let Some(task) = self.running.take() {
            task.abort();
        }
    }

    async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.running = Some(tokio::spawn(serve(listener, self.target)));
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Accepts and relays until aborted; the connections live in this task's set, so aborting
/// it closes them all.
async fn serve(listener: tokio::net::TcpListener, target: std::net::SocketAddr) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        connections.spawn(async move {
            if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
    }
}

/// `sslmode=require` in the URL: the store's connections use TLS (rustls).
#[tokio::test]
async fn pg_tls_when_the_url_requires_it() {
    let db = PgDatabase::create().await;
    let url = db.url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = PgStore::connect(&format!("{url}{sep}sslmode=require"))
        .await
        .unwrap_or_else(|e| panic!("TLS to {url}: {e:?} (is ssl on in postgresql.conf?)"));
    store.init_setting("k", b"v").await.unwrap();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let (kura, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.datname = current_database() \
         AND a.application_name = 'kura'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(kura > 0, "the store holds a connection");
    assert_eq!(encrypted, kura, "every connection of the store is TLS");
    let _ = sqlx::Connection::close(admin).await;
    store.close().await;
    drop(db);
}

/// A row lock that is not released (a node holding it stopped answering) fails a writer
/// within seconds, retryably, instead of stalling it; once released, writes go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_a_stuck_lock_fails_writers_fast() {
    use sqlx::Connection;
    let db = PgDatabase::create().await;
    let store = PgStore::connect(&db.url()).await.unwrap();
    let id = create(&store, "stuck/app").await;
    let mut other = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let mut held = other.begin().await.unwrap();
    sqlx::query("SELECT id FROM secrets WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *held)
        .await
        .unwrap();
    let started = Instant::now();
    let err = store
        .modify(
            id,
            &mut |st| {
                st.secret.description = Some("waits".into());
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .expect_err("the row stays locked");
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    held.rollback().await.unwrap();
    store
        .modify(
            id,
            &mut |st| {
                st.secret.description = Some("through".into());
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    let _ = other.close().await;
    store.close().await;
    drop(db);
}
