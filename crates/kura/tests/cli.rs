//! `kura api`: the signed one-call client, as a user runs it.

mod common;

use std::process::Command;

use common::*;

fn kura_api(server: &Server, args: &[&str]) -> (bool, String, String) {
    let creds = server.data_dir.join("root-credentials");
    let out = Command::new(env!("CARGO_BIN_EXE_kura"))
        .arg("api")
        .arg("--endpoint")
        .arg(server.endpoint())
        .arg("--credentials")
        .arg(&creds)
        .args(args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .expect("run kura api");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    server.record_exchange(args.last().copied().unwrap_or(""), &stdout);
    (
        out.status.success(),
        stdout,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn kura_api_calls_aws_and_extension_operations() {
    let server = Server::start().await;
    let (ok_, out, err) = kura_api(
        &server,
        &[
            "CreateSecret",
            r#"{"Name": "cli/one", "SecretString": "cli-value-0d4f7e"}"#,
        ],
    );
    assert!(ok_, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).expect("JSON answer");
    assert_eq!(created["Name"], "cli/one");

    let (ok_, out, err) = kura_api(&server, &["Kura.ListRotationFunctions"]);
    assert!(ok_, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["RotationFunctions"][0]["Name"], "kura-password");

    let c = server.client().await;
    assert_eq!(get_string(&c, "cli/one").await, "cli-value-0d4f7e");
}

#[tokio::test]
async fn kura_api_reports_errors_with_their_code_and_a_failing_status() {
    let server = Server::start().await;
    let (ok_, out, err) = kura_api(&server, &["GetSecretValue", r#"{"SecretId": "cli/none"}"#]);
    assert!(!ok_ && out.is_empty());
    assert!(
        err.contains("ResourceNotFoundException") && err.contains("can't find"),
        "{err}"
    );
    let (ok_, _, err) = kura_api(&server, &["Kura.Nope"]);
    assert!(!ok_ && err.contains("UnknownOperationException"), "{err}");
    let (ok_, _, err) = kura_api(&server, &["CreateSecret", "{not json"]);
    assert!(!ok_ && err.contains("not JSON"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["api", "--endpoint", &server.endpoint()])
        .args(["--credentials", "/nonexistent/creds", "ListSecrets"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("/nonexistent/creds"),
        "{err}"
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let server = Server::start().await;
    let out = Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .expect("run a second kura server");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("another kura server is using the data directory"),
        "{err}"
    );
    assert!(
        !err.contains("internal error"),
        "the reason, not a generic message: {err}"
    );
    // The first server is unharmed.
    let c = server.client().await;
    create_plain(&c, "lock/ok", "still-serving").await;
}

#[tokio::test]
async fn kura_audit_verify_on_a_directory_that_is_not_kuras_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["audit", "verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("has no root key") && !err.contains("internal error"),
        "{err}"
    );
}
