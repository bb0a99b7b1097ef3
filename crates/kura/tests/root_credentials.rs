//! Root credentials: `kura operator generate-root` issues new ones to an operator who holds
//! the root key (root.key, the unseal shares, or the HSM), proven to the running server;
//! `Kura.DisableRoot` refuses root's keys once an administrator exists. `kura audit verify`
//! opens the root key under every seal.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::operator::{operator_as, operator_init};
use common::softhsm::{self, Token};
use common::*;

/// `kura ARGS` with `env` and `stdin`: success, stdout, stderr.
fn kura(args: &[&str], env: &[(&str, &str)], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kura");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("kura finishes");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kura operator generate-root` against `server`, its data directory, and `extra` flags.
fn generate_root(
    server: &Server,
    extra: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> (bool, String, String) {
    let data = server.data_dir.display().to_string();
    let endpoint = server.endpoint();
    let mut args = vec![
        "operator",
        "generate-root",
        "--data-dir",
        &data,
        "--endpoint",
        &endpoint,
    ];
    args.extend_from_slice(extra);
    kura(&args, env, stdin)
}

/// `kura audit verify` on `data` with `extra` flags: success and all output.
fn audit_verify(data: &Path, extra: &[&str], env: &[(&str, &str)], stdin: &str) -> (bool, String) {
    let data = data.display().to_string();
    let mut args = vec!["audit", "verify", "--data-dir", &data];
    args.extend_from_slice(extra);
    let (ok, out, err) = kura(&args, env, stdin);
    (ok, format!("{out}{err}"))
}

/// A credentials file for `akid`/`secret` in `dir`.
fn credentials_file(dir: &Path, name: &str, akid: &str, secret: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("[default]\naws_access_key_id = {akid}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    path
}

/// The error code a call with `akid`/`secret` gets (`None`: it succeeded), and its message.
async fn list_as(server: &Server, akid: &str, secret: &str) -> Option<(String, String)> {
    let r = server
        .raw_as(akid, secret, "secretsmanager.ListSecrets", "{}")
        .await;
    if r.status == 200 {
        return None;
    }
    let j = r.json();
    Some((
        j["__type"].as_str().unwrap_or_default().to_string(),
        j["message"].as_str().unwrap_or_default().to_string(),
    ))
}

fn audit_has_generate_root(data: &Path) -> bool {
    std::fs::read_to_string(data.join("audit.jsonl"))
        .unwrap()
        .lines()
        .any(|l| {
            l.contains("\"kura:GenerateRoot\"")
                && l.contains("\"operator\"")
                && l.contains("\"Success\"")
        })
}

#[tokio::test]
async fn generate_root_with_root_key_file_while_the_server_runs() {
    let server = Server::start().await;
    create_plain(&server.client().await, "glass/one", "behind-the-glass-1").await;
    let old = server.credentials();

    let (ok, out, err) = generate_root(&server, &[], &[], "");
    assert!(ok, "{err}");
    assert!(
        out.contains("seal") && out.contains("in place of the earlier file"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Root's earlier access keys are deleted: {}.",
            old.access_key_id
        )),
        "{out}"
    );
    let creds_path = server.data_dir.join("root-credentials");
    let new = server.credentials();
    assert_ne!(new, old);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&creds_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!out.contains(&new.secret_access_key), "secret shown: {out}");
    // The running server takes the new key at once; the old one is gone.
    assert_eq!(
        get_string(&server.client().await, "glass/one").await,
        "behind-the-glass-1"
    );
    let (code, _) = list_as(&server, &old.access_key_id, &old.secret_access_key)
        .await
        .expect("the old key is refused");
    assert_eq!(code, "UnrecognizedClientException");
    assert!(audit_has_generate_root(&server.data_dir));

    // --print --keep-old-keys: shown once, the file and the key in it stay.
    let (ok, out, err) = generate_root(&server, &["--print", "--keep-old-keys"], &[], "");
    assert!(ok, "{err}");
    let printed = parse_credentials(&out);
    assert_eq!(server.credentials(), new, "--print writes no file");
    assert!(
        out.contains(&format!(
            "still work (--keep-old-keys): {}",
            new.access_key_id
        )),
        "{out}"
    );
    assert!(
        list_as(&server, &printed.access_key_id, &printed.secret_access_key)
            .await
            .is_none()
    );
    assert!(
        list_as(&server, &new.access_key_id, &new.secret_access_key)
            .await
            .is_none()
    );
    // Two keys are the most root may have.
    let (ok, _, err) = generate_root(&server, &["--print", "--keep-old-keys"], &[], "");
    assert!(
        !ok && err.contains("Root has two access keys already"),
        "{err}"
    );

    // A root key that is not this installation's opens nothing, and says so.
    let other = tempfile::tempdir().unwrap();
    for file in ["kura.db", "kura.db-wal"] {
        if server.data_dir.join(file).exists() {
            std::fs::copy(server.data_dir.join(file), other.path().join(file)).unwrap();
        }
    }
    std::fs::write(
        other.path().join("root.key"),
        format!("{}\n", "cd".repeat(32)),
    )
    .unwrap();
    let (ok, _, err) = kura(
        &[
            "operator",
            "generate-root",
            "--data-dir",
            &other.path().display().to_string(),
            "--endpoint",
            &server.endpoint(),
        ],
        &[],
        "",
    );
    assert!(
        !ok && err.contains("is not this installation's root key"),
        "{err}"
    );

    // The server's side: a wrong answer is refused, and a challenge answers once.
    let http = server.http();
    let challenge = http
        .post(format!(
            "{}/operator/generate-root/challenge",
            server.endpoint()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let challenge: serde_json::Value = serde_json::from_str(&challenge).unwrap();
    let id = challenge["ChallengeId"].as_str().unwrap();
    let wrong = http
        .post(format!("{}/operator/generate-root", server.endpoint()))
        .body(serde_json::json!({"ChallengeId": id, "Answer": "AAAA"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 400);
    let body: serde_json::Value = serde_json::from_str(&wrong.text().await.unwrap()).unwrap();
    assert_eq!(body["__type"], "AccessDeniedException", "{body}");
    let again = http
        .post(format!("{}/operator/generate-root", server.endpoint()))
        .body(serde_json::json!({"ChallengeId": id, "Answer": "AAAA"}).to_string())
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&again.text().await.unwrap()).unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown, used or expired"),
        "{body}"
    );

    let (ok, out) = audit_verify(&server.data_dir, &[], &[], "");
    assert!(ok && out.contains("audit trail intact"), "{out}");
}

#[tokio::test]
async fn root_is_disabled_only_once_an_administrator_exists() {
    let server = Server::start().await;
    create_plain(&server.client().await, "glass/two", "behind-the-glass-2").await;
    let root_file = server.data_dir.join("root-credentials");
    let scratch = tempfile::tempdir().unwrap();

    let (ok, _, err) = operator_as(&server, &root_file, &["disable-root"], None);
    assert!(
        !ok && err.contains("Create an administrator first"),
        "{err}"
    );

    server
        .kura("CreateUser", r#"{"UserName":"admin"}"#)
        .await
        .assert_ok();
    // Allowed everything only under a condition: not an administrator.
    let conditional = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["kura:*", "secretsmanager:*"], "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]
    });
    server
        .kura(
            "PutUserPolicy",
            &serde_json::json!({"UserName": "admin", "PolicyName": "all", "PolicyDocument": conditional}).to_string(),
        )
        .await
        .assert_ok();
    let key = server
        .kura("CreateAccessKey", r#"{"UserName":"admin"}"#)
        .await
        .assert_ok();
    let akid = key["AccessKey"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = key["AccessKey"]["SecretAccessKey"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, _, err) = operator_as(&server, &root_file, &["disable-root"], None);
    assert!(
        !ok && err.contains("Create an administrator first"),
        "{err}"
    );
    // Nor may that user disable root itself: its condition does not hold over plain HTTP.
    let admin_file = credentials_file(scratch.path(), "admin", &akid, &secret);
    let (ok, _, err) = operator_as(&server, &admin_file, &["disable-root"], None);
    assert!(
        !ok && err.contains("AccessDeniedException") && err.contains("kura:DisableRoot"),
        "{err}"
    );

    let admin = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["kura:*", "secretsmanager:*"], "Resource": "*"}]
    });
    server
        .kura(
            "PutUserPolicy",
            &serde_json::json!({"UserName": "admin", "PolicyName": "all", "PolicyDocument": admin})
                .to_string(),
        )
        .await
        .assert_ok();
    let (ok, out, err) = operator_as(&server, &root_file, &["disable-root"], None);
    assert!(ok, "{err}");
    assert!(out.contains("The root user is disabled"), "{out}");

    let root = server.credentials();
    let (code, message) = list_as(&server, &root.access_key_id, &root.secret_access_key)
        .await
        .expect("root is refused");
    assert_eq!(code, "AccessDeniedException");
    assert!(
        message.contains("root user is disabled") && message.contains("generate-root"),
        "{message}"
    );
    assert!(
        list_as(&server, &akid, &secret).await.is_none(),
        "admin works"
    );
    assert_eq!(
        get_string(&server.client_with(&akid, &secret).await, "glass/two").await,
        "behind-the-glass-2"
    );

    // An administrator enables root again, and disables it.
    let (ok, _, err) = operator_as(&server, &admin_file, &["enable-root"], None);
    assert!(ok, "{err}");
    assert!(
        list_as(&server, &root.access_key_id, &root.secret_access_key)
            .await
            .is_none()
    );
    let (ok, _, err) = operator_as(&server, &admin_file, &["disable-root"], None);
    assert!(ok, "{err}");

    // Break glass: generate-root enables root with new credentials.
    let (ok, out, err) = generate_root(&server, &[], &[], "");
    assert!(ok, "{err}");
    assert!(out.contains("was disabled and is enabled again"), "{out}");
    assert_eq!(
        get_string(&server.client().await, "glass/two").await,
        "behind-the-glass-2"
    );
    let (ok, out) = audit_verify(&server.data_dir, &[], &[], "");
    assert!(ok, "{out}");
}

