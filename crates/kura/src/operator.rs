//! `kura operator …`: initialising, unsealing and sealing a node; moving its seal; new root
//! credentials and disabling root.

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
    // AWS_CA_BUNDLE is trusted as by `kura api`, so operators reach a TLS server with a
    // private CA.
    let resp = api::http_client()?
        .post(url(endpoint, path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("cannot reach {endpoint}: {e}"))?;
    api::answer(resp).await
}

async fn get(endpoint: &str, path: &str) -> Result<serde_json::Value, String> {
    let resp = api::http_client()?
        .get(url(endpoint, path))
        .send()
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
    let mut ask = share_asker(Vec::new());
    let done = kura_server::seal::migrate(
        prepared.store.as_ref(),
        &prepared.dir,
        hsm.as_ref(),
        &mut ask,
        target,
    )
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

/// Shares for a command that opens the root key itself: those given as `--share` first, then
/// one per line from stdin (prompted, not echoed, on a terminal) until `threshold`. At the end
/// of stdin it stops; the seal then says how many were missing.
pub fn share_asker(
    given: Vec<String>,
) -> impl FnMut(u8) -> kura_server::seal::Result<Vec<kura_server::seal::Share>> + Send {
    use kura_server::seal::Share;
    let mut given: Vec<Zeroizing<String>> = given.into_iter().map(Zeroizing::new).collect();
    move |threshold: u8| {
        let mut shares = Vec::new();
        for text in given.drain(..) {
            shares.push(Share::parse(text.trim())?);
        }
        for i in shares.len() + 1..=usize::from(threshold) {
            let text = if std::io::stdin().is_terminal() {
                rpassword::prompt_password(format!("Unseal share {i} of {threshold} (not shown): "))
                    .map(Zeroizing::new)
                    .map_err(|e| {
                        kura_server::Error::invalid_parameter(format!("cannot read a share: {e}"))
                    })?
            } else {
                let mut line = Zeroizing::new(String::new());
                let n = std::io::stdin().lock().read_line(&mut line).map_err(|e| {
                    kura_server::Error::invalid_parameter(format!(
                        "cannot read a share from stdin: {e}"
                    ))
                })?;
                if n == 0 {
                    break;
                }
                line
            };
            shares.push(Share::parse(text.trim())?);
        }
        Ok(shares)
    }
}

/// What `kura operator generate-root` is asked to do.
pub struct GenerateRoot<'a> {
    pub endpoint: &'a str,
    pub data_dir: &'a Path,
    pub database_url: Option<&'a str>,
    pub shares: Vec<String>,
    pub hsm: Result<Option<kura_server::seal::HsmConfig>, String>,
    pub print: bool,
    pub keep_old_keys: bool,
}

