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
        return match s["RootKeyGeneration"].as_i64() {
            Some(g) => format!("seal {kind}: unsealed, serving; root key generation {g}"),
            None => format!("seal {kind}: unsealed, serving"),
        };
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

pub async fn rotate_root_key(
    endpoint: &str,
    credentials: Option<&Path>,
    region: &str,
) -> Result<(), String> {
    let answer = api::call(
        endpoint,
        credentials,
        region,
        "Kura.RotateRootKey",
        "{}".into(),
    )
    .await?;
    let seal = answer["SealType"].as_str().unwrap_or("?");
    let keys = answer["KeysRewrapped"].as_i64().unwrap_or(0);
    let generation = answer["RootKeyGeneration"].as_i64().unwrap_or(0);
    println!(
        "Rotated the root key: generation {generation}, {keys} key-encryption key(s) re-wrapped, kept by the {seal} seal."
    );
    let after = match seal {
        "file" => {
            "root.key in the server's data directory holds the new key now: replace your backup of it. Other nodes of a cluster follow within seconds and rewrite their own root.key."
        }
        "shamir" => {
            "The same unseal shares open it. Other nodes of a cluster follow within seconds."
        }
        _ => "Other nodes of a cluster follow within seconds.",
    };
    println!("{after}");
    Ok(())
}

/// `kura operator migrate-seal`, against the data directory (and database), servers stopped.
pub async fn migrate_seal(
    data_dir: &Path,
    database_url: Option<&str>,
    to: &str,
    shares: u8,
    threshold: u8,
    hsm: Result<Option<kura_server::seal::HsmConfig>, String>,
) -> Result<(), String> {
    use kura_server::seal::SealTarget;
    let hsm = hsm?;
    let target = match to {
        "file" => SealTarget::File,
        "shamir" => SealTarget::Shamir { shares, threshold },
        _ => SealTarget::Pkcs11(hsm.clone().ok_or(
            "--to pkcs11 needs the HSM: --pkcs11-module, --pkcs11-slot or --pkcs11-token-label, and KURA_PKCS11_PIN",
        )?),
    };
    let said = |e: kura_server::Error| e.detail.clone().unwrap_or(e.message);
    let prepared = kura_server::init::prepare(data_dir, database_url)
        .await
        .map_err(said)?;
    let mut ask = |threshold: u8| -> kura_server::seal::Result<Vec<kura_server::seal::Share>> {
        let mut given = Vec::new();
        for i in 1..=threshold {
            let text = if std::io::stdin().is_terminal() {
                rpassword::prompt_password(format!("Unseal share {i} of {threshold} (not shown): "))
                    .map(Zeroizing::new)
                    .map_err(|e| {
                        kura_server::Error::invalid_parameter(format!("cannot read a share: {e}"))
                    })?
            } else {
                let mut line = Zeroizing::new(String::new());
                std::io::stdin().lock().read_line(&mut line).map_err(|e| {
                    kura_server::Error::invalid_parameter(format!(
                        "cannot read a share from stdin: {e}"
                    ))
                })?;
                line
            };
            given.push(kura_server::seal::Share::parse(text.trim())?);
        }
        Ok(given)
    };
    let done = kura_server::seal::migrate(&prepared, hsm.as_ref(), &mut ask, target)
        .await
        .map_err(said)?;
    let mut out = std::io::stdout().lock();
    for (i, s) in done.shares.iter().enumerate() {
        let _ = writeln!(out, "Unseal share {}: {}", i + 1, s.as_str());
    }
    let _ = writeln!(out, "The seal moved from {} to {}.", done.from, done.to);
    match (done.to, &done.root_key_file) {
        ("file", Some(path)) => {
            let _ = writeln!(
                out,
                "The root key is in {} now: back it up, and copy it to every node of a cluster.",
                path.display()
            );
        }
        (_, Some(path)) => {
            let _ = writeln!(
                out,
                "{} was removed; remove every other copy (backups, other nodes' data directories) too.",
                path.display()
            );
        }
        _ => {}
    }
    if done.to == "shamir" {
        let _ = writeln!(
            out,
            "Every start is sealed now: any {threshold} of these shares unseal it (`kura operator unseal`)."
        );
    }
    Ok(())
}
