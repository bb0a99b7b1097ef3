//! Rotation and notification behaviour the other rotation tests leave out: a command function's
//! `TimeoutSeconds`, webhook retries with `MaxAttempts` > 1, notifications that give up, the
//! rule that only administrators create command functions, the `RotationFailed`,
//! `SecretScheduledForDeletion` and `SecretDeleted` events at a real target, and
//! `Kura.DeleteNotificationTarget`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use common::*;
use serde_json::{Value, json};

/// Longest wait for a rotation to settle or a request to arrive.
const SETTLE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------------------
// Helpers (the receiver and signature check mirror tests/rotation_functions.rs)
// ---------------------------------------------------------------------------------------------------------

async fn rotate(client: &Client, id: &str, function_arn: &str, token: &str) {
    let out = ok(client
        .rotate_secret()
        .secret_id(id)
        .rotation_lambda_arn(function_arn)
        .client_request_token(token)
        .send()
        .await);
    assert_eq!(out.version_id(), Some(token));
}

async fn expect_state(server: &Server, id: &str, state: &str) -> Value {
    let r = wait_rotation_settled(server, id, SETTLE).await;
    assert_eq!(
        r["State"],
        state,
        "rotation of {id}: unexpected state {r:#}\n--- server log ---\n{}",
        server.log()
    );
    r
}

async fn advance_clock(server: &Server, seconds: i64) {
    server
        .kura("AdvanceClock", &json!({ "Seconds": seconds }).to_string())
        .await
        .assert_ok();
}

/// Whether process `pid` has exited (gone, or a zombie nobody reaped yet).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

use common::receiver::*;

/// Asserts a signed POST from kura of `kind`; returns the body as JSON.
fn assert_signed(request: &Received, secret: &str, kind: &str) -> Value {
    assert_eq!(request.method, "POST", "{request:?}");
    assert_eq!(request.path, "/hook", "{request:?}");
    assert_eq!(request.header("kura-event"), Some(kind), "{request:?}");
    check_signature(secret, request).unwrap_or_else(|e| panic!("{e}"));
    request.json()
}

fn steps_of(requests: &[Received]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.json()["Step"].as_str().unwrap_or("?").to_string())
        .collect()
}

