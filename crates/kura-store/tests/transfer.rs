//! `kura migrate`'s copy: a SQLite installation built through the store traits, copied into a
//! fresh PostgreSQL database, reads back the same through PgStore, record for record; a
//! non-empty target is refused untouched; a copy that fails half-way leaves nothing behind.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

mod common;

use common::PgDatabase;
use kura_core::labels::Stages;
use kura_core::model::{NewVersion, RotationPhase, SealedValue, SecretRecord, Tag, ValueKind};
use kura_core::{Clock, SystemClock, Timestamp};
use kura_store::prelude::*;
use kura_store::transfer::{self, Progress};
use kura_store::{
    AccessKeyRecord, AuditChain, AuditQuery, AuditRecord, ListQuery, NO_AUDIT,
    NotificationTargetRecord, PgStore, RotationFunctionRecord, SortKey, SqliteStore, UserRecord,
    VersionSelector,
};
use sqlx::Connection;

const T0: Timestamp = Timestamp(1_800_000_000_000);
const MINUTE: i64 = 60_000;
/// More audit records than one INSERT batch holds, so batching is exercised.
const AUDIT_RECORDS: usize = 1_234;

/// A stand-in for kura-server's HMAC chain (as in the contract suite).
struct TestChain;

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

    fn committed(&self, _: &[AuditRecord]) -> kura_core::Result<()> {
        Ok(())
    }
}

fn sealed(marker: &str, kind: ValueKind) -> SealedValue {
    SealedValue {
        kind,
        ciphertext: format!("ciphertext of {marker}\0\u{1}\u{ff}").into_bytes(),
        wrapped_key: vec![0, 1, 2, 254, 255],
        key_name: "aws/secretsmanager".into(),
        key_version: 2,
    }
}

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

fn version(id: &str, value: Option<SealedValue>) -> NewVersion {
    NewVersion {
        version_id: id.into(),
        created_at: T0,
        value,
    }
}

fn stages(pairs: &[(&str, &str)]) -> Stages {
    pairs
        .iter()
        .map(|(s, v)| (s.to_string(), v.to_string()))
        .collect()
}

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        key: k.into(),
        value: v.into(),
    }
}

fn audit_record(i: usize) -> AuditRecord {
    AuditRecord {
        time: T0.0 + i as i64,
        request_id: format!("req-{i}"),
        kind: "request".into(),
        principal: format!("arn:aws:iam::123456789012:user/u{}", i % 7),
        access_key_id: "AKIATEST".into(),
        action: "GetSecretValue".into(),
        resource: format!(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:s{}",
            i % 5
        ),
        version_id: i.is_multiple_of(3).then(|| format!("v{i}")),
        version_stage: i.is_multiple_of(4).then(|| "AWSCURRENT".into()),
        source_ip: Some("127.0.0.1".into()),
        user_agent: i
            .is_multiple_of(2)
            .then(|| "aws-sdk-rust/1.0 ünïcode".into()),
        decision: "Allow".into(),
        outcome: if i.is_multiple_of(10) {
            "Error"
        } else {
            "Success"
        }
        .into(),
        error_code: i
            .is_multiple_of(10)
            .then(|| "ResourceNotFoundException".into()),
        duration_us: i as i64 * 3,
        // Records from before nodes were named have none.
        node: if i < 100 {
            String::new()
        } else {
            "node-a".into()
        },
        ..Default::default()
    }
}

