//! Rotation with the built-in `kura-password` function: RotateSecret and CancelRotateSecret,
//! the AWSPENDING rules, schedules driven by the test clock, and request validation.

mod common;

use common::*;
use serde_json::json;

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// 2030-01-01T00:00:00Z, a Tuesday.
const T2030: i64 = 1_893_456_000;

async fn rotate_now(
    server: &Server,
    id: &str,
    arn: &str,
    token: Option<&str>,
) -> serde_json::Value {
    let mut body = json!({ "SecretId": id, "RotationLambdaARN": lambda_arn(arn, "kura-password") });
    if let Some(t) = token {
        body["ClientRequestToken"] = t.into();
    }
    server
        .raw("RotateSecret", &body.to_string(), SignMode::Root)
        .await
        .assert_ok()
}

#[tokio::test]
async fn immediate_rotation_with_kura_password_replaces_a_plain_password() {
    let server = Server::start().await;
    let c = server.client().await;
    let (arn, v1) = create_string(&c, "rot/plain", "old-password", &token(1)).await;
    let out = ok(c
        .rotate_secret()
        .secret_id("rot/plain")
        .rotation_lambda_arn(lambda_arn(&arn, "kura-password"))
        .client_request_token(token(2))
        .send()
        .await);
    assert_eq!(out.version_id(), Some(token(2).as_str()));
    assert_eq!(out.arn(), Some(arn.as_str()));
    wait_rotation_succeeded(&server, "rot/plain").await;

    let (cur, value, labels) = get_stage(&c, "rot/plain", "AWSCURRENT").await;
    assert_eq!(cur, token(2));
    assert_eq!(value.chars().count(), 32, "default kura-password length");
    assert_ne!(value, "old-password");
    assert!(
        labels.contains(&"AWSPENDING".to_string()),
        "AWSPENDING stays on the new current version, as on AWS: {labels:?}"
    );
    let (prev, old, _) = get_stage(&c, "rot/plain", "AWSPREVIOUS").await;
    assert_eq!((prev.as_str(), old.as_str()), (v1.as_str(), "old-password"));

    let d = ok(c.describe_secret().secret_id("rot/plain").send().await);
    assert_eq!(d.rotation_enabled(), Some(true));
    assert_eq!(
        d.rotation_lambda_arn(),
        Some(lambda_arn(&arn, "kura-password").as_str())
    );
    assert!(d.last_rotated_date().is_some());
    assert!(
        d.next_rotation_date().is_none(),
        "no schedule: rotation on demand only"
    );
    let r = &describe_json(&server, "rot/plain").await["KuraRotation"];
    assert_eq!(r["State"], "Succeeded");
    assert!(r.get("LastError").is_none());
}

async fn set_clock(server: &Server, t: i64) {
    server
        .kura("SetClock", &json!({ "Time": t }).to_string())
        .await
        .assert_ok();
}

async fn advance(server: &Server, seconds: i64) {
    server
        .kura("AdvanceClock", &json!({ "Seconds": seconds }).to_string())
        .await
        .assert_ok();
}

fn secs(v: &serde_json::Value) -> Option<i64> {
    v.as_f64().map(|f| f.round() as i64)
}

/// Sets a schedule without rotating now.
async fn schedule(
    server: &Server,
    id: &str,
    arn: &str,
    rules: serde_json::Value,
) -> serde_json::Value {
    let body = json!({
        "SecretId": id,
        "RotationLambdaARN": lambda_arn(arn, "kura-password"),
        "RotationRules": rules,
        "RotateImmediately": false,
    });
    server
        .raw("RotateSecret", &body.to_string(), SignMode::Root)
        .await
        .assert_ok()
}

/// Advances the test clock in `step`-second moves up to `until`, recording each rotation time.
async fn rotations_until(server: &Server, id: &str, from: i64, until: i64, step: i64) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut last = None;
    let mut t = from;
    while t + step <= until {
        advance(server, step).await;
        t += step;
        let d = describe_json(server, id).await;
        let r = secs(&d["LastRotatedDate"]);
        if let Some(at) = r
            && r != last
        {
            seen.push(at);
            last = r;
        }
        assert_ne!(
            d["KuraRotation"]["State"], "Failed",
            "rotation failed: {d:#}"
        );
    }
    seen
}

