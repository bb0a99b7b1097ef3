//! `kura operator …` as the tests run it: against a server's endpoint, signed with a
//! credentials file, with optional stdin.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::Server;

/// `kura operator ARGS --endpoint` of `server`, signed with `credentials`: success, stdout, stderr.
pub fn operator_as(
    server: &Server,
    credentials: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kura"))
        .arg("operator")
        .args(args)
        .args(["--endpoint", &server.endpoint()])
        .env("AWS_SHARED_CREDENTIALS_FILE", credentials)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kura operator");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("kura operator finishes");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`operator_as`] with the server's root credentials.
pub fn operator(server: &Server, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    operator_as(
        server,
        &server.data_dir.join("root-credentials"),
        args,
        stdin,
    )
}

/// The shares `kura operator init` printed, in order.
pub fn printed_shares(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("Unseal share "))
        .filter_map(|l| l.split(": ").nth(1))
        .map(str::to_string)
        .collect()
}

/// `kura operator init`'s shares, in order.
pub fn operator_init(server: &Server, shares: u8, threshold: u8) -> Vec<String> {
    let (ok, out, err) = operator(
        server,
        &[
            "init",
            "--shares",
            &shares.to_string(),
            "--threshold",
            &threshold.to_string(),
        ],
        None,
    );
    assert!(ok, "kura operator init failed: {err}");
    assert!(
        out.contains(&format!("any {threshold} of them unseal it")),
        "{out}"
    );
    let printed = printed_shares(&out);
    assert_eq!(printed.len(), usize::from(shares), "{out}");
    printed
}

/// `kura operator status`'s line.
pub fn operator_status(server: &Server) -> String {
    let (ok, out, err) = operator(server, &["status"], None);
    assert!(ok, "kura operator status failed: {err}");
    out.trim().to_string()
}
