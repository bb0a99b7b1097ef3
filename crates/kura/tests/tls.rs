//! TLS on kura's listener, end to end: the AWS SDK over HTTPS with a CA made by the test,
//! the certificate chain, TLS versions, reloading on SIGHUP and on a change of the files
//! while a connection stays open, client certificates, the handshake under the connection
//! deadlines, `aws:SecureTransport`, and the refusal of plain HTTP beyond loopback.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::tls::{ClientTls, Issued, TestCa, replace_file, write_pair};
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

fn temp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kura-tls-")
        .tempdir()
        .expect("temp dir")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A server on `tmp` serving `issued`, with `extra` flags; its clients trust `client`.
async fn start(
    tmp: tempfile::TempDir,
    issued: &Issued,
    extra: &[&str],
    client: ClientTls,
) -> Server {
    let (cert, key) = write_pair(tmp.path(), issued);
    let mut args = vec![
        "--tls-cert".to_string(),
        path_str(&cert).to_string(),
        "--tls-key".to_string(),
        path_str(&key).to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_tls(tmp, &args, client).await
}

/// A TLS connection of its own to the server (not pooled by any client).
async fn connect(server: &Server, client: &ClientTls) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(server.addr).await?;
    let connector = tokio_rustls::TlsConnector::from(client.rustls());
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    connector.connect(name, tcp).await
}

/// The first certificate the server sent on `stream`.
fn served_certificate(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .expect("the server sent a certificate")
}

