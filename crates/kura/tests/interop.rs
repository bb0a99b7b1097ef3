//! A second client family: boto3 and the AWS CLI (installed by scripts/test) run a scenario
//! covering every secrets operation against a real kura process. The scripts are in interop/.

mod common;

use std::process::Command;

use common::{Server, have};

fn run_scenario(server: &Server, program: &str, script: &str) {
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
}

#[tokio::test]
async fn boto3_scenario_covers_every_operation() {
    if !have("python3") || !have("aws") {
        return;
    }
    let server = Server::start().await;
    // What the script stores, for the harness's leak check.
    server.remember(r#"{"password":"p1"}"#);
    run_scenario(&server, "python3", "boto3_scenario.py");
}

#[tokio::test]
async fn aws_cli_scenario_covers_every_operation() {
    if !have("aws") {
        return;
    }
    let server = Server::start().await;
    // What the script stores, for the harness's leak check.
    server.remember("cli-value-one-7d1e");
    run_scenario(&server, "bash", "aws_cli_scenario.sh");
}
