//! `kura operator backup` / `kura operator restore`: a backup taken while writers change the
//! installation (SQLite, and a PostgreSQL cluster database), restored into a new installation
//! that holds every write acknowledged before the backup began, each secret exactly as some
//! prefix of its own writes left it (nothing half-written), with an audit chain that verifies.
//! And the refusals: existing output, non-empty target, not a backup, wrong or missing root key.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use common::operator::{operator, operator_init};
use common::postgres::Database;
use common::*;

/// One write of a writer, on the secret it owns.
#[derive(Debug, Clone)]
enum Op {
    Create {
        version: String,
        value: String,
    },
    Put {
        version: String,
        value: String,
    },
    /// UpdateSecretVersionStage: the custom label `blue` moved onto `version`.
    Label {
        version: String,
    },
}

#[derive(Debug)]
struct Write {
    op: Op,
    /// When the request was sent, and when its answer came.
    sent: Instant,
    acked: Instant,
}

/// A secret and the writes its writer made to it, in order (one writer per secret: each
/// write was sent after the previous one was acknowledged).
#[derive(Debug)]
struct History {
    name: String,
    writes: Vec<Write>,
}

const BLUE: &str = "blue";

/// The versions (with their values) and labels a secret has after `ops`.
fn state_after(ops: &[&Op]) -> (Vec<(String, String)>, Stages) {
    let mut versions = Vec::new();
    let mut stages = Stages::new();
    let move_label = |stages: &mut Stages, label: &str, to: &str| {
        for labels in stages.values_mut() {
            labels.retain(|l| l != label);
        }
        stages.entry(to.to_string()).or_default().push(label.into());
    };
    for op in ops {
        match op {
            Op::Create { version, value } => {
                versions.push((version.clone(), value.clone()));
                stages.insert(version.clone(), vec!["AWSCURRENT".into()]);
            }
            Op::Put { version, value } => {
                versions.push((version.clone(), value.clone()));
                let current = stages
                    .iter()
                    .find(|(_, l)| l.iter().any(|l| l == "AWSCURRENT"))
                    .map(|(v, _)| v.clone());
                stages.entry(version.clone()).or_default();
                if let Some(current) = current {
                    move_label(&mut stages, "AWSPREVIOUS", &current);
                }
                move_label(&mut stages, "AWSCURRENT", version);
            }
            Op::Label { version } => move_label(&mut stages, BLUE, version),
        }
    }
    stages.values_mut().for_each(|l| l.sort());
    (versions, stages)
}

/// Writes until `stop`: each secret gets a value, then three times a new value and the
/// `blue` label moved onto it; then the writer starts on a new secret.
async fn writer(
    client: Client,
    w: usize,
    suffix: String,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> Vec<History> {
    let mut all = Vec::new();
    let mut s = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("backup/w{w}-s{s}-{suffix}");
        let mut h = History {
            name: name.clone(),
            writes: Vec::new(),
        };
        let version = |j: u64| format!("{w:08x}-{s:04x}-4000-8000-{j:012x}");
        let value = |j: u64| format!("value {j} of {name}");
        let sent = Instant::now();
        create_string(&client, &name, &value(0), &version(0)).await;
        h.writes.push(Write {
            op: Op::Create {
                version: version(0),
                value: value(0),
            },
            sent,
            acked: Instant::now(),
        });
        acked.fetch_add(1, Ordering::Relaxed);
        let mut blue: Option<String> = None;
        for j in 1..=3 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let sent = Instant::now();
            put_string(&client, &name, &value(j), &version(j)).await;
            h.writes.push(Write {
                op: Op::Put {
                    version: version(j),
                    value: value(j),
                },
                sent,
                acked: Instant::now(),
            });
            acked.fetch_add(1, Ordering::Relaxed);
            let sent = Instant::now();
            ok(client
                .update_secret_version_stage()
                .secret_id(&name)
                .version_stage(BLUE)
                .move_to_version_id(version(j))
                .set_remove_from_version_id(blue.clone())
                .send()
                .await);
            blue = Some(version(j));
            h.writes.push(Write {
                op: Op::Label {
                    version: version(j),
                },
                sent,
                acked: Instant::now(),
            });
            acked.fetch_add(1, Ordering::Relaxed);
        }
        all.push(h);
        s += 1;
    }
    all
}

