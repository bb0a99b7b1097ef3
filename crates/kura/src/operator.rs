//! `kura operator …`: initialising, unsealing and sealing a node.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use zeroize::Zeroizing;

use crate::api;

fn url(endpoint: &str, path: &str) -> String {
    format!("{}{path}", endpoint.trim_end_matches('/'))
}

async fn post(
    endpoint: &str,
    path: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let resp = reqwest::Client::new()
        .post(url(endpoint, path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("cannot reach {endpoint}: {e}"))?;
    api::answer(resp).await
}

async fn get(endpoint: &str, path: &str) -> Result<serde_json::Value, String> {
    let resp = reqwest::get(url(endpoint, path))
        .await
        .map_err(|e| format!("cannot reach {endpoint}: {e}"))?;
    api::answer(resp).await
}

/// One line about the seal, as `status` and `unseal` print it.
fn describe(s: &serde_json::Value) -> String {
    let kind = s["Type"].as_str().unwrap_or("?");
    if !s["Initialized"].as_bool().unwrap_or(false) {
        return format!(
            "seal {kind}: not initialised; run `kura operator init --shares 5 --threshold 3`"
        );
    }
    if !s["Sealed"].as_bool().unwrap_or(true) {
        return format!("seal {kind}: unsealed, serving");
    }
    match (s["Progress"].as_u64(), s["Threshold"].as_u64()) {
        (Some(p), Some(t)) => format!(
            "seal {kind}: sealed, {p} of {t} shares given; `kura operator unseal` takes the next"
        ),
        _ => format!("seal {kind}: sealed"),
    }
}

pub async fn status(endpoint: &str) -> Result<(), String> {
    let s = get(endpoint, "/operator/seal-status").await?;
    println!("{}", describe(&s));
    Ok(())
}

pub async fn init(endpoint: &str, shares: u8, threshold: u8) -> Result<(), String> {
    let answer = post(
        endpoint,
        "/operator/init",
        serde_json::json!({"Shares": shares, "Threshold": threshold}),
    )
    .await?;
    let shares: Vec<&str> = answer["Shares"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    for (i, s) in shares.iter().enumerate() {
        let _ = writeln!(out, "Unseal share {}: {s}", i + 1);
    }
    let _ = writeln!(
        out,
        "\nkura is initialised and unsealed. Give each share to a different operator and keep them apart:\n\
         after every restart (or `kura operator seal`) any {threshold} of them unseal it (`kura operator unseal`).\n\
         These shares are shown only now. The root credentials are in {} on the server.",
        answer["RootCredentialsFile"]
            .as_str()
            .unwrap_or("root-credentials")
    );
    Ok(())
}

/// The share from the argument, else read from stdin (prompted, not echoed, on a terminal).
fn read_share(given: Option<String>) -> Result<Zeroizing<String>, String> {
    if let Some(s) = given {
        return Ok(Zeroizing::new(s));
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Unseal share (not shown): ")
            .map(Zeroizing::new)
            .map_err(|e| format!("cannot read the share: {e}"));
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the share from stdin: {e}"))?;
    Ok(Zeroizing::new(line.trim().to_string()))
}

pub async fn unseal(endpoint: &str, share: Option<String>, reset: bool) -> Result<(), String> {
    let body = if reset {
        serde_json::json!({"Reset": true})
    } else {
        let share = read_share(share)?;
        serde_json::json!({"Key": share.as_str()})
    };
    let s = post(endpoint, "/operator/unseal", body).await?;
    println!("{}", describe(&s));
    Ok(())
}

pub async fn seal(endpoint: &str, credentials: Option<&Path>, region: &str) -> Result<(), String> {
    api::call(endpoint, credentials, region, "Kura.Seal", "{}".into()).await?;
    println!(
        "kura is sealed: it answers no request until `kura operator unseal` is given enough shares"
    );
    Ok(())
}
