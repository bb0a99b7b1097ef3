//! Policies and the audit trail end to end, where no other test looks: `aws:PrincipalTag` from
//! user tags, `aws:SourceIp`, `secretsmanager:VersionStage`, Kura's own actions, the purge job's
//! audit record, LookupAuditEvents' principal and time filters, `--log-json`,
//! ListSecretVersionIds paging, binary values through Put/UpdateSecret, and the 1 MiB body limit.

mod common;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::primitives::Blob;
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct User {
    client: Client,
    akid: String,
    secret: String,
}

/// A user with `tags`, one access key and one inline policy of `statements`.
async fn user(server: &Server, name: &str, tags: Value, statements: Value) -> User {
    server
        .kura(
            "CreateUser",
            &json!({"UserName": name, "Tags": tags}).to_string(),
        )
        .await
        .assert_ok();
    let (akid, secret) = create_access_key(server, name).await;
    remember_value(&secret);
    let doc = json!({"Version": "2012-10-17", "Statement": statements});
    server
        .kura(
            "PutUserPolicy",
            &json!({"UserName": name, "PolicyName": "p", "PolicyDocument": doc}).to_string(),
        )
        .await
        .assert_ok();
    User {
        client: server.client_with(&akid, &secret).await,
        akid,
        secret,
    }
}

fn denied<T: std::fmt::Debug, E>(result: Result<T, SdkError<E, HttpResponse>>, what: &str)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let e = api_err(result);
    assert_eq!(e.code, "AccessDeniedException", "{what}: {e:?}");
    assert_eq!(e.status, 400, "{what}: {e:?}");
}

async fn get(client: &Client, id: &str) -> Result<String, ApiError> {
    res(client.get_secret_value().secret_id(id).send().await)
        .map(|o| o.secret_string().unwrap_or_default().to_string())
}

// ---------------------------------------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn principal_tag_conditions_read_the_callers_user_tags() {
    let server = Server::start().await;
    let root = server.client().await;
    create_string(&root, "tags/a-db", "value-of-team-a-db", &token(1)).await;
    ok(root
        .tag_resource()
        .secret_id("tags/a-db")
        .tags(tag("team", "a"))
        .send()
        .await);
    let statements = json!([
        {"Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalTag/team": "a"}}},
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
         "Condition": {"StringEquals": {"secretsmanager:ResourceTag/team": "${aws:PrincipalTag/team}"}}}
    ]);
    let alice = user(
        &server,
        "alice",
        json!([{"Key": "team", "Value": "a"}]),
        statements.clone(),
    )
    .await;
    let bob = user(
        &server,
        "bob",
        json!([{"Key": "team", "Value": "b"}]),
        statements.clone(),
    )
    .await;
    let carol = user(&server, "carol", json!([]), statements).await;

    ok(alice
        .client
        .describe_secret()
        .secret_id("tags/a-db")
        .send()
        .await);
    assert_eq!(
        get(&alice.client, "tags/a-db").await.unwrap(),
        "value-of-team-a-db"
    );
    denied(
        bob.client
            .describe_secret()
            .secret_id("tags/a-db")
            .send()
            .await,
        "bob describes",
    );
    denied(
        bob.client
            .get_secret_value()
            .secret_id("tags/a-db")
            .send()
            .await,
        "bob reads",
    );
    // No tag at all: the condition key is absent, so StringEquals does not match.
    denied(
        carol
            .client
            .describe_secret()
            .secret_id("tags/a-db")
            .send()
            .await,
        "carol describes",
    );
    denied(
        carol
            .client
            .get_secret_value()
            .secret_id("tags/a-db")
            .send()
            .await,
        "carol reads",
    );
}