/// Everything an installation holds, written through the store traits.
async fn populate(store: &SqliteStore) {
    store.set_audit_chain(Arc::new(TestChain));
    store
        .init_setting("account_id", b"123456789012")
        .await
        .unwrap();
    store
        .init_setting("audit_key", &[0, 159, 146, 150, 255])
        .await
        .unwrap();
    for v in 1..=2 {
        store
            .insert_key("aws/secretsmanager", v, &[v as u8, 0, 255], T0)
            .await
            .unwrap();
    }

    for name in ["alice", "bob"] {
        store
            .create_user(
                &UserRecord {
                    name: name.into(),
                    arn: format!("arn:aws:iam::123456789012:user/{name}"),
                    user_id: format!("AIDA{:0>16}", name.to_uppercase()),
                    created_at: T0,
                    tags: vec![tag("team", name)],
                },
                &NO_AUDIT,
            )
            .await
            .unwrap();
    }
    let key = |id: &str, user: &str, expires_at: Option<Timestamp>| AccessKeyRecord {
        access_key_id: id.into(),
        user_name: user.into(),
        user_arn: String::new(),
        user_id: String::new(),
        sealed_secret: sealed(id, ValueKind::String),
        active: true,
        created_at: T0,
        expires_at,
        scope_secret_id: expires_at.map(|_| 1),
        last_used_at: None,
    };
    store
        .insert_access_key(&key("AKIAALICE1", "alice", None), Some(2), &NO_AUDIT)
        .await
        .unwrap();
    store
        .insert_access_key(&key("AKIAALICE2", "alice", None), Some(2), &NO_AUDIT)
        .await
        .unwrap();
    store
        .insert_access_key(
            &key("AKIAROTATE", "bob", Some(T0.plus_ms(MINUTE))),
            None,
            &NO_AUDIT,
        )
        .await
        .unwrap();
    assert!(
        store
            .set_access_key_status("AKIAALICE2", false, &NO_AUDIT)
            .await
            .unwrap()
    );
    store
        .touch_access_key("AKIAALICE1", T0.plus_ms(MINUTE))
        .await
        .unwrap();
    store
        .put_user_policy(
            "alice",
            "read",
            r#"{"Version":"2012-10-17"}"#,
            T0,
            &NO_AUDIT,
        )
        .await
        .unwrap();

    store
        .insert_rotation_function(
            &RotationFunctionRecord {
                name: "hook".into(),
                kind: "webhook".into(),
                config: r#"{"url":"http://127.0.0.1:9/rotate"}"#.into(),
                sealed_secret: Some(sealed("hook signing", ValueKind::String)),
                created_at: T0,
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    store
        .insert_rotation_function(
            &RotationFunctionRecord {
                name: "cmd".into(),
                kind: "command".into(),
                config: r#"{"command":["/bin/true"]}"#.into(),
                sealed_secret: None,
                created_at: T0,
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    store
        .insert_notification_target(
            &NotificationTargetRecord {
                id: "ops".into(),
                url: "http://127.0.0.1:9/events".into(),
                events: vec![
                    "RotationSucceeded".into(),
                    "RotationFailed".into(),
                    "SecretExpiring".into(),
                ],
                expiring_days: vec![30, 7],
                sealed_secret: sealed("ops signing", ValueKind::String),
                created_at: T0,
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    store
        .enqueue_notification("RotationFailed", r#"{"n":1}"#, T0)
        .await
        .unwrap();
    store
        .enqueue_notification("RotationSucceeded", r#"{"n":2}"#, T0)
        .await
        .unwrap();
    let items = store
        .due_notifications(T0.plus_ms(MINUTE), 10)
        .await
        .unwrap();
    store
        .retry_notification(items[0].id, T0.plus_ms(5 * MINUTE), "connection refused")
        .await
        .unwrap();

    // Three versions created in the same millisecond (their order is kept by seq/rowid),
    // labels on each, tags, a description that is indexed for filters, a policy.
    let mut app = record("app/db");
    app.description = Some("Primary database credentials".into());
    app.resource_policy = Some(r#"{"Version":"2012-10-17","Statement":[]}"#.into());
    app.tags = vec![tag("env", "prod"), tag("owner", "data team")];
    app.tagged = true;
    let app_id = store
        .create_secret(
            &app,
            Some(&version("v1", Some(sealed("app v1", ValueKind::String)))),
            &stages(&[("AWSCURRENT", "v1")]),
            &NO_AUDIT,
        )
        .await
        .unwrap();
    store
        .modify(
            app_id,
            &mut |st| {
                st.new_versions
                    .push(version("v2", Some(sealed("app v2", ValueKind::String))));
                st.new_versions
                    .push(version("v3", Some(sealed("app v3", ValueKind::Binary))));
                st.stages = stages(&[("AWSCURRENT", "v3"), ("AWSPREVIOUS", "v2"), ("blue", "v1")]);
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    store
        .touch_accessed(app_id, "v3", Timestamp(T0.0 + 86_400_000))
        .await
        .unwrap();

    // A rotation in progress: a value-less AWSPENDING placeholder and a lease held by the
    // node that is now stopped.
    let rot_id = store
        .create_secret(
            &record("svc/rotating"),
            Some(&version("r1", Some(sealed("rot r1", ValueKind::String)))),
            &stages(&[("AWSCURRENT", "r1")]),
            &NO_AUDIT,
        )
        .await
        .unwrap();
    store
        .modify(
            rot_id,
            &mut |st| {
                st.secret.rotation.enabled = true;
                st.secret.rotation.function_arn =
                    Some("arn:aws:lambda:us-east-1:123456789012:function:hook".into());
                st.secret.rotation.after_days = Some(30);
                st.secret.rotation.last_rotated_at = Some(T0);
                st.secret.rotation.next_rotation_at = Some(T0.plus_ms(30 * 1440 * MINUTE));
                st.secret.rotation.next_rotation_end = Some(T0.plus_ms(31 * 1440 * MINUTE));
                st.new_versions.push(version("r2", None));
                st.stages.insert("AWSPENDING".into(), "r2".into());
                st.secret.run.phase = RotationPhase::InProgress;
                st.secret.run.token = Some("r2".into());
                st.secret.run.step = Some(kura_core::model::RotationStep::SetSecret);
                st.secret.run.attempt = 2;
                st.secret.run.last_error = Some("timed out".into());
                st.secret.run.last_attempt_at = Some(T0);
                st.secret.run.window_end = Some(T0.plus_ms(60 * MINUTE));
                st.secret
                    .set_expiration(Some(T0.plus_ms(40 * 1440 * MINUTE)), T0);
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_rotation(rot_id, "old-node", T0, T0.plus_ms(10 * MINUTE))
            .await
            .unwrap()
    );

    // Scheduled for deletion, and a binary secret.
    let gone = store
        .create_secret(
            &record("old/deleted"),
            Some(&version("d1", Some(sealed("gone", ValueKind::String)))),
            &stages(&[("AWSCURRENT", "d1")]),
            &NO_AUDIT,
        )
        .await
        .unwrap();
    store
        .modify(
            gone,
            &mut |st| {
                st.secret.deleted_at = Some(T0);
                st.secret.purge_at = Some(T0.plus_ms(7 * 1440 * MINUTE));
                Ok(())
            },
            &NO_AUDIT,
        )
        .await
        .unwrap();
    store
        .create_secret(
            &record("bin/blob"),
            Some(&version("b1", Some(sealed("blob", ValueKind::Binary)))),
            &stages(&[("AWSCURRENT", "b1")]),
            &NO_AUDIT,
        )
        .await
        .unwrap();
    // A deleted secret leaves a gap in the ids, which the copy keeps.
    let destroyed = store
        .create_secret(&record("destroyed"), None, &Stages::new(), &NO_AUDIT)
        .await
        .unwrap();
    store.delete_secret(destroyed, &NO_AUDIT).await.unwrap();
    store
        .create_secret(
            &record("after/gap"),
            Some(&version("g1", Some(sealed("gap", ValueKind::String)))),
            &stages(&[("AWSCURRENT", "g1")]),
            &NO_AUDIT,
        )
        .await
        .unwrap();

    let records: Vec<AuditRecord> = (0..AUDIT_RECORDS).map(audit_record).collect();
    store.append_audit(records).await.unwrap();
}

fn all_secrets() -> ListQuery {
    ListQuery {
        include_deleted: true,
        filters: Vec::new(),
        sort: SortKey::Name,
        descending: false,
        limit: 1000,
        after: None,
    }
}

fn all_audit() -> AuditQuery {
    AuditQuery {
        limit: 100_000,
        ..Default::default()
    }
}

/// Everything readable through the traits, in a form two stores can be compared in; the
/// resume time of secret `recovered` is left out (the copy sets it, checked on its own).
async fn snapshot(store: &dyn Store, recovered: i64) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["account_id", "audit_key", "pagination_token_key"] {
        out.push(format!(
            "setting {key}: {:?}",
            store.get_setting(key).await.unwrap()
        ));
    }
    out.push(format!("keys: {:?}", store.load_keys().await.unwrap()));
    for user in store.list_users().await.unwrap() {
        out.push(format!("user: {user:?}"));
        for k in store.list_access_keys(&user.name).await.unwrap() {
            out.push(format!(
                "key {} of {} ({} {}) active {} created {:?} used {:?} sealed {:?}",
                k.access_key_id,
                k.user_name,
                k.user_arn,
                k.user_id,
                k.active,
                k.created_at,
                k.last_used_at,
                (
                    &k.sealed_secret.ciphertext,
                    &k.sealed_secret.wrapped_key,
                    &k.sealed_secret.key_name,
                    k.sealed_secret.key_version
                ),
            ));
        }
        out.push(format!(
            "policies of {}: {:?}",
            user.name,
            store.user_policies(&user.name).await.unwrap()
        ));
    }
    let rotating = store.find_access_key("AKIAROTATE").await.unwrap().unwrap();
    out.push(format!(
        "rotation key: {} expires {:?} scope {:?} sealed {:?}",
        rotating.user_name,
        rotating.expires_at,
        rotating.scope_secret_id,
        rotating.sealed_secret.ciphertext
    ));
    for f in store.list_rotation_functions().await.unwrap() {
        out.push(format!(
            "function {} {} {} {:?} {:?}",
            f.name,
            f.kind,
            f.config,
            f.created_at,
            f.sealed_secret
                .map(|s| (s.ciphertext, s.wrapped_key, s.key_name, s.key_version))
        ));
    }
    for t in store.list_notification_targets().await.unwrap() {
        out.push(format!(
            "target {} {} {:?} {:?} {:?} {:?}",
            t.id, t.url, t.events, t.expiring_days, t.created_at, t.sealed_secret.ciphertext
        ));
    }
    for item in store
        .due_notifications(T0.plus_ms(1440 * MINUTE), 100)
        .await
        .unwrap()
    {
        out.push(format!("outbox: {item:?}"));
    }
    let page = store.list_secrets(&all_secrets()).await.unwrap();
    for (secret, labels) in &page.secrets {
        let mut secret = secret.clone();
        if secret.id == recovered {
            secret.run.resume_at = None;
        }
        // Rotation leases are not part of SecretRecord; they are compared separately.
        out.push(format!("secret: {secret:?} labels {labels:?}"));
        let (versions, stages) = store.versions(secret.id).await.unwrap();
        out.push(format!(
            "versions of {}: {versions:?} {stages:?}",
            secret.id
        ));
        for v in &versions {
            let stored = store
                .read_version(secret.id, VersionSelector::Id(&v.version_id))
                .await
                .unwrap()
                .unwrap();
            out.push(format!(
                "value {}/{}: {:?} {:?} {:?}",
                secret.id,
                v.version_id,
                stored.meta,
                stored.stages,
                stored.value.map(|s| (
                    s.kind == ValueKind::Binary,
                    s.ciphertext,
                    s.wrapped_key,
                    s.key_name,
                    s.key_version
                ))
            ));
        }
    }
    for r in store.query_audit(&all_audit()).await.unwrap() {
        out.push(format!("audit: {r:?}"));
    }
    out
}

fn assert_chained(records: &[AuditRecord]) {
    let mut prev: Option<&str> = None;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1, "contiguous");
        assert_eq!(r.mac, TestChain.mac(prev, r), "record {} chains", r.seq);
        prev = Some(&r.mac);
    }
}

/// Rows in every table of the PostgreSQL database, by table.
async fn row_counts(url: &str) -> Vec<(String, i64)> {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let mut out = Vec::new();
    for t in transfer::tables() {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        out.push((t.to_string(), n));
    }
    let _ = conn.close().await;
    out
}

async fn copy(path: &Path, url: &str) -> (kura_core::Result<transfer::Copied>, Vec<Progress>) {
    let mut seen = Vec::new();
    let result =
        transfer::copy_sqlite_to_postgres(path, url, &mut |p: Progress| seen.push(p)).await;
    (result, seen)
}

#[tokio::test]
async fn an_installation_moves_to_postgres_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kura.db");
    let sqlite = SqliteStore::open(&path).await.unwrap();
    populate(&sqlite).await;
    let rot_id = sqlite
        .list_secrets(&all_secrets())
        .await
        .unwrap()
        .secrets
        .iter()
        .find(|(s, _)| s.name == "svc/rotating")
        .map(|(s, _)| s.id)
        .unwrap();
    // The old node is stopped before the move.
    sqlite.close().await;

    let db = PgDatabase::create().await;
    let before = SystemClock.now();
    let (copied, seen) = copy(&path, &db.url()).await;
    let copied = copied.unwrap_or_else(|e| panic!("copy: {e:?}"));

    // Every table was copied, with progress reported up to its row count.
    let names: Vec<&str> = transfer::tables().collect();
    assert_eq!(
        copied.tables.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        names
    );
    assert_eq!(copied.rows("secrets"), 5);
    assert_eq!(copied.rows("secret_versions"), 8);
    assert_eq!(copied.rows("audit_log"), AUDIT_RECORDS as u64);
    assert_eq!(copied.rows("users"), 2);
    assert_eq!(copied.rows("access_keys"), 3);
    assert_eq!(copied.rows("notification_outbox"), 2);
    assert!(copied.rows("secret_words") > 0);
    assert!(copied.nul_replaced.is_empty() && copied.altered_audit_records.is_empty());
    for (table, rows) in &copied.tables {
        let last = seen
            .iter()
            .rev()
            .find(|p| p.table == *table)
            .unwrap_or_else(|| panic!("no progress for {table}"));
        assert_eq!((last.done, last.total), (*rows, *rows), "{table}");
        assert_eq!(last.tables, names.len());
    }
    let audit_steps: Vec<u64> = seen
        .iter()
        .filter(|p| p.table == "audit_log")
        .map(|p| p.done)
        .collect();
    assert_eq!(audit_steps, [0, 1000, AUDIT_RECORDS as u64]);
    assert_eq!(
        row_counts(&db.url())
            .await
            .into_iter()
            .map(|(_, n)| n as u64)
            .collect::<Vec<_>>(),
        copied.tables.iter().map(|(_, n)| *n).collect::<Vec<_>>()
    );

    // The copy lists every table of both schemas (a table added later without a place in
    // the copy fails here).
    let mut pg_conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let mut pg_tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name <> 'schema_migrations'",
    )
    .fetch_all(&mut pg_conn)
    .await
    .unwrap();
    pg_tables.retain(|t| !transfer::uncopied_tables().any(|u| u == t));
    pg_tables.sort();
    let mut sqlite_conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mut sqlite_tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'",
    )
    .fetch_all(&mut sqlite_conn)
    .await
    .unwrap();
    sqlite_tables.retain(|t| !transfer::uncopied_tables().any(|d| d == t));
    sqlite_tables.sort();
    let _ = sqlite_conn.close().await;
    let mut listed: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(pg_tables, listed);
    assert_eq!(sqlite_tables, listed);

    // Everything reads back the same through PgStore.
    let sqlite = SqliteStore::open(&path).await.unwrap();
    let pg = PgStore::connect(&db.url()).await.unwrap();
    let want = snapshot(&sqlite, rot_id).await;
    let got = snapshot(&pg, rot_id).await;
    assert!(want.iter().any(|l| l.contains("enabled: true")));
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    let records = pg.query_audit(&all_audit()).await.unwrap();
    assert_eq!(records.len(), AUDIT_RECORDS);
    assert_chained(&records);
    let current = pg
        .read_version(rot_id, VersionSelector::Stage("AWSCURRENT"))
        .await
        .unwrap()
        .unwrap();
    assert!(current.value == Some(sealed("rot r1", ValueKind::String)));

    // The stopped node's lease is gone, and its interrupted step is due again.
    let lease: (Option<String>, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT lease_owner, lease_expires_at, rotation_resume_at FROM secrets WHERE id = $1",
    )
    .bind(rot_id)
    .fetch_one(&mut pg_conn)
    .await
    .unwrap();
    assert_eq!((lease.0, lease.1), (None, None));
    let resume = lease.2.expect("the interrupted rotation is due again");
    assert!(resume >= before.0 && resume <= SystemClock.now().0);
    assert!(
        pg.rotation_due(SystemClock.now(), 10)
            .await
            .unwrap()
            .contains(&rot_id)
    );
    assert!(
        pg.claim_rotation(rot_id, "new-node", T0, T0.plus_ms(MINUTE))
            .await
            .unwrap()
    );

    // New rows continue after the copied ones: ids, version order, outbox ids, audit seq.
    pg.set_audit_chain(Arc::new(TestChain));
    let new_id = pg
        .create_secret(
            &record("new/after-move"),
            Some(&version("n1", Some(sealed("new", ValueKind::String)))),
            &stages(&[("AWSCURRENT", "n1")]),
            &NO_AUDIT,
        )
        .await
        .unwrap();
    let copied_max: i64 =
        sqlx::query_scalar("SELECT max(id) FROM secrets WHERE name <> 'new/after-move'")
            .fetch_one(&mut pg_conn)
            .await
            .unwrap();
    assert_eq!(new_id, copied_max + 1);
    let app_id = sqlite
        .find_secret(&kura_core::names::SecretRef::Name("app/db".into()))
        .await
        .unwrap()
        .unwrap()
        .id;
    pg.modify(
        app_id,
        &mut |st| {
            st.new_versions
                .push(version("v4", Some(sealed("app v4", ValueKind::String))));
            Ok(())
        },
        &NO_AUDIT,
    )
    .await
    .unwrap();
    let order: Vec<String> = pg
        .versions(app_id)
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|v| v.version_id)
        .collect();
    assert_eq!(order, ["v1", "v2", "v3", "v4"]);
    let outbox_max: i64 = sqlx::query_scalar("SELECT max(id) FROM notification_outbox")
        .fetch_one(&mut pg_conn)
        .await
        .unwrap();
    pg.enqueue_notification("RotationFailed", "{}", T0)
        .await
        .unwrap();
    let outbox_new: i64 = sqlx::query_scalar("SELECT max(id) FROM notification_outbox")
        .fetch_one(&mut pg_conn)
        .await
        .unwrap();
    assert_eq!(outbox_new, outbox_max + 1);
    pg.append_audit(vec![audit_record(AUDIT_RECORDS)])
        .await
        .unwrap();
    assert_chained(&pg.query_audit(&all_audit()).await.unwrap());
    let _ = pg_conn.close().await;
    pg.close().await;
    sqlite.close().await;

    // A second copy into the now non-empty database is refused, naming what is there, and
    // changes nothing.
    let counts = row_counts(&db.url()).await;
    let (again, _) = copy(&path, &db.url()).await;
    let err = again.expect_err("a non-empty target is refused");
    let text = format!("{err:?}");
    assert!(text.contains("not empty"), "{text}");
    assert!(text.contains("secrets: 6 rows"), "{text}");
    assert!(text.contains("audit_log"), "{text}");
    assert_eq!(row_counts(&db.url()).await, counts);
}

/// One transaction: a row PostgreSQL rejects in a late table leaves every table empty.
#[tokio::test]
async fn a_failed_copy_leaves_the_target_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kura.db");
    let sqlite = SqliteStore::open(&path).await.unwrap();
    sqlite.init_setting("account_id", b"1").await.unwrap();
    sqlite
        .create_secret(
            &record("one"),
            Some(&version("v1", Some(sealed("one", ValueKind::String)))),
            &stages(&[("AWSCURRENT", "v1")]),
            &NO_AUDIT,
        )
        .await
        .unwrap();
    sqlite.close().await;
    // A damaged file: a tag of a secret that does not exist (SQLite enforces foreign keys
    // only when asked to; PostgreSQL always does).
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO tags (secret_id, key, value) VALUES (999, 'orphan', 'tag')")
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;

    let db = PgDatabase::create().await;
    let (result, seen) = copy(&path, &db.url()).await;
    let err = result.expect_err("the orphan cannot be copied");
    assert!(
        err.detail.as_deref().unwrap_or("").contains("(tags)"),
        "{err:?}"
    );
    // It got as far as the secrets and versions before failing.
    assert!(
        seen.iter()
            .any(|p| p.table == "secret_versions" && p.done == 1)
    );
    for (table, n) in row_counts(&db.url()).await {
        assert_eq!(n, 0, "{table} after a failed copy");
    }
}

/// SQLite text may hold a NUL (an audited request's raw secret id), PostgreSQL text cannot:
/// such text is copied with U+FFFD in its place, the audit records that held it are named,
/// and the chain's links after them still hold.
#[tokio::test]
async fn text_with_nul_is_copied_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kura.db");
    let sqlite = SqliteStore::open(&path).await.unwrap();
    sqlite.set_audit_chain(Arc::new(TestChain));
    let mut with_nul = audit_record(1);
    with_nul.resource = "a\0b".into();
    sqlite
        .append_audit(vec![audit_record(0), with_nul, audit_record(2)])
        .await
        .unwrap();
    let original = sqlite.query_audit(&all_audit()).await.unwrap();
    assert_chained(&original);
    sqlite.close().await;

    let db = PgDatabase::create().await;
    let (result, _) = copy(&path, &db.url()).await;
    let copied = result.unwrap_or_else(|e| panic!("copy: {e:?}"));
    assert_eq!(copied.altered_audit_records, [2]);
    assert_eq!(copied.nul_replaced, [("audit_log", 1)]);
    let pg = PgStore::connect(&db.url()).await.unwrap();
    let records = pg.query_audit(&all_audit()).await.unwrap();
    assert_eq!(records[1].resource, "a\u{FFFD}b");
    // Everything but the replaced character is as it was, MACs included.
    let mut expected = original.clone();
    expected[1].resource = "a\u{FFFD}b".into();
    assert_eq!(records, expected);
    assert_ne!(
        records[1].mac,
        TestChain.mac(Some(&records[0].mac), &records[1])
    );
    assert_eq!(
        records[2].mac,
        TestChain.mac(Some(&records[1].mac), &records[2])
    );
    pg.close().await;
}

/// A database written by an older kura is not copied half-right: it is refused with the way
/// to upgrade it.
#[tokio::test]
async fn an_outdated_sqlite_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kura.db");
    SqliteStore::open(&path).await.unwrap().close().await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)")
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    let db = PgDatabase::create().await;
    let (result, _) = copy(&path, &db.url()).await;
    let err = result.expect_err("an old schema is refused");
    assert!(
        format!("{err:?}").contains("older than this kura"),
        "{err:?}"
    );
}

/// A target that something else holds (a node, another migrate) is refused once the lock
/// wait ends, not waited on forever, and nothing is copied.
#[tokio::test]
async fn a_target_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kura.db");
    let sqlite = SqliteStore::open(&path).await.unwrap();
    sqlite.init_setting("account_id", b"1").await.unwrap();
    sqlite.close().await;
    let db = PgDatabase::create().await;
    PgStore::connect(&db.url()).await.unwrap().close().await;
    let mut holder = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE audit_log IN SHARE MODE")
        .execute(&mut holder)
        .await
        .unwrap();

    let (result, _) = copy(&path, &db.url()).await;
    let err = result.expect_err("a target in use is refused");
    assert!(
        format!("{err:?}").contains("the target database is in use"),
        "{err:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let _ = holder.close().await;
    for (table, n) in row_counts(&db.url()).await {
        assert_eq!(n, 0, "{table}");
    }
}
