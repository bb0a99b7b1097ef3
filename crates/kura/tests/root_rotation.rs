//! Root key rotation (`kura operator rotate-root-key`) on a running server, under each seal:
//! reads go on without a single failure while the root key is rotated twice, writes work
//! after, and a restart opens everything with what the seal keeps (the same shares, the same
//! HSM key, the rewritten root.key). In a cluster the other node follows by itself.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::operator::{operator, operator_as, operator_init, operator_status as status};
use common::softhsm::Token;
use common::*;
use serde_json::json;

/// `rotate`, off the async threads, so the readers keep reading while it runs; returns how
/// many reads they made meanwhile.
async fn rotate_while_reading(
    server: &Server,
    readers: &Readers,
    seal: &str,
    generation: i64,
) -> usize {
    let before = readers.reads.load(Ordering::SeqCst);
    let endpoint = server.endpoint();
    let credentials = server.data_dir.join("root-credentials");
    let seal = seal.to_string();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_kura"))
            .args(["operator", "rotate-root-key", "--endpoint", &endpoint])
            .env("AWS_SHARED_CREDENTIALS_FILE", credentials)
            .output()
            .expect("run kura operator rotate-root-key");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && text.contains(&format!("Rotated the root key: generation {generation}"))
                && text.contains(&format!("kept by the {seal} seal")),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await
    .unwrap();
    readers.reads.load(Ordering::SeqCst) - before
}

/// `kura operator rotate-root-key`, which must succeed and say what it did.
fn rotate(server: &Server, seal: &str, generation: i64) {
    let (ok, out, err) = operator(server, &["rotate-root-key"], None);
    assert!(ok, "kura operator rotate-root-key failed: {err}");
    assert!(
        out.contains(&format!("Rotated the root key: generation {generation}"))
            && out.contains(&format!("kept by the {seal} seal")),
        "{out}"
    );
}

/// Secrets `rot/N` with values `value-of-rot-N-...`, created on `server`.
async fn create_secrets(server: &Server, n: usize) -> Vec<(String, String)> {
    let client = server.client().await;
    let mut made = Vec::new();
    for i in 0..n {
        let name = format!("rot/{i}");
        let value = format!("value-of-rot-{i}-{}", unique_suffix());
        ok(client
            .create_secret()
            .name(&name)
            .secret_string(&value)
            .send()
            .await);
        made.push((name, value));
    }
    made
}

/// Readers calling GetSecretValue in a loop until stopped; they count reads and failures
/// (an error or a wrong value).
struct Readers {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Option<String>>>,
}

impl Readers {
    async fn start(server: &Server, secrets: &[(String, String)]) -> Readers {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let client = server.client().await;
            let secrets = secrets.to_vec();
            let (stop, reads, failures) = (stop.clone(), reads.clone(), failures.clone());
            tasks.push(tokio::spawn(async move {
                let mut first_failure = None;
                while !stop.load(Ordering::SeqCst) {
                    for (name, value) in &secrets {
                        let got = client.get_secret_value().secret_id(name).send().await;
                        reads.fetch_add(1, Ordering::SeqCst);
                        let fine =
                            matches!(&got, Ok(r) if r.secret_string() == Some(value.as_str()));
                        if !fine {
                            failures.fetch_add(1, Ordering::SeqCst);
                            first_failure.get_or_insert_with(|| format!("{name}: {got:?}"));
                        }
                    }
                }
                first_failure
            }));
        }
        Readers {
            stop,
            reads,
            failures,
            tasks,
        }
    }

    /// Waits until the readers made `more` reads beyond now (so they read during what follows).
    async fn read_on(&self, more: usize) {
        let target = self.reads.load(Ordering::SeqCst) + more;
        for _ in 0..600 {
            if self.reads.load(Ordering::SeqCst) >= target {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the readers stalled");
    }

    async fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        let mut first = None;
        for t in self.tasks {
            if let Some(f) = t.await.unwrap() {
                first.get_or_insert(f);
            }
        }
        let reads = self.reads.load(Ordering::SeqCst);
        let failures = self.failures.load(Ordering::SeqCst);
        assert!(reads > 0, "the readers read nothing");
        assert_eq!(
            failures, 0,
            "{failures} of {reads} reads failed while the root key was rotated; first: {first:?}"
        );
    }
}

/// Reads every secret back with its value.
async fn read_all(server: &Server, secrets: &[(String, String)]) {
    let client = server.client().await;
    for (name, value) in secrets {
        assert_eq!(&get_string(&client, name).await, value, "{name}");
    }
}