async fn create_target(server: &Server, url: &str, events: &[&str], secret: &str) -> String {
    let created = server
        .kura(
            "CreateNotificationTarget",
            &json!({ "Url": url, "Events": events, "SigningSecret": secret }).to_string(),
        )
        .await
        .assert_ok();
    created["TargetId"]
        .as_str()
        .unwrap_or_else(|| panic!("no TargetId: {created:#}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------------------------
// Command functions: TimeoutSeconds
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_command_function_past_its_timeout_seconds_is_killed_and_the_step_fails() {
    let server = Server::start().await;
    let c = server.client().await;
    let dir = tempfile::Builder::new()
        .prefix("kura-timeout-")
        .tempdir()
        .unwrap();
    let pid_file = dir.path().join("pid");
    // `exec` keeps the pid: the process kura started is the one that must be killed.
    let script = format!("echo $$ > {}; exec sleep 300", pid_file.display());
    server
        .kura(
            "CreateRotationFunction",
            &json!({
                "Name": "slow", "Type": "command", "Command": ["/bin/sh", "-c", script],
                "TimeoutSeconds": 1, "MaxAttempts": 1,
            })
            .to_string(),
        )
        .await
        .assert_ok();
    let (arn, v1) = create_string(&c, "timeout/app", "value-before-the-timeout", &token(1)).await;
    let started = std::time::Instant::now();
    rotate(&c, "timeout/app", &lambda_arn(&arn, "slow"), &token(2)).await;
    let r = expect_state(&server, "timeout/app", "Failed").await;
    let elapsed = started.elapsed();
    assert_eq!(
        r["LastError"], "createSecret: slow did not finish within 1 s",
        "{r:#}"
    );
    assert!(
        elapsed < Duration::from_secs(15),
        "the 1 s timeout took {elapsed:?} to fail the step"
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("the function never ran: {e}"))
        .trim()
        .parse()
        .expect("a pid");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !process_gone(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the timed-out function (pid {pid}) still runs"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (current, value, _) = get_stage(&c, "timeout/app", "AWSCURRENT").await;
    assert_eq!(
        (current.as_str(), value.as_str()),
        (v1.as_str(), "value-before-the-timeout")
    );
}

// ---------------------------------------------------------------------------------------------------------
// Webhooks: MaxAttempts > 1
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_webhook_that_fails_twice_is_retried_after_the_backoff_and_max_attempts_bounds_it() {
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    let signing = "webhook-retry-signing-secret-0123";
    let calls = Arc::new(AtomicUsize::new(0));
    let receiver = {
        let (client, calls) = (c.clone(), calls.clone());
        Receiver::start(Arc::new(move |request: Received| -> Reply {
            let (client, n) = (client.clone(), calls.fetch_add(1, Ordering::SeqCst));
            Box::pin(async move {
                if n < 2 {
                    return 500;
                }
                match lambda_step(&client, &request).await {
                    Ok(()) => 200,
                    Err(_) => 400,
                }
            })
        }))
        .await
    };
    server
        .kura(
            "CreateRotationFunction",
            &json!({"Name": "flaky", "Type": "webhook", "Url": receiver.url,
                "SigningSecret": signing, "MaxAttempts": 3})
            .to_string(),
        )
        .await
        .assert_ok();
    let (arn, v1) = create_string(&c, "retry/app", "value-before-the-retries", &token(1)).await;
    rotate(&c, "retry/app", &lambda_arn(&arn, "flaky"), &token(2)).await;

    let r = wait_rotation_settled(&server, "retry/app", SETTLE).await;
    assert_eq!(r["State"], "InProgress", "a retry remains: {r:#}");
    assert_eq!(r["Attempt"], 2, "{r:#}");
    let error = r["LastError"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("createSecret: ") && error.contains("HTTP 500"),
        "{r:#}"
    );
    assert_eq!(receiver.requests().len(), 1);
    // The first retry waits one minute, the second two.
    advance_clock(&server, 59).await;
    assert_eq!(receiver.requests().len(), 1, "retried before 1 minute");
    advance_clock(&server, 1).await;
    assert_eq!(receiver.requests().len(), 2, "{:#?}", receiver.requests());
    let r = wait_rotation_settled(&server, "retry/app", SETTLE).await;
    assert_eq!(
        (&r["State"], &r["Attempt"]),
        (&json!("InProgress"), &json!(3))
    );
    advance_clock(&server, 119).await;
    assert_eq!(receiver.requests().len(), 2, "retried before 2 minutes");
    advance_clock(&server, 1).await;
    let r = expect_state(&server, "retry/app", "Succeeded").await;
    assert!(r.get("LastError").is_none(), "{r:#}");
    let requests = receiver.requests();
    assert_eq!(
        steps_of(&requests),
        [
            "createSecret",
            "createSecret",
            "createSecret",
            "setSecret",
            "testSecret",
            "finishSecret"
        ],
    );
    for request in &requests {
        let event = assert_signed(request, signing, "rotation.step");
        assert_eq!(event["ClientRequestToken"], token(2), "one cycle: {event}");
    }
    let (current, value, _) = get_stage(&c, "retry/app", "AWSCURRENT").await;
    assert_eq!(
        (current, value),
        (token(2), format!("webhook-password-{}", token(2)))
    );
    let (previous, _, _) = get_stage(&c, "retry/app", "AWSPREVIOUS").await;
    assert_eq!(previous, v1);

    // MaxAttempts 2 against a webhook that always fails: exactly two POSTs, then Failed.
    let broken = Receiver::always(500).await;
    server
        .kura(
            "CreateRotationFunction",
            &json!({"Name": "broken", "Type": "webhook", "Url": broken.url,
                "SigningSecret": signing, "MaxAttempts": 2})
            .to_string(),
        )
        .await
        .assert_ok();
    let (arn2, v1b) = create_string(&c, "retry/broken", "value-kept-on-failure", &token(1)).await;
    rotate(&c, "retry/broken", &lambda_arn(&arn2, "broken"), &token(2)).await;
    let r = wait_rotation_settled(&server, "retry/broken", SETTLE).await;
    assert_eq!(
        (&r["State"], &r["Attempt"]),
        (&json!("InProgress"), &json!(2))
    );
    advance_clock(&server, 60).await;
    let r = expect_state(&server, "retry/broken", "Failed").await;
    assert!(
        r["LastError"]
            .as_str()
            .is_some_and(|e| e.starts_with("createSecret: ") && e.contains("HTTP 500")),
        "{r:#}"
    );
    advance_clock(&server, 3_600).await;
    assert_eq!(
        steps_of(&broken.requests()),
        ["createSecret", "createSecret"],
        "MaxAttempts 2 means two POSTs"
    );
    let (current, value, _) = get_stage(&c, "retry/broken", "AWSCURRENT").await;
    assert_eq!(
        (current.as_str(), value.as_str()),
        (v1b.as_str(), "value-kept-on-failure")
    );
}

// ---------------------------------------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_notification_refused_eight_times_is_given_up_and_the_target_still_gets_new_events() {
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    let accept = Arc::new(AtomicBool::new(false));
    let receiver = {
        let accept = accept.clone();
        Receiver::start(Arc::new(move |_| -> Reply {
            let status = if accept.load(Ordering::SeqCst) {
                200
            } else {
                500
            };
            Box::pin(async move { status })
        }))
        .await
    };
    let signing = "give-up-signing-secret-0123456789";
    create_target(&server, &receiver.url, &["SecretValueChanged"], signing).await;
    create_string(&c, "giveup/app", "first-value-of-giveup", &token(1)).await;
    put_string(&c, "giveup/app", "second-value-of-giveup", &token(2)).await;
    receiver
        .wait_until("the first delivery", |all| !all.is_empty())
        .await;
    // Backoff 30 s, doubling: the n-th retry comes 30·2^(n-1) s after the one before.
    let mut wait = 30;
    for tries in 2..=8 {
        advance_clock(&server, wait - 1).await;
        assert_eq!(
            receiver.requests().len(),
            tries - 1,
            "try {tries} came before its {wait} s backoff"
        );
        advance_clock(&server, 1).await;
        assert_eq!(
            receiver.requests().len(),
            tries,
            "try {tries} did not come after {wait} s"
        );
        wait *= 2;
    }
    // Given up after the eighth: nothing more, however long.
    advance_clock(&server, 30 * 86_400).await;
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 8, "{bodies:#?}");
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "one event: {bodies:#?}"
    );
    assert_eq!(bodies[0]["VersionId"], token(2));

    // The target is not dropped with the event: the next event reaches it.
    accept.store(true, Ordering::SeqCst);
    put_string(&c, "giveup/app", "third-value-of-giveup", &token(3)).await;
    let all = receiver
        .wait_until("the next event", |all| all.len() > 8)
        .await;
    let body = assert_signed(&all[8], signing, "notification");
    assert_eq!(
        (&body["Event"], &body["VersionId"]),
        (&json!("SecretValueChanged"), &json!(token(3)))
    );
    advance_clock(&server, 86_400).await;
    assert_eq!(
        receiver.requests().len(),
        9,
        "a delivered event is not sent again"
    );
}

#[tokio::test]
async fn rotation_failed_scheduled_for_deletion_and_deleted_events_reach_a_target() {
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    let receiver = Receiver::always(200).await;
    let signing = "lifecycle-events-signing-secret-01";
    create_target(
        &server,
        &receiver.url,
        &[
            "RotationFailed",
            "SecretScheduledForDeletion",
            "SecretDeleted",
        ],
        signing,
    )
    .await;
    let failing = Receiver::always(500).await;
    server
        .kura(
            "CreateRotationFunction",
            &json!({"Name": "fails", "Type": "webhook", "Url": failing.url,
                "SigningSecret": signing, "MaxAttempts": 1})
            .to_string(),
        )
        .await
        .assert_ok();
    let (arn, _) = create_string(&c, "events/rotated", "value-of-the-failed-one", &token(1)).await;
    rotate(&c, "events/rotated", &lambda_arn(&arn, "fails"), &token(2)).await;
    let r = expect_state(&server, "events/rotated", "Failed").await;
    let (windowed, _) = create_string(&c, "events/windowed", "value-of-windowed", &token(1)).await;
    let (forced, _) = create_string(&c, "events/forced", "value-of-forced", &token(1)).await;
    let deleted = ok(c
        .delete_secret()
        .secret_id("events/windowed")
        .recovery_window_in_days(7)
        .send()
        .await);
    ok(c.delete_secret()
        .secret_id("events/forced")
        .force_delete_without_recovery(true)
        .send()
        .await);

    let has = |bodies: &[Value], event: &str, arn: &str| {
        bodies
            .iter()
            .filter(|b| b["Event"] == event && b["ARN"] == arn)
            .count()
    };
    let requests = receiver
        .wait_until("the three events so far", |all| all.len() >= 3)
        .await;
    let bodies: Vec<Value> = requests
        .iter()
        .map(|r| assert_signed(r, signing, "notification"))
        .collect();
    let failed: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["Event"] == "RotationFailed")
        .collect();
    assert_eq!(failed.len(), 1, "{bodies:#?}");
    assert_eq!(failed[0]["ARN"], arn.as_str());
    assert_eq!(failed[0]["Name"], "events/rotated");
    assert_eq!(failed[0]["VersionId"], token(2));
    let error = failed[0]["Error"].as_str().expect("Error");
    assert!(error.contains("HTTP 500"), "{error:?}");
    assert_eq!(
        r["LastError"].as_str(),
        Some(format!("createSecret: {error}").as_str()),
        "the event carries the step's error"
    );
    assert_eq!(
        has(&bodies, "SecretScheduledForDeletion", &windowed),
        1,
        "{bodies:#?}"
    );
    assert_eq!(has(&bodies, "SecretDeleted", &forced), 1, "{bodies:#?}");
    assert_eq!(
        has(&bodies, "SecretDeleted", &windowed),
        0,
        "not yet: {bodies:#?}"
    );
    assert_eq!(bodies.len(), 3, "nothing else is subscribed: {bodies:#?}");

    // The recovery window ends: the purge job deletes it and says so.
    let deletion_date = deleted.deletion_date().expect("DeletionDate").secs();
    advance_clock(&server, deletion_date - now_of(&server).await + 1).await;
    let requests = receiver
        .wait_until("SecretDeleted after the purge", |all| all.len() >= 4)
        .await;
    let body = assert_signed(&requests[3], signing, "notification");
    assert_eq!(
        (&body["Event"], &body["ARN"], &body["Name"]),
        (
            &json!("SecretDeleted"),
            &json!(windowed),
            &json!("events/windowed")
        )
    );
    assert_no_secret(&c, "events/windowed").await;
}