#[tokio::test]
async fn generate_root_and_audit_verify_with_shamir_shares() {
    let server = Server::start_with(&["--seal", "shamir"]).await;
    let (ok, _, err) = generate_root(&server, &[], &[], "");
    assert!(!ok && err.contains("unseal it first"), "{err}");
    let shares = operator_init(&server, 3, 2);
    assert_eq!(shares.len(), 3);
    create_plain(&server.client().await, "glass/three", "behind-the-glass-3").await;
    let old = server.credentials();

    let (ok, _, err) = generate_root(&server, &[], &[], "not a share\n");
    assert!(!ok && err.contains("not a kura unseal share"), "{err}");
    let (ok, _, err) = generate_root(&server, &[], &[], &format!("{}\n", shares[0]));
    assert!(!ok && err.contains("takes 2 shares; 1 were given"), "{err}");
    // Well formed, but not one of this installation's.
    let stranger = format!("AQAA{}", "AAAA".repeat(10));
    let (ok, _, err) = generate_root(
        &server,
        &["--share", &stranger, "--share", &shares[1]],
        &[],
        "",
    );
    assert!(
        !ok && err.contains("is not one of this installation's shares"),
        "{err}"
    );
    let (ok, _, err) = generate_root(
        &server,
        &["--share", &shares[1]],
        &[],
        &format!("{}\n", shares[1]),
    );
    assert!(!ok && err.contains("given twice"), "{err}");
    assert_eq!(server.credentials(), old, "nothing changed on refusal");

    let (ok, out, err) = generate_root(
        &server,
        &["--share", &shares[2]],
        &[],
        &format!("{}\n", shares[0]),
    );
    assert!(ok, "{err}");
    assert!(out.contains("Opened with the `shamir` seal"), "{out}");
    assert_ne!(server.credentials(), old);
    assert_eq!(
        get_string(&server.client().await, "glass/three").await,
        "behind-the-glass-3"
    );

    let (ok, out) = audit_verify(&server.data_dir, &[], &[], "");
    assert!(!ok && out.contains("takes 2 shares; 0 were given"), "{out}");
    let (ok, out) = audit_verify(
        &server.data_dir,
        &["--share", &shares[0], "--share", &shares[1]],
        &[],
        "",
    );
    assert!(ok && out.contains("audit trail intact"), "{out}");
    let (ok, out) = audit_verify(
        &server.data_dir,
        &[],
        &[],
        &format!("{}\n{}\n", shares[1], shares[2]),
    );
    assert!(ok && out.contains("audit trail intact"), "{out}");
}

