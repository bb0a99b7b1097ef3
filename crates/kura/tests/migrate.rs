//! `kura migrate`: a real single-node installation (secrets written through the SDK) moved
//! into a fresh PostgreSQL database on this machine, checked there with `psql`; refused while
//! the server runs and when the target already holds data.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// Runs SQL with `psql` as PostgreSQL's superuser (trusted on loopback) in `database`;
/// returns its unaligned, tuples-only output.
fn psql(database: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atqc",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A database of its own, dropped with the guard.
struct Database(String);

impl Database {
    fn create() -> Database {
        let name = format!("kura_migrate_{}", unique_suffix().to_lowercase());
        psql(
            "postgres",
            &format!("CREATE DATABASE {name} {}", postgres::LANGUAGE_COLLATION),
        );
        Database(name)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.0)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atqc",
            ])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0))
            .output();
    }
}

/// `from/root.key` copied into a new data directory `to`, owner-only as kura wants it.
fn copy_root_key(from: &Path, to: &Path) {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(to)
        .expect("create the node's data directory");
    let key = to.join("root.key");
    std::fs::copy(from.join("root.key"), &key).expect("copy root.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod root.key");
}

fn migrate(from: &Path, to: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["migrate", "--from"])
        .arg(from)
        .args(["--to", to])
        .output()
        .expect("run kura migrate")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_stopped_installation_moves_into_an_empty_postgres_database() {
    if !have("psql") {
        return;
    }
    let server = Server::start().await;
    let client = server.client().await;
    let suffix = unique_suffix();
    let app = format!("migrate/app-{suffix}");
    let old = format!("migrate/old-{suffix}");
    create_plain(&client, &app, "first value of the app").await;
    put_string(&client, &app, "second value of the app", &token(1)).await;
    ok(client
        .update_secret_version_stage()
        .secret_id(&app)
        .version_stage("blue")
        .move_to_version_id(token(1))
        .send()
        .await);
    create_plain(
        &client,
        &format!("migrate/plain-{suffix}"),
        "a plain value here",
    )
    .await;
    create_plain(&client, &old, "value of the deleted one").await;
    ok(client
        .delete_secret()
        .secret_id(&old)
        .recovery_window_in_days(7)
        .send()
        .await);
    let app_stages = describe_stages(&client, &app).await;
    assert_eq!(app_stages.len(), 2);
    let data_dir = server.data_dir.clone();
    let db = Database::create();

    // Refused while the server runs, and nothing is written.
    let out = migrate(&data_dir, &db.url());
    let (_, err) = text(&out);
    assert!(!out.status.success(), "migrate beside a running server");
    assert!(
        err.contains(&format!(
            "stop the kura server using {}",
            data_dir.display()
        )),
        "{err}"
    );
    assert_eq!(
        psql(
            &db.0,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'secrets'"
        ),
        "0"
    );

    let tmp = server.stop().await;
    let audit_tail = std::fs::read_to_string(data_dir.join("audit.jsonl"))
        .expect("the audit file")
        .lines()
        .last()
        .expect("an audit record")
        .to_string();

    let out = migrate(&data_dir, &db.url());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Not a terminal here: a line per table, no bar.
    assert!(
        stderr.contains("kura migrate: copied secrets (8/19): 3 rows"),
        "{stderr}"
    );
    assert!(stdout.contains("Copied 3 secrets, 4 versions"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "kura server --data-dir DIR --database-url {}",
            db.url()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("root.key"), "{stdout}");

    assert_eq!(psql(&db.0, "SELECT count(*) FROM secrets"), "3");
    // The labels DescribeSecret answered before the move, as PostgreSQL now holds them.
    let mut copied_stages = Stages::new();
    for line in psql(
        &db.0,
        &format!(
            "SELECT st.version_id || ' ' || st.stage FROM version_stages st \
             JOIN secrets s ON s.id = st.secret_id WHERE s.name = '{app}'"
        ),
    )
    .lines()
    {
        let (version, stage) = line.split_once(' ').expect("version and stage");
        copied_stages
            .entry(version.to_string())
            .or_default()
            .push(stage.to_string());
    }
    copied_stages.values_mut().for_each(|labels| labels.sort());
    assert_eq!(copied_stages, app_stages);
    assert_eq!(
        psql(
            &db.0,
            &format!(
                "SELECT deleted_at IS NOT NULL AND purge_at IS NOT NULL FROM secrets WHERE name = '{old}'"
            )
        ),
        "t"
    );
    // The audit trail arrived whole: its last record is the file's last line.
    let (seq, mac) = psql(
        &db.0,
        "SELECT seq || ' ' || mac FROM audit_log ORDER BY seq DESC LIMIT 1",
    )
    .split_once(' ')
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .expect("an audit record in PostgreSQL");
    assert!(
        audit_tail.contains(&format!("\"Seq\":{seq}")),
        "{audit_tail}"
    );
    assert!(audit_tail.contains(&mac), "{audit_tail} vs {mac}");

    // A second move into the same database (named by KURA_DATABASE_URL this time) is refused
    // and changes nothing.
    let before = psql(
        &db.0,
        "SELECT (SELECT count(*) FROM secrets) || '/' || (SELECT count(*) FROM audit_log)",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["migrate", "--from"])
        .arg(&data_dir)
        .env("KURA_DATABASE_URL", db.url())
        .output()
        .expect("run kura migrate");
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(err.contains("the target database is not empty"), "{err}");
    assert!(err.contains("secrets: 3 rows"), "{err}");
    assert_eq!(
        psql(
            &db.0,
            "SELECT (SELECT count(*) FROM secrets) || '/' || (SELECT count(*) FROM audit_log)",
        ),
        before
    );

    // A node on the new database, with a data directory of its own holding only a copy of
    // root.key, serves the same secrets to the same credentials.
    let credentials = parse_credentials(
        &std::fs::read_to_string(data_dir.join("root-credentials")).expect("root-credentials"),
    );
    let node_tmp = tempfile::Builder::new()
        .prefix("kura-test-")
        .tempdir()
        .expect("create temp dir");
    copy_root_key(&data_dir, &node_tmp.path().join("data"));
    let node = Server::start_in_with(node_tmp, &["--database-url", &db.url()]).await;
    let client = node
        .client_with(&credentials.access_key_id, &credentials.secret_access_key)
        .await;
    assert_eq!(get_string(&client, &app).await, "second value of the app");
    assert_eq!(describe_stages(&client, &app).await, app_stages);
    let first = app_stages
        .iter()
        .find(|(_, labels)| labels.contains(&"AWSPREVIOUS".to_string()))
        .map(|(v, _)| v.clone())
        .expect("an AWSPREVIOUS version");
    assert_eq!(
        get_version_string(&client, &app, &first).await,
        "first value of the app"
    );
    assert_eq!(
        get_string(&client, &format!("migrate/plain-{suffix}")).await,
        "a plain value here"
    );
    assert_api_err(
        client.get_secret_value().secret_id(&old).send().await,
        "InvalidRequestException",
        Some(MARKED_FOR_DELETION_MSG),
    );
    let restored = ok(client.restore_secret().secret_id(&old).send().await);
    assert_eq!(restored.name(), Some(old.as_str()));
    assert_eq!(get_string(&client, &old).await, "value of the deleted one");
    // New writes continue the copied ids and chain.
    create_plain(
        &client,
        &format!("migrate/new-{suffix}"),
        "written after the move",
    )
    .await;
    assert_eq!(psql(&db.0, "SELECT count(*) FROM secrets"), "4");
    let node_tmp = node.stop().await;

    // One chain from the old node's records to the new node's: each data directory's audit
    // file holds its node's records, all of them in the database, every MAC verified.
    for dir in [data_dir.clone(), node_tmp.path().join("data")] {
        let out = Command::new(env!("CARGO_BIN_EXE_kura"))
            .args(["audit", "verify", "--data-dir"])
            .arg(&dir)
            .args(["--database-url", &db.url()])
            .output()
            .expect("run kura audit verify");
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success() && stdout.contains("audit trail intact"),
            "kura audit verify on {}: {stdout}\n{stderr}",
            dir.display()
        );
    }
    drop(tmp);
}