/// The load: `writers` tasks writing on `server` until the returned flag is set, and the
/// count of writes acknowledged so far.
#[allow(clippy::type_complexity)]
fn start_writers(
    client: &Client,
    writers: usize,
) -> (
    Arc<AtomicBool>,
    Arc<AtomicUsize>,
    Vec<tokio::task::JoinHandle<Vec<History>>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let suffix = unique_suffix()[..12].to_string();
    let tasks = (0..writers)
        .map(|w| {
            let (client, suffix) = (client.clone(), suffix.clone());
            tokio::spawn(writer(client, w, suffix, stop.clone(), acked.clone()))
        })
        .collect();
    (stop, acked, tasks)
}

async fn kura(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(args)
        .output()
        .await
        .expect("run kura")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// Runs `kura operator backup` (with `args` naming the source) under the writers' load;
/// returns the histories and when the backup process was started and had ended.
async fn backup_under_load(
    client: &Client,
    output: &Path,
    args: &[&str],
) -> (Vec<History>, Instant, Instant) {
    let (stop, acked, tasks) = start_writers(client, 3);
    // Let the load build up, so the backup starts among writes in flight, with enough of
    // them acknowledged before it to check (however slow the machine is today).
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.load(Ordering::Relaxed) < 12 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut all = vec!["operator", "backup", "--output", path(output)];
    all.extend_from_slice(args);
    let started = Instant::now();
    let out = kura(&all).await;
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut histories = Vec::new();
    for t in tasks {
        histories.extend(t.await.expect("writer task"));
    }
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Backed up "), "{stdout}");
    assert!(stdout.contains("Rows per table: settings "), "{stdout}");
    assert!(
        stdout.contains("The root key is NOT in the backup"),
        "{stdout}"
    );
    let during = histories
        .iter()
        .flat_map(|h| &h.writes)
        .filter(|w| w.acked > started && w.sent < ended)
        .count();
    let before = histories
        .iter()
        .flat_map(|h| &h.writes)
        .filter(|w| w.acked < started)
        .count();
    assert!(
        before >= 10 && during >= 1,
        "the backup must run among writes: {before} acknowledged before it, {during} while it ran"
    );
    (histories, started, ended)
}

/// Every secret of `histories` on the restored `client` is as some prefix of its writes left
/// it: at least every write acknowledged before `started`, at most every write sent before
/// `ended`. Every version present opens to its value.
async fn assert_restored(client: &Client, histories: &[History], started: Instant, ended: Instant) {
    let mut checked = 0;
    for h in histories {
        let acked_before = h.writes.iter().filter(|w| w.acked < started).count();
        let sent_before = h.writes.iter().filter(|w| w.sent < ended).count();
        let found = client.describe_secret().secret_id(&h.name).send().await;
        if found.is_err() {
            assert_eq!(
                acked_before, 0,
                "{} is missing from the restored installation, but {acked_before} of its writes were acknowledged before the backup began",
                h.name
            );
            continue;
        }
        let actual = list_versions(client, &h.name, true).await;
        let ops: Vec<&Op> = h.writes.iter().map(|w| &w.op).collect();
        let prefix =
            (acked_before.max(1)..=sent_before).find(|m| state_after(&ops[..*m]).1 == actual);
        let Some(m) = prefix else {
            panic!(
                "{}: the restored versions and labels {actual:?} are not the state after any of its first {acked_before}..={sent_before} writes ({:?})",
                h.name, h.writes
            );
        };
        let (versions, _) = state_after(&ops[..m]);
        for (version, value) in versions {
            assert_eq!(
                get_version_string(client, &h.name, &version).await,
                value,
                "{} version {version}",
                h.name
            );
        }
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} secrets were checked");
}

fn assert_audit_verifies(data_dir: &Path, database_url: Option<&str>) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kura"));
    cmd.args(["audit", "verify", "--data-dir", path(data_dir)]);
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    let out = cmd.output().expect("run kura audit verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("audit trail intact"),
        "{}",
        text(&out)
    );
}