/// The service time of a `--test-clock` server.
async fn now_of(server: &Server) -> i64 {
    let r = server
        .kura("AdvanceClock", &json!({ "Seconds": 0 }).to_string())
        .await
        .assert_ok();
    r["Time"].as_f64().expect("Time") as i64
}

#[tokio::test]
async fn a_deleted_notification_target_gets_no_more_events_nor_retries() {
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    let failing = Receiver::always(500).await;
    let kept = Receiver::always(200).await;
    let signing = "deleted-target-signing-secret-0123";
    let gone_id = create_target(&server, &failing.url, &["SecretValueChanged"], signing).await;
    let kept_id = create_target(&server, &kept.url, &["SecretValueChanged"], signing).await;
    create_string(&c, "targets/app", "first-value-of-targets", &token(1)).await;
    put_string(&c, "targets/app", "second-value-of-targets", &token(2)).await;
    failing
        .wait_until("the first try", |all| !all.is_empty())
        .await;
    kept.wait_until("the event", |all| !all.is_empty()).await;

    server
        .kura(
            "DeleteNotificationTarget",
            &json!({ "TargetId": gone_id }).to_string(),
        )
        .await
        .assert_ok();
    let listed = server
        .kura("ListNotificationTargets", "{}")
        .await
        .assert_ok();
    let ids: Vec<&str> = listed["NotificationTargets"]
        .as_array()
        .expect("NotificationTargets")
        .iter()
        .filter_map(|t| t["TargetId"].as_str())
        .collect();
    assert_eq!(ids, [kept_id.as_str()], "{listed:#}");
    let again = server
        .kura(
            "DeleteNotificationTarget",
            &json!({ "TargetId": gone_id }).to_string(),
        )
        .await;
    let msg = again.assert_error("ResourceNotFoundException");
    assert!(msg.contains(&gone_id), "{msg:?}");

    // Its queued retry is dropped, and new events are not queued for it.
    advance_clock(&server, 3_600).await;
    put_string(&c, "targets/app", "third-value-of-targets", &token(3)).await;
    kept.wait_until("the second event", |all| all.len() >= 2)
        .await;
    advance_clock(&server, 86_400).await;
    assert_eq!(failing.requests().len(), 1, "{:#?}", failing.requests());
    let versions: Vec<Value> = kept
        .bodies()
        .iter()
        .map(|b| b["VersionId"].clone())
        .collect();
    assert_eq!(versions, [json!(token(2)), json!(token(3))]);
}

