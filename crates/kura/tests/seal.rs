//! Seals: how the root key is kept. `shamir` starts uninitialised, is initialised and unsealed
//! by operators with `kura operator`, serves nothing while sealed and is sealed again by root;
//! `pkcs11` unseals itself with a key in a SoftHSM2 token. A `--seal` that is not the
//! installation's is refused, as is every misconfiguration, each saying what to do.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::operator::{operator, operator_init as init, operator_status as status};
use common::softhsm::{self, Token};
use common::*;

/// A secret's current string value, read with the root key over the SDK.
async fn value_of(server: &Server, id: &str) -> String {
    server
        .client()
        .await
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetSecretValue {id}: {e:?}"))
        .secret_string()
        .unwrap_or_default()
        .to_string()
}

/// `(String, String)` pairs as the harness takes them.
fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The answer to an API call while sealed: 503 ServiceUnavailable saying how to unseal.
async fn assert_sealed(server: &Server) {
    // Unsigned: nothing is checked before the seal (no key can be checked without it).
    let r = server.raw("ListSecrets", "{}", SignMode::Unsigned).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.json()["__type"], "ServiceUnavailable");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("kura operator unseal"),
        "{r:?}"
    );
    let ready = http_client()
        .get(format!("{}/health?ready", server.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503, "not ready while sealed");
}