#[tokio::test]
async fn a_daily_rate_rotates_exactly_once_per_day_inside_its_window() {
    let server = Server::start_with(&["--test-clock"]).await;
    let start = T2030 + 13 * HOUR + 17 * 60;
    set_clock(&server, start).await;
    let c = server.client().await;
    let arn = create_plain(&c, "rot/daily", "rotation-initial-value").await;
    let out = schedule(
        &server,
        "rot/daily",
        &arn,
        json!({"ScheduleExpression": "rate(1 day)", "Duration": "3h"}),
    )
    .await;
    assert!(
        out.get("VersionId").is_none(),
        "RotateImmediately=false starts no rotation: {out}"
    );
    let d = describe_json(&server, "rot/daily").await;
    assert_eq!(
        secs(&d["NextRotationDate"]),
        Some(T2030 + DAY),
        "the window opens at midnight UTC"
    );
    assert_eq!(d["RotationRules"]["ScheduleExpression"], "rate(1 day)");
    assert_eq!(d["RotationRules"]["Duration"], "3h");

    // 110-minute steps over 30 days: every 3-hour window is visited, each day at another minute.
    let seen = rotations_until(&server, "rot/daily", start, T2030 + 31 * DAY, 110 * 60).await;
    assert_eq!(
        seen.len(),
        30,
        "one rotation per day from Jan 2 to Jan 31: {seen:?}"
    );
    for (i, r) in seen.iter().enumerate() {
        let day = T2030 + (i as i64 + 1) * DAY;
        assert!(
            (day..day + 3 * HOUR).contains(r),
            "rotation {i} at {r} is outside its window starting {day}"
        );
    }
    assert_eq!(list_versions(&c, "rot/daily", true).await.len(), 31);
    let d = describe_json(&server, "rot/daily").await;
    assert_eq!(
        secs(&d["NextRotationDate"]),
        Some(T2030 + 31 * DAY),
        "Feb 1, the day after the last rotation"
    );
}

#[tokio::test]
async fn a_cron_schedule_rotates_on_its_days_inside_its_window() {
    let server = Server::start_with(&["--test-clock"]).await;
    set_clock(&server, T2030).await; // Tuesday
    let c = server.client().await;
    let arn = create_plain(&c, "rot/cron", "rotation-initial-value").await;
    schedule(
        &server,
        "rot/cron",
        &arn,
        json!({"ScheduleExpression": "cron(0 10 ? * MON *)", "Duration": "2h"}),
    )
    .await;
    let monday = T2030 + 6 * DAY; // 2030-01-07
    let d = describe_json(&server, "rot/cron").await;
    assert_eq!(secs(&d["NextRotationDate"]), Some(monday + 10 * HOUR));

    let seen = rotations_until(&server, "rot/cron", T2030, T2030 + 15 * DAY, 55 * 60).await;
    assert_eq!(seen.len(), 2, "two Mondays in 15 days: {seen:?}");
    for (i, r) in seen.iter().enumerate() {
        let open = monday + i as i64 * 7 * DAY + 10 * HOUR;
        assert!(
            (open..open + 2 * HOUR).contains(r),
            "rotation at {r} outside {open}+2h"
        );
    }
}

#[tokio::test]
async fn automatically_after_days_counts_a_manual_change_as_a_rotation() {
    let server = Server::start_with(&["--test-clock"]).await;
    set_clock(&server, T2030 + 13 * HOUR).await;
    let c = server.client().await;
    let arn = create_plain(&c, "rot/manual", "rotation-initial-value").await;
    schedule(
        &server,
        "rot/manual",
        &arn,
        json!({"AutomaticallyAfterDays": 2}),
    )
    .await;
    let d = describe_json(&server, "rot/manual").await;
    assert_eq!(secs(&d["NextRotationDate"]), Some(T2030 + 2 * DAY));
    assert_eq!(d["RotationRules"]["AutomaticallyAfterDays"], 2);

    advance(&server, DAY).await; // Jan 2, 13:00
    put_string(&c, "rot/manual", "changed by hand", &token(7)).await;
    let d = describe_json(&server, "rot/manual").await;
    assert_eq!(
        secs(&d["NextRotationDate"]),
        Some(T2030 + 3 * DAY),
        "the schedule restarts from the manual change"
    );
    advance(&server, DAY).await; // Jan 3, 13:00: past the old date, before the new one is due
    assert_eq!(get_string(&c, "rot/manual").await, "changed by hand");
    advance(&server, DAY).await; // Jan 4, 13:00
    assert_ne!(get_string(&c, "rot/manual").await, "changed by hand");
}

