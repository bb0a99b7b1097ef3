//! The README's examples, run as printed against a real server: the blocks tagged
//! `<!-- test: aws-cli -->` and `<!-- test: boto3 -->`. Only the port is changed; the working
//! directory has `./kura-data` pointing at the test server's data directory. The cluster
//! blocks start their own servers (the kura binary first on PATH) on a fresh PostgreSQL
//! database in `KURA_DATABASE_URL`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, have};

/// The fenced block that follows `<!-- test: NAME -->` in README.md.
fn readme_block(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read README.md");
    let marker = format!("<!-- test: {name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"))
        .1;
    let body = after
        .split_once("```")
        .and_then(|(_, rest)| rest.split_once('\n'))
        .map(|(_, rest)| rest)
        .expect("a fenced block after the marker");
    body.split_once("```").expect("closing fence").0.to_string()
}

fn run_in(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{program} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn workdir(server: &Server) -> tempfile::TempDir {
    workdir_for(&server.data_dir)
}

/// A working directory whose `./kura-data` is `data_dir`.
fn workdir_for(data_dir: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(data_dir, dir.path().join("kura-data")).expect("symlink");
    dir
}

/// Issue 16: the Quick start shows kura's own commands (`kura secret`, then `kura run`)
/// before the AWS tools.
#[test]
fn quick_start_shows_kura_secret_and_kura_run_first() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read README.md");
    let start = readme
        .find("\n## Quick start\n")
        .expect("a Quick start section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let blocks: Vec<&str> = section
        .split("<!-- test: ")
        .skip(1)
        .filter_map(|b| b.split_once(" -->").map(|(name, _)| name))
        .collect();
    assert_eq!(
        blocks.get(..3),
        Some(&["kura-cli", "kura-run", "aws-cli"][..]),
        "{blocks:?}"
    );
    assert!(readme_block("kura-cli").starts_with("kura secret "));
    assert!(readme_block("kura-run").contains("kura run --secret"));
}

#[tokio::test]
async fn readme_aws_cli_then_boto3_examples_work_as_printed() {
    if !have("aws") || !have("python3") {
        return;
    }
    let server = Server::start().await;
    let dir = workdir(&server);
    let port_fix = |block: String| block.replace("127.0.0.1:8200", &server.addr.to_string());

    let cli = port_fix(readme_block("aws-cli"));
    let out = run_in(dir.path(), "bash", &["-euo", "pipefail", "-c", &cli]);
    assert_eq!(
        out.lines().last(),
        Some("correct horse battery staple"),
        "{out}"
    );

    let py = port_fix(readme_block("boto3"));
    let out = run_in(dir.path(), "python3", &["-c", &py]);
    assert_eq!(out.trim_end(), "a new password");

    // What the README says next: the replaced value is kept as AWSPREVIOUS.
    let client = server.client().await;
    let prev = client
        .get_secret_value()
        .secret_id("demo/db-password")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .expect("AWSPREVIOUS readable");
    assert_eq!(prev.secret_string(), Some("correct horse battery staple"));
}

#[tokio::test]
async fn readme_command_line_example_works_as_printed() {
    let server = Server::start().await;
    server.remember("first-password");
    server.remember("second-password");
    let dir = workdir(&server);
    let home = tempfile::tempdir().expect("temp dir");
    let block = readme_block("kura-cli");
    let bin = Path::new(env!("CARGO_BIN_EXE_kura")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The block names no address: the test server's port is given the way a user would.
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("HOME", home.path())
        .env("KURA_ENDPOINT", server.endpoint())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().last(), Some("second-password"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("NAME ") && l.contains("LAST CHANGED")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("demo/app-login ")),
        "{stdout}"
    );
    // What the README says next: the replaced value is AWSPREVIOUS.
    let client = server.client().await;
    let prev = common::get_stage(&client, "demo/app-login", "AWSPREVIOUS").await;
    assert!(prev.1.contains("first-password"));
}

#[tokio::test]
async fn readme_rotation_example_works_as_printed() {
    if !have("aws") {
        return;
    }
    let server = Server::start().await;
    let dir = workdir(&server);
    let block = readme_block("rotation").replace("127.0.0.1:8200", &server.addr.to_string());
    run_in(dir.path(), "bash", &["-euo", "pipefail", "-c", &block]);
    common::wait_rotation_succeeded(&server, "demo/app-db").await;

    // What the README promises: the password field is new, the rest kept, the schedule set.
    let client = server.client().await;
    let value: serde_json::Value =
        serde_json::from_str(&common::get_string(&client, "demo/app-db").await).unwrap();
    assert_eq!(value["username"], "app");
    assert_eq!(value["password"].as_str().map(str::len), Some(32));
    let d = client
        .describe_secret()
        .secret_id("demo/app-db")
        .send()
        .await
        .expect("DescribeSecret");
    assert_eq!(
        d.rotation_rules().and_then(|r| r.schedule_expression()),
        Some("rate(30 days)")
    );
    // From the server's own rotation date, not the wall clock (which may have passed
    // midnight UTC since the rotation).
    let rotated = d.last_rotated_date().expect("LastRotatedDate").secs();
    let next = d.next_rotation_date().expect("NextRotationDate").secs();
    let expected = (rotated / 86_400 + 30) * 86_400;
    assert_eq!(
        next, expected,
        "30 days after the rotation's day, at midnight UTC"
    );
}

#[tokio::test]
async fn readme_private_certificate_example_works_as_printed() {
    if !have("openssl") {
        return;
    }
    let server = Server::start().await;
    let stdout = run_kura_block(&server, "pki");
    // What the README promises: openssl accepts the chain, and the value has IBM's fields.
    assert_eq!(stdout.lines().last(), Some("app.pem: OK"), "{stdout}");
    let client = server.client().await;
    let value: serde_json::Value =
        serde_json::from_str(&common::get_string(&client, "certs/app").await).unwrap();
    assert_eq!(value["issuer"], "issuing");
    assert_eq!(value["key_algorithm"], "EC_P256");
    assert!(
        value["expiration_date"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z'))
    );
}

/// The ACME example against Pebble instead of Let's Encrypt's staging directory: the block
/// as printed but for Pebble's directory URL, its HTTPS CA as `directory_ca`, and a hook at the
/// printed hook's place that sets the records in Pebble's test DNS.
#[tokio::test]
async fn readme_acme_example_works_against_pebble() {
    let server = Server::start().await;
    let Some(pebble) = common::pebble::Pebble::start(server.addr.port()).await else {
        return;
    };
    let (hook, calls) = pebble.dns_hook();
    let printed = readme_block("acme");
    let block = printed
        .replace(
            "https://acme-staging-v02.api.letsencrypt.org/directory",
            &pebble.directory,
        )
        .replace(
            r#""challenge": "dns-01""#,
            &format!(
                r#""challenge": "dns-01", "directory_ca": {}"#,
                serde_json::Value::from(pebble.https_ca.as_str())
            ),
        )
        .replace("/usr/local/bin/acme-dns-hook", hook.to_str().unwrap());
    assert_eq!(
        block.matches(&pebble.directory).count() + block.matches(hook.to_str().unwrap()).count(),
        2,
        "the README still shows the directory and the hook this test swaps:\n{printed}"
    );
    run_kura_text(&server, &block);
    let client = server.client().await;
    let value: serde_json::Value =
        serde_json::from_str(&common::get_string(&client, "certs/www").await).unwrap();
    assert_eq!(value["common_name"], "www.example.com");
    assert_eq!(value["key_algorithm"], "EC_P256");
    assert!(
        value["certificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    let noted = std::fs::read_to_string(calls).unwrap();
    assert!(
        noted.contains("set _acme-challenge.example.com")
            && noted.contains("remove _acme-challenge.www.example.com"),
        "{noted}"
    );
}

#[tokio::test]
async fn readme_expiry_example_works_as_printed() {
    let server = Server::start().await;
    server.remember("k-7f3a9c0e51");
    let stdout = run_kura_block(&server, "expiry");
    assert!(
        stdout.contains("partners/acme-api-key"),
        "ListSecrets found it by its expiration: {stdout}"
    );
    common::wait_rotation_succeeded(&server, "certs/grafana").await;
    // What the README promises: the certificate's expiration, a renewal date two thirds into
    // its 90 days, and the state.
    let d = common::describe_json(&server, "certs/grafana").await;
    let expires = d["KuraExpirationDate"].as_f64().expect("an expiration") as i64;
    let rotated = d["LastRotatedDate"].as_f64().expect("rotated") as i64;
    let renew = d["NextRotationDate"].as_f64().expect("a renewal date") as i64;
    assert!((expires - rotated - 90 * 86_400).abs() <= 5, "{d:#}");
    assert!((renew - rotated - 60 * 86_400).abs() <= 5, "{d:#}");
    assert_eq!(d["KuraState"], "Active", "{d:#}");
    let d = common::describe_json(&server, "partners/acme-api-key").await;
    assert_eq!(d["KuraExpirationDate"], 4_102_444_800.0, "{d:#}");
}

/// Runs a README block of `kura` commands as printed, with the kura under test first on
/// PATH, against `server` (its root credentials found in `./kura-data`); returns stdout.
fn run_kura_block(server: &Server, name: &str) -> String {
    run_kura_text(server, &readme_block(name))
}

/// [`run_kura_block`] of a block's text.
fn run_kura_text(server: &Server, block: &str) -> String {
    let dir = workdir(server);
    let home = tempfile::tempdir().expect("temp dir");
    let bin = Path::new(env!("CARGO_BIN_EXE_kura")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", block])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("HOME", home.path())
        .env("KURA_ENDPOINT", server.endpoint())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn readme_expiring_access_key_example_works_as_printed() {
    let server = Server::start().await;
    let stdout = run_kura_block(&server, "access-keys");
    common::wait_rotation_succeeded(&server, "keys/ci").await;
    // What the README promises: the rotated key and the one it replaced both listed, both
    // with an expiry, and the secret's settings kept.
    let keys = server
        .kura("ListAccessKeys", r#"{"UserName": "ci"}"#)
        .await
        .assert_ok();
    let keys = keys["AccessKeyMetadata"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k["Expiration"].is_f64()), "{keys:?}");
    assert!(stdout.contains("EXPIRES"), "{stdout}");
    let client = server.client().await;
    let value: serde_json::Value =
        serde_json::from_str(&common::get_string(&client, "keys/ci").await).unwrap();
    assert_eq!(value["previous_key_ttl"], "24h");
    assert_eq!(value["key_ttl"], "30d");
}

/// A shell script run in its own process group, whose background processes (the README's
/// `kura server ... &`) are ended with the group when this is dropped.
struct Script {
    pgid: u32,
}

impl Drop for Script {
    fn drop(&mut self) {
        // The group is gone when the script started nothing in the background.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.pgid)])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Runs `block` with `bash -euo pipefail` in `dir`, with the kura binary first on PATH and
/// `KURA_DATABASE_URL` set; stdout and stderr go to files (background servers keep them open,
/// so pipes would never close). Returns the script guard and its stdout.
fn run_cluster_block(dir: &Path, block: &str, database_url: &str) -> (Script, String) {
    run_block_in_background(dir, block, Some(database_url))
}

/// `run_cluster_block`, with `KURA_DATABASE_URL` set only when a database is given.
fn run_block_in_background(
    dir: &Path,
    block: &str,
    database_url: Option<&str>,
) -> (Script, String) {
    use std::os::unix::process::CommandExt;
    let bin = Path::new(env!("CARGO_BIN_EXE_kura")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out_path = dir.join("script.out");
    let err_path = dir.join("script.err");
    let mut command = Command::new("bash");
    match database_url {
        Some(url) => command.env("KURA_DATABASE_URL", url),
        None => command.env_remove("KURA_DATABASE_URL"),
    };
    let mut child = command
        .args(["-euo", "pipefail", "-c", block])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        .env_remove("KURA_DATA_DIR")
        .env_remove("KURA_LISTEN")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .expect("run bash");
    let script = Script { pgid: child.id() };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll bash") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "the README block did not finish within 120 s\nstderr: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        status.success(),
        "the README block failed: {status}\nstdout: {stdout}\nstderr: {}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    (script, stdout)
}

fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[tokio::test]
async fn readme_cluster_example_works_as_printed() {
    if !have("aws") || !have("curl") {
        return;
    }
    let db = common::postgres::Database::create();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut block = readme_block("cluster");
    for port in ["8201", "8202", "8203"] {
        block = block.replace(&format!("127.0.0.1:{port}"), &free_addr());
    }
    let (script, out) = run_cluster_block(dir.path(), &block, &db.url);
    assert_eq!(out.lines().last(), Some("written through node 1"), "{out}");
    // What the README says: only the first node has root credentials, all share the key.
    let node = |n: u32| dir.path().join(format!("node{n}"));
    assert!(node(1).join("root-credentials").exists());
    for n in [2, 3] {
        assert!(!node(n).join("root-credentials").exists());
        assert_eq!(
            std::fs::read(node(n).join("root.key")).unwrap(),
            std::fs::read(node(1).join("root.key")).unwrap()
        );
    }
    // And the secret is in the database, not in a node.
    assert_eq!(
        db.query("SELECT count(*) FROM secrets WHERE name = 'demo/shared'"),
        "1"
    );
    // The servers end before their database is dropped.
    drop(script);
    std::thread::sleep(std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn readme_cluster_migration_works_as_printed() {
    let help = Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["migrate", "--help"])
        .output()
        .expect("run kura migrate --help");
    if !help.status.success() {
        common::skip("this kura has no `migrate` command yet, which the README documents");
        return;
    }
    // An existing single node, stopped, in ./kura-data.
    let single = Server::start().await;
    let value = format!("moved-value-{}", common::unique_suffix());
    common::create_plain(&single.client().await, "demo/moved", &value).await;
    let creds = single.credentials();
    let single_dir = single.stop().await;
    let dir = workdir_for(&single_dir.path().join("data"));

    let db = common::postgres::Database::create();
    let block = readme_block("cluster-migrate");
    let (_script, _) = run_cluster_block(dir.path(), &block, &db.url);
    let key = std::fs::read(dir.path().join("kura-data/root.key")).unwrap();
    for n in 1..=3 {
        let copied = dir.path().join(format!("node{n}/root.key"));
        assert_eq!(std::fs::read(&copied).unwrap(), key, "{}", copied.display());
    }

    // A node started on node1 (as "start the nodes as above" does) serves the moved secret
    // to the old root credentials.
    let node_tmp = tempfile::tempdir().unwrap();
    std::fs::rename(dir.path().join("node1"), node_tmp.path().join("data")).unwrap();
    let mut node = Server::start_node(node_tmp, &db.url, &db.url, &[]).await;
    node.use_credentials(creds);
    assert_eq!(
        common::get_string(&node.client().await, "demo/moved").await,
        value
    );
    assert!(!node.data_dir.join("root-credentials").exists());
}

#[tokio::test]
async fn readme_tls_example_works_as_printed() {
    if !have("aws") || !have("curl") {
        return;
    }
    // The files the README names, from a CA made here for localhost.
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = dir.path().join("tls");
    std::fs::create_dir(&tls).unwrap();
    let ca = common::tls::TestCa::new("readme");
    let issued = ca.server_cert(1);
    std::fs::write(tls.join("server.pem"), &issued.chain).unwrap();
    std::fs::write(tls.join("server.key"), &issued.key).unwrap();
    std::fs::write(tls.join("ca.pem"), ca.pem()).unwrap();
    let port = free_addr().rsplit_once(':').unwrap().1.to_string();
    let block = readme_block("tls").replace(":8443", &format!(":{port}"));
    assert!(block.contains(&format!("0.0.0.0:{port}")), "{block}");
    let (script, out) = run_block_in_background(dir.path(), &block, None);
    assert_eq!(out.lines().last(), Some("sent over TLS"), "{out}");
    // `kura api` reached it too, through AWS_CA_BUNDLE.
    assert!(out.contains(r#""Name": "demo/tls""#), "{out}");
    drop(script);
}

#[tokio::test]
async fn readme_backup_example_works_as_printed() {
    // The server runs while the backup is taken.
    let server = Server::start().await;
    let value = format!("backed-up-value-{}", common::unique_suffix());
    common::create_plain(&server.client().await, "demo/backed-up", &value).await;
    let creds = server.credentials();
    let dir = workdir(&server);
    let (_script, out) = run_block_in_background(dir.path(), &readme_block("backup"), None);
    assert!(out.contains("audit trail intact"), "{out}");

    let restored_tmp = tempfile::tempdir().unwrap();
    std::fs::rename(
        dir.path().join("restored"),
        restored_tmp.path().join("data"),
    )
    .unwrap();
    let mut restored = Server::start_in(restored_tmp).await;
    restored.use_credentials(creds);
    restored.exempt_audit_trail(
        "restored from a backup: its trail holds the backed-up server's requests",
    );
    assert_eq!(
        common::get_string(&restored.client().await, "demo/backed-up").await,
        value
    );
}

#[tokio::test]
async fn readme_kura_run_example_works_as_printed() {
    let server = Server::start().await;
    server.remember("db-password-1");
    let dir = workdir(&server);
    let home = tempfile::tempdir().expect("temp dir");
    let block = readme_block("kura-run");
    let bin = Path::new(env!("CARGO_BIN_EXE_kura")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", &block])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("HOME", home.path())
        .env("KURA_ENDPOINT", server.endpoint());
    for v in common::cli::AWS_VARS
        .iter()
        .filter(|v| **v != "KURA_ENDPOINT")
    {
        cmd.env_remove(v);
    }
    let out = cmd.output().expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[lines.len() - 4..],
        [
            "DB_PASSWORD",
            "DB_PORT",
            "DB_USERNAME",
            "app connects on port 5432"
        ],
        "{stdout}"
    );
    assert!(!stdout.contains("db-password-1"), "{stdout}");
}

#[tokio::test]
async fn readme_kura_agent_example_works_as_printed() {
    if !have("curl") {
        common::skip("curl is not installed");
        return;
    }
    let server = Server::start().await;
    server.remember("agent-password-1");
    server.remember("agent-password-2");
    let dir = workdir(&server);
    // Only the agent's port changes; the endpoint is given as a user would, in KURA_ENDPOINT.
    let block = format!(
        "export KURA_ENDPOINT={}\n{}",
        server.endpoint(),
        readme_block("kura-agent").replace("127.0.0.1:2773", &free_addr())
    );
    let (_script, out) = run_block_in_background(dir.path(), &block, None);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[lines.len() - 2..],
        ["agent-password-1", "agent-password-2"],
        "{out}"
    );
    let answer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("answer.json")).unwrap()).unwrap();
    assert_eq!(answer["Name"], "demo/agent-db");
    assert!(
        answer["SecretString"]
            .as_str()
            .unwrap()
            .contains("agent-password-1")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("db-password"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn readme_import_example_works_as_printed() {
    let server = Server::start().await;
    server.remember("import-password-1");
    let dir = workdir(&server);
    let home = tempfile::tempdir().expect("temp dir");
    let block = readme_block("kura-import");
    let bin = Path::new(env!("CARGO_BIN_EXE_kura")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", &block])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("HOME", home.path())
        .env("KURA_ENDPOINT", server.endpoint());
    for v in common::cli::AWS_VARS
        .iter()
        .filter(|v| **v != "KURA_ENDPOINT")
    {
        cmd.env_remove(v);
    }
    let out = cmd.output().expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("demo/imported\tunchanged\n0 created, 0 updated, 1 unchanged, 0 failed\n"),
        "{stdout}"
    );
    assert!(stdout.contains("demo/imported:"), "{stdout}");
    assert!(!stdout.contains("import-password-1"), "{stdout}");
    let value = server
        .client()
        .await
        .get_secret_value()
        .secret_id("demo/imported")
        .send()
        .await
        .expect("get the imported secret");
    let doc: serde_json::Value =
        serde_json::from_str(value.secret_string().unwrap()).expect("JSON");
    assert_eq!(
        doc,
        serde_json::json!({"DB_USER": "app", "DB_PASSWORD": "import-password-1"})
    );
}
