//! `GET /metrics` read by Prometheus' own text parser (Python `prometheus_client`, installed by
//! scripts/test), and `GET /health` with and without `?ready`, unsealed and sealed.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

/// One sample: its name, its labels, its value.
type Sample = (String, BTreeMap<String, String>, f64);

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;

/// The samples of a scrape, parsed by prometheus_client; `None` (skipped) without it.
fn parse(text: &str) -> Option<Vec<Sample>> {
    let have = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        skip("python3 has no prometheus_client; run the tests through scripts/test");
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    Some(
        samples
            .into_iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    serde_json::from_value(s["labels"].clone()).unwrap(),
                    s["value"].as_f64().unwrap(),
                )
            })
            .collect(),
    )
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| s.2)
        .unwrap_or(0.0)
}

fn has(samples: &[Sample], name: &str) -> bool {
    samples.iter().any(|(n, _, _)| n == name)
}

/// A histogram's buckets grow with `le` and end at its count.
fn assert_histogram(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let bucket = format!("{name}_bucket");
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(n, l, _)| {
            *n == bucket
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
        })
        .map(|(_, l, v)| (l["le"].parse::<f64>().unwrap(), *v))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() > 5, "{name}: {buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name}: {buckets:?}"
    );
    let count = value(samples, &format!("{name}_count"), labels);
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count), "{name}");
    count
}

/// Each pool is shown with its connections in use and idle, within its maximum (`Some`: that
/// maximum exactly), and no other pool is.
fn assert_pools(samples: &[Sample], pools: &[(&str, Option<f64>)]) {
    for (pool, max) in pools {
        let p = [("pool", *pool)];
        let most = value(samples, "kura_db_connections_max", &p);
        match max {
            Some(m) => assert_eq!(most, *m, "{pool}"),
            None => assert!(most >= 1.0, "{pool}: max {most}"),
        }
        let state = |s: &str| {
            samples
                .iter()
                .find(|(n, l, _)| {
                    n == "kura_db_connections"
                        && l.get("pool").map(String::as_str) == Some(pool)
                        && l.get("state").map(String::as_str) == Some(s)
                })
                .unwrap_or_else(|| panic!("no kura_db_connections of {pool} {s}"))
                .2
        };
        let (in_use, idle) = (state("in_use"), state("idle"));
        assert!(in_use >= 0.0 && idle >= 0.0, "{pool}: {in_use} {idle}");
        assert!(in_use + idle <= most, "{pool}: {in_use} + {idle} > {most}");
    }
    let shown: std::collections::BTreeSet<&str> = samples
        .iter()
        .filter(|(n, _, _)| n.starts_with("kura_db_connections"))
        .map(|(_, l, _)| l["pool"].as_str())
        .collect();
    let expected: std::collections::BTreeSet<&str> = pools.iter().map(|(p, _)| *p).collect();
    assert_eq!(shown, expected);
}

async fn scrape(url: &str) -> (u16, String, String) {
    let r = http_client().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, kind, r.text().await.unwrap())
}

