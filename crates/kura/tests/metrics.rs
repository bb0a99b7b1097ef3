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
    let mut buckets: Vec<(f64, f64)> = after
        .iter()
        .filter(|(n, l, _)| n == "kura_request_duration_seconds_bucket" && l["operation"] == get)
        .map(|(_, l, v)| (l["le"].parse::<f64>().unwrap(), *v))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() > 5, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    let count = value(
        &after,
        "kura_request_duration_seconds_count",
        &[("operation", get)],
    );
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count));
    assert!(count >= 2.0);

    assert_eq!(value(&after, "kura_sealed", &[]), 0.0);
    assert_eq!(value(&after, "kura_build_info", &[]), 1.0);
    assert!(after.iter().any(|(n, _, _)| n == "kura_cache_hits_total"));
    assert!(after.iter().any(|(n, _, _)| n == "kura_audit_queue_depth"));
    assert!(after.iter().any(|(n, _, _)| n == "kura_rotations_due"));

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