/// `kura operator generate-root`: opens the root key from the installation's seal (as
/// `audit verify` does, beside the running server), proves it to the server by opening its
/// challenge, and keeps the new root credentials it answers with.
pub async fn generate_root(g: GenerateRoot<'_>) -> Result<(), String> {
    use kura_server::service::root::{RootChallenge, answer_challenge};
    let said = |e: kura_server::Error| e.detail.clone().unwrap_or(e.message);
    let hsm = g.hsm?;
    // The server first: nobody types shares for a server that cannot take the answer.
    let status = get(g.endpoint, "/operator/seal-status")
        .await
        .map_err(|e| {
            format!(
                "{e}; generate-root asks the running server for the new credentials: start it first"
            )
        })?;
    if status["Sealed"].as_bool().unwrap_or(true) {
        return Err(format!(
            "the server at {} is sealed or not initialised: unseal it first (`kura operator unseal`), then generate root credentials",
            g.endpoint
        ));
    }
    let (store, _) = kura_server::init::open_store_beside_server(g.data_dir, g.database_url)
        .await
        .map_err(said)?;
    let mut ask = share_asker(g.shares);
    let opened =
        kura_server::seal::open_root_offline(store.as_ref(), g.data_dir, hsm.as_ref(), &mut ask)
            .await
            .map_err(said)?;
    store.close().await;
    let challenge = post(
        g.endpoint,
        "/operator/generate-root/challenge",
        serde_json::json!({}),
    )
    .await?;
    let challenge: RootChallenge = serde_json::from_value(challenge)
        .map_err(|e| format!("{} did not answer with a challenge: {e}", g.endpoint))?;
    let answer = answer_challenge(&opened.keyring, &challenge).map_err(said)?;
    let done = post(
        g.endpoint,
        "/operator/generate-root",
        serde_json::json!({
            "ChallengeId": challenge.challenge_id,
            "Answer": answer.as_str(),
            "KeepOldKeys": g.keep_old_keys,
        }),
    )
    .await?;
    let (Some(id), Some(secret)) = (
        done["AccessKeyId"].as_str(),
        done["SecretAccessKey"].as_str(),
    ) else {
        return Err(format!(
            "{} did not answer with credentials; see its log",
            g.endpoint
        ));
    };
    let path = g.data_dir.join(kura_server::init::CREDENTIALS_FILE);
    let contents = Zeroizing::new(format!(
        "# kura root credentials. Use with AWS_SHARED_CREDENTIALS_FILE={}\n[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n",
        path.display()
    ));
    let mut out = std::io::stdout().lock();
    if g.print {
        let _ = write!(out, "{}", contents.as_str());
        let _ = writeln!(
            out,
            "# New root credentials (shown once, written nowhere). Opened with the `{}` seal.",
            opened.seal
        );
        if path.exists() && !g.keep_old_keys {
            let _ = writeln!(
                out,
                "# {} holds a key deleted now: replace or remove it.",
                path.display()
            );
        }
    } else {
        let replaced = write_credentials(&path, contents.as_bytes())?;
        let _ = writeln!(
            out,
            "New root credentials (access key {id}) are in {}{}. Opened with the `{}` seal.",
            path.display(),
            if replaced {
                ", in place of the earlier file"
            } else {
                ""
            },
            opened.seal
        );
    }
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let deleted = ids(&done["DeletedAccessKeyIds"]);
    let kept = ids(&done["KeptAccessKeyIds"]);
    let say = |out: &mut std::io::StdoutLock<'_>, line: String| {
        let line = if g.print { format!("# {line}") } else { line };
        let _ = writeln!(out, "{line}");
    };
    if !deleted.is_empty() {
        say(
            &mut out,
            format!(
                "Root's earlier access keys are deleted: {}.",
                deleted.join(", ")
            ),
        );
    }
    if !kept.is_empty() {
        say(
            &mut out,
            format!(
                "Root's earlier access keys still work (--keep-old-keys): {}. Delete them (Kura.DeleteAccessKey) if they may have been seen by anyone else.",
                kept.join(", ")
            ),
        );
    }
    if done["ReEnabled"].as_bool().unwrap_or(false) {
        say(
            &mut out,
            "The root user was disabled and is enabled again.".into(),
        );
    }
    Ok(())
}

/// Writes the credentials file (mode 0600) through a new file renamed over the old one, so
/// a crash leaves the old file or the new one, never half of either. Whether it replaced one.
fn write_credentials(path: &Path, contents: &[u8]) -> Result<bool, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let replaced = path.exists();
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(contents).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "the new root credentials could not be written to {} ({e}); they are valid, so run `kura operator generate-root --print` to see a fresh pair (this one is deleted then)",
            path.display()
        ));
    }
    Ok(replaced)
}

/// `kura operator disable-root` / `enable-root`: signed calls to `Kura.DisableRoot` /
/// `Kura.EnableRoot`.
pub async fn set_root_enabled(
    endpoint: &str,
    credentials: Option<&Path>,
    region: &str,
    enable: bool,
) -> Result<(), String> {
    let op = if enable {
        "Kura.EnableRoot"
    } else {
        "Kura.DisableRoot"
    };
    api::call(endpoint, credentials, region, op, "{}".into()).await?;
    if enable {
        println!("The root user is enabled: its access keys work again.");
    } else {
        println!(
            "The root user is disabled: its access keys are refused. `kura operator enable-root` (an administrator) or `kura operator generate-root` (an operator holding the root key) enables it again."
        );
    }
    Ok(())
}