#[tokio::test]
async fn rotate_immediately_false_only_sets_the_schedule() {
    let server = Server::start_with(&["--test-clock"]).await;
    set_clock(&server, T2030).await;
    let c = server.client().await;
    let (arn, v1) = create_string(&c, "rot/later", "rotation-initial-value", &token(1)).await;
    let before = describe_stages(&c, "rot/later").await;
    let out = ok(c
        .rotate_secret()
        .secret_id("rot/later")
        .rotation_lambda_arn(lambda_arn(&arn, "kura-password"))
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await);
    assert_eq!(out.version_id(), None);
    assert_eq!(
        describe_stages(&c, "rot/later").await,
        before,
        "no AWSPENDING, nothing moved"
    );
    let d = ok(c.describe_secret().secret_id("rot/later").send().await);
    assert_eq!(d.rotation_enabled(), Some(true));
    assert_eq!(
        d.rotation_rules()
            .and_then(|r| r.automatically_after_days()),
        Some(30)
    );
    assert!(d.last_rotated_date().is_none());
    assert_near(
        d.next_rotation_date(),
        T2030 + 30 * DAY,
        0,
        "NextRotationDate",
    );
    assert_eq!(get_stage(&c, "rot/later", "AWSCURRENT").await.0, v1);
}

#[tokio::test]
async fn cancel_rotate_secret_turns_the_schedule_off_and_keeps_the_labels() {
    let server = Server::start_with(&["--test-clock"]).await;
    set_clock(&server, T2030).await;
    let c = server.client().await;
    let arn = create_plain(&c, "rot/cancel", "rotation-initial-value").await;
    schedule(
        &server,
        "rot/cancel",
        &arn,
        json!({"ScheduleExpression": "rate(1 day)"}),
    )
    .await;
    let before = describe_stages(&c, "rot/cancel").await;
    ok(c.cancel_rotate_secret()
        .secret_id("rot/cancel")
        .send()
        .await);
    let d = ok(c.describe_secret().secret_id("rot/cancel").send().await);
    assert_eq!(d.rotation_enabled(), Some(false));
    assert!(d.next_rotation_date().is_none());
    assert_eq!(
        d.rotation_lambda_arn(),
        Some(lambda_arn(&arn, "kura-password").as_str()),
        "the function is remembered"
    );
    advance(&server, 3 * DAY).await;
    assert_eq!(
        get_string(&c, "rot/cancel").await,
        "rotation-initial-value",
        "a cancelled schedule never fires"
    );
    assert_eq!(describe_stages(&c, "rot/cancel").await, before);

    // RotateSecret without a function ARN re-enables rotation with the remembered one.
    ok(c.rotate_secret().secret_id("rot/cancel").send().await);
    wait_rotation_succeeded(&server, "rot/cancel").await;
    assert_ne!(get_string(&c, "rot/cancel").await, "rotation-initial-value");
    assert_eq!(
        ok(c.describe_secret().secret_id("rot/cancel").send().await).rotation_enabled(),
        Some(true)
    );
}

