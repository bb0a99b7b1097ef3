//! Version pruning at the 100-version boundary, LastAccessedDate at day granularity and the purge
//! job, all driven by the server's test clock rather than by sleeping.

mod common;

use common::*;

const DAY: i64 = 86_400;

async fn version_count(c: &aws_sdk_secretsmanager::Client, id: &str) -> usize {
    list_versions(c, id, true).await.len()
}

#[tokio::test]
async fn young_versions_are_never_pruned_so_the_101st_is_refused() {
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    create_plain(&c, "prune/young", "versioned-value-0").await;
    for i in 1..100 {
        put_string(
            &c,
            "prune/young",
            &format!("versioned-value-{i}"),
            &token(i),
        )
        .await;
    }
    assert_eq!(version_count(&c, "prune/young").await, 100);
    assert_api_err(
        c.put_secret_value()
            .secret_id("prune/young")
            .secret_string("versioned-value-100")
            .send()
            .await,
        "LimitExceededException",
        None,
    );
    // Nothing was half-written: still 100 versions, AWSCURRENT unchanged.
    assert_eq!(version_count(&c, "prune/young").await, 100);
    assert_eq!(get_string(&c, "prune/young").await, "versioned-value-99");
}

#[tokio::test]
async fn old_unlabelled_versions_are_pruned_beyond_100() {
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    let first = ok(c
        .create_secret()
        .name("prune/old")
        .secret_string("versioned-value-0")
        .send()
        .await)
    .version_id()
    .unwrap()
    .to_string();
    for i in 1..100 {
        put_string(&c, "prune/old", &format!("versioned-value-{i}"), &token(i)).await;
    }
    assert_eq!(version_count(&c, "prune/old").await, 100);
    server
        .kura("AdvanceClock", r#"{"Seconds": 90000}"#)
        .await
        .assert_ok();
    put_string(&c, "prune/old", "versioned-value-100", &token(100)).await;
    let versions = list_versions(&c, "prune/old", true).await;
    assert_eq!(versions.len(), 100);
    assert!(
        !versions.contains_key(&first),
        "the oldest unlabelled version is pruned"
    );
    assert_eq!(get_string(&c, "prune/old").await, "versioned-value-100");
    assert_eq!(
        get_stage(&c, "prune/old", "AWSPREVIOUS").await.1,
        "versioned-value-99",
        "labelled versions stay"
    );
}

#[tokio::test]
async fn last_accessed_date_is_kept_per_day() {
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    // Noon on 2030-01-10.
    let noon = 1_894_276_800;
    server
        .kura("SetClock", &format!(r#"{{"Time": {noon}}}"#))
        .await
        .assert_ok();
    create_plain(&c, "access/a", "accessed-value").await;
    let d = ok(c.describe_secret().secret_id("access/a").send().await);
    assert!(d.last_accessed_date().is_none(), "never read yet");
    get_string(&c, "access/a").await;
    let d = ok(c.describe_secret().secret_id("access/a").send().await);
    assert_eq!(d.last_accessed_date().unwrap().secs(), noon - noon % DAY);
    server
        .kura("AdvanceClock", &format!(r#"{{"Seconds": {}}}"#, 2 * DAY))
        .await
        .assert_ok();
    get_string(&c, "access/a").await;
    let d = ok(c.describe_secret().secret_id("access/a").send().await);
    assert_eq!(
        d.last_accessed_date().unwrap().secs(),
        noon - noon % DAY + 2 * DAY
    );
    let versions = ok(c
        .list_secret_version_ids()
        .secret_id("access/a")
        .send()
        .await);
    assert_eq!(
        versions.versions()[0].last_accessed_date().unwrap().secs(),
        noon - noon % DAY + 2 * DAY
    );
}

#[tokio::test]
async fn purge_job_destroys_secrets_whose_window_has_passed() {
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    // A description is metadata the audit trail never records, so it marks the secret's rows.
    let old_arn = ok(c
        .create_secret()
        .name("purge/a")
        .secret_string("to be purged")
        .description("purge-marker-7f3a9c")
        .send()
        .await)
    .arn()
    .unwrap()
    .to_string();
    create_plain(&c, "purge/b", "kept longer").await;
    ok(c.delete_secret()
        .secret_id("purge/a")
        .recovery_window_in_days(7)
        .send()
        .await);
    ok(c.delete_secret()
        .secret_id("purge/b")
        .recovery_window_in_days(30)
        .send()
        .await);
    server
        .kura("AdvanceClock", &format!(r#"{{"Seconds": {}}}"#, 6 * DAY))
        .await
        .assert_ok();
    assert!(
        ok(c.describe_secret().secret_id("purge/a").send().await)
            .deleted_date()
            .is_some()
    );
    server
        .kura("AdvanceClock", &format!(r#"{{"Seconds": {}}}"#, 2 * DAY))
        .await
        .assert_ok();
    assert_api_err(
        c.describe_secret().secret_id("purge/a").send().await,
        "ResourceNotFoundException",
        Some(NOT_FOUND_MSG),
    );
    assert!(
        ok(c.describe_secret().secret_id("purge/b").send().await)
            .deleted_date()
            .is_some()
    );
    // The name is free again, under a new ARN.
    let new_arn = create_plain(&c, "purge/a", "new-value-after-purge").await;
    assert_ne!(new_arn, old_arn);
    // The purged rows are gone from the database files, not just unlinked. (The audit trail
    // keeps the ARN on purpose: it records that the secret existed and was purged.)
    let dir = server.stop().await;
    for (path, bytes) in read_all_files(&dir.path().join("data")) {
        assert!(
            !contains(&bytes, b"purge-marker-7f3a9c"),
            "{} still holds the purged secret's metadata",
            path.display()
        );
    }
    let purged = sqlite(
        &dir.path().join("data/kura.db"),
        &format!("SELECT COUNT(*) FROM secrets WHERE arn = '{old_arn}'"),
    );
    assert_eq!(purged, "0");
}

#[tokio::test]
async fn clock_operations_need_the_test_flag() {
    let server = Server::start().await;
    let msg = server
        .kura("AdvanceClock", r#"{"Seconds": 10}"#)
        .await
        .assert_error("InvalidRequestException");
    assert!(msg.contains("--test-clock"), "{msg}");
}
