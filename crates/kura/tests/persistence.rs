//! Restarts, crash recovery, encryption at rest.

mod common;

use std::path::Path;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::primitives::Blob;
use common::*;

/// Everything a client can observe about one secret, in a comparable form.
#[derive(Debug, PartialEq)]
struct Snapshot {
    arn: String,
    description: Option<String>,
    tags: std::collections::BTreeMap<String, String>,
    labelled: Stages,
    all_versions: Stages,
    values: Vec<(String, Option<String>, Option<Vec<u8>>)>,
}

async fn snapshot(client: &Client, id: &str) -> Snapshot {
    let described = ok(client.describe_secret().secret_id(id).send().await);
    let all_versions = list_versions(client, id, true).await;
    let mut values = Vec::new();
    for version in all_versions.keys() {
        let out = ok(client
            .get_secret_value()
            .secret_id(id)
            .version_id(version)
            .send()
            .await);
        values.push((
            version.clone(),
            out.secret_string().map(String::from),
            out.secret_binary().map(|b| b.as_ref().to_vec()),
        ));
    }
    Snapshot {
        arn: described.arn().unwrap().to_string(),
        description: described.description().map(String::from),
        tags: describe_tags(client, id).await,
        labelled: describe_stages(client, id).await,
        all_versions,
        values,
    }
}

/// Two secrets with several versions, a custom label, a deprecated version, tags and a binary value.
async fn populate(client: &Client) -> Vec<&'static str> {
    let create = client
        .create_secret()
        .name("db/password")
        .description("primary database")
        .secret_string("pw-1")
        .client_request_token(token(1))
        .tags(tag("team", "core"))
        .tags(tag("env", "prod"));
    ok(create.send().await);
    put_string(client, "db/password", "pw-2", &token(2)).await;
    put_string(client, "db/password", "pw-3", &token(3)).await;
    put_string_staged(client, "db/password", "pw-canary", &token(4), &["canary"]).await;

    let bin = client
        .create_secret()
        .name("tls/key")
        .secret_binary(Blob::new(vec![0u8, 1, 2, 0xFF]))
        .client_request_token(token(10));
    ok(bin.send().await);
    let stage = client
        .update_secret_version_stage()
        .secret_id("tls/key")
        .version_stage("pinned")
        .move_to_version_id(token(10));
    ok(stage.send().await);
    vec!["db/password", "tls/key"]
}

async fn snapshots(client: &Client, ids: &[&str]) -> Vec<Snapshot> {
    let mut out = Vec::new();
    for id in ids {
        out.push(snapshot(client, id).await);
    }
    out
}

