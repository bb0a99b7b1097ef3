//! Transport and authentication hardening (issue 10): what the signature must cover, what an
//! AccessDenied may reveal, connection timeouts and limits, oversized requests.

mod common;

use common::*;

/// Sends `POST /` with exactly these headers (plus what reqwest adds: content-length,
/// accept) and `body`.
async fn post(server: &Server, headers: &[(&str, String)], body: &str) -> RawResponse {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client");
    let mut request = client
        .post(format!("{}/", server.endpoint()))
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    server.record_response(&headers);
    let body = response.text().await.expect("read body");
    RawResponse {
        status,
        headers,
        body,
    }
}

/// Issue 10, point 1: a DescribeSecret signed over `host;x-amz-date` only, resent with
/// `X-Amz-Target: secretsmanager.GetSecretValue`, used to return the value.
#[tokio::test]
async fn a_signature_that_leaves_out_x_amz_target_is_refused() {
    let server = Server::start().await;
    let client = server.client().await;
    let value = "retarget-me-7c1f2a9e";
    remember_value(value);
    create_plain(&client, "retarget", value).await;

    let creds = server.credentials();
    let host = server.addr.to_string();
    let now = chrono::Utc::now();
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let body = r#"{"SecretId":"retarget"}"#;
    let signed = [("host", host.as_str()), ("x-amz-date", amz_date.as_str())];
    let authorization = kura_iam::sigv4::authorization_header(
        &kura_iam::sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &signed,
            body: body.as_bytes(),
        },
        &creds.access_key_id,
        &creds.secret_access_key,
        REGION,
        "secretsmanager",
        &amz_date,
    )
    .expect("sign");
    assert!(
        authorization.contains("SignedHeaders=host;x-amz-date,"),
        "{authorization}"
    );

    for target in [
        "secretsmanager.GetSecretValue",
        "secretsmanager.DescribeSecret",
    ] {
        let resp = post(
            &server,
            &[
                ("x-amz-date", amz_date.clone()),
                ("x-amz-target", target.to_string()),
                ("authorization", authorization.clone()),
            ],
            body,
        )
        .await;
        assert!(!resp.body.contains(value), "{target} leaked the value");
        let message = resp.assert_error("IncompleteSignatureException");
        assert_eq!(
            message,
            "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."
        );
    }
    // What the SDK signs still works.
    assert_eq!(get_string(&client, "retarget").await, value);
}