#[test]
fn a_directory_that_is_no_installation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = migrate(dir.path(), "postgres://postgres@127.0.0.1:5432/none");
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(err.contains("is not a kura data directory"), "{err}");
}

/// A request whose audit record holds a NUL (a raw secret id) does not block the move: the
/// record is copied with U+FFFD, `kura migrate` says so, and `kura audit verify` names it.
#[tokio::test]
async fn an_audit_record_with_nul_moves_with_a_warning() {
    if !have("psql") {
        return;
    }
    let server = Server::start().await;
    let client = server.client().await;
    assert_api_err(
        client.get_secret_value().secret_id("nul\0id").send().await,
        "ResourceNotFoundException",
        Some(NOT_FOUND_MSG),
    );
    let data_dir = server.data_dir.clone();
    let _tmp = server.stop().await;
    let db = Database::create();

    let out = migrate(&data_dir, &db.url());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("was copied with U+FFFD in their place (audit_log: 1 row)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("will report audit record(s) 1 as altered"),
        "{stderr}"
    );
    assert_eq!(
        psql(&db.0, "SELECT resource FROM audit_log WHERE seq = 1"),
        "nul\u{FFFD}id"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&data_dir)
        .args(["--database-url", &db.url()])
        .output()
        .expect("run kura audit verify");
    let (stdout, _) = text(&out);
    assert!(!out.status.success());
    assert!(
        stdout.contains("record 1 does not match its MAC"),
        "{stdout}"
    );
}