#[tokio::test]
async fn cancelling_a_paused_rotation_ends_it_keeps_awspending_and_the_next_one_clears_it() {
    let server = Server::start_with(&["--test-clock"]).await;
    set_clock(&server, T2030).await;
    let c = server.client().await;
    let current = format!("paused-current-{}", unique_suffix());
    let (arn, v1) = create_string(&c, "rot/paused", &current, &token(1)).await;
    // A function whose target is down: every call fails, and it would be tried 3 times.
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let script = format!(
        "echo call >> '{}'; echo 'the target is down' >&2; exit 1",
        calls.display()
    );
    server
        .kura(
            "CreateRotationFunction",
            &json!({"Name": "flaky", "Type": "command", "Command": ["/bin/sh", "-c", script], "MaxAttempts": 3})
                .to_string(),
        )
        .await
        .assert_ok();
    let calls_made = || {
        std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let body = json!({
        "SecretId": "rot/paused",
        "RotationLambdaARN": lambda_arn(&arn, "flaky"),
        "RotationRules": {"ScheduleExpression": "rate(1 day)"},
        "ClientRequestToken": token(2),
    });
    server
        .raw("RotateSecret", &body.to_string(), SignMode::Root)
        .await
        .assert_ok();
    // Paused between attempts: in progress, a retry planned, AWSPENDING on the new version.
    let r = wait_rotation_settled(&server, "rot/paused", std::time::Duration::from_secs(60)).await;
    assert_eq!(r["State"], "InProgress", "{r:#}");
    assert!(
        r["NextAttemptDate"].is_number(),
        "a retry is planned: {r:#}"
    );
    assert_eq!(calls_made(), 1);
    assert_eq!(
        describe_stages(&c, "rot/paused").await,
        stages_of(&[(&v1, &["AWSCURRENT"]), (&token(2), &["AWSPENDING"])])
    );

    let out = server
        .raw(
            "CancelRotateSecret",
            r#"{"SecretId": "rot/paused"}"#,
            SignMode::Root,
        )
        .await
        .assert_ok();
    assert_eq!(
        out["VersionId"],
        token(2),
        "the cancelled cycle's version: {out}"
    );
    let d = describe_json(&server, "rot/paused").await;
    assert_eq!(d["RotationEnabled"], false, "{d:#}");
    assert!(d.get("NextRotationDate").is_none(), "{d:#}");
    let r = &d["KuraRotation"];
    assert_eq!(r["State"], "Failed", "{d:#}");
    assert!(
        r["LastError"]
            .as_str()
            .is_some_and(|e| e.contains("cancelled by CancelRotateSecret")),
        "{d:#}"
    );
    assert!(
        r.get("NextAttemptDate").is_none(),
        "no retry is planned: {d:#}"
    );
    // The labels stay as they were (as on AWS): AWSPENDING on the cancelled version.
    assert_eq!(
        describe_stages(&c, "rot/paused").await,
        stages_of(&[(&v1, &["AWSCURRENT"]), (&token(2), &["AWSPENDING"])])
    );
    // Past the planned retry and the next scheduled day, nothing runs.
    advance(&server, 2 * DAY).await;
    assert_eq!(
        calls_made(),
        1,
        "the function was called again after the cancel"
    );
    assert_eq!(
        describe_json(&server, "rot/paused").await["KuraRotation"]["State"],
        "Failed"
    );
    assert_eq!(get_string(&c, "rot/paused").await, current);

    // The next rotation clears the stale AWSPENDING and its value-less version.
    rotate_now(&server, "rot/paused", &arn, Some(&token(3))).await;
    wait_rotation_succeeded(&server, "rot/paused").await;
    let after = describe_stages(&c, "rot/paused").await;
    assert_eq!(
        after.get(&v1).cloned(),
        Some(vec!["AWSPREVIOUS".to_string()]),
        "{after:?}"
    );
    assert!(!after.contains_key(&token(2)), "{after:?}");
    assert_eq!(get_stage(&c, "rot/paused", "AWSCURRENT").await.0, token(3));
}

#[tokio::test]
async fn awspending_on_the_current_version_does_not_block_the_next_rotation() {
    let server = Server::start().await;
    let c = server.client().await;
    let arn = create_plain(&c, "rot/again", "rotation-initial-value").await;
    rotate_now(&server, "rot/again", &arn, Some(&token(1))).await;
    wait_rotation_succeeded(&server, "rot/again").await;
    let stages = describe_stages(&c, "rot/again").await;
    assert_eq!(
        stages.get(&token(1)).map(|s| s.len()),
        Some(2),
        "AWSCURRENT and AWSPENDING on one version: {stages:?}"
    );
    let first = get_string(&c, "rot/again").await;
    rotate_now(&server, "rot/again", &arn, Some(&token(2))).await;
    wait_rotation_succeeded(&server, "rot/again").await;
    let (cur, value, _) = get_stage(&c, "rot/again", "AWSCURRENT").await;
    assert_eq!(cur, token(2));
    assert_ne!(value, first);
    assert_eq!(get_stage(&c, "rot/again", "AWSPREVIOUS").await.0, token(1));
}

#[tokio::test]
async fn awspending_on_another_version_blocks_rotation_unless_its_token_is_sent() {
    let server = Server::start().await;
    let c = server.client().await;
    let (arn, v1) = create_string(&c, "rot/staged", "rotation-initial-value", &token(1)).await;
    // A value staged for the next rotation (Alibaba's "custom secret").
    put_string_staged(
        &c,
        "rot/staged",
        "my-chosen-value",
        &token(2),
        &["AWSPENDING"],
    )
    .await;

    let body = json!({ "SecretId": "rot/staged", "RotationLambdaARN": lambda_arn(&arn, "kura-password"), "ClientRequestToken": token(3) });
    let msg = server
        .raw("RotateSecret", &body.to_string(), SignMode::Root)
        .await
        .assert_error("InvalidRequestException");
    assert!(
        msg.contains("previous rotation isn't complete") && msg.contains(&token(2)),
        "{msg}"
    );
    assert_eq!(
        describe_stages(&c, "rot/staged").await.len(),
        2,
        "nothing was added"
    );

    // Naming the staged version rotates to exactly that value.
    let out = rotate_now(&server, "rot/staged", &arn, Some(&token(2))).await;
    assert_eq!(out["VersionId"], token(2));
    wait_rotation_succeeded(&server, "rot/staged").await;
    let (cur, value, _) = get_stage(&c, "rot/staged", "AWSCURRENT").await;
    assert_eq!(
        (cur.as_str(), value.as_str()),
        (token(2).as_str(), "my-chosen-value")
    );
    assert_eq!(get_stage(&c, "rot/staged", "AWSPREVIOUS").await.0, v1);
}

#[tokio::test]
async fn kura_password_functions_follow_their_password_rules_and_keep_other_json_fields() {
    let server = Server::start().await;
    let c = server.client().await;
    let arn = create_plain(
        &c,
        "rot/json",
        r#"{"username":"app","password":"old","host":"db.internal"}"#,
    )
    .await;
    server
        .kura(
            "CreateRotationFunction",
            &json!({"Name": "short-alnum", "Type": "kura-password",
                    "PasswordRules": {"PasswordLength": 20, "ExcludePunctuation": true}})
            .to_string(),
        )
        .await
        .assert_ok();
    let body =
        json!({ "SecretId": "rot/json", "RotationLambdaARN": lambda_arn(&arn, "short-alnum") });
    server
        .raw("RotateSecret", &body.to_string(), SignMode::Root)
        .await
        .assert_ok();
    wait_rotation_succeeded(&server, "rot/json").await;
    let v: serde_json::Value = serde_json::from_str(&get_string(&c, "rot/json").await).unwrap();
    assert_eq!(v["username"], "app");
    assert_eq!(v["host"], "db.internal");
    let pw = v["password"].as_str().unwrap();
    assert_eq!(pw.len(), 20);
    assert!(
        pw.chars().all(|ch| ch.is_ascii_alphanumeric()),
        "{pw:?} breaks ExcludePunctuation"
    );

    // A JSON secret with nothing to rotate fails visibly and leaves AWSCURRENT alone.
    create_plain(&c, "rot/nopw", r#"{"apikey_id":"k1"}"#).await;
    let body =
        json!({ "SecretId": "rot/nopw", "RotationLambdaARN": lambda_arn(&arn, "kura-password") });
    server
        .raw("RotateSecret", &body.to_string(), SignMode::Root)
        .await
        .assert_ok();
    let r = wait_rotation_settled(&server, "rot/nopw", std::time::Duration::from_secs(30)).await;
    assert!(
        r["LastError"]
            .as_str()
            .unwrap_or("")
            .contains("\"password\" field"),
        "{r:#}"
    );
    assert_eq!(get_string(&c, "rot/nopw").await, r#"{"apikey_id":"k1"}"#);
}

#[tokio::test]
async fn rotate_secret_rejects_bad_requests_with_a_clear_error() {
    let server = Server::start().await;
    let c = server.client().await;
    let arn = create_plain(&c, "rot/bad", "rotation-initial-value").await;
    let pw = lambda_arn(&arn, "kura-password");
    let call = |body: serde_json::Value| {
        let server = &server;
        async move {
            server
                .raw("RotateSecret", &body.to_string(), SignMode::Root)
                .await
        }
    };
    let cases: Vec<(serde_json::Value, &str, &str)> = vec![
        (
            json!({"SecretId": "rot/bad"}),
            "InvalidRequestException",
            "RotationLambdaARN",
        ),
        (
            json!({"SecretId": "rot/bad", "RotationLambdaARN": "arn:aws:lambda:us-east-1:1:function"}),
            "InvalidParameterException",
            "arn:aws:lambda:REGION:ACCOUNT:function:NAME",
        ),
        (
            json!({"SecretId": "rot/bad", "RotationLambdaARN": pw.replace("us-east-1", "eu-west-1")}),
            "InvalidParameterException",
            "another region",
        ),
        (
            json!({"SecretId": "rot/bad", "RotationLambdaARN": lambda_arn(&arn, "nope")}),
            "ResourceNotFoundException",
            "nope",
        ),
        (
            json!({"SecretId": "rot/bad", "RotationLambdaARN": pw, "RotationRules": {"AutomaticallyAfterDays": 3, "ScheduleExpression": "rate(3 days)"}}),
            "InvalidParameterException",
            "not both",
        ),
        (
            json!({"SecretId": "rot/bad", "RotationLambdaARN": pw, "RotationRules": {"ScheduleExpression": "cron(0 25 * * ? *)"}}),
            "InvalidParameterException",
            "hours field",
        ),
        (
            json!({"SecretId": "rot/bad", "RotationLambdaARN": pw, "RotationRules": {"ScheduleExpression": "rate(30 minutes)"}}),
            "InvalidParameterException",
            "rate(",
        ),
        (
            json!({"SecretId": "rot/bad", "RotationLambdaARN": pw, "RotationRules": {"ScheduleExpression": "cron(0 10 * * ? 2020)"}}),
            "InvalidParameterException",
            "never fires",
        ),
        (
            json!({"SecretId": "rot/bad", "RotationLambdaARN": pw, "RotationRules": {"AutomaticallyAfterDays": 0}}),
            "InvalidParameterException",
            "AutomaticallyAfterDays",
        ),
        (
            json!({"SecretId": "rot/bad", "RotationLambdaARN": pw, "RotationRules": {"ScheduleExpression": "rate(4 hours)", "Duration": "6h"}}),
            "InvalidParameterException",
            "Duration",
        ),
        (
            json!({"SecretId": "rot/bad", "RotationLambdaARN": pw, "ClientRequestToken": "short"}),
            "ValidationException",
            "ClientRequestToken",
        ),
        (
            json!({"SecretId": "rot/missing", "RotationLambdaARN": pw}),
            "ResourceNotFoundException",
            "can't find",
        ),
    ];
    for (body, code, needle) in cases {
        let msg = call(body.clone()).await.assert_error(code);
        assert!(
            msg.contains(needle),
            "{body}: message {msg:?} should mention {needle:?}"
        );
    }
    let d = describe_json(&server, "rot/bad").await;
    assert!(
        d.get("RotationEnabled").is_none(),
        "no failed request changed the secret: {d:#}"
    );
    assert_eq!(describe_stages(&c, "rot/bad").await.len(), 1);

    ok(c.delete_secret().secret_id("rot/bad").send().await);
    let msg = call(json!({"SecretId": "rot/bad", "RotationLambdaARN": pw}))
        .await
        .assert_error("InvalidRequestException");
    assert!(msg.contains("marked for deletion"), "{msg}");
}