/// Issue 10, point 4: AccessDenied named an existing secret by its full ARN (random suffix
/// included) and a missing one by the name asked for, so a caller allowed nothing could tell
/// which secrets exist. Both answers must be alike but for the id the caller sent.
#[tokio::test]
async fn access_denied_does_not_tell_whether_a_secret_exists() {
    let server = Server::start().await;
    let root = server.client().await;
    let arn = create_plain(&root, "team/exists", "exists-value-5d1e").await;
    server
        .kura("CreateUser", r#"{"UserName":"nobody"}"#)
        .await
        .assert_ok();
    let key = server
        .kura("CreateAccessKey", r#"{"UserName":"nobody"}"#)
        .await
        .assert_ok();
    let akid = key["AccessKey"]["AccessKeyId"].as_str().unwrap();
    let secret = key["AccessKey"]["SecretAccessKey"].as_str().unwrap();
    let partial = arn
        .rsplit_once('-')
        .expect("ARN with a suffix")
        .0
        .to_string();
    let missing_partial = partial.replace("team/exists", "team/missin");

    for op in ["GetSecretValue", "DescribeSecret", "PutSecretValue"] {
        for (existing, missing) in [
            ("team/exists", "team/missin"),
            (partial.as_str(), missing_partial.as_str()),
        ] {
            let answer = async |id: &str| {
                let body = serde_json::json!({"SecretId": id, "SecretString": "x"}).to_string();
                let target = format!("secretsmanager.{op}");
                let resp = server.raw_as(akid, secret, &target, &body).await;
                resp.assert_error("AccessDeniedException")
                    .replace(id, "<ID>")
            };
            let (a, b) = (answer(existing).await, answer(missing).await);
            assert_eq!(a, b, "{op} on {existing} vs {missing}");
            assert!(a.contains("on resource: <ID> "), "{a}");
            let suffix = arn.rsplit_once('-').unwrap().1;
            assert!(!a.contains(suffix), "{a}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections (issue 10, points 5, 10 and 12). No assertion here is about timing: the servers
// run with short timeouts, and each test waits (up to a generous bound) for what must happen.
// ---------------------------------------------------------------------------------------------

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far longer than any timeout the servers here are given.
const BOUND: Duration = Duration::from_secs(30);

/// Reads until the server closes the connection; returns what it sent. Panics if it does not
/// close within `BOUND`.
async fn read_until_closed(stream: &mut TcpStream, what: &str) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{what}: the server kept the connection open");
    String::from_utf8_lossy(&got).into_owned()
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.addr).await.expect("connect")
}

/// Sends a complete `GET /health` and reads its answer (up to the end of its JSON body).
async fn health_on(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: kura\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(BOUND, async {
        while !String::from_utf8_lossy(&got).ends_with(r#"{"status":"ok"}"#) {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before answering: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer to GET /health");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn silent_and_slow_header_connections_are_closed_after_the_header_read_timeout() {
    let server = Server::start_with(&["--header-read-timeout", "1", "--idle-timeout", "300"]).await;
    let mut silent = connect(&server).await;
    let mut slow = connect(&server).await;
    slow.write_all(b"POST / HTTP/1.1\r\nHost: kura\r\nX-Amz-Tar")
        .await
        .unwrap();
    assert_eq!(read_until_closed(&mut silent, "silent").await, "");
    assert_eq!(read_until_closed(&mut slow, "slow header").await, "");
    // Closed connections leave nothing behind: the server answers as before.
    server.client().await.list_secrets().send().await.unwrap();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start_with(&["--header-read-timeout", "300", "--idle-timeout", "1"]).await;
    let mut stream = connect(&server).await;
    let first = health_on(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Kept alive: a second request on the same connection is served...
    assert!(health_on(&mut stream).await.starts_with("HTTP/1.1 200"));
    // ...and once idle, it is closed.
    assert_eq!(read_until_closed(&mut stream, "idle").await, "");
}

/// A Content-Length larger than the body sent held the connection for 40 s and more.
#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_answered_after_the_body_read_timeout() {
    let server = Server::start_with(&["--body-read-timeout", "1"]).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: kura\r\nX-Amz-Target: secretsmanager.ListSecrets\r\n\
              Content-Type: application/x-amz-json-1.1\r\nContent-Length: 100\r\n\r\n{\"Max",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, "short body").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains("x-amzn-errortype: requesttimeoutexception"),
        "{answer}"
    );
    assert!(lower.contains("x-amzn-requestid: "), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body).expect("a JSON error body");
    assert_eq!(json["__type"], "RequestTimeoutException");
    assert!(
        json["message"].as_str().unwrap().contains("Content-Length"),
        "{json}"
    );
}

/// 1,100 idle unauthenticated sockets made a server with the common open-file limit of 1,024
/// stop answering signed requests. Slow-header connections must not keep signed clients out.
#[tokio::test]
async fn signed_requests_are_served_while_a_thousand_slow_header_connections_are_open() {
    if !have("prlimit") {
        return;
    }
    let server = Server::start_with(&["--header-read-timeout", "300"]).await;
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", server.pid()))
        .arg("--nofile=1024:1024")
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit failed");
    let client = server.client().await;
    create_plain(&client, "busy-day", "busy-day-value-0b3c").await;

    let mut slow = Vec::new();
    for _ in 0..1100 {
        let Ok(mut s) = TcpStream::connect(server.addr).await else {
            continue;
        };
        let _ = s.write_all(b"POST / HTTP/1.1\r\nHost: kura\r\n").await;
        slow.push(s);
    }
    for _ in 0..3 {
        let got = tokio::time::timeout(
            BOUND,
            client.get_secret_value().secret_id("busy-day").send(),
        )
        .await
        .expect("a signed request was not answered while slow connections are open");
        assert_eq!(got.unwrap().secret_string(), Some("busy-day-value-0b3c"));
    }
    drop(slow);
}

#[tokio::test]
async fn the_connection_cap_holds_and_new_connections_replace_waiting_ones() {
    let server = Server::start_with(&[
        "--max-connections",
        "3",
        "--header-read-timeout",
        "300",
        "--body-read-timeout",
        "300",
    ])
    .await;
    // Five silent connections with room for three: the two that have waited longest go.
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(connect(&server).await);
    }
    for s in &mut silent[..2] {
        assert_eq!(read_until_closed(s, "replaced connection").await, "");
    }
    for s in &mut silent[2..] {
        assert!(health_on(s).await.starts_with("HTTP/1.1 200"));
    }
    drop(silent);

    // Three connections busy reading a body: nothing to replace, so a fourth is closed.
    let mut busy = Vec::new();
    for _ in 0..3 {
        let mut s = connect(&server).await;
        s.write_all(
            b"POST / HTTP/1.1\r\nHost: kura\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
        // hyper asks for the body once the handler reads it: the request is then in service.
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(BOUND, s.read(&mut buf))
            .await
            .expect("100 Continue")
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 100"), "{:?}", &buf[..n]);
        busy.push(s);
    }
    let mut extra = connect(&server).await;
    let _ = extra
        .write_all(b"GET /health HTTP/1.1\r\nHost: kura\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(
        read_until_closed(&mut extra, "fourth connection").await,
        "",
        "a fourth connection was served beside three busy ones"
    );
    drop(busy);
}

/// Bodies over the limit got a plain-text 413 and no audit record.
#[tokio::test]
async fn an_oversized_body_is_an_audited_aws_error() {
    let server = Server::start().await;
    let big = format!(
        r#"{{"Name":"big","SecretString":"{}"}}"#,
        "x".repeat(1024 * 1024 + 1)
    );
    let resp = server.raw("CreateSecret", &big, SignMode::Root).await;
    assert_eq!(resp.status, 413, "{resp:?}");
    assert_common_headers(&resp.headers);
    assert_eq!(resp.header("x-amzn-ErrorType"), Some("ValidationException"));
    let json = resp.json();
    assert_eq!(json["__type"], "ValidationException");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("at most 1048576 bytes"),
        "{json}"
    );
    let audit = std::fs::read_to_string(server.data_dir.join("audit.jsonl")).unwrap();
    let id = resp.header("x-amzn-RequestId").unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains(id) && l.contains("ValidationException")),
        "no audit record of the refused request"
    );
}

/// Headers over the limit got a plain 431 and no audit record.
#[tokio::test]
async fn oversized_headers_are_an_audited_aws_error() {
    let server = Server::start().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let too_many = (0..150).fold(http.post(format!("{}/", server.endpoint())), |r, i| {
        r.header(format!("x-filler-{i}"), "y")
    });
    let too_long = http
        .post(format!("{}/", server.endpoint()))
        .header("x-filler", "y".repeat(20 * 1024));
    for request in [too_many, too_long] {
        let resp = request
            .header("x-amz-target", "secretsmanager.ListSecrets")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 431);
        let headers = resp.headers().clone();
        // The one-request-one-record check of the harness then covers refused requests too.
        server.record_response(&headers);
        assert_common_headers(&headers);
        assert_eq!(headers["x-amzn-ErrorType"], "ValidationException");
        let id = headers["x-amzn-RequestId"].to_str().unwrap().to_string();
        let json: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(json["__type"], "ValidationException");
        assert!(
            json["message"]
                .as_str()
                .unwrap()
                .contains("at most 100 headers"),
            "{json}"
        );
        let audit = std::fs::read_to_string(server.data_dir.join("audit.jsonl")).unwrap();
        assert!(
            audit.lines().any(|l| l.contains(&id)),
            "no audit record of the refused request"
        );
    }
}
