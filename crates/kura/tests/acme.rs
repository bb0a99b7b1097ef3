//! ACME certificates end to end (issue 15, point 4): `kura-acme-certificate` secrets ordered
//! from a real Pebble (Debian's `pebble`) and its `pebble-challtestsrv` DNS, each test starting
//! its own on free ports with an HTTPS certificate made here. `dns-01` goes through a kura
//! `command` function that sets and clears TXT records through challtestsrv's management API;
//! `http-01` is answered by kura itself on its own listener (Pebble's `httpPort` is kura's
//! port). Every issued chain is checked by `openssl verify` against Pebble's issuance root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::pebble::Pebble;
use common::*;
use serde_json::{Value, json};

const FUNCTION: &str = "kura-acme-certificate";

async fn rotate(server: &Server, arn: &str, id: &str) {
    server
        .raw(
            "RotateSecret",
            &json!({"SecretId": id, "RotationLambdaARN": lambda_arn(arn, FUNCTION)}).to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok();
}

async fn value_of(server: &Server, id: &str) -> Value {
    let c = server.client().await;
    let (_, text, _) = get_stage(&c, id, "AWSCURRENT").await;
    serde_json::from_str(&text).expect("a certificate secret's value is JSON")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn openssl(args: &[&str], file: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .arg(file)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl verify` of the secret's certificate against Pebble's root, with Pebble's
/// intermediate and the secret's `intermediate` untrusted; the certificate's public key.
fn verify(dir: &Path, root: &str, intermediate: &str, v: &Value) -> String {
    let root = write(dir, "root.pem", root);
    let untrusted = write(
        dir,
        "untrusted.pem",
        &format!("{intermediate}{}", v["intermediate"].as_str().unwrap()),
    );
    let leaf = write(dir, "leaf.pem", v["certificate"].as_str().unwrap());
    let out = openssl(
        &[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            untrusted.to_str().unwrap(),
        ],
        &leaf,
    );
    assert!(out.contains("OK"), "{out}");
    // The key in the secret is the certificate's.
    let key = write(dir, "leaf.key", v["private_key"].as_str().unwrap());
    let public = openssl(&["x509", "-noout", "-pubkey", "-in"], &leaf);
    assert_eq!(
        openssl(&["pkey", "-pubout", "-in"], &key),
        public,
        "private_key belongs to the certificate"
    );
    public
}

fn assert_certificate_fields(v: &Value, names: &[&str], request: &Value) {
    for field in ["directory_url", "email", "common_name", "challenge"] {
        assert_eq!(v[field], request[field], "the request's {field} is kept");
    }
    assert_eq!(v["key_algorithm"], "EC_P256");
    let issuer = v["issuer"].as_str().unwrap();
    assert!(issuer.contains("Pebble"), "issuer {issuer}");
    let serial = v["serial_number"].as_str().unwrap();
    assert!(
        serial.contains(':') && serial.chars().all(|c| c == ':' || c.is_ascii_hexdigit()),
        "serial_number {serial} as kura-private-certificate shows it"
    );
    let expires = chrono::DateTime::parse_from_rfc3339(v["expiration_date"].as_str().unwrap())
        .expect("expiration_date is RFC 3339");
    assert!(expires > chrono::Utc::now() + chrono::Duration::days(1));
    let text = {
        let dir = tempfile::tempdir().unwrap();
        let leaf = write(dir.path(), "leaf.pem", v["certificate"].as_str().unwrap());
        openssl(&["x509", "-noout", "-text", "-in"], &leaf)
    };
    for n in names {
        assert!(text.contains(&format!("DNS:{n}")), "{n} in {text}");
    }
}

#[tokio::test]
async fn dns01_issues_and_renews_with_a_new_key_or_the_same_one_on_one_account() {
    let server = Server::start().await;
    let Some(pebble) = Pebble::start(server.addr.port()).await else {
        return;
    };
    // The dns-01 provider: a command function setting TXT records through challtestsrv,
    // noting each call so the test sees the records removed again.
    let (hook, calls) = pebble.dns_hook();
    server
        .kura(
            "CreateRotationFunction",
            &json!({"Name": "challtest-dns", "Type": "command", "Command": [hook]}).to_string(),
        )
        .await
        .assert_ok();

    let names = ["example.test", "www.example.test"];
    let mut request = pebble.request(&names, "dns-01");
    request["dns_provider"] = json!("challtest-dns");
    let c = server.client().await;
    let arn = create_plain(&c, "certs/acme-dns", &request.to_string()).await;
    rotate(&server, &arn, "certs/acme-dns").await;
    wait_rotation_succeeded(&server, "certs/acme-dns").await;
    let first = value_of(&server, "certs/acme-dns").await;
    assert_certificate_fields(&first, &names, &request);
    assert_eq!(first["dns_provider"], "challtest-dns");
    let (root, intermediate) = pebble.issuance_chain().await;
    let tmp = tempfile::tempdir().unwrap();
    let first_key = verify(tmp.path(), &root, &intermediate, &first);
    let noted = std::fs::read_to_string(&calls).unwrap();
    for n in names {
        for action in ["set", "remove"] {
            let line = format!("{action} _acme-challenge.{n}");
            assert!(
                noted.lines().any(|l| l == line),
                "{line} in the provider's calls:\n{noted}"
            );
        }
    }

    // A renewal: rotate_keys defaults to true, so a new key.
    rotate(&server, &arn, "certs/acme-dns").await;
    wait_rotation_succeeded(&server, "certs/acme-dns").await;
    let second = value_of(&server, "certs/acme-dns").await;
    assert_ne!(second["serial_number"], first["serial_number"]);
    assert_ne!(second["private_key"], first["private_key"]);
    let second_key = verify(tmp.path(), &root, &intermediate, &second);
    assert_ne!(second_key, first_key, "a new public key");

    // rotate_keys false: the same key, certified again.
    let mut same = second.clone();
    same["rotate_keys"] = json!(false);
    put_string(
        &c,
        "certs/acme-dns",
        &same.to_string(),
        "a1a1a1a1-0000-4000-8000-000000000001",
    )
    .await;
    rotate(&server, &arn, "certs/acme-dns").await;
    wait_rotation_succeeded(&server, "certs/acme-dns").await;
    let third = value_of(&server, "certs/acme-dns").await;
    assert_ne!(third["serial_number"], second["serial_number"]);
    assert_eq!(third["private_key"], second["private_key"]);
    assert_eq!(
        verify(tmp.path(), &root, &intermediate, &third),
        second_key,
        "the same public key"
    );

    // Three orders, one account: made on first use, kept sealed, used again.
    assert_eq!(pebble.accounts_made(), 1, "{}", pebble.log());
}

#[tokio::test]
async fn http01_is_answered_by_kura_itself() {
    let server = Server::start().await;
    let Some(pebble) = Pebble::start(server.addr.port()).await else {
        return;
    };
    let names = ["web.example.test"];
    let request = pebble.request(&names, "http-01");
    let c = server.client().await;
    let arn = create_plain(&c, "certs/acme-http", &request.to_string()).await;
    rotate(&server, &arn, "certs/acme-http").await;
    wait_rotation_succeeded(&server, "certs/acme-http").await;
    let v = value_of(&server, "certs/acme-http").await;
    assert_certificate_fields(&v, &names, &request);
    let (root, intermediate) = pebble.issuance_chain().await;
    let tmp = tempfile::tempdir().unwrap();
    let first_key = verify(tmp.path(), &root, &intermediate, &v);

    // A renewal answered the same way: a new certificate on a new key.
    rotate(&server, &arn, "certs/acme-http").await;
    wait_rotation_succeeded(&server, "certs/acme-http").await;
    let renewed = value_of(&server, "certs/acme-http").await;
    assert_ne!(renewed["serial_number"], v["serial_number"]);
    assert_ne!(
        verify(tmp.path(), &root, &intermediate, &renewed),
        first_key,
        "a new public key"
    );

    // Only tokens of orders in flight are answered; these finished.
    let r = server
        .http()
        .get(format!(
            "{}/.well-known/acme-challenge/not-a-token",
            server.endpoint()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// A refused configuration fails the rotation with a message naming the field, before
/// anything is ordered; an ACME server's error is the rotation's last error. (The engine
/// redacts the secret's values from it, so the messages are matched on kura's own words.)
#[tokio::test]
async fn a_bad_acme_secret_fails_its_rotation_naming_the_field() {
    let server = Server::start().await;
    let c = server.client().await;
    server
        .kura(
            "CreateRotationFunction",
            &json!({"Name": "password-rules", "Type": "kura-password"}).to_string(),
        )
        .await
        .assert_ok();
    // Nothing listens here: only the last case reaches it.
    let directory = format!("https://127.0.0.1:{}/dir", free_port());
    let base = json!({
        "directory_url": directory, "email": "certs@example.test",
        "common_name": "example.test", "challenge": "dns-01", "dns_provider": "nowhere",
    });
    let with = |field: &str, v: Value| {
        let mut b = base.clone();
        match v {
            Value::Null => {
                b.as_object_mut().unwrap().remove(field);
            }
            v => b[field] = v,
        }
        b
    };
    let cases = [
        ("no-email", with("email", Value::Null), "email"),
        (
            "no-provider",
            with("dns_provider", Value::Null),
            "dns_provider",
        ),
        (
            "unknown-challenge",
            with("challenge", json!("tls-alpn-01")),
            "is not one kura answers: use",
        ),
        (
            "missing-provider",
            base.clone(),
            "does not exist: name a command or webhook rotation function",
        ),
        (
            "password-provider",
            with("dns_provider", json!("password-rules")),
            "is a kura-password function",
        ),
        (
            "plain-directory",
            with("directory_url", json!("http://127.0.0.1/dir")),
            "directory_url",
        ),
        (
            "unreachable",
            with("challenge", json!("http-01")),
            "failed to create an account",
        ),
    ];
    for (name, value, want) in &cases {
        let id = format!("certs/bad-{name}");
        let arn = create_plain(&c, &id, &value.to_string()).await;
        rotate(&server, &arn, &id).await;
        let r = wait_rotation_settled(&server, &id, Duration::from_secs(60)).await;
        let err = r["LastError"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no LastError in {r:#}"));
        assert!(err.contains(want), "{name}: {err:?} should name {want:?}");
        assert!(!err.contains("PRIVATE KEY"), "{err}");
        let current = value_of(&server, &id).await;
        assert!(current.get("certificate").is_none(), "{name}: {current}");
    }
}