#[tokio::test]
async fn generate_root_and_audit_verify_with_the_hsm() {
    let Some(token) = Token::new("kura-root-creds") else {
        return;
    };
    let args = token.server_args();
    let server_args: Vec<&str> = args.iter().map(String::as_str).collect();
    let hsm_args: Vec<&str> = server_args[2..].to_vec();
    let env = token.env(softhsm::PIN);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let tmp = tempfile::Builder::new()
        .prefix("kura-test-")
        .tempdir()
        .unwrap();
    let server = Server::start_in_with_env(tmp, &server_args, &env).await;
    create_plain(&server.client().await, "glass/four", "behind-the-glass-4").await;
    let old = server.credentials();

    let (ok, _, err) = generate_root(&server, &[], &[], "");
    assert!(!ok && err.contains("sealed with `pkcs11`"), "{err}");
    let (ok, out, err) = generate_root(&server, &hsm_args, &env, "");
    assert!(ok, "{err}");
    assert!(out.contains("Opened with the `pkcs11` seal"), "{out}");
    assert_ne!(server.credentials(), old);
    assert_eq!(
        get_string(&server.client().await, "glass/four").await,
        "behind-the-glass-4"
    );

    let (ok, out) = audit_verify(&server.data_dir, &[], &[], "");
    assert!(!ok && out.contains("--pkcs11-module"), "{out}");
    let (ok, out) = audit_verify(&server.data_dir, &hsm_args, &env, "");
    assert!(ok && out.contains("audit trail intact"), "{out}");
}

