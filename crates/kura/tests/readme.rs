//! The README's examples, run as printed against a real server: the blocks tagged
//! `<!-- test: aws-cli -->` and `<!-- test: boto3 -->`. Only the port is changed; the working
//! directory has `./kura-data` pointing at the test server's data directory.

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
    let dir = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(&server.data_dir, dir.path().join("kura-data")).expect("symlink");
    dir
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
