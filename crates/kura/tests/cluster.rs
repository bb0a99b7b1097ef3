//! kura as a cluster: several `kura server` nodes on one PostgreSQL database (a fresh database
//! per test, dropped at the end). Any node serves any request, a policy change applies on every
//! node at once, a rotation, purge or notification runs once, a rotation survives the death of
//! the node running it, the nodes share one audit chain, and a node rides out a cut connection
//! to the database.
//!
//! PostgreSQL is part of the test machine (127.0.0.1:5432, user postgres): when it is not
//! reachable these tests fail, saying how to start it.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::postgres::{Cluster, Database, PG_ADDR, node_dir};
use common::*;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// A fresh database and the nodes on it
// ---------------------------------------------------------------------------------------------

/// `kura audit verify --data-dir DIR --database-url URL`: success and output.
fn verify(data_dir: &Path, url: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["audit", "verify", "--database-url", url, "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run kura audit verify");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Names and ARNs of ListSecrets (all pages), sorted.
async fn list_names(server: &Server) -> Vec<(String, String)> {
    let client = server.client().await;
    let mut all = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = ok(client
            .list_secrets()
            .set_next_token(next.take())
            .send()
            .await);
        for s in out.secret_list() {
            all.push((
                s.name().unwrap_or_default().to_string(),
                s.arn().unwrap_or_default().to_string(),
            ));
        }
        match out.next_token() {
            Some(t) => next = Some(t.to_string()),
            None => break,
        }
    }
    all.sort();
    all
}

fn rotate_body(id: &str, arn: &str, token: &str) -> String {
    json!({
        "SecretId": id,
        "RotationLambdaARN": lambda_arn(arn, "kura-password"),
        "ClientRequestToken": token,
    })
    .to_string()
}

/// The rotation steps the cluster's audit trail records for `arn`, in order.
fn audited_steps(db: &Database, arn: &str) -> Vec<String> {
    db.query(&format!(
        "SELECT action FROM audit_log WHERE kind = 'rotation' AND resource = '{arn}' ORDER BY seq"
    ))
    .lines()
    .map(str::to_string)
    .collect()
}

const ALL_STEPS: [&str; 4] = [
    "rotation:createSecret",
    "rotation:setSecret",
    "rotation:testSecret",
    "rotation:finishSecret",
];

// ---------------------------------------------------------------------------------------------
// 1. Any node serves any request
// ---------------------------------------------------------------------------------------------

/// Breaks if a node kept its own copy of anything (reads on 2 and 3 would miss the secret or
/// see the old value) or if a joining node wrote its own root credentials.
#[tokio::test]
async fn any_node_serves_any_request() {
    let cluster = Cluster::three().await;
    let [n1, n2, n3] = &cluster.nodes[..] else {
        unreachable!()
    };
    let (c1, c2, c3) = (n1.client().await, n2.client().await, n3.client().await);
    let first = format!("first-value-{}", unique_suffix());
    let (arn, v1) = create_string(&c1, "cluster/any", &first, &token(1)).await;

    let (on2, on3) = tokio::join!(
        get_stage(&c2, "cluster/any", "AWSCURRENT"),
        get_stage(&c3, "cluster/any", "AWSCURRENT")
    );
    assert_eq!(
        (on2.0.as_str(), on2.1.as_str()),
        (v1.as_str(), first.as_str())
    );
    assert_eq!(
        (on3.0.as_str(), on3.1.as_str()),
        (v1.as_str(), first.as_str())
    );

    let second = format!("second-value-{}", unique_suffix());
    put_string(&c3, &arn, &second, &token(2)).await;
    assert_eq!(get_string(&c1, "cluster/any").await, second);
    assert_eq!(
        describe_stages(&c2, "cluster/any").await,
        stages_of(&[(&token(1), &["AWSPREVIOUS"]), (&token(2), &["AWSCURRENT"])])
    );

    for i in 0..5 {
        let node = &cluster.nodes[i % 3];
        create_plain(
            &node.client().await,
            &format!("cluster/list-{i}"),
            &format!("list-value-{i}-{}", unique_suffix()),
        )
        .await;
    }
    let listed = list_names(n1).await;
    assert_eq!(listed.len(), 6, "{listed:?}");
    assert_eq!(list_names(n2).await, listed);
    assert_eq!(list_names(n3).await, listed);

    assert!(n1.data_dir.join("root-credentials").exists());
    for n in [n2, n3] {
        assert!(
            !n.data_dir.join("root-credentials").exists(),
            "a joining node wrote root credentials into {}",
            n.data_dir.display()
        );
    }
    assert!(
        n2.log().contains("joined an initialised database"),
        "{}",
        n2.log()
    );
}