#[tokio::test]
async fn counters_move_and_histograms_are_monotone() {
    let server = Server::start().await;
    let client = server.client().await;
    let name = format!("metrics/db-{}", unique_suffix());
    create_plain(&client, &name, &format!("value-{}", unique_suffix())).await;
    let metrics = format!("{}/metrics", server.endpoint());
    let (status, kind, before) = scrape(&metrics).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let Some(before) = parse(&before) else {
        return;
    };

    get_string(&client, &name).await;
    server
        .kura("CreateUser", r#"{"UserName": "nobody"}"#)
        .await
        .assert_ok();
    let (akid, secret) = server.new_access_key("nobody").await;
    let body = serde_json::json!({"SecretId": name}).to_string();
    server
        .raw_as(&akid, &secret, "secretsmanager.GetSecretValue", &body)
        .await
        .assert_error("AccessDeniedException");

    let (_, _, text) = scrape(&metrics).await;
    assert!(!text.contains(&name), "a secret's name is in the metrics");
    let after = parse(&text).unwrap();
    let get = "secretsmanager:GetSecretValue";
    let delta = |outcome: &str| {
        let labels = [("operation", get), ("outcome", outcome)];
        value(&after, "kura_requests_total", &labels)
            - value(&before, "kura_requests_total", &labels)
    };
    assert_eq!(delta("success"), 1.0);
    assert_eq!(delta("AccessDeniedException"), 1.0);
    // Both reads, the user and its key were audited (at least those four records).
    let audited = value(&after, "kura_audit_records_total", &[])
        - value(&before, "kura_audit_records_total", &[]);
    assert!(audited >= 4.0, "{audited}");

    // Buckets grow with le and end at the count.
    let count = assert_histogram(
        &after,
        "kura_request_duration_seconds",
        &[("operation", get)],
    );
    assert!(count >= 2.0);

    assert_eq!(value(&after, "kura_sealed", &[]), 0.0);
    assert_eq!(value(&after, "kura_build_info", &[]), 1.0);
    assert!(after.iter().any(|(n, _, _)| n == "kura_cache_hits_total"));
    assert!(after.iter().any(|(n, _, _)| n == "kura_audit_queue_depth"));
    assert!(after.iter().any(|(n, _, _)| n == "kura_rotations_due"));
    assert!(has(&after, "kura_rotations_overdue"));
    assert_eq!(value(&after, "kura_rotations_overdue", &[]), 0.0);

    // The reads' records went through the group commit, the user's with its change: each
    // such commit is timed.
    let commits = value(&after, "kura_audit_commit_duration_seconds_count", &[])
        - value(&before, "kura_audit_commit_duration_seconds_count", &[]);
    assert!(commits >= 1.0, "{commits}");
    assert_histogram(&after, "kura_audit_commit_duration_seconds", &[]);

    // SQLite: the read pool, the direct readers (4) and the one writer.
    assert_pools(
        &after,
        &[
            ("read", None),
            ("read-direct", Some(4.0)),
            ("write", Some(1.0)),
        ],
    );

    // Ready: each check named.
    let r = http_client()
        .get(format!("{}/health?ready", server.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["audit"], "ok");
    let r = http_client()
        .get(format!("{}/health", server.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"status":"ok"}"#);
}

#[tokio::test]
async fn sealed_server_metrics_and_health() {
    let server = Server::start_with(&["--seal", "shamir"]).await;
    let (status, _, text) = scrape(&format!("{}/metrics", server.endpoint())).await;
    assert_eq!(status, 200);
    if let Some(samples) = parse(&text) {
        assert_eq!(value(&samples, "kura_sealed", &[]), 1.0);
    }
    let r = http_client()
        .get(format!("{}/health", server.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http_client()
        .get(format!("{}/health?ready", server.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["failed"], serde_json::json!(["sealed"]));
}

#[tokio::test]
async fn metrics_off_or_on_their_own_listener() {
    let server = Server::start_with(&["--metrics", "off"]).await;
    let (status, _, _) = scrape(&format!("{}/metrics", server.endpoint())).await;
    assert_ne!(status, 200, "--metrics off still serves /metrics");
    drop(server);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let at = format!("127.0.0.1:{port}");
    let server = Server::start_with(&["--metrics-listen", &at]).await;
    let (status, _, _) = scrape(&format!("{}/metrics", server.endpoint())).await;
    assert_ne!(status, 200, "/metrics is on the API listener too");
    let mut tries = 0;
    let text = loop {
        match http_client()
            .get(format!("http://{at}/metrics"))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => break r.text().await.unwrap(),
            _ if tries < 50 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => panic!("no metrics on {at}: {other:?}"),
        }
    };
    assert!(text.contains("kura_sealed 0"), "{text}");
    let (status, _, _) = scrape(&format!("http://{at}/health")).await;
    assert_eq!(status, 404, "the metrics listener serves /metrics only");
}

#[tokio::test]
async fn a_rotation_is_counted_by_function_and_outcome() {
    let server = Server::start().await;
    let client = server.client().await;
    let name = format!("metrics/rotated-{}", unique_suffix());
    let arn = create_plain(&client, &name, &format!("value-{}", unique_suffix())).await;
    client
        .rotate_secret()
        .secret_id(&name)
        .rotation_lambda_arn(lambda_arn(&arn, "kura-password"))
        .send()
        .await
        .expect("RotateSecret");
    wait_rotation_succeeded(&server, &name).await;
    let (_, _, text) = scrape(&format!("{}/metrics", server.endpoint())).await;
    assert!(!text.contains(&name), "a secret's name is in the metrics");
    let Some(samples) = parse(&text) else {
        return;
    };
    let labels = [("function", "kura-password"), ("outcome", "succeeded")];
    assert_eq!(
        value(&samples, "kura_rotations_total", &labels),
        1.0,
        "{text}"
    );
}

/// On PostgreSQL: its pool, audit commits timed on that path too, and a scheduled rotation
/// left overdue by a node that is gone but still holds its lease: not due (leased) yet
/// overdue once its window closed, neither once the lease ran out and it rotated. Breaks if
/// overdue counted a window still open, skipped leased secrets, or kept counting after the
/// rotation.
#[tokio::test]
async fn on_postgres_pool_commit_latency_and_an_overdue_rotation() {
    const HOUR: i64 = 3_600;
    const T2030: i64 = 1_893_456_000;
    let db = postgres::Database::create();
    let tmp = tempfile::Builder::new()
        .prefix("kura-test-")
        .tempdir()
        .unwrap();
    let server = Server::start_node(tmp, &db.url, &db.url, &["--test-clock"]).await;
    let set_clock = async |t: i64| {
        server
            .kura("SetClock", &serde_json::json!({ "Time": t }).to_string())
            .await
            .assert_ok();
    };
    let metrics = format!("{}/metrics", server.endpoint());
    let scrape_parsed = async || {
        let (_, _, text) = scrape(&metrics).await;
        parse(&text)
    };
    set_clock(T2030 + 13 * HOUR).await;
    let Some(before) = scrape_parsed().await else {
        return;
    };

    let client = server.client().await;
    let name = format!("metrics/late-{}", unique_suffix());
    let arn = create_plain(&client, &name, &format!("value-{}", unique_suffix())).await;
    let body = serde_json::json!({
        "SecretId": name,
        "RotationLambdaARN": lambda_arn(&arn, "kura-password"),
        "RotationRules": {"ScheduleExpression": "rate(1 day)", "Duration": "2h"},
        "RotateImmediately": false,
    });
    server
        .raw("RotateSecret", &body.to_string(), SignMode::Root)
        .await
        .assert_ok();
    get_string(&client, &name).await;
    // The window opens at midnight and lasts 2 h; a node that is gone took the rotation's
    // lease until 03:00.
    let midnight = T2030 + 24 * HOUR;
    db.query(&format!(
        "UPDATE secrets SET lease_owner = 'gone', lease_expires_at = {} WHERE name = '{name}'",
        (midnight + 3 * HOUR) * 1000
    ));

    let after = scrape_parsed().await.unwrap();
    let commits = value(&after, "kura_audit_commit_duration_seconds_count", &[])
        - value(&before, "kura_audit_commit_duration_seconds_count", &[]);
    assert!(commits >= 2.0, "{commits}");
    assert_histogram(&after, "kura_audit_commit_duration_seconds", &[]);
    assert_pools(&after, &[("main", Some(16.0))]);
    let in_use_or_idle = value(&after, "kura_db_connections", &[("state", "in_use")])
        + value(&after, "kura_db_connections", &[("state", "idle")]);
    assert!(in_use_or_idle >= 1.0, "the pool holds no connection");
    let rotations = |s: &[Sample]| {
        (
            value(s, "kura_rotations_due", &[]),
            value(s, "kura_rotations_overdue", &[]),
        )
    };
    assert_eq!(rotations(&after), (0.0, 0.0), "before its window");

    // Inside the window, leased: neither due (a node has it) nor overdue.
    set_clock(midnight + HOUR).await;
    assert_eq!(rotations(&scrape_parsed().await.unwrap()), (0.0, 0.0));
    // The window closed with nothing run: overdue, though still not due.
    set_clock(midnight + 2 * HOUR + 30 * 60).await;
    let late = scrape_parsed().await.unwrap();
    assert!(has(&late, "kura_rotations_overdue"));
    assert_eq!(rotations(&late), (0.0, 1.0));
    // The lease ran out: this node rotates it (late), and it is overdue no more.
    set_clock(midnight + 3 * HOUR + 30 * 60).await;
    wait_rotation_succeeded(&server, &name).await;
    let (_, _, text) = scrape(&metrics).await;
    assert!(!text.contains(&name), "a secret's name is in the metrics");
    let done = parse(&text).unwrap();
    assert_eq!(rotations(&done), (0.0, 0.0), "{text}");
    let succeeded = [("function", "kura-password"), ("outcome", "succeeded")];
    assert_eq!(value(&done, "kura_rotations_total", &succeeded), 1.0);
}