/// Rotates twice while two readers read, then writes; returns the secrets, the new one too.
async fn rotate_twice_under_reads(
    server: &Server,
    seal: &str,
    mut secrets: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let readers = Readers::start(server, &secrets).await;
    readers.read_on(20).await;
    let mut during = rotate_while_reading(server, &readers, seal, 2).await;
    readers.read_on(20).await;
    during += rotate_while_reading(server, &readers, seal, 3).await;
    readers.read_on(20).await;
    readers.finish().await;
    assert!(during > 0, "no read ran while the root key was rotated");
    assert!(
        status(server).ends_with("root key generation 3"),
        "{}",
        status(server)
    );
    // Writes after the rotation: a new version and a new secret.
    let client = server.client().await;
    let (name, _) = secrets[0].clone();
    let value = format!("after-rotation-{}", unique_suffix());
    put_string(&client, &name, &value, &token(1)).await;
    secrets[0].1 = value;
    let fresh = format!("fresh-after-rotation-{}", unique_suffix());
    ok(client
        .create_secret()
        .name("rot/fresh")
        .secret_string(&fresh)
        .send()
        .await);
    secrets.push(("rot/fresh".into(), fresh));
    read_all(server, &secrets).await;
    secrets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_seal_rotates_under_reads_and_an_old_root_key_file_catches_up() {
    let server = Server::start().await;
    let key_file = server.data_dir.join("root.key");
    let first_key = std::fs::read(&key_file).unwrap();
    let secrets = create_secrets(&server, 4).await;
    let secrets = rotate_twice_under_reads(&server, "file", secrets).await;
    let rotated_key = std::fs::read(&key_file).unwrap();
    assert_ne!(rotated_key, first_key, "root.key holds the new root key");
    assert!(!server.data_dir.join("root.key.next").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "root.key stays private");

    // A non-root caller may not rotate, even with a policy allowing everything.
    server
        .kura("CreateUser", &json!({"UserName": "ops"}).to_string())
        .await
        .assert_ok();
    server
        .kura(
            "PutUserPolicy",
            &json!({"UserName": "ops", "PolicyName": "all", "PolicyDocument":
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}).to_string()})
            .to_string(),
        )
        .await
        .assert_ok();
    let (id, secret) = server.new_access_key("ops").await;
    let r = server
        .raw_as(&id, &secret, "Kura.RotateRootKey", "{}")
        .await;
    assert!(
        r.assert_error("AccessDeniedException")
            .contains("Only the root user may rotate the root key"),
        "{r:?}"
    );
    let creds = server.data_dir.join("ops-credentials");
    std::fs::write(
        &creds,
        format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    let (ok, _, err) = operator_as(&server, &creds, &["rotate-root-key"], None);
    assert!(!ok && err.contains("Only the root user"), "{err}");
    std::fs::remove_file(&creds).unwrap();
    assert!(status(&server).ends_with("root key generation 3"));

    // A restart opens the keyring with the rewritten root.key.
    let tmp = server.stop().await;
    let server = Server::start_in(tmp).await;
    read_all(&server, &secrets).await;
    assert!(status(&server).ends_with("root key generation 3"));

    // A node started with the root.key of before the rotations (a backup, a node that was
    // down) follows the upgrade entries and rewrites root.key.
    let tmp = server.stop().await;
    std::fs::write(tmp.path().join("data/root.key"), &first_key).unwrap();
    let server = Server::start_in(tmp).await;
    read_all(&server, &secrets).await;
    assert_eq!(std::fs::read(&key_file).unwrap(), rotated_key);
    assert!(
        server
            .log()
            .contains("followed the installation's root key rotation")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shamir_rotates_under_reads_and_the_same_shares_unseal() {
    let server = Server::start_with(&["--seal", "shamir"]).await;
    let shares = operator_init(&server, 3, 2);
    let secrets = create_secrets(&server, 4).await;
    let secrets = rotate_twice_under_reads(&server, "shamir", secrets).await;
    assert!(!server.data_dir.join("root.key").exists());

    // Sealed and unsealed again with the same shares (the record reloaded on sealing).
    let (ok, _, err) = operator(&server, &["seal"], None);
    assert!(ok, "{err}");
    for share in &shares[1..] {
        let (ok, _, err) = operator(&server, &["unseal", share], None);
        assert!(ok, "{err}");
    }
    read_all(&server, &secrets).await;

    // A restart: sealed, and the same shares open the rotated root key.
    let tmp = server.stop().await;
    let server = Server::start_in_with(tmp, &["--seal", "shamir"]).await;
    for share in &shares[..2] {
        let (ok, _, err) = operator(&server, &["unseal", share], None);
        assert!(ok, "{err}");
    }
    read_all(&server, &secrets).await;
    assert!(status(&server).ends_with("root key generation 3"));
    let client = server.client().await;
    put_string(&client, "rot/1", "written-after-restart", &token(2)).await;
    assert_eq!(get_string(&client, "rot/1").await, "written-after-restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs11_rotates_under_reads_and_restarts_with_the_hsm_key() {
    let Some(token) = Token::new("kura-rootrot") else {
        return;
    };
    let server = token.start_server(None).await;
    let secrets = create_secrets(&server, 4).await;
    let secrets = rotate_twice_under_reads(&server, "pkcs11", secrets).await;
    let tmp = server.stop().await;
    let server = token.start_server(Some(tmp)).await;
    read_all(&server, &secrets).await;
    assert!(status(&server).ends_with("root key generation 3"));
}

/// Two file-sealed nodes on one PostgreSQL database: node A rotates while node B serves
/// reads; B follows (and rewrites its own root.key), writes on B work, and B restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_follows_a_rotation_made_on_another() {
    let db = common::postgres::Database::create();
    let dir = |key: Option<&std::path::Path>| {
        let tmp = tempfile::Builder::new()
            .prefix("kura-node-")
            .tempdir()
            .unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if let Some(key) = key {
            std::fs::copy(key, data.join("root.key")).unwrap();
        }
        tmp
    };
    let a = Server::start_node(dir(None), &db.url, &db.url, &[]).await;
    let mut b = Server::start_node(
        dir(Some(&a.data_dir.join("root.key"))),
        &db.url,
        &db.url,
        &[],
    )
    .await;
    b.use_credentials(a.credentials());
    let secrets = create_secrets(&a, 4).await;

    let readers = Readers::start(&b, &secrets).await;
    readers.read_on(20).await;
    let mut during = rotate_while_reading(&a, &readers, "file", 2).await;
    readers.read_on(20).await;
    during += rotate_while_reading(&a, &readers, "file", 3).await;
    readers.read_on(20).await;
    assert!(during > 0, "no read ran on B while A rotated");
    // B catches up within a few seconds (it checks the generation every 2 s).
    let mut followed = false;
    for _ in 0..100 {
        if std::fs::read(b.data_dir.join("root.key")).unwrap()
            == std::fs::read(a.data_dir.join("root.key")).unwrap()
        {
            followed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(followed, "node B did not follow the rotation:\n{}", b.log());
    readers.finish().await;
    let b_status = b
        .http()
        .get(format!("{}/operator/seal-status", b.endpoint()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let b_status: serde_json::Value = serde_json::from_str(&b_status).unwrap();
    assert_eq!(b_status["RootKeyGeneration"], 3, "{b_status}");

    // Writes on B, and a rotation from B too: it holds the current root key.
    let client = b.client().await;
    put_string(&client, "rot/2", "written-on-b", &token(3)).await;
    let (ok, out, err) = operator_as(
        &b,
        &a.data_dir.join("root-credentials"),
        &["rotate-root-key"],
        None,
    );
    assert!(ok && out.contains("generation 4"), "{out}{err}");

    // B restarts with its own root.key; A follows B's rotation.
    let tmp = b.stop().await;
    let mut b = Server::start_node(tmp, &db.url, &db.url, &[]).await;
    b.use_credentials(a.credentials());
    assert_eq!(get_string(&b.client().await, "rot/2").await, "written-on-b");
    for (name, value) in &secrets[..] {
        if name != "rot/2" {
            assert_eq!(&get_string(&b.client().await, name).await, value);
        }
    }
    let mut followed = false;
    for _ in 0..100 {
        if status(&a).ends_with("root key generation 4") {
            followed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(followed, "node A did not follow B's rotation:\n{}", a.log());
    assert_eq!(get_string(&a.client().await, "rot/2").await, "written-on-b");

    // A key made right after a rotation, before B's periodic check: B, asked to use it, finds
    // it does not open with its root key, follows the rotation at once and uses it.
    let (ok, out, err) = operator(&a, &["rotate-root-key"], None);
    assert!(ok && out.contains("generation 5"), "{out}{err}");
    let made = a
        .kura(
            "CreateKey",
            &json!({"Alias": "alias/after-rotation"}).to_string(),
        )
        .await;
    made.assert_ok();
    let r = b
        .raw(
            "CreateSecret",
            &json!({"Name": "rot/new-key", "SecretString": "under-a-key-made-after-rotation",
                    "KmsKeyId": "alias/after-rotation"})
            .to_string(),
            SignMode::Root,
        )
        .await;
    r.assert_ok();
    assert_eq!(
        get_string(&a.client().await, "rot/new-key").await,
        "under-a-key-made-after-rotation"
    );
    drop((a, b));
}

/// The file seal's two ways back after a rotation, once the upgrade entries are gone (15
/// minutes, moved on a test clock): a `root.key.next` the rotation committed but did not yet
/// rename is taken at start; an old `root.key` alone is refused, saying what to copy.
#[tokio::test]
async fn file_seal_recovers_root_key_next_and_refuses_a_stale_root_key_after_the_grace_period() {
    let server = Server::start_with(&["--test-clock"]).await;
    let key_file = server.data_dir.join("root.key");
    let first_key = std::fs::read(&key_file).unwrap();
    let secrets = create_secrets(&server, 2).await;
    rotate(&server, "file", 2);
    let rotated_key = std::fs::read(&key_file).unwrap();
    let db = server.data_dir.join("kura.db");
    let entries = "SELECT count(*) FROM settings WHERE key = 'root-upgrade'";
    assert_eq!(
        sqlite(&db, entries).trim(),
        "1",
        "the rotation left an upgrade entry"
    );
    server
        .kura("AdvanceClock", &json!({"Seconds": 16 * 60}).to_string())
        .await
        .assert_ok();
    let mut pruned = false;
    for _ in 0..100 {
        if sqlite(&db, entries).trim() == "0" {
            pruned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pruned, "the upgrade entry outlived its 15 minutes");

    // A crash between the commit and the rename: root.key old, root.key.next the current key.
    let tmp = server.stop().await;
    let data = tmp.path().join("data");
    std::fs::rename(data.join("root.key"), data.join("root.key.next")).unwrap();
    std::fs::write(data.join("root.key"), &first_key).unwrap();
    let server = Server::start_in_with(tmp, &["--test-clock"]).await;
    read_all(&server, &secrets).await;
    assert_eq!(std::fs::read(&key_file).unwrap(), rotated_key);
    assert!(!server.data_dir.join("root.key.next").exists());

    // The old root.key alone, after the grace period: refused, with what to do.
    let tmp = server.stop().await;
    let data = tmp.path().join("data");
    std::fs::write(data.join("root.key"), &first_key).unwrap();
    let (status, out) = start_refused(&data, &["--test-clock"], &[]);
    assert!(!status.success());
    assert!(
        out.contains("root key was rotated (it is at generation 2)")
            && out.contains("Copy root.key from a node that has the current root key"),
        "{out}"
    );
    std::fs::write(data.join("root.key"), &rotated_key).unwrap();
    let server = Server::start_in_with(tmp, &["--test-clock"]).await;
    read_all(&server, &secrets).await;
}

/// Two Shamir-sealed nodes: node B is sealed while node A rotates twice; B's next unseal, with
/// the same shares, opens the current root key (the record is read again, not the one B held).
#[tokio::test]
async fn a_sealed_shamir_node_unseals_with_the_same_shares_after_another_node_rotated() {
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
    let shares = operator_init(&a, 3, 2);
    b.use_credentials(a.credentials());
    let secrets = create_secrets(&a, 2).await;
    // B learns of the initialisation (its record is read now) and stays sealed.
    assert!(status(&b).contains("sealed, 0 of 2 shares given"));
    rotate(&a, "shamir", 2);
    rotate(&a, "shamir", 3);
    for share in &shares[..2] {
        let (ok, _, err) = operator(&b, &["unseal", share], None);
        assert!(ok, "{err}");
    }
    assert!(
        status(&b).ends_with("root key generation 3"),
        "{}",
        status(&b)
    );
    read_all(&b, &secrets).await;
    let client = b.client().await;
    put_string(&client, "rot/0", "written-on-b-after-rotation", &token(4)).await;
    assert_eq!(
        get_string(&a.client().await, "rot/0").await,
        "written-on-b-after-rotation"
    );
    drop((a, b));
}