#[tokio::test]
async fn source_ip_conditions_see_the_address_the_request_came_from() {
    let server = Server::start().await;
    let root = server.client().await;
    create_string(&root, "ip/app", "value-behind-an-ip-rule", &token(1)).await;
    let u = user(
        &server,
        "from-loopback",
        json!([]),
        json!([
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
             "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}},
            {"Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": "*",
             "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}},
            {"Effect": "Allow", "Action": "secretsmanager:PutSecretValue", "Resource": "*"},
            {"Effect": "Deny", "Action": "secretsmanager:PutSecretValue", "Resource": "*",
             "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}}
        ]),
    )
    .await;
    assert_eq!(
        get(&u.client, "ip/app").await.unwrap(),
        "value-behind-an-ip-rule"
    );
    denied(
        u.client.describe_secret().secret_id("ip/app").send().await,
        "another network's allow",
    );
    denied(
        u.client
            .put_secret_value()
            .secret_id("ip/app")
            .secret_string("value-the-deny-blocks")
            .send()
            .await,
        "deny outside 10/8",
    );
    assert_eq!(get_string(&root, "ip/app").await, "value-behind-an-ip-rule");
}

#[tokio::test]
async fn version_stage_conditions_limit_which_version_a_user_reads() {
    let server = Server::start().await;
    let root = server.client().await;
    create_string(&root, "stage/app", "stage-old-value-1", &token(1)).await;
    put_string(&root, "stage/app", "stage-new-value-2", &token(2)).await;
    let u = user(
        &server,
        "current-only",
        json!([]),
        json!([
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
             "Condition": {"StringEquals": {"secretsmanager:VersionStage": "AWSCURRENT"}}}
        ]),
    )
    .await;
    let current = ok(u
        .client
        .get_secret_value()
        .secret_id("stage/app")
        .version_stage("AWSCURRENT")
        .send()
        .await);
    assert_eq!(current.secret_string(), Some("stage-new-value-2"));
    denied(
        u.client
            .get_secret_value()
            .secret_id("stage/app")
            .version_stage("AWSPREVIOUS")
            .send()
            .await,
        "AWSPREVIOUS",
    );
    // The condition names the request's VersionStage: a version id alone does not carry it.
    denied(
        u.client
            .get_secret_value()
            .secret_id("stage/app")
            .version_id(token(1))
            .send()
            .await,
        "by version id",
    );
}

#[tokio::test]
async fn kura_operations_need_a_kura_permission() {
    let server = Server::start().await;
    let u = user(
        &server,
        "sm-admin",
        json!([]),
        json!([
            {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
            {"Effect": "Allow", "Action": "kura:ListUsers", "Resource": "*"}
        ]),
    )
    .await;
    let call = |op: &'static str, body: Value| {
        let (server, akid, secret) = (&server, u.akid.clone(), u.secret.clone());
        async move {
            server
                .raw_as(&akid, &secret, &format!("Kura.{op}"), &body.to_string())
                .await
        }
    };
    for (op, body) in [
        ("CreateUser", json!({"UserName": "mallory"})),
        ("CreateAccessKey", json!({"UserName": "sm-admin"})),
        (
            "PutUserPolicy",
            json!({"UserName": "sm-admin", "PolicyName": "more",
                "PolicyDocument": {"Version": "2012-10-17", "Statement":
                    [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}),
        ),
        ("LookupAuditEvents", json!({})),
        ("ListNotificationTargets", json!({})),
        ("ListRotationFunctions", json!({})),
    ] {
        let r = call(op, body).await;
        let msg = r.assert_error("AccessDeniedException");
        assert!(msg.contains(&format!("kura:{op}")), "{op}: {msg:?}");
    }
    // What the policy grants works.
    let listed = call("ListUsers", json!({})).await.assert_ok();
    assert!(listed.to_string().contains("sm-admin"), "{listed:#}");
    // Nothing was created by the refused calls.
    assert!(!listed.to_string().contains("mallory"), "{listed:#}");
}

// ---------------------------------------------------------------------------------------------------------
// The audit trail
// ---------------------------------------------------------------------------------------------------------

async fn lookup(server: &Server, query: Value) -> Vec<Value> {
    let r = server
        .kura("LookupAuditEvents", &query.to_string())
        .await
        .assert_ok();
    r["Events"].as_array().expect("Events").clone()
}

async fn clock_time(server: &Server) -> f64 {
    let r = server
        .kura("AdvanceClock", r#"{"Seconds": 0}"#)
        .await
        .assert_ok();
    r["Time"].as_f64().expect("Time")
}

#[tokio::test]
async fn the_purge_job_leaves_an_audit_record_in_the_database_and_the_file() {
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    let (arn, _) = create_string(&c, "purge/app", "value-to-be-purged", &token(1)).await;
    ok(c.delete_secret()
        .secret_id("purge/app")
        .recovery_window_in_days(7)
        .send()
        .await);
    assert!(
        lookup(&server, json!({"Action": "job:PurgeSecret"}))
            .await
            .is_empty(),
        "purged before its window ended"
    );
    server
        .kura("AdvanceClock", &json!({"Seconds": 7 * DAY + 1}).to_string())
        .await
        .assert_ok();
    assert_no_secret(&c, "purge/app").await;
    let events = lookup(&server, json!({"Action": "job:PurgeSecret"})).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(e["Kind"], "job", "{e:#}");
    assert_eq!(e["Principal"], "kura", "{e:#}");
    assert_eq!(e["Resource"], arn.as_str(), "{e:#}");
    assert_eq!(e["Outcome"], "Success", "{e:#}");
    let request_id = e["RequestId"].as_str().expect("RequestId");
    assert!(!request_id.is_empty(), "{e:#}");
    let file = std::fs::read_to_string(server.data_dir.join("audit.jsonl")).expect("audit.jsonl");
    let line = file
        .lines()
        .find(|l| l.contains(request_id))
        .unwrap_or_else(|| panic!("the purge's record is not in audit.jsonl:\n{file}"));
    let in_file: Value = serde_json::from_str(line).expect("a JSON line");
    assert_eq!(in_file["Action"], "job:PurgeSecret", "{line}");
    assert_eq!(in_file["Resource"], arn.as_str(), "{line}");
}

#[tokio::test]
async fn lookup_audit_events_filters_by_principal_and_by_time() {
    let server = Server::start_with(&["--test-clock"]).await;
    let root = server.client().await;
    create_string(&root, "audit/early", "value-of-audit-early", &token(1)).await;
    create_string(&root, "audit/late", "value-of-audit-late", &token(1)).await;
    let u = user(
        &server,
        "reader",
        json!([]),
        json!([{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]),
    )
    .await;
    get(&u.client, "audit/early").await.unwrap();
    get_string(&root, "audit/early").await;
    let before = clock_time(&server).await;
    server
        .kura("AdvanceClock", r#"{"Seconds": 3600}"#)
        .await
        .assert_ok();
    let middle = before + 1800.0;
    get(&u.client, "audit/late").await.unwrap();
    get_string(&root, "audit/late").await;

    // Principal: only that user's records, all of them.
    let all = lookup(&server, json!({"MaxResults": 1000})).await;
    let principal = all
        .iter()
        .find(|e| e["AccessKeyId"] == u.akid.as_str())
        .and_then(|e| e["Principal"].as_str())
        .expect("a record of the user's request")
        .to_string();
    assert!(principal.ends_with(":user/reader"), "{principal}");
    let theirs = lookup(&server, json!({"Principal": principal, "MaxResults": 1000})).await;
    let expected: Vec<&Value> = all
        .iter()
        .filter(|e| e["Principal"] == principal.as_str())
        .collect();
    assert_eq!(theirs.iter().collect::<Vec<_>>(), expected);
    let resources: Vec<&str> = theirs
        .iter()
        .filter(|e| e["Action"] == "secretsmanager:GetSecretValue")
        .map(|e| e["Resource"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(resources.len(), 2, "{theirs:#?}");
    assert!(
        resources[0].contains(":secret:audit/early-"),
        "{resources:?}"
    );
    assert!(
        resources[1].contains(":secret:audit/late-"),
        "{resources:?}"
    );
    assert!(
        lookup(
            &server,
            json!({"Principal": "arn:aws:iam::000000000000:user/nobody"})
        )
        .await
        .is_empty()
    );

    // Time: StartTime and EndTime are inclusive bounds in epoch seconds.
    let reads = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["Action"] == "secretsmanager:GetSecretValue")
            .map(|e| {
                let r = e["Resource"].as_str().unwrap_or("");
                if r.contains("audit/early") {
                    "early"
                } else {
                    "late"
                }
                .to_string()
            })
            .collect()
    };
    let after = lookup(&server, json!({"StartTime": middle, "MaxResults": 1000})).await;
    assert_eq!(reads(&after), ["late", "late"], "{after:#?}");
    assert!(
        after
            .iter()
            .all(|e| e["Time"].as_f64().unwrap() >= middle * 1000.0)
    );
    let earlier = lookup(&server, json!({"EndTime": middle, "MaxResults": 1000})).await;
    assert_eq!(reads(&earlier), ["early", "early"], "{earlier:#?}");
    let both = lookup(
        &server,
        json!({"StartTime": middle, "Principal": principal, "Action": "secretsmanager:GetSecretValue"}),
    )
    .await;
    assert_eq!(reads(&both), ["late"], "{both:#?}");
    server
        .kura("LookupAuditEvents", r#"{"StartTime": -1}"#)
        .await
        .assert_error("ValidationException");
}

// ---------------------------------------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------------------------------------

/// Started by hand rather than with `Server`: the harness's per-request audit check reads the
/// text log format.
#[tokio::test]
async fn log_json_writes_every_line_as_a_json_object_with_the_request_ids() {
    let tmp = tempfile::Builder::new()
        .prefix("kura-log-json-")
        .tempdir()
        .unwrap();
    let data_dir = tmp.path().join("data");
    let log_path = tmp.path().join("server.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kura"))
        .args([
            "server",
            "--log-json",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn kura");
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !http
        .get(format!("{endpoint}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "kura --log-json did not start: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let creds =
        parse_credentials(&std::fs::read_to_string(data_dir.join("root-credentials")).unwrap());
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_sdk_secretsmanager::config::Region::new(REGION))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            &creds.access_key_id,
            &creds.secret_access_key,
            None,
            None,
            "kura-tests",
        ))
        .build();
    let c = Client::from_conf(config);
    let value = format!("value-logged-nowhere-{}", unique_suffix());
    create_string(&c, "log/app", &value, &token(1)).await;
    get_string(&c, "log/app").await;
    let _ = c.describe_secret().secret_id("log/missing").send().await;
    let pid = child.id().expect("pid").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("kura stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l:?}"))
        })
        .collect();
    for line in &lines {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(
            line["fields"]["message"].is_string() || line["fields"].is_object(),
            "{line}"
        );
    }
    let mut logged: Vec<String> = lines
        .iter()
        .filter(|l| l["target"] == "kura::request")
        .filter_map(|l| l["fields"]["request_id"].as_str().map(String::from))
        .collect();
    let audit = std::fs::read_to_string(data_dir.join("audit.jsonl")).unwrap();
    let mut audited: Vec<String> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["Kind"] == "request")
        .filter_map(|r| r["RequestId"].as_str().map(String::from))
        .collect();
    logged.sort();
    audited.sort();
    assert_eq!(audited.len(), 3, "{audit}");
    assert_eq!(
        logged, audited,
        "each request logged as JSON with its request id"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "kura stopped"),
        "{log}"
    );
    assert!(!log.contains(&value), "a value was logged");
    assert!(!audit.contains(&value), "a value was audited");
}

// ---------------------------------------------------------------------------------------------------------
// Versions and values
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_secret_version_ids_pages_through_every_version_once() {
    let server = Server::start().await;
    let c = server.client().await;
    create_string(&c, "paged/app", "paged-value-number-1", &token(1)).await;
    for n in 2..=7 {
        put_string(
            &c,
            "paged/app",
            &format!("paged-value-number-{n}"),
            &token(n),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = ok(c
            .list_secret_version_ids()
            .secret_id("paged/app")
            .include_deprecated(true)
            .max_results(3)
            .set_next_token(next.clone())
            .send()
            .await);
        pages += 1;
        assert!(out.versions().len() <= 3, "{out:?}");
        seen.extend(
            out.versions()
                .iter()
                .filter_map(|v| v.version_id().map(String::from)),
        );
        next = out.next_token().map(String::from);
        if next.is_none() {
            break;
        }
        assert!(pages < 10, "paging does not end");
    }
    let mut expected: Vec<String> = (1..=7).map(token).collect();
    expected.sort();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(
        sorted, expected,
        "each version exactly once, in {pages} pages: {seen:?}"
    );
    assert_eq!(pages, 3, "7 versions, 3 a page");
    // A token from another secret's listing is refused.
    create_string(&c, "paged/other", "paged-other-value-1", &token(1)).await;
    put_string(&c, "paged/other", "paged-other-value-2", &token(2)).await;
    let first = ok(c
        .list_secret_version_ids()
        .secret_id("paged/app")
        .include_deprecated(true)
        .max_results(1)
        .send()
        .await);
    let t = first.next_token().expect("a NextToken").to_string();
    assert_api_err(
        c.list_secret_version_ids()
            .secret_id("paged/other")
            .include_deprecated(true)
            .max_results(1)
            .next_token(t)
            .send()
            .await,
        "InvalidNextTokenException",
        None,
    );
}

#[tokio::test]
async fn binary_values_round_trip_through_put_secret_value_and_update_secret() {
    let server = Server::start().await;
    let c = server.client().await;
    let marker = |n: u32| format!("binary-marker-{n}-{}", unique_suffix());
    let bytes = |m: &str| {
        let mut b = vec![0u8, 0xff, 0x80, 0xfe, b'\n'];
        b.extend_from_slice(m.as_bytes());
        b.extend_from_slice(&[0xc3, 0x28, 0]);
        b
    };
    let (m1, m2, m3) = (marker(1), marker(2), marker(3));
    for m in [&m1, &m2, &m3] {
        remember_value(m);
    }
    ok(c.create_secret()
        .name("bin/app")
        .secret_string("string-first-binary-later")
        .client_request_token(token(1))
        .send()
        .await);
    let put = ok(c
        .put_secret_value()
        .secret_id("bin/app")
        .secret_binary(Blob::new(bytes(&m1)))
        .client_request_token(token(2))
        .send()
        .await);
    assert_eq!(put.version_id(), Some(token(2).as_str()));
    let got = ok(c.get_secret_value().secret_id("bin/app").send().await);
    assert_eq!(
        got.secret_binary().map(|b| b.as_ref().to_vec()),
        Some(bytes(&m1))
    );
    assert_eq!(
        got.secret_string(),
        None,
        "a binary version has no SecretString"
    );

    ok(c.update_secret()
        .secret_id("bin/app")
        .secret_binary(Blob::new(bytes(&m2)))
        .client_request_token(token(3))
        .send()
        .await);
    let got = ok(c.get_secret_value().secret_id("bin/app").send().await);
    assert_eq!(got.version_id(), Some(token(3).as_str()));
    assert_eq!(
        got.secret_binary().map(|b| b.as_ref().to_vec()),
        Some(bytes(&m2))
    );
    let previous = ok(c
        .get_secret_value()
        .secret_id("bin/app")
        .version_stage("AWSPREVIOUS")
        .send()
        .await);
    assert_eq!(
        previous.secret_binary().map(|b| b.as_ref().to_vec()),
        Some(bytes(&m1))
    );

    // The same token with other bytes is a conflict, with the same bytes a no-op.
    ok(c.put_secret_value()
        .secret_id("bin/app")
        .secret_binary(Blob::new(bytes(&m2)))
        .client_request_token(token(3))
        .send()
        .await);
    assert_api_err(
        c.put_secret_value()
            .secret_id("bin/app")
            .secret_binary(Blob::new(bytes(&m3)))
            .client_request_token(token(3))
            .send()
            .await,
        "ResourceExistsException",
        None,
    );
    // Back to a string.
    put_string(&c, "bin/app", "string-again-after-binary", &token(4)).await;
    let got = ok(c.get_secret_value().secret_id("bin/app").send().await);
    assert_eq!(got.secret_string(), Some("string-again-after-binary"));
    assert!(got.secret_binary().is_none());
}

/// Exactly 1 MiB is accepted; one byte more is refused, also when the body is chunked (no
/// Content-Length to check up front).
#[tokio::test]
async fn a_body_of_exactly_1_mib_is_served_and_a_larger_chunked_one_refused() {
    let server = Server::start().await;
    const MIB: usize = 1024 * 1024;
    let head = r#"{"Name":"limit/exact","SecretString":"value-in-a-padded-body""#;
    let exact = format!("{head}{}}}", " ".repeat(MIB - head.len() - 1));
    assert_eq!(exact.len(), MIB);
    remember_value("value-in-a-padded-body");
    let r = server.raw("CreateSecret", &exact, SignMode::Root).await;
    r.assert_ok();
    let over = format!("{head}{}}}", " ".repeat(MIB - head.len()));
    let r = server.raw("CreateSecret", &over, SignMode::Root).await;
    assert_eq!(r.status, 413, "{}", r.body);

    // Chunked: the limit must hold while reading, not only against Content-Length.
    let mut s = tokio::net::TcpStream::connect(server.endpoint().trim_start_matches("http://"))
        .await
        .unwrap();
    let req = "POST / HTTP/1.1\r\nHost: kura\r\nContent-Type: application/x-amz-json-1.1\r\n\
        X-Amz-Target: secretsmanager.ListSecrets\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    s.write_all(req.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..17 {
        let mut piece = format!("{:x}\r\n", chunk.len()).into_bytes();
        piece.extend_from_slice(&chunk);
        piece.extend_from_slice(b"\r\n");
        if s.write_all(&piece).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "a chunked body over 1 MiB: {answer:?}"
    );
    assert!(answer.contains("ValidationException"), "{answer:?}");
}