#[tokio::test]
async fn first_start_initialises_the_data_dir() {
    let server = Server::start().await;
    for file in ["kura.db", "root.key", "root-credentials"] {
        assert!(
            server.data_dir.join(file).is_file(),
            "{file} missing from the data dir"
        );
    }
    let creds = server.credentials();
    assert!(creds.access_key_id.starts_with("AKIA"), "{creds:?}");
    assert!(!creds.secret_access_key.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn restart_reuses_key_and_credentials() {
    let server = Server::start().await;
    let read = |dir: &Path| {
        (
            std::fs::read(dir.join("root.key")).unwrap(),
            std::fs::read(dir.join("root-credentials")).unwrap(),
        )
    };
    let before = read(&server.data_dir);
    let creds = server.credentials();
    let server = server.restart().await;
    assert_eq!(
        read(&server.data_dir),
        before,
        "a restart must not regenerate root.key or root-credentials"
    );
    let client = server
        .client_with(&creds.access_key_id, &creds.secret_access_key)
        .await;
    ok(client.list_secrets().send().await);
}

#[tokio::test]
async fn everything_survives_a_graceful_restart() {
    let server = Server::start().await;
    let client = server.client().await;
    let ids = populate(&client).await;
    let before = snapshots(&client, &ids).await;
    assert_eq!(
        before[0].labelled,
        stages_of(&[
            (&token(2), &["AWSPREVIOUS"]),
            (&token(3), &["AWSCURRENT"]),
            (&token(4), &["canary"])
        ])
    );
    assert_eq!(before[0].all_versions.len(), 4, "{before:?}");

    let server = server.restart().await;
    let client = server.client().await;
    assert_eq!(snapshots(&client, &ids).await, before);
    assert_eq!(get_string(&client, "db/password").await, "pw-3");
}

/// What a SIGKILL can show: nothing acknowledged was still only in the server's memory. It
/// cannot show a missing fsync (the page cache outlives the process); that part, WAL with
/// synchronous=FULL on every connection, is asserted by the store's unit test
/// `every_connection_syncs_each_commit`, and the WAL mode is read from the file here.
#[tokio::test]
async fn acknowledged_writes_are_not_held_in_memory_a_killed_server_loses_none() {
    let server = Server::start().await;
    let client = server.client().await;
    let ids = populate(&client).await;
    let before = snapshots(&client, &ids).await;
    let tmp = server.kill().await;
    // The database header's read and write format versions (bytes 18 and 19) are 2 in WAL mode.
    let header = std::fs::read(tmp.path().join("data/kura.db")).unwrap();
    assert_eq!(
        header.get(18..20),
        Some(&[2u8, 2][..]),
        "kura.db is not in WAL mode"
    );
    let server = Server::start_in(tmp).await;
    let client = server.client().await;
    assert_eq!(snapshots(&client, &ids).await, before);
}

/// Stores a canary string and a canary binary, stops the server with `hard` = SIGKILL or SIGTERM, and asserts
/// neither appears (raw, base64 or hex) in any file of the data dir nor in the server log.
async fn assert_no_plaintext_at_rest(hard: bool) {
    let server = Server::start().await;
    let client = server.client().await;
    let canary = format!("kura-plaintext-canary-{}", unique_suffix());
    let binary_canary = format!("kura-binary-canary-{}", unique_suffix());
    let name = "canary/secret-name";
    create_string(&client, name, &canary, &token(1)).await;
    put_string(&client, name, &format!("{canary}-v2"), &token(2)).await;
    let bin = client
        .create_secret()
        .name("canary/bin")
        .secret_binary(Blob::new(binary_canary.as_bytes()));
    ok(bin.send().await);
    assert_eq!(get_string(&client, name).await, format!("{canary}-v2"));

    let log_path = server.log_path().to_path_buf();
    let tmp = if hard {
        server.kill().await
    } else {
        server.stop().await
    };
    let files = read_all_files(&tmp.path().join("data"));
    assert!(
        files
            .iter()
            .any(|(p, bytes)| p.ends_with("kura.db") && !bytes.is_empty()),
        "kura.db missing or empty: {:?}",
        files.iter().map(|(p, b)| (p, b.len())).collect::<Vec<_>>()
    );
    let all: Vec<u8> = files.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    // Sanity check that the scan sees the database content: names are metadata, stored in the clear.
    assert!(
        contains(&all, name.as_bytes()),
        "the scan did not find the secret name; is it reading the db?"
    );

    let log = std::fs::read(&log_path).unwrap_or_default();
    for (what, needle) in [
        ("string canary", canary.as_bytes()),
        ("binary canary", binary_canary.as_bytes()),
    ] {
        let mut patterns = vec![needle.to_vec()];
        patterns.extend(base64_fragments(needle).into_iter().map(String::into_bytes));
        // Hex, as a BLOB literal or a debug dump would show it, in both cases.
        let hex: String = needle.iter().map(|b| format!("{b:02x}")).collect();
        patterns.push(hex.clone().into_bytes());
        patterns.push(hex.to_uppercase().into_bytes());
        for pattern in &patterns {
            let pattern_text = String::from_utf8_lossy(pattern);
            for (path, bytes) in &files {
                assert!(
                    !contains(bytes, pattern),
                    "{what} ({pattern_text}) found in {}",
                    path.display()
                );
            }
            assert!(
                !contains(&log, pattern),
                "{what} ({pattern_text}) found in the server log"
            );
        }
    }
}

#[tokio::test]
async fn no_plaintext_at_rest_after_graceful_stop() {
    assert_no_plaintext_at_rest(false).await;
}

#[tokio::test]
async fn no_plaintext_at_rest_after_sigkill() {
    assert_no_plaintext_at_rest(true).await;
}

/// Copies `ciphertext` and `wrapped_key` of version `from` onto version `to` (server stopped).
fn copy_ciphertext(db: &Path, from: &str, to: &str) {
    let sql = format!(
        "UPDATE secret_versions SET \
           ciphertext = (SELECT ciphertext FROM secret_versions WHERE version_id = '{from}'), \
           wrapped_key = (SELECT wrapped_key FROM secret_versions WHERE version_id = '{from}') \
         WHERE version_id = '{to}'; SELECT changes();"
    );
    assert_eq!(sqlite(db, &sql), "1", "expected to update exactly one row");
    let check = format!(
        "SELECT COUNT(*) FROM secret_versions a, secret_versions b WHERE a.version_id = '{from}' \
         AND b.version_id = '{to}' AND a.ciphertext = b.ciphertext AND a.wrapped_key = b.wrapped_key;"
    );
    assert_eq!(sqlite(db, &check), "1", "copy did not take");
}

async fn assert_decryption_failure(client: &Client, id: &str, version: &str) {
    let get = client
        .get_secret_value()
        .secret_id(id)
        .version_id(version)
        .send()
        .await;
    assert_api_err(get, "DecryptionFailure", None);
}

#[tokio::test]
async fn ciphertext_moved_between_versions_fails_to_decrypt() {
    let server = Server::start().await;
    let client = server.client().await;
    let (a, b) = (token(1), token(2));
    create_string(&client, "swap", "persisted-value-a", &a).await;
    put_string(&client, "swap", "persisted-value-b", &b).await;
    let tmp = server.stop().await;
    copy_ciphertext(&tmp.path().join("data/kura.db"), &a, &b);

    let server = Server::start_in(tmp).await;
    let client = server.client().await;
    assert_decryption_failure(&client, "swap", &b).await;
    assert_api_err(
        client.get_secret_value().secret_id("swap").send().await,
        "DecryptionFailure",
        None,
    );
    assert_eq!(
        get_version_string(&client, "swap", &a).await,
        "persisted-value-a"
    );
}

#[tokio::test]
async fn ciphertext_moved_between_secrets_fails_to_decrypt() {
    let server = Server::start().await;
    let client = server.client().await;
    let (x, y) = (token(1), token(2));
    create_string(&client, "first", "persisted-value-x", &x).await;
    create_string(&client, "second", "persisted-value-y", &y).await;
    let tmp = server.stop().await;
    copy_ciphertext(&tmp.path().join("data/kura.db"), &x, &y);

    let server = Server::start_in(tmp).await;
    let client = server.client().await;
    assert_decryption_failure(&client, "second", &y).await;
    assert_eq!(get_string(&client, "first").await, "persisted-value-x");
}

/// Concurrent writers for the crash test, and secrets per writer: each secret has one writer,
/// so its writes are ordered and its AWSCURRENT after a crash is known.
const WRITERS: u64 = 64;
const SECRETS_PER_WRITER: u64 = 4;

/// A value write: (VersionId, value).
type Written = (String, String);

/// What the crash test's writers sent, and which of it was acknowledged.
#[derive(Default)]
struct Acknowledged {
    /// (secret, VersionId, value) of every acknowledged PutSecretValue and CreateSecret.
    versions: Vec<(String, String, String)>,
    /// Per secret: the last acknowledged (VersionId, value) that made AWSCURRENT, and the
    /// write sent after it whose answer never came (it may or may not have committed).
    current: std::collections::HashMap<String, (Written, Option<Written>)>,
    /// Per failed write: the server's error answer, `None` when no answer came (the kill).
    errors: Vec<Option<String>>,
}

/// The server's error answer, or `None` for a connection the kill cut.
fn refusal<E: ProvideErrorMetadata, R>(e: SdkError<E, R>) -> Option<String> {
    match e {
        SdkError::ServiceError(e) => Some(format!(
            "{}: {}",
            e.err().code().unwrap_or("?"),
            e.err().message().unwrap_or("")
        )),
        _ => None,
    }
}

fn owned_secret(writer: u64, k: u64) -> String {
    format!("load/{writer:02}/{}", k % SECRETS_PER_WRITER)
}

/// One writer until `stop`: PutSecretValue on its own secrets, every fifth write a
/// CreateSecret, each with a token of its own so the version is known before the answer.
async fn write_until_killed(
    client: Client,
    round: u64,
    writer: u64,
    acked: std::sync::Arc<std::sync::Mutex<Acknowledged>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    for k in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let version = token((round + 1) * 10_000_000 + writer * 100_000 + k);
        // Seven bytes: the harness's leak check (run at every kill) searches the log and the
        // audit trail for every value of 8 bytes or more in many forms, which for thousands of
        // values takes hours; one long value (`canary` below) is enough for it to search.
        let value = format!("{round}{writer:02x}{k:04x}");
        let (secret, sent) = if k % 5 == 4 {
            let name = format!("created/{round}/{writer:02}/{k}");
            let sent = client
                .create_secret()
                .name(&name)
                .secret_string(&value)
                .client_request_token(&version)
                .send()
                .await
                .map(|_| ())
                .map_err(refusal);
            (name, sent)
        } else {
            let secret = owned_secret(writer, k);
            acked
                .lock()
                .unwrap()
                .current
                .entry(secret.clone())
                .and_modify(|(_, in_flight)| *in_flight = Some((version.clone(), value.clone())));
            let sent = client
                .put_secret_value()
                .secret_id(&secret)
                .secret_string(&value)
                .client_request_token(&version)
                .send()
                .await
                .map(|_| ())
                .map_err(refusal);
            (secret, sent)
        };
        let mut a = acked.lock().unwrap();
        match sent {
            Ok(()) => {
                a.versions
                    .push((secret.clone(), version.clone(), value.clone()));
                a.current.insert(secret, ((version, value), None));
            }
            Err(e) => {
                a.errors.push(e);
                // The server is gone (or going): whatever was in flight stays undetermined.
                return;
            }
        }
    }
}

/// Every acknowledged version is there with its value; each secret's AWSCURRENT is its last
/// acknowledged write, or the write in flight when the server died.
async fn assert_acknowledged_survived(client: &Client, acked: &Acknowledged) {
    for (secret, version, value) in &acked.versions {
        assert_eq!(
            &get_version_string(client, secret, version).await,
            value,
            "acknowledged version {version} of {secret}"
        );
    }
    for (secret, (last, in_flight)) in &acked.current {
        let (version, value, _) = get_stage(client, secret, "AWSCURRENT").await;
        let found = (version, value);
        assert!(
            &found == last || in_flight.as_ref() == Some(&found),
            "AWSCURRENT of {secret} is {found:?}; the last acknowledged write was {last:?}, \
             the one in flight {in_flight:?}"
        );
    }
}

/// Group commit: 64 writers share commits, and still no acknowledged write is lost when the
/// server is killed under them; the audit chain (database and file) verifies after each crash.
#[tokio::test]
async fn a_server_killed_under_64_concurrent_writers_loses_no_acknowledged_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let mut server = Server::start().await;
    server.exempt_audit_trail(
        "killed under 64 writers: a request committed just before the kill has its record but \
         no log line; kura audit verify checks the trail after each restart instead",
    );
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    {
        let client = server.client().await;
        let canary = format!("load-canary-{}", unique_suffix());
        let (_, version) = create_string(&client, "load/canary", &canary, &token(1 << 40)).await;
        acked
            .lock()
            .unwrap()
            .versions
            .push(("load/canary".into(), version, canary));
        let mut creates = tokio::task::JoinSet::new();
        for writer in 0..WRITERS {
            let client = client.clone();
            creates.spawn(async move {
                let mut made = Vec::new();
                for k in 0..SECRETS_PER_WRITER {
                    let secret = owned_secret(writer, k);
                    let version = token(writer * 100 + k);
                    let value = format!("i{writer:02x}{k:04x}");
                    create_string(&client, &secret, &value, &version).await;
                    made.push((secret, version, value));
                }
                made
            });
        }
        let made = creates.join_all().await;
        let mut a = acked.lock().unwrap();
        for made in made {
            for (secret, version, value) in made {
                a.current
                    .insert(secret.clone(), ((version.clone(), value.clone()), None));
                a.versions.push((secret, version, value));
            }
        }
    }
    for round in 0..3u64 {
        let client = server.client().await;
        let stop = Arc::new(AtomicBool::new(false));
        let before = acked.lock().unwrap().versions.len();
        let mut writers = tokio::task::JoinSet::new();
        for writer in 0..WRITERS {
            writers.spawn(write_until_killed(
                client.clone(),
                round,
                writer,
                acked.clone(),
                stop.clone(),
            ));
        }
        // Mid-load: a few hundred writes acknowledged, every writer still writing.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while acked.lock().unwrap().versions.len() < before + 300 + 100 * round as usize {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the writers stalled: {:?}",
                acked.lock().unwrap().errors.first()
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let tmp = server.kill().await;
        stop.store(true, Ordering::SeqCst);
        writers.join_all().await;
        {
            // The kill cuts connections; no write may have been answered with an error.
            let a = acked.lock().unwrap();
            let answered: Vec<_> = a.errors.iter().flatten().collect();
            assert!(
                answered.is_empty(),
                "writes refused under load: {answered:?}"
            );
        }
        server = Server::start_in(tmp).await;
        let client = server.client().await;
        let a = std::mem::take(&mut *acked.lock().unwrap());
        assert_acknowledged_survived(&client, &a).await;
        assert_audit_verifies(&server);
        *acked.lock().unwrap() = Acknowledged {
            errors: Vec::new(),
            ..a
        };
    }
}

