//! Many rotations due at once: `--rotation-concurrency` bounds the engine, every
//! `kura-password` cycle finishes, and a function that reaches outside kura (a webhook) still
//! runs at most four secrets at a time however large the engine's bound.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::receiver::*;
use common::*;
use serde_json::json;

/// Schedules a daily rotation of `name` with `function`, not now; its NextRotationDate.
async fn schedule_daily(server: &Server, name: &str, arn: &str, function: &str) -> f64 {
    server
        .raw(
            "RotateSecret",
            &json!({
                "SecretId": name,
                "RotationLambdaARN": lambda_arn(arn, function),
                "RotationRules": { "AutomaticallyAfterDays": 1 },
                "RotateImmediately": false,
            })
            .to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok();
    let d = describe_json(server, name).await;
    d["NextRotationDate"]
        .as_f64()
        .unwrap_or_else(|| panic!("{name} has no NextRotationDate: {d:#}"))
}

/// Moves the test clock to `t` (epoch seconds); kura runs the rotations due then before it
/// answers (waiting up to 30 s for them).
async fn set_clock(server: &Server, t: f64) {
    server
        .kura("SetClock", &json!({ "Time": t }).to_string())
        .await
        .assert_ok();
}

#[tokio::test]
async fn forty_kura_password_rotations_due_at_once_all_finish_with_a_small_bound() {
    let server = Server::start_with(&["--test-clock", "--rotation-concurrency", "3"]).await;
    let c = server.client().await;
    let mut due = 0f64;
    let mut before = Vec::new();
    for i in 0..40 {
        let name = format!("many/{i:02}");
        let (arn, v1) = create_string(&c, &name, &format!("old-{i}"), &token(i + 1)).await;
        due = due.max(schedule_daily(&server, &name, &arn, "kura-password").await);
        before.push((name, v1));
    }
    set_clock(&server, due + 1.0).await;
    for (name, v1) in &before {
        let r = wait_rotation_settled(&server, name, Duration::from_secs(60)).await;
        assert_eq!(
            r["State"],
            "Succeeded",
            "{name}: {r:#}\n--- server log ---\n{}",
            server.log()
        );
        let (current, value, _) = get_stage(&c, name, "AWSCURRENT").await;
        assert_ne!(&current, v1, "{name}: AWSCURRENT did not move");
        assert_eq!(value.chars().count(), 32, "{name}: a kura-password value");
        let (previous, old, _) = get_stage(&c, name, "AWSPREVIOUS").await;
        assert_eq!(&previous, v1, "{name}: AWSPREVIOUS is the old version");
        assert!(old.starts_with("old-"), "{name}: {old:?}");
    }
}

#[tokio::test]
async fn a_webhook_function_rotates_at_most_four_secrets_at_once_under_a_larger_engine_bound() {
    let server = Server::start_with(&["--test-clock", "--rotation-concurrency", "32"]).await;
    let c = server.client().await;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let receiver = {
        let (in_flight, most) = (in_flight.clone(), most.clone());
        Receiver::start(Arc::new(move |_request: Received| -> Reply {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            Box::pin(async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Long enough that calls would overlap if kura sent them all at once.
                tokio::time::sleep(Duration::from_millis(300)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                500 // the step fails: one call per secret, and the cycle ends
            })
        }))
        .await
    };
    server
        .kura(
            "CreateRotationFunction",
            &json!({
                "Name": "slow-hook",
                "Type": "webhook",
                "Url": receiver.url,
                "TimeoutSeconds": 30,
                "MaxAttempts": 1,
            })
            .to_string(),
        )
        .await
        .assert_ok();
    let mut due = 0f64;
    let names: Vec<String> = (0..12).map(|i| format!("hooked/{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        let (arn, _) = create_string(&c, name, "kept-by-the-hook-7q", &token(i as u64 + 1)).await;
        due = due.max(schedule_daily(&server, name, &arn, "slow-hook").await);
    }
    set_clock(&server, due + 1.0).await;
    for name in &names {
        let r = wait_rotation_settled(&server, name, Duration::from_secs(60)).await;
        assert_eq!(r["State"], "Failed", "{name}: {r:#}");
    }
    assert_eq!(
        receiver.requests().len(),
        names.len(),
        "one createSecret call per secret"
    );
    let most = most.load(Ordering::SeqCst);
    assert!(
        most <= 4,
        "{most} webhook calls ran at once; a function that is not in-process runs at most 4"
    );
}

#[test]
fn a_rotation_concurrency_of_zero_is_refused() {
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let (status, out) = start_refused(tmp.path(), &["--rotation-concurrency", "0"], &[]);
    assert!(!status.success(), "{out}");
    assert!(out.contains("--rotation-concurrency"), "{out}");
    assert!(out.contains("1..=1024"), "{out}");
}