fn restore(input: &Path, data_dir: &Path, extra: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["operator", "restore", "--input", path(input)])
        .args(["--data-dir", path(data_dir)])
        .args(extra)
        .output()
        .expect("run kura operator restore")
}

fn restored_ok(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(out));
    assert!(stdout.contains("Restored "), "{stdout}");
    assert!(stdout.contains("audit trail intact"), "{stdout}");
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kura-test-")
        .tempdir()
        .expect("create temp dir")
}

/// Starts a server on a restored data directory `tmp/data` and checks it.
async fn check_restored_server(
    mut server: Server,
    creds: RootCredentials,
    histories: &[History],
    started: Instant,
    ended: Instant,
) -> tempfile::TempDir {
    server.use_credentials(creds);
    server.exempt_audit_trail(
        "restored from a backup: its trail holds the backed-up installation's requests, which this server never logged",
    );
    let client = server.client().await;
    assert_restored(&client, histories, started, ended).await;
    // The restored installation takes writes, and its chain goes on.
    let name = format!("backup/after-restore-{}", unique_suffix());
    create_plain(&client, &name, "a value written after the restore").await;
    assert_eq!(
        get_string(&client, &name).await,
        "a value written after the restore"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sqlite_backup_under_write_load_restores_every_acknowledged_write() {
    let server = Server::start().await;
    let client = server.client().await;
    let work = tempdir();
    let output = work.path().join("kura-backup.db");
    let (histories, started, ended) =
        backup_under_load(&client, &output, &["--data-dir", path(&server.data_dir)]).await;
    // The backup is private, and a plain SQLite file (no -wal beside it).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&output).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "backup mode {mode:o}");
    assert!(!PathBuf::from(format!("{}-wal", output.display())).exists());
    assert!(!PathBuf::from(format!("{}.partial", output.display())).exists());
    let manifest = sqlite(&output, "SELECT manifest FROM kura_backup");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["source"], "sqlite");
    assert_eq!(manifest["seal"], "file");
    // The root key is not in it.
    let key = std::fs::read_to_string(server.data_dir.join("root.key")).unwrap();
    let bytes = std::fs::read(&output).unwrap();
    assert!(!contains(&bytes, key.trim().as_bytes()));
    assert!(!contains(&bytes, &hex_decode(key.trim())));

    let target = tempdir();
    let data = target.path().join("data");
    let out = restore(
        &output,
        &data,
        &["--root-key", path(&server.data_dir.join("root.key"))],
    );
    restored_ok(&out);
    let key_mode = std::fs::metadata(data.join("root.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    assert_audit_verifies(&data, None);

    let creds = server.credentials();
    let restored = Server::start_in(target).await;
    let target = check_restored_server(restored, creds, &histories, started, ended).await;
    assert_audit_verifies(&target.path().join("data"), None);
    drop(server);
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_backup_under_write_load_restores_into_sqlite_and_into_postgres() {
    let db = Database::create();
    let node = Server::start_node(tempdir(), &db.url, &db.url, &[]).await;
    let client = node.client().await;
    let work = tempdir();
    let output = work.path().join("cluster-backup.db");
    let (histories, started, ended) = backup_under_load(
        &client,
        &output,
        &[
            "--database-url",
            &db.url,
            "--data-dir",
            path(&node.data_dir),
        ],
    )
    .await;
    let manifest = sqlite(&output, "SELECT manifest FROM kura_backup");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["source"], "postgresql");
    let root_key = node.data_dir.join("root.key");
    let creds = node.credentials();

    // Into SQLite.
    let target = tempdir();
    let data = target.path().join("data");
    restored_ok(&restore(&output, &data, &["--root-key", path(&root_key)]));
    assert_audit_verifies(&data, None);
    let restored = Server::start_in(target).await;
    let target = check_restored_server(restored, creds.clone(), &histories, started, ended).await;
    assert_audit_verifies(&target.path().join("data"), None);

    // Into an empty PostgreSQL database.
    let db2 = Database::create();
    let target = tempdir();
    let data = target.path().join("data");
    let out = restore(
        &output,
        &data,
        &["--database-url", &db2.url, "--root-key", path(&root_key)],
    );
    restored_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kura restore: copied secrets"), "{stderr}");
    let restored = Server::start_node(target, &db2.url, &db2.url, &[]).await;
    let target = check_restored_server(restored, creds, &histories, started, ended).await;
    assert_audit_verifies(&target.path().join("data"), Some(&db2.url));

    // A second restore into the now used database is refused, and leaves no directory.
    let data = tempdir().path().join("data");
    let out = restore(
        &output,
        &data,
        &["--database-url", &db2.url, "--root-key", path(&root_key)],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("the target database is not empty"),
        "{}",
        text(&out)
    );
    assert!(!data.exists());
    drop(node);
}

#[tokio::test]
async fn backup_and_restore_refuse_what_would_lose_or_mix_data() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(
        &client,
        &format!("backup/refusals-{}", unique_suffix()),
        "a value to back up here",
    )
    .await;
    let work = tempdir();
    let output = work.path().join("b.db");
    let dir = path(&server.data_dir);
    let root_key = server.data_dir.join("root.key");

    // The output exists: refused, left as it was; --force replaces it.
    std::fs::write(&output, "precious").unwrap();
    let out = kura(&[
        "operator",
        "backup",
        "--data-dir",
        dir,
        "--output",
        path(&output),
    ])
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("already exists: give another --output, or --force"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "precious");
    let out = kura(&[
        "operator",
        "backup",
        "--data-dir",
        dir,
        "--output",
        path(&output),
        "--force",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));

    // Never into the data directory, even with --force (it would replace the live database).
    let live = server.data_dir.join("kura.db");
    let before = std::fs::metadata(&live).unwrap().len();
    let out = kura(&[
        "operator",
        "backup",
        "--data-dir",
        dir,
        "--output",
        path(&live),
        "--force",
    ])
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is inside the data directory"),
        "{}",
        text(&out)
    );
    assert!(std::fs::metadata(&live).unwrap().len() >= before);
    assert_eq!(
        sqlite(
            &live,
            "SELECT count(*) FROM sqlite_master WHERE name = 'kura_backup'"
        ),
        "0"
    );

    // Not a data directory.
    let out = kura(&[
        "operator",
        "backup",
        "--data-dir",
        path(work.path()),
        "--output",
        path(&work.path().join("other.db")),
    ])
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is not a kura data directory"),
        "{}",
        text(&out)
    );
    assert!(!work.path().join("other.db").exists());
    assert!(!work.path().join("other.db.partial").exists());

    // Restore into a non-empty directory: refused, nothing touched.
    let busy = tempdir();
    std::fs::write(busy.path().join("notes.txt"), "mine").unwrap();
    let out = restore(&output, busy.path(), &["--root-key", path(&root_key)]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is not empty (it holds notes.txt)"),
        "{}",
        text(&out)
    );
    let names: Vec<_> = std::fs::read_dir(busy.path()).unwrap().collect();
    assert_eq!(names.len(), 1);

    // Files that are not backups: a kura database without a manifest, and text.
    let fresh = tempdir();
    let data = fresh.path().join("data");
    for not_backup in [
        server.data_dir.join("kura.db"),
        busy.path().join("notes.txt"),
    ] {
        let out = restore(&not_backup, &data, &["--root-key", path(&root_key)]);
        assert!(!out.status.success());
        assert!(
            text(&out).contains("is not a kura backup"),
            "{}",
            text(&out)
        );
        assert!(!data.exists());
    }

    // Missing and wrong root keys.
    let out = restore(&output, &data, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("give --root-key FILE"),
        "{}",
        text(&out)
    );
    assert!(!data.exists());
    let wrong = work.path().join("wrong.key");
    std::fs::write(&wrong, format!("{}\n", "ab".repeat(32))).unwrap();
    let out = restore(&output, &data, &["--root-key", path(&wrong)]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not open this backup's keyring"),
        "{}",
        text(&out)
    );
    assert!(!data.exists());
    std::fs::write(&wrong, "not a key").unwrap();
    let out = restore(&output, &data, &["--root-key", path(&wrong)]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is not a kura root key"),
        "{}",
        text(&out)
    );
    assert!(!data.exists());

    // A backup changed after it was taken.
    let altered = work.path().join("altered.db");
    std::fs::copy(&output, &altered).unwrap();
    sqlite(&altered, "DELETE FROM secrets");
    let out = restore(&altered, &data, &["--root-key", path(&root_key)]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not hold what its manifest counts"),
        "{}",
        text(&out)
    );
    assert!(!data.exists());

    // A manifest naming a table kura does not know (its names are used in SQL), and one whose
    // seal is not the file's.
    std::fs::copy(&output, &altered).unwrap();
    sqlite(
        &altered,
        "UPDATE kura_backup SET manifest = json_set(manifest, '$.rows.\"secrets; DROP TABLE keys\"', 1)",
    );
    let out = restore(&altered, &data, &["--root-key", path(&root_key)]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("lists a table this kura does not know"),
        "{}",
        text(&out)
    );
    std::fs::copy(&output, &altered).unwrap();
    sqlite(
        &altered,
        "UPDATE kura_backup SET manifest = json_set(manifest, '$.seal', 'shamir')",
    );
    let out = restore(&altered, &data, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("says the shamir seal but its settings hold the file seal"),
        "{}",
        text(&out)
    );
    assert!(!data.exists());

    // And the untouched backup restores.
    restored_ok(&restore(&output, &data, &["--root-key", path(&root_key)]));
}