/// `kura audit verify` on `data_dir`: whether it passed, and what it said.
fn audit_verify(data_dir: &Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run kura audit verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// `kura audit verify` passes on the server's data directory.
fn assert_audit_verifies(server: &Server) {
    let (passed, said) = audit_verify(&server.data_dir);
    assert!(passed, "kura audit verify after the crash:\n{said}");
}

/// A server killed between a COMMIT and its append to audit.jsonl leaves the file short of
/// the database's last records; the next start appends them before anything else, so the
/// file and the chain agree again.
#[tokio::test]
async fn an_audit_file_a_crash_left_behind_the_database_catches_up_at_start() {
    let server = Server::start().await;
    let client = server.client().await;
    let value = format!("catch-up-{}", unique_suffix());
    create_string(&client, "audit/catch-up", &value, &token(1)).await;
    for n in 2..6 {
        put_string(
            &client,
            "audit/catch-up",
            &format!("{value}-{n}"),
            &token(n),
        )
        .await;
    }
    let tmp = server.stop().await;
    let file = tmp.path().join("data/audit.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 2, "{text}");
    let short = lines[..lines.len() - 2].join("\n") + "\n";
    std::fs::write(&file, short).unwrap();
    let (passed, said) = audit_verify(&tmp.path().join("data"));
    assert!(!passed, "verify must find the file behind: {said}");

    let server = Server::start_in(tmp).await;
    assert!(
        server.log().contains("appended the missing records"),
        "{}",
        server.log()
    );
    let caught_up = std::fs::read_to_string(&file).unwrap();
    assert!(
        caught_up.starts_with(&text),
        "the file must end as it was, and go on"
    );
    assert_audit_verifies(&server);
}