// ---------------------------------------------------------------------------------------------------------
// Who may create command functions
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn only_administrators_create_command_functions_even_with_an_allow_all_policy() {
    let server = Server::start().await;
    server
        .kura("CreateUser", r#"{"UserName": "operator"}"#)
        .await
        .assert_ok();
    let (akid, secret) = server.new_access_key("operator").await;
    remember_value(&secret);
    let everything = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    server
        .kura(
            "PutUserPolicy",
            &json!({"UserName": "operator", "PolicyName": "all",
                "PolicyDocument": everything.to_string()})
            .to_string(),
        )
        .await
        .assert_ok();

    let command = json!({"Name": "by-operator", "Type": "command",
        "Command": ["/bin/true"]});
    let refused = server
        .raw_as(
            &akid,
            &secret,
            "Kura.CreateRotationFunction",
            &command.to_string(),
        )
        .await;
    let msg = refused.assert_error("AccessDeniedException");
    assert!(
        msg.contains("only administrators"),
        "the message says why: {msg:?}"
    );
    // The same user may create what runs nothing on the server.
    let receiver = Receiver::always(200).await;
    server
        .raw_as(
            &akid,
            &secret,
            "Kura.CreateRotationFunction",
            &json!({"Name": "hook-by-operator", "Type": "webhook", "Url": receiver.url})
                .to_string(),
        )
        .await
        .assert_ok();
    let listed = server
        .kura("ListRotationFunctions", "{}")
        .await
        .assert_ok()
        .to_string();
    assert!(!listed.contains("\"by-operator\""), "{listed}");
    assert!(listed.contains("\"hook-by-operator\""), "{listed}");
    // Root may.
    server
        .kura("CreateRotationFunction", &command.to_string())
        .await
        .assert_ok();
}