#[tokio::test]
async fn shamir_init_unseal_seal_and_restart() {
    let server = Server::start_with(&["--seal", "shamir"]).await;
    assert_eq!(
        status(&server),
        "seal shamir: not initialised; run `kura operator init --shares 5 --threshold 3`"
    );
    assert_sealed(&server).await;
    let (ok, _, err) = operator(&server, &["unseal", "AAAA"], None);
    assert!(
        !ok && err.contains("not initialised yet: run `kura operator init` first"),
        "{err}"
    );
    let (ok, _, err) = operator(&server, &["init", "--shares", "1"], None);
    assert!(!ok && err.contains("Give 2 to 16 shares"), "{err}");

    let shares = init(&server, 5, 3);
    assert_eq!(shares.len(), 5);
    assert!(
        !server.data_dir.join("root.key").exists(),
        "no root key on disk under the Shamir seal"
    );
    let (ok, _, err) = operator(&server, &["init"], None);
    assert!(!ok && err.contains("already initialised"), "{err}");

    // Initialised means serving: the root credentials were written, secrets can be stored.
    let client = server.client().await;
    client
        .create_secret()
        .name("sealed/db")
        .secret_string("correct horse battery staple")
        .send()
        .await
        .expect("create while unsealed");

    // Only root seals; then nothing is served.
    server
        .kura("CreateUser", r#"{"UserName":"ops"}"#)
        .await
        .assert_ok();
    let user = create_access_key(&server, "ops").await;
    let r = server.raw_as(&user.0, &user.1, "Kura.Seal", "{}").await;
    r.assert_error("AccessDeniedException");
    // Not even a policy that allows it: sealing stops the service for everyone.
    let allow_all = serde_json::json!({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kura:*", "Resource": "*"}]});
    server
        .kura(
            "PutUserPolicy",
            &serde_json::json!({"UserName": "ops", "PolicyName": "all",
                "PolicyDocument": allow_all.to_string()})
            .to_string(),
        )
        .await
        .assert_ok();
    let r = server.raw_as(&user.0, &user.1, "Kura.Seal", "{}").await;
    let message = r.assert_error("AccessDeniedException");
    assert!(message.contains("Only the root user"), "{message}");
    let (ok, out, err) = operator(&server, &["seal"], None);
    assert!(ok, "kura operator seal: {err}");
    assert!(out.contains("kura is sealed"), "{out}");
    assert_sealed(&server).await;
    assert_eq!(
        status(&server),
        "seal shamir: sealed, 0 of 3 shares given; `kura operator unseal` takes the next"
    );

    // Shares one at a time: a repeat and a share of nothing are refused and not counted.
    let (ok, out, _) = operator(&server, &["unseal", &shares[4]], None);
    assert!(ok && out.contains("1 of 3 shares given"), "{out}");
    let (ok, _, err) = operator(&server, &["unseal", &shares[4]], None);
    assert!(
        !ok && err.contains("Share number 5 was given already"),
        "{err}"
    );
    let mut foreign = shares[0].clone().into_bytes();
    let last = foreign.len() - 2;
    foreign[last] = if foreign[last] == b'A' { b'B' } else { b'A' };
    let foreign = String::from_utf8(foreign).unwrap();
    let (ok, _, err) = operator(&server, &["unseal", &foreign], None);
    assert!(
        !ok && err.contains("not one of this installation's shares"),
        "{err}"
    );
    // A malformed body is refused without quoting what was sent (it may be a share).
    let r = http_client()
        .post(format!("{}/operator/unseal", server.endpoint()))
        .body(r#"{"Key": 987654321987}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("SerializationException") && !body.contains("987654321987"),
        "{body}"
    );
    let (ok, out, _) = operator(&server, &["unseal", "--reset"], None);
    assert!(ok && out.contains("0 of 3 shares given"), "{out}");
    for (i, share) in shares[1..4].iter().enumerate() {
        // The share from stdin, as an operator pipes it in (on a terminal it is prompted).
        let (ok, out, err) = operator(&server, &["unseal"], Some(&format!("{share}\n")));
        assert!(ok, "unseal {i}: {err}");
        if i < 2 {
            assert!(
                out.contains(&format!("{} of 3 shares given", i + 1)),
                "{out}"
            );
        } else {
            assert_eq!(
                out.trim(),
                "seal shamir: unsealed, serving; root key generation 1"
            );
        }
    }
    assert_eq!(
        value_of(&server, "sealed/db").await,
        "correct horse battery staple"
    );

    // Every start is sealed; `--seal` may be left out (the database says shamir).
    let tmp = server.stop().await;
    let server = Server::start_in(tmp).await;
    assert_sealed(&server).await;
    for share in [&shares[0], &shares[2], &shares[4]] {
        let (ok, _, err) = operator(&server, &["unseal", share], None);
        assert!(ok, "{err}");
    }
    assert_eq!(
        value_of(&server, "sealed/db").await,
        "correct horse battery staple"
    );
    // Shares are secrets of their own: not in the log, not in the audit trail.
    let audit = std::fs::read_to_string(server.data_dir.join("audit.jsonl")).unwrap();
    for share in &shares {
        assert!(!server.log().contains(share.as_str()), "a share in the log");
        assert!(
            !audit.contains(share.as_str()),
            "a share in the audit trail"
        );
    }
    // The seal is recorded, so a different `--seal` is refused, saying what to do.
    let tmp = server.stop().await;
    let (status, out) = start_refused(&tmp.path().join("data"), &["--seal", "file"], &[]);
    assert!(!status.success());
    assert!(
        out.contains("sealed with `shamir`, not `file`")
            && out.contains("kura operator migrate-seal"),
        "{out}"
    );
}

#[tokio::test]
async fn a_file_sealed_installation_refuses_another_seal_and_cannot_be_sealed() {
    let server = Server::start().await;
    let r = server.kura("Seal", "{}").await;
    assert!(
        r.assert_error("InvalidRequestException")
            .contains("Sealing applies to the `shamir` seal"),
        "{r:?}"
    );
    let tmp = server.stop().await;
    let data = tmp.path().join("data");
    let (status, out) = start_refused(&data, &["--seal", "shamir"], &[]);
    assert!(!status.success());
    assert!(
        out.contains("sealed with `file`, not `shamir`")
            && out.contains("kura operator migrate-seal"),
        "{out}"
    );
    let (status, out) = start_refused(&data, &["--seal", "pkcs11"], &[]);
    assert_eq!(status.code(), Some(2), "a usage error: {out}");
    assert!(out.contains("--seal pkcs11 needs --pkcs11-module"), "{out}");
    let server = Server::start_in(tmp).await;
    server
        .raw("ListSecrets", "{}", SignMode::Root)
        .await
        .assert_ok();
    // `init` is for Shamir's new installations; this one says what it is instead.
    let (ok, _, err) = operator(&server, &["init"], None);
    assert!(
        !ok && err.contains("sealed with `file` and initialised itself")
            && err.contains("migrate-seal --to shamir"),
        "{err}"
    );
}

#[tokio::test]
async fn pkcs11_unseals_itself_with_a_key_in_softhsm() {
    let Some(token) = Token::new("kura-seal") else {
        return;
    };
    let args = token.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = token.env(softhsm::PIN);
    let env = pairs(&env);
    let server = token.start_server(None).await;
    assert_eq!(
        status(&server),
        "seal pkcs11: unsealed, serving; root key generation 1"
    );
    assert!(
        !server.data_dir.join("root.key").exists(),
        "the root key is wrapped by the HSM, not kept in a file"
    );
    let client = server.client().await;
    client
        .create_secret()
        .name("hsm/api-key")
        .secret_string("value-under-an-hsm-key")
        .send()
        .await
        .expect("create under the pkcs11 seal");
    let r = server.kura("Seal", "{}").await;
    assert!(
        r.assert_error("InvalidRequestException")
            .contains("unseals itself"),
        "{r:?}"
    );

    // A restart unseals by itself with the same HSM key.
    let tmp = server.stop().await;
    let server = token.start_server(Some(tmp)).await;
    assert_eq!(
        value_of(&server, "hsm/api-key").await,
        "value-under-an-hsm-key"
    );

    // Misconfigurations refuse to start and say what to fix.
    let tmp = server.stop().await;
    let data = tmp.path().join("data");
    let bad_pin = token.env("0000");
    let bad_pin = pairs(&bad_pin);
    let (status, out) = start_refused(&data, &args, &bad_pin);
    assert!(!status.success());
    assert!(
        out.contains("refused to log in") && out.contains("KURA_PKCS11_PIN"),
        "{out}"
    );
    let mut other_key = args.clone();
    other_key.extend(["--pkcs11-key-label", "not-kuras"]);
    let (status, out) = start_refused(&data, &other_key, &env);
    assert!(!status.success());
    assert!(out.contains("--pkcs11-key-label kura-root-key"), "{out}");
    let (status, out) = start_refused(&data, &[], &env[..1]);
    assert!(!status.success());
    assert!(out.contains("start with --seal pkcs11"), "{out}");
    let _ = Server::start_in_with_env(tmp, &args, &env).await;
}

/// Two nodes on one PostgreSQL database under the Shamir seal: both start uninitialised; the
/// init on one is seen by the other, which stays sealed until it is given shares of its own.
#[tokio::test]
async fn shamir_cluster_nodes_are_unsealed_each_on_its_own() {
    let db = common::postgres::Database::create();
    let dir = || {
        tempfile::Builder::new()
            .prefix("kura-node-")
            .tempdir()
            .unwrap()
    };
    let seal = ["--seal", "shamir"];
    let a = Server::start_node(dir(), &db.url, &db.url, &seal).await;
    let mut b = Server::start_node(dir(), &db.url, &db.url, &seal).await;
    assert!(status(&b).contains("not initialised"));
    let shares = init(&a, 3, 2);
    b.use_credentials(a.credentials());
    assert_eq!(
        status(&b),
        "seal shamir: sealed, 0 of 2 shares given; `kura operator unseal` takes the next"
    );
    let (ok, _, err) = operator(&b, &["init"], None);
    assert!(!ok && err.contains("already initialised"), "{err}");
    a.client()
        .await
        .create_secret()
        .name("cluster/sealed")
        .secret_string("written-on-node-a")
        .send()
        .await
        .expect("create on node a");
    assert_sealed(&b).await;
    for share in &shares[1..] {
        let (ok, _, err) = operator(&b, &["unseal", share], None);
        assert!(ok, "{err}");
    }
    assert_eq!(value_of(&b, "cluster/sealed").await, "written-on-node-a");
    drop((a, b));
}

/// `kura operator migrate-seal` against a stopped server's data directory: its output and
/// whether it succeeded.
fn migrate_seal(
    data: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["operator", "migrate-seal", "--data-dir"])
        .arg(data)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kura operator migrate-seal");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// file → shamir → pkcs11 → file: after each move the server starts under the new seal and
/// serves the same secret; only the root key was re-wrapped.
#[tokio::test]
async fn migrate_seal_moves_between_file_shamir_and_pkcs11() {
    let Some(token) = Token::new("kura-migrate") else {
        return;
    };
    let server = Server::start().await;
    server
        .client()
        .await
        .create_secret()
        .name("moved/secret")
        .secret_string("the-same-value-under-every-seal")
        .send()
        .await
        .expect("create under the file seal");
    let creds = server.credentials();
    let tmp = server.stop().await;
    let data = tmp.path().join("data");
    let read = |server: Server| async move {
        assert_eq!(
            value_of(&server, "moved/secret").await,
            "the-same-value-under-every-seal"
        );
        server.stop().await
    };

    // file → shamir: root.key goes, shares come.
    let (ok, out) = migrate_seal(
        &data,
        &["--to", "shamir", "--shares", "3", "--threshold", "2"],
        &[],
        "",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("The seal moved from file to shamir") && out.contains("was removed"),
        "{out}"
    );
    assert!(!data.join("root.key").exists());
    let shares: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Unseal share "))
        .filter_map(|l| l.split(": ").nth(1))
        .map(str::to_string)
        .collect();
    assert_eq!(shares.len(), 3);
    let server = Server::start_in(tmp).await;
    assert_sealed(&server).await;
    for share in &shares[..2] {
        let (ok, _, err) = operator(&server, &["unseal", share], None);
        assert!(ok, "{err}");
    }
    let tmp = read(server).await;

    // shamir → pkcs11: the shares open it (from stdin), the HSM keeps it.
    let args = token.server_args();
    let hsm_args: Vec<&str> = args[2..].iter().map(String::as_str).collect();
    let env = token.env(softhsm::PIN);
    let env = pairs(&env);
    let mut to_pkcs11 = vec!["--to", "pkcs11"];
    to_pkcs11.extend(&hsm_args);
    let (ok, out) = migrate_seal(&data, &to_pkcs11, &env, "not a share\n");
    assert!(!ok && out.contains("not a kura unseal share"), "{out}");
    let (ok, out) = migrate_seal(
        &data,
        &to_pkcs11,
        &env,
        &format!("{}\n{}\n", shares[2], shares[0]),
    );
    assert!(ok, "{out}");
    let server_args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_in_with_env(tmp, &server_args, &env).await;
    assert_eq!(
        status(&server),
        "seal pkcs11: unsealed, serving; root key generation 1"
    );
    let tmp = read(server).await;

    // pkcs11 → file: root.key comes back; a plain start serves.
    let mut to_file = vec!["--to", "file"];
    to_file.extend(&hsm_args);
    let (ok, out) = migrate_seal(&data, &to_file, &env, "");
    assert!(ok, "{out}");
    assert!(data.join("root.key").exists(), "{out}");
    let (ok, out) = migrate_seal(&data, &["--to", "file"], &[], "");
    assert!(!ok && out.contains("sealed with `file` already"), "{out}");
    let mut server = Server::start_in(tmp).await;
    server.use_credentials(creds);
    read(server).await;
}
