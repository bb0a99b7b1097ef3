//! The store contract: what the service layer relies on from any [`Store`], checked without a
//! server. Each behaviour is a function taking `&dyn Store` on an empty store, so a second
//! backend runs the same suite by adding its own `backend_tests!` line.

use kura_core::Timestamp;
use kura_core::labels::Stages;
use kura_core::model::{
    NewVersion, OutboxEvent, RotationPhase, SealedValue, SecretRecord, ValueKind,
};
use kura_core::names::SecretRef;
use kura_store::{
    Cursor, ListQuery, NotificationTargetRecord, SortKey, SqliteStore, Store, VersionSelector,
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
        .modify(id, &mut |st| {
            st.new_versions.push(version("v2", Some("value-2")));
            st.stages.insert("AWSCURRENT".into(), "v2".into());
            st.stages.insert("AWSPREVIOUS".into(), "v1".into());
            st.stages.insert("blue".into(), "v1".into());
            Ok(())
        })
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
        .modify(id, &mut |st| {
            st.stages.insert("blue".into(), "v2".into());
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(stages_now(store, id).await["blue"], "v2");

    // An error from the mutation rolls back its version, its labels and its events.
    let err = store
        .modify(id, &mut |st| {
            st.new_versions.push(version("v3", Some("value-3")));
            st.stages.insert("AWSCURRENT".into(), "v3".into());
            st.events.push(OutboxEvent {
                event: "SecretValueChanged",
                body: "{}".into(),
                at: T0,
            });
            Err(kura_core::Error::invalid_request("refused by the test"))
        })
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
        .modify(id, &mut |st| {
            st.stages.remove("AWSPREVIOUS");
            st.versions.retain(|v| v.version_id != "v1");
            Ok(())
        })
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
async fn idempotency(store: &dyn Store) {
    let id = create(store, "idem/app").await;
    let again = store
        .create_secret(
            &record("idem/app"),
            Some(&version("other", Some("value-x"))),
            &stages(&[("AWSCURRENT", "other")]),
        )
        .await
        .expect_err("a taken name");
    assert_eq!(again.code.as_str(), "ResourceExistsException");
    let mut same_arn = record("idem/other-name");
    same_arn.arn = record("idem/app").arn;
    let again = store
        .create_secret(&same_arn, None, &Stages::new())
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
        .modify(id, &mut |st| {
            st.new_versions.push(version("pending", None));
            st.stages.insert("AWSPENDING".into(), "pending".into());
            Ok(())
        })
        .await
        .unwrap();
    let (metas, _) = store.versions(id).await.unwrap();
    let pending = metas.iter().find(|v| v.version_id == "pending").unwrap();
    assert!(!pending.has_value);
    store
        .modify(id, &mut |st| {
            st.new_versions
                .push(version("pending", Some("value-pending")));
            Ok(())
        })
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
    store.modify(id, &mut |_| Ok(())).await.unwrap();
    store.modify(id, &mut |_| Ok(())).await.unwrap();
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
        .modify(id, &mut |st| {
            st.secret.deleted_at = Some(T0);
            st.secret.purge_at = Some(T0.plus_ms(7 * 86_400_000));
            Ok(())
        })
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

/// A rotation lease is held by one owner until released or expired; a held secret is not
/// due; recovery (one-server stores) frees every lease and makes in-flight steps due.
async fn leases(store: &dyn Store) {
    let id = create(store, "lease/app").await;
    // A secret with nothing due: never listed below.
    create(store, "lease/idle").await;
    store
        .modify(id, &mut |st| {
            st.secret.run.phase = RotationPhase::InProgress;
            st.secret.run.token = Some("v2".into());
            st.secret.run.attempt = 1;
            st.secret.run.resume_at = Some(T0);
            Ok(())
        })
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

    // A step in flight when the process died is due now after recovery, its lease freed.
    store
        .modify(id, &mut |st| {
            st.secret.run.resume_at = Some(T0.plus_ms(60 * MINUTE));
            Ok(())
        })
        .await
        .unwrap();
    let restart = expired.plus_ms(1);
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

fn target(id: &str, events: &[&str]) -> NotificationTargetRecord {
    NotificationTargetRecord {
        id: id.into(),
        url: format!("http://127.0.0.1:9/{id}"),
        events: events.iter().map(|e| e.to_string()).collect(),
        sealed_secret: sealed("signing"),
        created_at: T0,
    }
}

/// The outbox: one item per subscribed target, due at once; a retry counts the attempt and
/// waits; a finished item is gone; a deleted target takes its items with it; an event queued
/// in a failed `modify` is never queued.
async fn outbox(store: &dyn Store) {
    store
        .insert_notification_target(&target("t-a", &["SecretValueChanged", "RotationFailed"]))
        .await
        .unwrap();
    store
        .insert_notification_target(&target("t-b", &["RotationFailed"]))
        .await
        .unwrap();
    store
        .insert_notification_target(&target("t-c", &["SecretValueChanged"]))
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
    assert!(store.delete_notification_target("t-a").await.unwrap());
    assert!(!store.delete_notification_target("t-a").await.unwrap());
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
        event: "RotationFailed",
        body: r#"{"n":3}"#.into(),
        at: T0,
    };
    let _ = store
        .modify(id, &mut |st| {
            st.events.push(event());
            Err(kura_core::Error::invalid_request("no"))
        })
        .await
        .expect_err("refused");
    assert!(store.due_notifications(T0, 50).await.unwrap().is_empty());
    store
        .modify(id, &mut |st| {
            st.events.push(event());
            Ok(())
        })
        .await
        .unwrap();
    let due = store.due_notifications(T0, 50).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(
        (due[0].target_id.as_str(), due[0].body.as_str()),
        ("t-b", r#"{"n":3}"#)
    );
}

// ---------------------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------------------

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

/// One test per contract function for a backend; `$open` yields `(guard, store)`.
macro_rules! backend_tests {
    ($backend:ident, $open:expr, [$($case:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let (_guard, store) = $open.await;
                    super::$case(&store).await;
                }
            )*
        }
    };
}

backend_tests!(
    sqlite_store,
    sqlite(),
    [label_moves, idempotency, pagination, leases, outbox]
);