/// Every node answers reads from its own memory, yet a change acknowledged by one node is what
/// every node answers next: a label moved by PutSecretValue, and an access key deactivated
/// (refused at once everywhere, not after a cache's lifetime). Breaks if a node served what it
/// had cached before another node's change.
#[tokio::test]
async fn a_change_on_one_node_is_what_every_node_answers_next() {
    let cluster = Cluster::three().await;
    let mut clients = Vec::new();
    for n in &cluster.nodes {
        clients.push(n.client().await);
    }
    let (arn, _) = create_string(&clients[0], "cluster/cached", "value-0", &token(100)).await;
    for round in 1..=15usize {
        for c in &clients {
            for _ in 0..2 {
                get_string(c, "cluster/cached").await;
            }
        }
        let value = format!("value-{round}");
        put_string(
            &clients[round % 3],
            &arn,
            &value,
            &token(100 + round as u64),
        )
        .await;
        for (i, c) in clients.iter().enumerate() {
            assert_eq!(
                get_string(c, "cluster/cached").await,
                value,
                "round {round}: node {} answered an old AWSCURRENT",
                i + 1
            );
        }
    }

    let n1 = &cluster.nodes[0];
    n1.kura("CreateUser", r#"{"UserName": "cached-user"}"#)
        .await
        .assert_ok();
    let (akid, secret) = n1.new_access_key("cached-user").await;
    for round in 0..3 {
        let active = round % 2 == 0;
        for n in &cluster.nodes {
            for _ in 0..2 {
                let r = n
                    .raw_as(&akid, &secret, "Kura.GetCallerIdentity", "{}")
                    .await;
                if active {
                    r.assert_ok();
                } else {
                    r.assert_error("UnrecognizedClientException");
                }
            }
        }
        let status = if active { "Inactive" } else { "Active" };
        cluster.nodes[1 + round % 2]
            .kura(
                "UpdateAccessKey",
                &json!({"UserName": "cached-user", "AccessKeyId": akid, "Status": status})
                    .to_string(),
            )
            .await
            .assert_ok();
        for n in &cluster.nodes {
            let r = n
                .raw_as(&akid, &secret, "Kura.GetCallerIdentity", "{}")
                .await;
            if active {
                r.assert_error("UnrecognizedClientException");
            } else {
                r.assert_ok();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Joining needs the cluster's root.key
// ---------------------------------------------------------------------------------------------

/// Breaks if a node without root.key made a new one (and a keyring of its own), if a node with
/// another key started, or if either wrote anything into the shared database.
#[tokio::test]
async fn a_node_without_the_clusters_root_key_refuses_to_start() {
    let mut cluster = Cluster::start(&[&[]]).await;
    let n1 = cluster.nodes.pop().unwrap();
    create_plain(
        &n1.client().await,
        "cluster/join",
        &format!("join-value-{}", unique_suffix()),
    )
    .await;
    // Nothing else writes while the joins are tried.
    let _dir = n1.stop().await;
    let before = cluster.db.dump();
    assert!(before.contains("cluster/join"), "the dump shows the rows");

    let missing = node_dir(None);
    let data = missing.path().join("data");
    let (status, out) = start_refused(&data, &["--database-url", &cluster.db.url], &[]);
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("root.key is missing") && out.contains("copy root.key from one of its nodes"),
        "{out}"
    );
    assert!(
        !data.join("root.key").exists(),
        "made a root key of its own"
    );
    assert!(!data.join("root-credentials").exists());

    let other = node_dir(None);
    let data = other.path().join("data");
    std::fs::write(data.join("root.key"), format!("{}\n", "ab".repeat(32))).unwrap();
    let (status, out) = start_refused(&data, &["--database-url", &cluster.db.url], &[]);
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("does not open this database's keyring"),
        "{out}"
    );
    assert!(!data.join("root-credentials").exists());

    assert_eq!(
        cluster.db.dump(),
        before,
        "a refused node changed the database"
    );
}

/// Breaks if both nodes started on the database (two keyrings), if neither did, or if the one
/// that lost the race kept the root key it made, which would stand in for the cluster's key that
/// has to be copied there (and, restarted, fail again with a misleading message).
#[tokio::test]
async fn of_two_nodes_started_at_once_on_an_empty_database_one_initialises_it() {
    let db = Database::create();
    let dirs = [node_dir(None), node_dir(None)];
    let mut children = Children(
        dirs.iter()
            .map(|d| {
                let log = std::fs::File::create(d.path().join("server.log")).unwrap();
                std::process::Command::new(env!("CARGO_BIN_EXE_kura"))
                    .args([
                        "server",
                        "--listen",
                        "127.0.0.1:0",
                        "--database-url",
                        &db.url,
                    ])
                    .arg("--data-dir")
                    .arg(d.path().join("data"))
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .expect("spawn kura server")
            })
            .collect(),
    );
    let children = &mut children.0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let loser = loop {
        let exited: Vec<usize> = (0..2)
            .filter(|&i| children[i].try_wait().unwrap().is_some())
            .collect();
        if exited.len() == 1 {
            let winner = 1 - exited[0];
            if dirs[winner].path().join("data/root-credentials").exists() {
                break exited[0];
            }
        }
        let log = |i: usize| std::fs::read_to_string(dirs[i].path().join("server.log")).unwrap();
        assert!(
            exited.len() < 2 && Instant::now() < deadline,
            "expected one node serving and one refused:\n{}\n---\n{}",
            log(0),
            log(1)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let winner = 1 - loser;
    let log = std::fs::read_to_string(dirs[loser].path().join("server.log")).unwrap();
    assert!(!children[loser].wait().unwrap().success());
    // Racing, it says another node won; started just after, it finds the database initialised.
    assert!(
        log.contains("another node initialised this database at the same moment")
            || log.contains("root.key is missing"),
        "{log}"
    );
    let data = dirs[loser].path().join("data");
    assert!(
        !data.join("root.key").exists(),
        "the losing node kept a root key: {log}"
    );
    assert!(!data.join("root-credentials").exists());
    assert!(
        children[winner].try_wait().unwrap().is_none(),
        "the winner stopped"
    );
}

/// Server processes killed when the test ends, however it ends.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Identity changes reach every node
// ---------------------------------------------------------------------------------------------

/// Breaks without the LISTEN/NOTIFY invalidation: node 2 would keep its cached policy for its
/// cache's lifetime (5 s) and go on allowing the read.
#[tokio::test]
async fn a_policy_change_on_one_node_applies_on_the_others_within_a_second() {
    let cluster = Cluster::start(&[&[], &[]]).await;
    let [n1, n2] = &cluster.nodes[..] else {
        unreachable!()
    };
    let c1 = n1.client().await;
    create_plain(
        &c1,
        "cluster/policy",
        &format!("policy-value-{}", unique_suffix()),
    )
    .await;
    n1.kura("CreateUser", r#"{"UserName": "reader"}"#)
        .await
        .assert_ok();
    let (akid, secret) = create_access_key(n1, "reader").await;
    remember_value(&secret);
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]});
    n1.kura(
        "PutUserPolicy",
        &json!({"UserName": "reader", "PolicyName": "read", "PolicyDocument": doc}).to_string(),
    )
    .await
    .assert_ok();
    let reader = n2.client_with(&akid, &secret).await;
    // Twice: the second read is served from node 2's cache.
    for _ in 0..2 {
        ok(reader
            .get_secret_value()
            .secret_id("cluster/policy")
            .send()
            .await);
    }

    n1.kura(
        "DeleteUserPolicy",
        r#"{"UserName": "reader", "PolicyName": "read"}"#,
    )
    .await
    .assert_ok();
    let changed = Instant::now();
    loop {
        let r = res(reader
            .get_secret_value()
            .secret_id("cluster/policy")
            .send()
            .await);
        match r {
            Err(e) if e.code == "AccessDeniedException" => break,
            Err(e) => panic!("unexpected error: {e:?}"),
            Ok(_) => {}
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "node 2 still allows the read 1 s after node 1 deleted the policy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 4. A rotation runs once
// ---------------------------------------------------------------------------------------------

/// Sets every node's test clock to `t` at once; each node runs its scheduler and jobs then, so
/// all of them look for the same due work at the same moment.
async fn set_clocks(cluster: &Cluster, t: i64) {
    let body = json!({ "Time": t }).to_string();
    let [n1, n2, n3] = &cluster.nodes[..] else {
        panic!("set_clocks expects three nodes")
    };
    let (a, b, c) = tokio::join!(
        n1.kura("SetClock", &body),
        n2.kura("SetClock", &body),
        n3.kura("SetClock", &body)
    );
    for r in [a, b, c] {
        r.assert_ok();
    }
}

/// Asserts that `secret`'s rotation went through each step once: two versions (the old one
/// AWSPREVIOUS), and one audit record per step in the cluster's trail.
async fn assert_rotated_once(cluster: &Cluster, node: &Server, secret: &(String, String, String)) {
    let (id, arn, v1) = secret;
    wait_rotation_succeeded(node, id).await;
    let stages = list_versions(&node.client().await, id, true).await;
    assert_eq!(
        stages.len(),
        2,
        "AWSCURRENT moved once for {id}: {stages:?}"
    );
    assert_eq!(
        stages.get(v1),
        Some(&vec!["AWSPREVIOUS".to_string()]),
        "{id}: {stages:?}"
    );
    assert_eq!(audited_steps(&cluster.db, arn), ALL_STEPS, "{id}");
}

/// `n` secrets created through node 1: (name, ARN, first version id).
async fn secrets(cluster: &Cluster, prefix: &str, n: usize) -> Vec<(String, String, String)> {
    let c1 = cluster.nodes[0].client().await;
    let mut out = Vec::new();
    for i in 0..n {
        let id = format!("cluster/{prefix}-{i}");
        let value = format!("before-rotation-{i}-{}", unique_suffix());
        let (arn, v1) = create_string(&c1, &id, &value, &token(1)).await;
        out.push((id, arn, v1));
    }
    out
}

/// Breaks if two nodes ran the same step (two records of it, or AWSCURRENT moved twice, leaving
/// three versions). The scheduled part makes the three engines look for the same due work at
/// the same moment (each `SetClock` runs its node's scheduler at once), so without the leases
/// they would all run each rotation.
#[tokio::test]
async fn with_three_nodes_each_rotation_step_runs_once() {
    let cluster = Cluster::start(&[&["--test-clock"], &["--test-clock"], &["--test-clock"]]).await;
    // 2030-01-01T13:00:00Z
    let t2030 = 1_893_456_000 + 13 * 3_600;
    set_clocks(&cluster, t2030).await;

    // On demand: each node starts some rotations.
    let on_demand = secrets(&cluster, "now", 3).await;
    for (i, (id, arn, _)) in on_demand.iter().enumerate() {
        cluster.nodes[i % 3]
            .raw(
                "RotateSecret",
                &rotate_body(id, arn, &token(2)),
                SignMode::Root,
            )
            .await
            .assert_ok();
    }
    for (i, s) in on_demand.iter().enumerate() {
        assert_rotated_once(&cluster, &cluster.nodes[(i + 1) % 3], s).await;
    }

    // On a schedule: the window opens at midnight; all three nodes' clocks jump into it at once.
    let scheduled = secrets(&cluster, "scheduled", 8).await;
    for (id, arn, _) in &scheduled {
        let body = json!({
            "SecretId": id,
            "RotationLambdaARN": lambda_arn(arn, "kura-password"),
            "RotationRules": {"ScheduleExpression": "rate(1 day)", "Duration": "4h"},
            "RotateImmediately": false,
        });
        cluster.nodes[0]
            .raw("RotateSecret", &body.to_string(), SignMode::Root)
            .await
            .assert_ok();
    }
    set_clocks(&cluster, t2030 + 12 * 3_600).await;
    for (i, s) in scheduled.iter().enumerate() {
        assert_rotated_once(&cluster, &cluster.nodes[i % 3], s).await;
    }

    // The nodes' own files hold the same records, each written by one node.
    let in_files: usize = cluster
        .nodes
        .iter()
        .map(|n| {
            std::fs::read_to_string(n.data_dir.join("audit.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|r| r["Kind"] == "rotation")
                .count()
        })
        .sum();
    assert_eq!(in_files, 4 * (on_demand.len() + scheduled.len()));
}

/// Breaks if two nodes purged the same secret (two purge records) or none did: all three
/// nodes' purge jobs run at the same moment on the same due secrets.
#[tokio::test]
async fn with_three_nodes_each_purge_runs_once() {
    let cluster = Cluster::start(&[&["--test-clock"], &["--test-clock"], &["--test-clock"]]).await;
    let t = 1_893_456_000; // 2030-01-01
    set_clocks(&cluster, t).await;
    let gone = secrets(&cluster, "purge", 6).await;
    let c1 = cluster.nodes[0].client().await;
    for (id, _, _) in &gone {
        ok(c1
            .delete_secret()
            .secret_id(id)
            .recovery_window_in_days(7)
            .send()
            .await);
    }
    set_clocks(&cluster, t + 8 * 86_400).await;
    for (i, (id, arn, _)) in gone.iter().enumerate() {
        assert_no_secret(&cluster.nodes[i % 3].client().await, id).await;
        let purges = cluster.db.query(&format!(
            "SELECT count(*) FROM audit_log WHERE action = 'job:PurgeSecret' AND resource = '{arn}'"
        ));
        assert_eq!(purges, "1", "{id}");
    }
}

/// Breaks if several nodes delivered the same notification (an event arriving twice once the
/// receiver accepts) or none did: all three nodes' delivery passes run at the same moment on
/// the same due retries.
#[tokio::test]
async fn with_three_nodes_each_notification_is_delivered_once() {
    use common::receiver::{Receiver, Reply};
    use std::sync::atomic::{AtomicBool, Ordering};
    let cluster = Cluster::start(&[&["--test-clock"], &["--test-clock"], &["--test-clock"]]).await;
    let t = 1_893_456_000; // 2030-01-01
    set_clocks(&cluster, t).await;
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
    cluster.nodes[0]
        .kura(
            "CreateNotificationTarget",
            &json!({
                "Url": receiver.url,
                "Events": ["SecretValueChanged"],
                "SigningSecret": "cluster-signing-secret-0123456789",
            })
            .to_string(),
        )
        .await
        .assert_ok();
    let c1 = cluster.nodes[0].client().await;
    let arn = create_plain(
        &c1,
        "cluster/notify",
        &format!("notify-0-{}", unique_suffix()),
    )
    .await;
    let versions: Vec<String> = (2..5).map(token).collect();
    for (i, v) in versions.iter().enumerate() {
        let c = cluster.nodes[i % 3].client().await;
        put_string(&c, &arn, &format!("notify-{i}-{}", unique_suffix()), v).await;
    }
    // Each event's first try is refused; its retry waits for the nodes' (stopped) clocks.
    let refused = receiver
        .wait_until("the first tries", |all| {
            versions
                .iter()
                .all(|v| all.iter().any(|r| r.json()["VersionId"] == json!(v)))
        })
        .await
        .len();
    assert_eq!(refused, versions.len(), "one first try per event");

    accept.store(true, Ordering::SeqCst);
    set_clocks(&cluster, t + 3_600).await;
    receiver
        .wait_until("the retries", |all| all.len() >= refused + versions.len())
        .await;
    // Anything still on its way arrives within this pause.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = receiver.requests().split_off(refused);
    for v in &versions {
        let n = all
            .iter()
            .filter(|r| r.json()["VersionId"] == json!(v))
            .count();
        assert_eq!(n, 1, "deliveries of the event of {v} once accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. A node killed mid-rotation
// ---------------------------------------------------------------------------------------------

/// Breaks if a dead node's step is never taken over (the rotation would stay at setSecret), if
/// another node takes over while the step's time (function timeout + lease margin) is not up
/// (it would finish after the 30 s advance already), or if the node taking over starts a new
/// cycle instead of finishing this one (three versions, or a second createSecret record).
#[tokio::test]
async fn a_rotation_whose_node_was_killed_is_finished_by_another_node() {
    let mut cluster = Cluster::start(&[
        &["--test-clock", "--test-pause-before-step", "setSecret"],
        &["--test-clock"],
    ])
    .await;
    let n2 = cluster.nodes.pop().unwrap();
    let n1 = cluster.nodes.pop().unwrap();
    // Node 2's clock 10 s behind node 1's: the rotation node 1 starts is not yet due for
    // node 2, so node 1 runs it (its own scheduler wakes at once, node 2's only polls).
    let t = 1_893_456_000; // 2030-01-01
    n1.kura("SetClock", &json!({ "Time": t }).to_string())
        .await
        .assert_ok();
    n2.kura("SetClock", &json!({ "Time": t - 10 }).to_string())
        .await
        .assert_ok();
    let c1 = n1.client().await;
    let old = format!("before-crash-{}", unique_suffix());
    let (arn, v1) = create_string(&c1, "cluster/crash", &old, &token(1)).await;
    n1.raw(
        "RotateSecret",
        &rotate_body("cluster/crash", &arn, &token(2)),
        SignMode::Root,
    )
    .await
    .assert_ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = describe_json(&n2, "cluster/crash").await["KuraRotation"].clone();
        if r["Step"] == "setSecret" && n1.log().contains("rotation paused before this step") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotation never reached setSecret: {r:#}\n{}",
            n1.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = n1.kill().await;

    // Past the moment the step started but within its lease nobody takes over, even when
    // node 2 looks for work.
    n2.kura("AdvanceClock", r#"{"Seconds": 30}"#)
        .await
        .assert_ok();
    let r = describe_json(&n2, "cluster/crash").await["KuraRotation"].clone();
    assert_eq!(
        (r["State"].as_str(), r["Step"].as_str()),
        (Some("InProgress"), Some("setSecret")),
        "{r:#}"
    );
    let c2 = n2.client().await;
    assert_eq!(get_stage(&c2, "cluster/crash", "AWSCURRENT").await.0, v1);

    // Past the lease, node 2 finishes the same cycle.
    n2.kura("AdvanceClock", r#"{"Seconds": 600}"#)
        .await
        .assert_ok();
    wait_rotation_succeeded(&n2, "cluster/crash").await;
    assert_eq!(
        list_versions(&c2, "cluster/crash", true).await,
        stages_of(&[
            (&v1, &["AWSPREVIOUS"]),
            (&token(2), &["AWSCURRENT", "AWSPENDING"])
        ])
    );
    assert_eq!(get_stage(&c2, "cluster/crash", "AWSPREVIOUS").await.1, old);
    assert_eq!(audited_steps(&cluster.db, &arn), ALL_STEPS);
    // The killed node's audit file is still the records it committed.
    for dir in [&dead.path().join("data"), &n2.data_dir] {
        let (good, out) = verify(dir, &cluster.db.url);
        assert!(good, "{}: {out}", dir.display());
    }
    cluster.nodes.push(n2);
}

// ---------------------------------------------------------------------------------------------
// 6. One audit chain
// ---------------------------------------------------------------------------------------------

/// Breaks if the nodes chained their records separately (verify would find broken links), if a
/// node's file held records it did not write, or if verify missed an edited record.
#[tokio::test]
async fn the_nodes_share_one_audit_chain_that_verify_checks_from_any_node() {
    let cluster = Cluster::three().await;
    for (i, node) in cluster.nodes.iter().enumerate() {
        let c = node.client().await;
        let id = format!("cluster/audit-{i}");
        create_plain(&c, &id, &format!("audit-value-{i}-{}", unique_suffix())).await;
        for other in &cluster.nodes {
            get_string(&other.client().await, &id).await;
        }
        put_string(
            &c,
            &id,
            &format!("audit-next-{i}-{}", unique_suffix()),
            &token(7),
        )
        .await;
    }
    for node in &cluster.nodes {
        let (good, out) = verify(&node.data_dir, &cluster.db.url);
        assert!(
            good && out.contains("intact"),
            "{}: {out}",
            node.data_dir.display()
        );
    }

    let middle = cluster
        .db
        .query("SELECT seq FROM audit_log ORDER BY seq OFFSET 10 LIMIT 1");
    cluster.db.query(&format!(
        "UPDATE audit_log SET principal = 'arn:aws:iam::000000000000:user/nobody' WHERE seq = {middle}"
    ));
    for node in &cluster.nodes {
        let (good, out) = verify(&node.data_dir, &cluster.db.url);
        assert!(
            !good,
            "{}: verify passed an edited record: {out}",
            node.data_dir.display()
        );
        assert!(out.contains(&format!("record {middle}")), "{out}");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. A database outage
// ---------------------------------------------------------------------------------------------

/// A TCP relay to PostgreSQL that the test can cut (every connection dropped, new ones
/// refused) and restore on the same port.
struct Relay {
    port: u16,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(port: u16) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the relay");
        let port = listener.local_addr().unwrap().port();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let registry = conns.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(PG_ADDR).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                registry.lock().unwrap().push(conn);
            }
        });
        Relay {
            port,
            accept: Some(accept),
            conns,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops accepting and drops every relayed connection.
    async fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        for c in conns {
            c.abort();
            let _ = c.await;
        }
    }
}

/// Breaks if a request waits for the database without bound (the 10 s limit), if the error is
/// not the retryable "database is unavailable" one, if the node needs a restart to use the
/// database again, or if something acknowledged before the cut was not committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_database_fails_fast_and_recovers_by_itself() {
    let db = Database::create();
    let n1 = Server::start_node(node_dir(None), &db.url, &db.url, &[]).await;
    let mut relay = Relay::start(0).await;
    let mut n2 = Server::start_node(
        node_dir(Some(&n1.data_dir.join("root.key"))),
        &db.url_via(&relay.addr()),
        &db.url,
        &[],
    )
    .await;
    n2.use_credentials(n1.credentials());
    let c2 = n2.client().await;
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let id = format!("cluster/outage-{i}");
        let value = format!("acknowledged-{i}-{}", unique_suffix());
        create_plain(&c2, &id, &value).await;
        acknowledged.push((id, value));
    }
    // Load through node 2 across the cut and the return: which writes were acknowledged, and
    // how long each refused one took.
    create_plain(
        &c2,
        "cluster/outage-load",
        &format!("load-0-{}", unique_suffix()),
    )
    .await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (client, stop) = (c2.clone(), stop.clone());
        async move {
            let (mut acked, mut refused) = (Vec::new(), Vec::new());
            for i in 1.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let (version, value) = (token(i), format!("load-{i}-{}", unique_suffix()));
                let started = Instant::now();
                let r = client
                    .put_secret_value()
                    .secret_id("cluster/outage-load")
                    .secret_string(&value)
                    .client_request_token(&version)
                    .send()
                    .await;
                match res(r) {
                    Ok(_) => acked.push((version, value)),
                    Err(e) => refused.push((started.elapsed(), e)),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (acked, refused)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    relay.cut().await;
    for (op, body) in [
        ("GetSecretValue", json!({"SecretId": "cluster/outage-0"})),
        (
            "PutSecretValue",
            json!({"SecretId": "cluster/outage-1", "SecretString": "written-during-the-outage"}),
        ),
    ] {
        let started = Instant::now();
        let r = n2.raw(op, &body.to_string(), SignMode::Root).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "{op} took {took:?} during the outage"
        );
        assert_eq!(r.status, 500, "{op} during the outage: {r:?}");
        let json = r.json();
        assert_eq!(json["__type"], "InternalServiceError", "{op}: {r:?}");
        assert!(
            json["message"]
                .as_str()
                .is_some_and(|m| m.contains("database is unavailable")),
            "{op}: {r:?}"
        );
    }
    // Node 1 has its own connections and goes on serving.
    assert_eq!(
        get_string(&n1.client().await, "cluster/outage-2").await,
        acknowledged[2].1
    );
    // A load balancer's readiness check takes node 2 out, and leaves node 1 in.
    let ready = |n: &Server| format!("{}/health?ready", n.endpoint());
    let http = reqwest::Client::new();
    let status = |url: String| {
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .expect("GET /health?ready")
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(ready(&n2)).await, 503, "node 2 is not ready");
    assert_eq!(status(ready(&n1)).await, 200, "node 1 is ready");
    assert_eq!(
        status(format!("{}/health", n2.endpoint())).await,
        200,
        "node 2 is alive all the same"
    );

    let relay = Relay::start(relay.port).await;
    let restored = Instant::now();
    loop {
        let r = n2
            .raw(
                "GetSecretValue",
                r#"{"SecretId": "cluster/outage-0"}"#,
                SignMode::Root,
            )
            .await;
        if r.status == 200 {
            break;
        }
        assert!(
            restored.elapsed() < Duration::from_secs(5),
            "node 2 still fails {:?} after the database came back: {r:?}",
            restored.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status(ready(&n2)).await, 200, "node 2 is ready again");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acked, refused) = writer.await.expect("the writer");
    assert!(
        !refused.is_empty(),
        "no write was refused during the outage"
    );
    for (took, e) in &refused {
        assert!(
            *took < Duration::from_secs(10),
            "a write took {took:?}: {e:?}"
        );
        assert!(
            e.status == 500 && e.message.contains("database is unavailable"),
            "{e:?}"
        );
    }
    assert!(
        acked.len() >= 2,
        "writes before and after the outage: {acked:?}"
    );

    let c1 = n1.client().await;
    for (id, value) in &acknowledged {
        assert_eq!(&get_string(&c2, id).await, value, "{id} through node 2");
    }
    for (version, value) in &acked {
        assert_eq!(
            &get_version_string(&c1, "cluster/outage-load", version).await,
            value,
            "acknowledged write {version}"
        );
    }
    assert_eq!(list_names(&n1).await.len(), acknowledged.len() + 1);
    for node in [&n1, &n2] {
        let (good, out) = verify(&node.data_dir, &db.url);
        assert!(good, "{}: {out}", node.data_dir.display());
    }
    drop(relay);
}

/// Kura.WatchSecrets on one node: a poll waiting there answers within a second of a change
/// committed through another node, and a cursor one node gave resumes on another.
#[tokio::test]
async fn a_watch_on_one_node_sees_changes_made_through_another() {
    let cluster = Cluster::start(&[&[], &[]]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let ca = a.client().await;
    create_string(&ca, "cluster/watched", "watched-value-1", &token(1)).await;
    let now = b
        .kura("WatchSecrets", r#"{"WaitSeconds": 0}"#)
        .await
        .assert_ok();
    let cursor = now["Cursor"].as_str().unwrap().to_string();
    let poll = async {
        b.kura(
            "WatchSecrets",
            &json!({"Cursor": cursor, "WaitSeconds": 30}).to_string(),
        )
        .await
        .assert_ok()
    };
    let change = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        put_string(&ca, "cluster/watched", "watched-value-2", &token(2)).await;
        Instant::now()
    };
    let (seen, changed_at) = tokio::join!(poll, change);
    let waited = changed_at.elapsed();
    assert_eq!(seen["Changes"][0]["Name"], "cluster/watched", "{seen}");
    assert_eq!(seen["Changes"][0]["Change"], "ValueChanged");
    assert!(
        waited < Duration::from_secs(1),
        "answered {waited:?} after the change"
    );

    // The cursor node A gave resumes on node B: nothing is lost or repeated.
    let from_a = a
        .kura(
            "WatchSecrets",
            &json!({"Cursor": cursor, "WaitSeconds": 0}).to_string(),
        )
        .await
        .assert_ok();
    assert_eq!(from_a["Changes"], seen["Changes"]);
    let next = b
        .kura(
            "WatchSecrets",
            &json!({"Cursor": from_a["Cursor"], "WaitSeconds": 0}).to_string(),
        )
        .await
        .assert_ok();
    assert_eq!(next["Changes"], json!([]), "{next}");
}
