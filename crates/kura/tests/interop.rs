//! A second client family: boto3 and the AWS CLI (installed by scripts/test) run a scenario
//! covering every secrets operation against a real kura process. The scripts are in interop/.
//! Each must end by printing its "ok" line: a script that stopped early without failing
//! would otherwise pass.

mod common;

use std::process::Command;

use common::{Server, have};

/// Runs `script`, asserts it succeeded, and returns its stdout.
fn run_scenario(server: &Server, program: &str, script: &str) -> String {
    let path = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = Command::new(program)
        .arg(&path)
        .env("KURA_ENDPOINT", server.endpoint())
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            server.data_dir.join("root-credentials"),
        )
        .env("TMPDIR", tmp.path())
        // Strips any Python `assert`: the scenario's checks must be explicit to count.
        .env("PYTHONOPTIMIZE", "2")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed ({})\nstdout: {}\nstderr: {}\n--- server log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn boto3_scenario_covers_every_operation() {
    if !have("python3") || !have("aws") {
        return;
    }
    let path = format!(
        "{}/tests/interop/boto3_scenario.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let source = std::fs::read_to_string(&path).unwrap();
    let bare: Vec<&str> = source
        .lines()
        .filter(|l| l.trim_start().starts_with("assert "))
        .collect();
    assert!(
        bare.is_empty(),
        "use check(...): assert vanishes under PYTHONOPTIMIZE: {bare:?}"
    );
    let server = Server::start().await;
    // What the script stores, for the harness's leak check.
    server.remember(r#"{"password":"p1"}"#);
    let out = run_scenario(&server, "python3", "boto3_scenario.py");
    let checks: usize = out
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("boto3 scenario: ok ("))
        .and_then(|l| l.strip_suffix(" checks)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no final ok line: {out}"));
    assert!(checks >= 50, "only {checks} checks ran: {out}");
}

#[tokio::test]
async fn aws_cli_scenario_covers_every_operation() {
    if !have("aws") {
        return;
    }
    let server = Server::start().await;
    // What the script stores, for the harness's leak check.
    server.remember("cli-value-one-7d1e");
    let out = run_scenario(&server, "bash", "aws_cli_scenario.sh");
    assert_eq!(out.lines().last(), Some("aws cli scenario: ok"), "{out}");
}