/// Two nodes on one PostgreSQL database: root credentials generated through one node work on
/// the other at once, and disabling root on one refuses root on the other.
#[tokio::test]
async fn in_a_cluster_generated_and_disabled_root_apply_on_every_node() {
    use common::postgres::Database;
    let db = Database::create();
    let first_dir = tempfile::Builder::new()
        .prefix("kura-node-")
        .tempdir()
        .unwrap();
    let first = Server::start_node(first_dir, &db.url, &db.url, &[]).await;
    let second_dir = tempfile::Builder::new()
        .prefix("kura-node-")
        .tempdir()
        .unwrap();
    std::fs::create_dir(second_dir.path().join("data")).unwrap();
    std::fs::copy(
        first.data_dir.join("root.key"),
        second_dir.path().join("data/root.key"),
    )
    .unwrap();
    let mut second = Server::start_node(second_dir, &db.url, &db.url, &[]).await;
    let old = first.credentials();
    second.use_credentials(old.clone());

    let data = second.data_dir.display().to_string();
    let (ok, out, err) = kura(
        &[
            "operator",
            "generate-root",
            "--data-dir",
            &data,
            "--database-url",
            &db.url,
            "--endpoint",
            &second.endpoint(),
        ],
        &[],
        "",
    );
    assert!(ok, "{err}");
    assert!(!out.contains("in place of"), "node 2 had no file: {out}");
    let new = parse_credentials(
        &std::fs::read_to_string(second.data_dir.join("root-credentials")).unwrap(),
    );
    for node in [&first, &second] {
        assert!(
            list_as(node, &new.access_key_id, &new.secret_access_key)
                .await
                .is_none()
        );
        assert!(
            list_as(node, &old.access_key_id, &old.secret_access_key)
                .await
                .is_some()
        );
    }

    // An administrator, then root disabled through node 1: node 2 refuses root too.
    let root_file = second.data_dir.join("root-credentials");
    let admin = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    });
    for (op, body) in [
        ("Kura.CreateUser", r#"{"UserName":"ops"}"#.to_string()),
        (
            "Kura.PutUserPolicy",
            serde_json::json!({"UserName": "ops", "PolicyName": "all", "PolicyDocument": admin})
                .to_string(),
        ),
        ("Kura.CreateAccessKey", r#"{"UserName":"ops"}"#.to_string()),
    ] {
        let r = first
            .raw_as(&new.access_key_id, &new.secret_access_key, op, &body)
            .await;
        assert_eq!(r.status, 200, "{op}: {r:?}");
    }
    let (ok, _, err) = operator_as(&first, &root_file, &["disable-root"], None);
    assert!(ok, "{err}");
    let (code, _) = list_as(&second, &new.access_key_id, &new.secret_access_key)
        .await
        .expect("root refused on node 2");
    assert_eq!(code, "AccessDeniedException");

    let (ok, out) = audit_verify(&second.data_dir, &["--database-url", &db.url], &[], "");
    assert!(ok && out.contains("audit trail intact"), "{out}");
    drop(first);
    drop(second);
}
