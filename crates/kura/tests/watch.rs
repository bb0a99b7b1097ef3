//! Kura.WatchSecrets: the changes after a cursor (writes, stage moves, engine rotations,
//! deletion), the long-poll's wake-up, cursors kept across a restart, authorization per
//! secret, its audit record, and a prompt shutdown with a poll waiting.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

async fn watch(server: &Server, body: Value) -> Value {
    server
        .kura("WatchSecrets", &body.to_string())
        .await
        .assert_ok()
}

/// The cursor of "now".
async fn now_cursor(server: &Server) -> String {
    let v = watch(server, json!({"WaitSeconds": 0})).await;
    assert_eq!(v["Changes"], json!([]), "nothing after now: {v}");
    assert_eq!(v["Reset"], false);
    v["Cursor"].as_str().expect("a cursor").to_string()
}

fn kinds(v: &Value) -> Vec<(String, String)> {
    v["Changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no Changes: {v}"))
        .iter()
        .map(|c| {
            (
                c["Name"].as_str().unwrap_or_default().to_string(),
                c["Change"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn changes_after_a_cursor_name_the_secret_and_what_happened_never_its_value() {
    let server = Server::start().await;
    let c = server.client().await;
    let value = format!("first-{}", unique_suffix());
    server.remember(&value);
    let (arn, _) = create_string(&c, "watch/app", &value, &token(1)).await;
    let cursor = now_cursor(&server).await;

    let second = format!("second-{}", unique_suffix());
    server.remember(&second);
    put_string(&c, "watch/app", &second, &token(2)).await;
    ok(c.update_secret_version_stage()
        .secret_id("watch/app")
        .version_stage("AWSCURRENT")
        .move_to_version_id(token(1))
        .remove_from_version_id(token(2))
        .send()
        .await);
    ok(c.tag_resource()
        .secret_id("watch/app")
        .tags(tag("team", "a"))
        .send()
        .await);
    ok(c.delete_secret().secret_id(&arn).send().await);
    ok(c.restore_secret().secret_id("watch/app").send().await);
    // A read is no change.
    get_string(&c, "watch/app").await;

    let v = watch(&server, json!({"Cursor": cursor, "WaitSeconds": 0})).await;
    let text = v.to_string();
    assert!(!text.contains(&value) && !text.contains(&second), "{text}");
    let name = |k: &str| ("watch/app".to_string(), k.to_string());
    assert_eq!(
        kinds(&v),
        vec![
            name("ValueChanged"),
            name("StagesMoved"),
            name("MetadataChanged"),
            name("Deleted"),
            name("Restored"),
        ],
        "{v}"
    );
    for ch in v["Changes"].as_array().unwrap() {
        assert_eq!(ch["ARN"], arn.as_str());
    }
    assert_eq!(v["Changes"][0]["VersionId"], token(2).as_str());
    assert_eq!(v["Changes"][0]["Action"], "secretsmanager:PutSecretValue");
    // The answer's cursor resumes after what it listed.
    let next = v["Cursor"].as_str().unwrap();
    let again = watch(&server, json!({"Cursor": next, "WaitSeconds": 0})).await;
    assert_eq!(again["Changes"], json!([]), "{again}");

    // MaxResults pages through the same changes.
    let first = watch(
        &server,
        json!({"Cursor": cursor, "WaitSeconds": 0, "MaxResults": 2}),
    )
    .await;
    assert_eq!(
        kinds(&first),
        vec![name("ValueChanged"), name("StagesMoved")]
    );
    let rest = watch(
        &server,
        json!({"Cursor": first["Cursor"], "WaitSeconds": 0}),
    )
    .await;
    assert_eq!(kinds(&rest).len(), 3, "{rest}");

    // SecretIds filters by name or ARN.
    create_plain(&c, "watch/other", "other-value-1").await;
    let other_cursor = now_cursor(&server).await;
    put_string(&c, "watch/other", "other-value-2", &token(3)).await;
    put_string(&c, "watch/app", "app-value-3", &token(4)).await;
    for id in ["watch/app", arn.as_str()] {
        let only = watch(
            &server,
            json!({"Cursor": other_cursor, "WaitSeconds": 0, "SecretIds": [id]}),
        )
        .await;
        assert_eq!(kinds(&only), vec![name("ValueChanged")], "{id}: {only}");
    }
}

#[tokio::test]
async fn a_waiting_poll_answers_as_soon_as_a_change_commits() {
    let server = Server::start().await;
    let c = server.client().await;
    create_string(&c, "watch/wait", "wait-value-1", &token(1)).await;
    let cursor = now_cursor(&server).await;
    let started = Instant::now();
    let poll = {
        let body = json!({"Cursor": cursor, "WaitSeconds": 30}).to_string();
        let server = &server;
        async move { server.kura("WatchSecrets", &body).await.assert_ok() }
    };
    let change = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        put_string(&c, "watch/wait", "wait-value-2", &token(2)).await;
        Instant::now()
    };
    let (v, changed_at) = tokio::join!(poll, change);
    assert_eq!(
        kinds(&v),
        vec![("watch/wait".to_string(), "ValueChanged".to_string())]
    );
    assert!(
        changed_at.elapsed() < Duration::from_secs(1),
        "the poll answered {:?} after the change",
        changed_at.elapsed()
    );
    assert!(started.elapsed() >= Duration::from_millis(400), "it waited");

    // Nothing happens: it waits its WaitSeconds and answers an empty list.
    let started = Instant::now();
    let v = watch(&server, json!({"Cursor": v["Cursor"], "WaitSeconds": 1})).await;
    assert_eq!(v["Changes"], json!([]));
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn an_engine_rotation_is_reported_once_the_new_value_is_current() {
    let server = Server::start().await;
    let c = server.client().await;
    let (arn, _) = create_string(&c, "watch/rot", "rot-value-old", &token(1)).await;
    let cursor = now_cursor(&server).await;
    ok(c.rotate_secret()
        .secret_id("watch/rot")
        .rotation_lambda_arn(lambda_arn(&arn, "kura-password"))
        .client_request_token(token(2))
        .send()
        .await);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut at = cursor;
    while !seen.iter().any(|(_, k): &(String, String)| k == "Rotated") {
        assert!(Instant::now() < deadline, "no Rotated change: {seen:?}");
        let v = watch(&server, json!({"Cursor": at, "WaitSeconds": 5})).await;
        seen.extend(kinds(&v));
        at = v["Cursor"].as_str().unwrap().to_string();
    }
    assert_eq!(seen[0].1, "RotationStarted", "{seen:?}");
    // When Rotated is seen, AWSCURRENT is already the new version.
    let (current, _, _) = get_stage(&c, "watch/rot", "AWSCURRENT").await;
    assert_eq!(current, token(2));
}

#[tokio::test]
async fn cursors_survive_a_restart_and_a_foreign_cursor_resets() {
    let server = Server::start().await;
    let c = server.client().await;
    create_string(&c, "watch/restart", "restart-value-1", &token(1)).await;
    let cursor = now_cursor(&server).await;
    let server = server.restart().await;
    let c = server.client().await;
    put_string(&c, "watch/restart", "restart-value-2", &token(2)).await;
    let v = watch(&server, json!({"Cursor": cursor, "WaitSeconds": 0})).await;
    assert_eq!(
        kinds(&v),
        vec![("watch/restart".to_string(), "ValueChanged".to_string())]
    );

    // Ahead of this trail's end: the caller cannot know what it missed.
    let v = watch(&server, json!({"Cursor": "999999999", "WaitSeconds": 0})).await;
    assert_eq!(v["Reset"], true, "{v}");
    assert_eq!(v["Changes"], json!([]));

    let bad = server
        .kura("WatchSecrets", r#"{"Cursor": "yesterday"}"#)
        .await
        .assert_error("InvalidParameterException");
    assert!(bad.contains("Cursor"), "{bad}");
    let bad = server
        .kura("WatchSecrets", r#"{"WaitSeconds": 61}"#)
        .await
        .assert_error("InvalidParameterException");
    assert!(bad.contains("WaitSeconds"), "{bad}");
}

#[tokio::test]
async fn watch_needs_its_permission_and_shows_only_secrets_the_caller_may_describe() {
    let server = Server::start().await;
    let c = server.client().await;
    let (seen_arn, _) = create_string(&c, "team/seen", "seen-value-1", &token(1)).await;
    create_string(&c, "team/hidden", "hidden-value-1", &token(2)).await;
    for user in ["nobody", "watcher"] {
        server
            .kura("CreateUser", &json!({"UserName": user}).to_string())
            .await
            .assert_ok();
    }
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kura:WatchSecrets", "Resource": "*"},
        {"Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": seen_arn},
    ]});
    server
        .kura(
            "PutUserPolicy",
            &json!({"UserName": "watcher", "PolicyName": "watch", "PolicyDocument": policy.to_string()})
                .to_string(),
        )
        .await
        .assert_ok();
    let (nobody_id, nobody_secret) = server.new_access_key("nobody").await;
    let (watcher_id, watcher_secret) = server.new_access_key("watcher").await;

    let refused = server
        .raw_as(
            &nobody_id,
            &nobody_secret,
            "Kura.WatchSecrets",
            r#"{"WaitSeconds": 0}"#,
        )
        .await
        .assert_error("AccessDeniedException");
    assert!(refused.contains("kura:WatchSecrets"), "{refused}");

    let cursor = now_cursor(&server).await;
    put_string(&c, "team/hidden", "hidden-value-2", &token(3)).await;
    put_string(&c, "team/seen", "seen-value-2", &token(4)).await;
    let v = server
        .raw_as(
            &watcher_id,
            &watcher_secret,
            "Kura.WatchSecrets",
            &json!({"Cursor": cursor, "WaitSeconds": 0}).to_string(),
        )
        .await
        .assert_ok();
    assert_eq!(
        kinds(&v),
        vec![("team/seen".to_string(), "ValueChanged".to_string())],
        "{v}"
    );

    // Each call is in the audit trail, allowed or not, under the caller's name.
    let events = server
        .kura("LookupAuditEvents", r#"{"Action": "kura:WatchSecrets"}"#)
        .await
        .assert_ok();
    let records = events["Events"].as_array().unwrap();
    let of = |user: &str, decision: &str| {
        records.iter().any(|r| {
            r["Principal"]
                .as_str()
                .unwrap_or_default()
                .ends_with(&format!("user/{user}"))
                && r["Decision"] == decision
        })
    };
    assert!(of("nobody", "Deny"), "{events}");
    assert!(of("watcher", "Allow"), "{events}");
}

#[tokio::test]
async fn a_waiting_poll_does_not_hold_up_shutdown() {
    let server = Server::start().await;
    let cursor = now_cursor(&server).await;
    let waiting = {
        let body = json!({"Cursor": cursor, "WaitSeconds": 60}).to_string();
        let server = &server;
        async move { server.kura("WatchSecrets", &body).await }
    };
    // Start the poll, give it time to be waiting, then stop the server: it answers, and the
    // server exits well before the poll's 60 s.
    let started = Instant::now();
    let (answer, ()) = tokio::join!(waiting, async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pid = server.pid();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the poll held the shutdown for {:?}",
        started.elapsed()
    );
    let v = answer.assert_ok();
    assert_eq!(v["Changes"], json!([]));
}