/// `GET /health` on an open keep-alive connection; its answer's body.
async fn health_on(stream: &mut TlsStream<TcpStream>) -> String {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send GET /health");
    let mut got = Vec::new();
    let read = async {
        loop {
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).await.expect("read the answer");
            assert!(
                n > 0,
                "the server closed the connection: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .expect("Content-Length");
                if body.len() >= length {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    return body[..length].to_string();
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s")
}

/// Waits until a fresh connection is served `der`; panics after 10 s.
async fn wait_served(server: &Server, client: &ClientTls, der: &[u8], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(stream) = connect(server, client).await
            && served_certificate(&stream) == der
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the new certificate was not served within 10 s\n--- server log ---\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[tokio::test]
async fn the_sdk_works_over_https_with_the_chain_and_an_untrusted_client_is_refused() {
    let ca = TestCa::new("kura test");
    let issued = ca.server_cert(1);
    let server = start(temp(), &issued, &[], ClientTls::trusting(&ca)).await;
    assert!(server.endpoint().starts_with("https://"));

    // The client trusts only the root: the server must send the intermediate with its cert.
    let client = server.client().await;
    let value = "value sent over https";
    create_plain(&client, "tls/db-password", value).await;
    assert_eq!(get_string(&client, "tls/db-password").await, value);
    let stream = connect(&server, &ClientTls::trusting(&ca))
        .await
        .expect("TLS connection");
    assert_eq!(served_certificate(&stream), issued.der);
    let chain = stream.get_ref().1.peer_certificates().map(<[_]>::len);
    assert_eq!(chain, Some(2), "the certificate and its intermediate");
    // The SDK offers h2 and http/1.1 (as here) and so talks HTTP/2 to kura.
    let mut offer = (*ClientTls::trusting(&ca).rustls()).clone();
    offer.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let h2 = tokio_rustls::TlsConnector::from(std::sync::Arc::new(offer))
        .connect(name, tcp)
        .await
        .expect("TLS connection offering h2");
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(h2);

    // A client that trusts another CA does not get through, nor does plain HTTP.
    let stranger = ClientTls::trusting(&TestCa::new("stranger")).reqwest();
    let health = format!("{}/health", server.endpoint());
    assert!(stranger.get(&health).send().await.is_err());
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("http://{}/health", server.addr))
        .send()
        .await;
    assert!(
        !matches!(&plain, Ok(r) if r.status().is_success()),
        "plain HTTP answered on the TLS port: {plain:?}"
    );
    // And TLS still serves after those.
    assert_eq!(get_string(&client, "tls/db-password").await, value);
}

/// `openssl s_client` limited to one protocol version: whether the handshake succeeded, and
/// what it printed.
fn s_client(server: &Server, version: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-brief",
            "-connect",
            &server.addr.to_string(),
            "-servername",
            "localhost",
        ])
        .args(version)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_are_accepted() {
    if !have("openssl") {
        return;
    }
    let ca = TestCa::new("kura test");
    let server = start(temp(), &ca.server_cert(1), &[], ClientTls::trusting(&ca)).await;
    for version in ["-tls1_2", "-tls1_3"] {
        let (ok, out) = s_client(&server, &[version]);
        assert!(ok, "{version} refused: {out}");
    }
    // OpenSSL offers TLS 1.1 only at security level 0; the server must refuse it.
    let (ok, out) = s_client(&server, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    if out.contains("no protocols available") {
        skip("this openssl cannot offer TLS 1.1, so the server's refusal cannot be seen");
        return;
    }
    assert!(!ok, "a TLS 1.1 handshake succeeded: {out}");
    // The refusal is the server's: an alert it sent (rustls answers a ClientHello that offers
    // nothing it accepts with handshake_failure or protocol_version).
    assert!(
        out.contains("alert handshake failure") || out.contains("alert protocol version"),
        "the server should refuse TLS 1.1 with an alert: {out}"
    );
}

#[tokio::test]
async fn certificates_reload_on_sighup_and_on_change_and_open_connections_keep_working() {
    let ca = TestCa::new("kura test");
    let client = ClientTls::trusting(&ca);
    let tmp = temp();
    let dir = tmp.path().to_path_buf();
    let first = ca.server_cert(1);
    let server = start(tmp, &first, &[], client.clone()).await;
    let mut open = connect(&server, &client).await.expect("TLS connection");
    assert_eq!(served_certificate(&open), first.der);
    assert_eq!(health_on(&mut open).await, r#"{"status":"ok"}"#);

    // SIGHUP: the new pair is read (the poll may see it first; SIGHUP reloads in any case).
    let second = ca.server_cert(2);
    write_pair(&dir, &second);
    let before = count(&server.log(), "reloaded (SIGHUP)");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    wait_served(&server, &client, &second.der, "after SIGHUP").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&server.log(), "reloaded (SIGHUP)") == before {
        assert!(
            Instant::now() < deadline,
            "no reload logged for SIGHUP:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The connection opened before keeps its session and is still served.
    assert_eq!(health_on(&mut open).await, r#"{"status":"ok"}"#);

    // A change of the files alone.
    let third = ca.server_cert(3);
    write_pair(&dir, &third);
    wait_served(&server, &client, &third.der, "after the files changed").await;
    assert_eq!(health_on(&mut open).await, r#"{"status":"ok"}"#);

    // A key that is not the certificate's: refused, logged, the last good pair still served.
    let refusals = count(
        &server.log(),
        "refused, still serving the previous certificate",
    );
    replace_file(&dir.join("server.key"), ca.server_cert(4).key.as_bytes());
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(
        &server.log(),
        "refused, still serving the previous certificate",
    ) == refusals
    {
        assert!(
            Instant::now() < deadline,
            "no refusal logged:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh = connect(&server, &client)
        .await
        .expect("TLS connection after a bad pair");
    assert_eq!(served_certificate(&fresh), third.der);
    let sdk = server.client().await;
    ok(sdk.list_secrets().send().await);
    assert_eq!(health_on(&mut open).await, r#"{"status":"ok"}"#);
    drop(fresh);
    drop(open);
}

#[tokio::test]
async fn client_certificates_from_the_given_ca_are_required() {
    let server_ca = TestCa::new("kura test");
    let clients_ca = TestCa::new("kura clients");
    let tmp = temp();
    let clients_pem = tmp.path().join("clients.pem");
    std::fs::write(&clients_pem, clients_ca.pem()).unwrap();
    let member = ClientTls::trusting(&server_ca).with_identity(clients_ca.client_cert("app"));
    let server = start(
        tmp,
        &server_ca.server_cert(1),
        &["--tls-client-ca", path_str(&clients_pem)],
        member.clone(),
    )
    .await;

    // With a certificate from that CA: served (signed requests too).
    let listed = server
        .raw("ListSecrets", "{}", SignMode::Root)
        .await
        .assert_ok();
    assert!(listed["SecretList"].is_array(), "{listed}");
    let mut stream = connect(&server, &member)
        .await
        .expect("TLS with a client certificate");
    assert_eq!(health_on(&mut stream).await, r#"{"status":"ok"}"#);

    // Without one, or with one from another CA: no answer at all.
    let health = format!("{}/health", server.endpoint());
    let anonymous = ClientTls::trusting(&server_ca);
    assert!(anonymous.reqwest().get(&health).send().await.is_err());
    let stranger = ClientTls::trusting(&server_ca)
        .with_identity(TestCa::new("strangers").client_cert("mallory"));
    assert!(stranger.reqwest().get(&health).send().await.is_err());
    // The refusal is the server's (in TLS 1.3 it comes after the client's handshake ends).
    for (who, client) in [("no certificate", &anonymous), ("another CA", &stranger)] {
        let refused = match connect(&server, client).await {
            Err(_) => true,
            Ok(mut s) => {
                let _ = s
                    .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    .await;
                let mut buf = [0u8; 64];
                !matches!(s.read(&mut buf).await, Ok(n) if n > 0)
            }
        };
        assert!(refused, "{who}: served");
    }
    assert!(server.raw("ListSecrets", "{}", SignMode::Root).await.status == 200);
}

#[tokio::test]
async fn a_socket_that_never_completes_a_handshake_loses_its_slot() {
    let ca = TestCa::new("kura test");
    let server = start(
        temp(),
        &ca.server_cert(1),
        &["--header-read-timeout", "1", "--max-connections", "1"],
        ClientTls::trusting(&ca),
    )
    .await;
    // Silent: closed at the header-read deadline.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a silent socket was not closed: {read:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A handshake begun and never finished (a few bytes of a ClientHello) holds the only slot;
    // a real client takes its place at once.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x80, 0x01])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let client = server.client().await;
    ok(client.list_secrets().send().await);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the stalled handshake kept its connection: {read:?}"
    );
}

/// A user with one access key and an identity policy of `statements`, on `server`.
async fn user_on(server: &Server, name: &str, statements: serde_json::Value) -> (String, String) {
    server
        .kura("CreateUser", &json!({"UserName": name}).to_string())
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
    (akid, secret)
}

#[tokio::test]
async fn aws_secure_transport_is_true_over_tls_only() {
    let ca = TestCa::new("kura test");
    let tls = start(temp(), &ca.server_cert(1), &[], ClientTls::trusting(&ca)).await;
    let plain = Server::start().await;
    let tls_only_allow = json!([{
        "Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "true"}}
    }]);
    let deny_plain = json!([
        {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    ]);
    for server in [&tls, &plain] {
        create_plain(&server.client().await, "tls/guarded", "guarded value 1").await;
    }
    for (user, statements) in [("allow-tls", &tls_only_allow), ("deny-plain", &deny_plain)] {
        let (akid, secret) = user_on(&tls, user, statements.clone()).await;
        let over_tls = tls.client_with(&akid, &secret).await;
        let got = ok(over_tls
            .get_secret_value()
            .secret_id("tls/guarded")
            .send()
            .await);
        assert_eq!(
            got.secret_string(),
            Some("guarded value 1"),
            "{user} over TLS"
        );

        let (akid, secret) = user_on(&plain, user, statements.clone()).await;
        let over_http = plain.client_with(&akid, &secret).await;
        let e = api_err(
            over_http
                .get_secret_value()
                .secret_id("tls/guarded")
                .send()
                .await,
        );
        assert_eq!(
            e.code, "AccessDeniedException",
            "{user} over plain HTTP: {e:?}"
        );
    }
}

/// Runs `kura server` with `args` until it exits or 5 s pass; its exit status and stderr.
fn run_server(args: &[&str]) -> (Option<std::process::ExitStatus>, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kura"))
        .arg("server")
        .args(args)
        .env_remove("KURA_INSECURE_HTTP")
        .env_remove("KURA_TLS_CERT")
        .env_remove("KURA_TLS_KEY")
        .env_remove("KURA_TLS_CLIENT_CA")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kura server");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll kura") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        use std::io::Read;
        let _ = stderr.read_to_string(&mut err);
    }
    (status, err)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn plain_http_beyond_loopback_is_refused_unless_insecure_http_is_given() {
    let tmp = temp();
    let data = tmp.path().join("data");
    let listen = format!("0.0.0.0:{}", free_port());
    let (status, err) = run_server(&["--listen", &listen, "--data-dir", path_str(&data)]);
    let status = status.expect("kura exits at once");
    assert!(!status.success());
    for needle in [
        "not a loopback address",
        "--tls-cert FILE --tls-key FILE",
        "--insecure-http",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    assert!(!data.exists(), "nothing is initialised before the refusal");

    // Unreadable TLS files are refused at start too, with the file named.
    let missing = tmp.path().join("missing.pem");
    let (status, err) = run_server(&[
        "--listen",
        &listen,
        "--data-dir",
        path_str(&data),
        "--tls-cert",
        path_str(&missing),
        "--tls-key",
        path_str(&missing),
    ]);
    assert!(!status.expect("kura exits at once").success());
    assert!(err.contains("missing.pem"), "{err}");
    assert!(!data.exists());

    // --insecure-http serves plain HTTP there (reached through loopback).
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kura"))
        .args([
            "server",
            "--insecure-http",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--data-dir",
            path_str(&data),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run kura server");
    let url = format!("http://127.0.0.1:{port}/health");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(&url).await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "no answer with --insecure-http");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().await.unwrap();

    // With TLS, any address.
    let ca = TestCa::new("kura test");
    let (cert, key) = write_pair(tmp.path(), &ca.server_cert(1));
    let port = free_port();
    let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kura"))
        .args([
            "server",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--data-dir",
            path_str(&data),
        ])
        .args(["--tls-cert", path_str(&cert), "--tls-key", path_str(&key)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run kura server");
    let https = ClientTls::trusting(&ca).reqwest();
    let url = format!("https://127.0.0.1:{port}/health");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = https.get(&url).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "no answer over TLS on 0.0.0.0");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_command_rotation_function_calls_back_over_tls_with_aws_ca_bundle() {
    let Some(python) = python_with_boto3() else {
        return;
    };
    let ca = TestCa::new("kura test");
    let tmp = temp();
    let bundle = tmp.path().join("ca.pem");
    std::fs::write(&bundle, ca.pem()).unwrap();
    let server = start(temp(), &ca.server_cert(1), &[], ClientTls::trusting(&ca)).await;
    // As the README says: the function's environment names the CA (without it, the step
    // fails on the certificate).
    create_python_function(
        &server,
        &python,
        "tls-rotator",
        &[("AWS_CA_BUNDLE", path_str(&bundle))],
        1,
    )
    .await;
    let client = server.client().await;
    let arn = create_plain(&client, "tls/rotated", "before the rotation").await;
    ok(client
        .rotate_secret()
        .secret_id("tls/rotated")
        .rotation_lambda_arn(lambda_arn(&arn, "tls-rotator"))
        .send()
        .await);
    wait_rotation_succeeded(&server, "tls/rotated").await;
    let rotated = get_string(&client, "tls/rotated").await;
    remember_value(&rotated);
    assert_ne!(rotated, "before the rotation");
    drop(tmp);
}

#[tokio::test]
async fn sighup_without_tls_leaves_the_server_running() {
    let server = Server::start().await;
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("SIGHUP: nothing to reload") {
        assert!(
            Instant::now() < deadline,
            "SIGHUP not logged:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ok(server.client().await.list_secrets().send().await);
    // Stops cleanly afterwards (exit 0 on SIGTERM).
    server.stop().await;
}