#[tokio::test]
async fn a_shamir_sealed_backup_restores_without_a_root_key_and_unseals_with_the_same_shares() {
    let server = Server::start_with(&["--seal", "shamir"]).await;
    let shares = operator_init(&server, 3, 2);
    let client = server.client().await;
    let name = format!("backup/sealed-{}", unique_suffix());
    create_plain(&client, &name, "a value under the shamir seal").await;

    let work = tempdir();
    let output = work.path().join("sealed.db");
    let out = kura(&[
        "operator",
        "backup",
        "--data-dir",
        path(&server.data_dir),
        "--output",
        path(&output),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("sealed with shamir: the seal record is in the backup"),
        "{}",
        text(&out)
    );

    // A root key is refused: the seal keeps it.
    let target = tempdir();
    let data = target.path().join("data");
    let stray = work.path().join("stray.key");
    std::fs::write(&stray, format!("{}\n", "cd".repeat(32))).unwrap();
    let out = restore(&output, &data, &["--root-key", path(&stray)]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("leave --root-key out"),
        "{}",
        text(&out)
    );
    assert!(!data.exists());

    let out = restore(&output, &data, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("unseal the server, then check its audit trail"),
        "{}",
        text(&out)
    );
    assert!(!data.join("root.key").exists());

    let creds = server.credentials();
    let mut restored = Server::start_in_with(target, &["--seal", "shamir"]).await;
    restored.use_credentials(creds);
    restored.exempt_audit_trail(
        "restored from a backup: its trail holds the backed-up installation's requests",
    );
    for share in &shares[1..] {
        let (ok, out, err) = operator(&restored, &["unseal", share], None);
        let out = format!("{out}{err}");
        assert!(ok, "{out}");
    }
    let client = restored.client().await;
    assert_eq!(
        get_string(&client, &name).await,
        "a value under the shamir seal"
    );
    drop(server);
}
