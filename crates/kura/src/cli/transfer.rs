//! `kura import` and `kura export`: secrets from and to `.env` files, JSON and YAML maps, and
//! Vault/OpenBao KV v2 exports; idempotent, so an import can be run again after a failure.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value as Json, json};
use zeroize::Zeroizing;

use super::{ClientArgs, Format, emit, pages, wipe};
use crate::client::{Client, ClientError, ConnectOptions};

pub const IMPORT_HELP: &str = "\
A .env file becomes ONE secret holding a JSON object of its keys (--name NAME), or one secret
per key (--each, names PREFIX + KEY with --prefix). A JSON or YAML map {name: value} becomes one
secret per entry (an object or list stored as JSON text); a file of `kura export` without
--with-values (metadata, no values) is refused. A Vault/OpenBao export (the JSON of
`vault kv get -format=json PATH`) becomes one secret named --name or after the file; a map
{name: export} or a list of exports carrying \"path\" gives several.

--from-endpoint URL copies every secret of another AWS Secrets Manager endpoint (real AWS,
another kura), signed with --from-profile (else the usual AWS configuration): each version that
has a label, with its id and labels (AWSCURRENT, AWSPREVIOUS, your own), the description, tags
and resource policy. A version whose id is already there is skipped.

Re-running is safe: a secret with the same value is left alone (no new version), one with a
different value gets a new version, a missing one is created. Failures do not stop the rest;
the exit code is 1 when any failed.

Examples:
  kura import .env --name prod/app              # one JSON secret {\"KEY\": \"value\", ...}
  kura import .env --each --prefix prod/app/    # prod/app/KEY, one secret per key
  kura import secrets.yaml --dry-run            # what would be created or updated
  kura import db.json --format vault --name prod/db
  kura import --from-endpoint https://secretsmanager.eu-west-1.amazonaws.com --from-profile aws";

pub const EXPORT_HELP: &str = "\
Without --with-values only names and metadata are written (descriptions, tags, dates), which
`kura import` refuses; with it the values too, after a warning on stderr, and --output-file is
created with mode 0600. A secret whose value cannot be read (access denied, deleted since the
listing, a binary value) is left out and named on stderr with the reason; the others are still
written, and the exit code is then 1.

Examples:
  kura export --format yaml                             # names and metadata
  kura export --format json --with-values --output-file backup.json
  kura export --format env --with-values --filter name=prod/app/
  kura export --with-values --format json | kura import - --format json --endpoint https://other:8200";

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileFormat {
    /// KEY=VALUE lines (comments, quotes, `export ` prefix).
    Env,
    /// A JSON object {name: value}.
    Json,
    /// A YAML map {name: value}.
    Yaml,
    /// The JSON of `vault kv get -format=json` (Vault or OpenBao KV v2).
    Vault,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The file to import (`-`: stdin, with --format).
    #[arg(required_unless_present = "from_endpoint")]
    file: Option<PathBuf>,
    /// Copy every secret of this AWS Secrets Manager endpoint (real AWS, another kura):
    /// versions with labels, tags, description, resource policy.
    #[arg(long, value_name = "URL", conflicts_with_all = ["file", "format", "name", "each"])]
    from_endpoint: Option<String>,
    /// The profile signing requests to --from-endpoint [default: as for the destination:
    /// AWS_ACCESS_KEY_ID..., AWS_PROFILE or default profile, ./kura-data/root-credentials].
    #[arg(long, value_name = "NAME", requires = "from_endpoint")]
    from_profile: Option<String>,
    /// The region of --from-endpoint [default: as for the destination].
    #[arg(long, value_name = "REGION", requires = "from_endpoint")]
    from_region: Option<String>,
    /// The file's format [default: from its extension: .env, .json, .yaml/.yml].
    #[arg(long, value_enum)]
    format: Option<FileFormat>,
    /// The secret a .env file (or a single Vault export) goes into.
    #[arg(long, value_name = "NAME", conflicts_with = "each")]
    name: Option<String>,
    /// A .env file: one secret per key instead of one JSON secret.
    #[arg(long)]
    each: bool,
    /// Put before every name (e.g. prod/app/).
    #[arg(long, value_name = "PATH", default_value = "")]
    prefix: String,
    /// Print what would be created or updated; change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The format to write.
    #[arg(long, value_enum, default_value = "json")]
    format: FileFormat,
    /// Which secrets: KEY=VALUE as for `kura secret list` (name, description, tag-key,
    /// tag-value, all); repeat for more.
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    filters: Vec<String>,
    /// Write the secrets' values too (a warning goes to stderr).
    #[arg(long)]
    with_values: bool,
    /// Write to this file instead of stdout (mode 0600 when it holds values).
    #[arg(long, value_name = "FILE")]
    output_file: Option<PathBuf>,
}

/// What `kura export` without --with-values writes of each secret (and `Tags`, as a map).
const METADATA: [&str; 6] = [
    "Description",
    "CreatedDate",
    "LastChangedDate",
    "LastRotatedDate",
    "RotationEnabled",
    "DeletedDate",
];

/// An entry of `kura export` without values: an object of metadata with its CreatedDate
/// (which every secret has), rather than a value.
fn is_export_metadata(v: &Json) -> bool {
    v.as_object().is_some_and(|m| {
        m.contains_key("CreatedDate")
            && m.keys()
                .all(|k| k == "Tags" || METADATA.contains(&k.as_str()))
    })
}

/// One secret to import; the value is wiped when dropped.
struct Item {
    name: String,
    value: Zeroizing<String>,
}

/// What happened to one secret.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    Unchanged,
}

pub async fn import(a: ImportArgs, args: &ClientArgs) -> Result<(), ClientError> {
    if let Some(url) = &a.from_endpoint {
        return from_endpoint(url, &a, args).await;
    }
    let out = args.out();
    let Some(file) = &a.file else {
        return Err(ClientError::Usage(
            "give a FILE to import, or --from-endpoint URL".into(),
        ));
    };
    let format = match a.format {
        Some(f) => f,
        None => guess_format(file)?,
    };
    let text = read_input(file)?;
    let items = parse(&text, format, file, &a)?;
    if items.is_empty() {
        return Err(ClientError::Usage(format!(
            "{} holds no secrets to import",
            file.display()
        )));
    }
    let client = Client::connect(&args.connect_options())?;
    let bar = progress(items.len() as u64);
    let mut done: Vec<(String, Outcome)> = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    for item in &items {
        if let Some(b) = &bar {
            b.set_message(item.name.clone());
        }
        match import_one(&client, item, a.dry_run).await {
            Ok(o) => done.push((item.name.clone(), o)),
            Err(e) => {
                let m = super::message(&e);
                let line = format!("kura: {}: {m}", item.name);
                match &bar {
                    Some(b) => b.println(line),
                    None => eprintln!("{line}"),
                }
                failed.push((item.name.clone(), m));
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    summary(&out, a.dry_run, &done, &failed)
}

/// The summary: one line per secret and the counts (or JSON); an error when any failed.
fn summary(
    out: &super::Out,
    dry_run: bool,
    done: &[(String, Outcome)],
    failed: &[(String, String)],
) -> Result<(), ClientError> {
    let count = |o: Outcome| done.iter().filter(|(_, d)| *d == o).count();
    let names = |o: Outcome| -> Vec<&str> {
        done.iter()
            .filter(|(_, d)| *d == o)
            .map(|(n, _)| n.as_str())
            .collect()
    };
    if out.format == Format::Json {
        out.json(&json!({
            "DryRun": dry_run,
            "Created": names(Outcome::Created),
            "Updated": names(Outcome::Updated),
            "Unchanged": names(Outcome::Unchanged),
            "Failed": failed.iter().map(|(n, m)| json!({"Name": n, "Error": m})).collect::<Vec<_>>(),
        }))?;
    } else {
        let would = if dry_run { "would be " } else { "" };
        for (name, o) in done {
            let what = match o {
                Outcome::Created => "created",
                Outcome::Updated => "updated",
                Outcome::Unchanged => "unchanged",
            };
            out.line(&format!("{name}\t{would}{what}"))?;
        }
        let dry = if dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        };
        out.line(&format!(
            "{} created, {} updated, {} unchanged, {} failed{dry}",
            count(Outcome::Created),
            count(Outcome::Updated),
            count(Outcome::Unchanged),
            failed.len()
        ))?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(ClientError::Other(format!(
            "{} of {} secrets failed to import (above); run the import again once fixed: the others are left as they are",
            failed.len(),
            failed.len() + done.len()
        )))
    }
}

/// A progress bar on stderr when it is a terminal.
fn progress(len: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let style = ProgressStyle::with_template("[{bar:30}] {pos}/{len} {msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    Some(ProgressBar::new(len).with_style(style))
}

/// Creates the secret, stores a new version, or leaves it alone when its value is the same.
async fn import_one(client: &Client, item: &Item, dry_run: bool) -> Result<Outcome, ClientError> {
    let call = |op: &'static str, body: Json| async move {
        let r = client.call(&format!("secretsmanager.{op}"), &body).await;
        let mut body = body;
        wipe(&mut body);
        r.map_err(|e| client.hinted(e))
    };
    let current = client
        .call(
            "secretsmanager.GetSecretValue",
            &json!({"SecretId": item.name}),
        )
        .await;
    let exists = match current {
        Ok(mut answer) => {
            let same = answer["SecretString"].as_str() == Some(item.value.as_str());
            wipe(&mut answer);
            if same {
                return Ok(Outcome::Unchanged);
            }
            true
        }
        // No secret, or a secret without a current value: DescribeSecret tells which.
        Err(ClientError::Api { code, .. }) if code == "ResourceNotFoundException" => {
            match client
                .call(
                    "secretsmanager.DescribeSecret",
                    &json!({"SecretId": item.name}),
                )
                .await
            {
                Ok(_) => true,
                Err(ClientError::Api { code, .. }) if code == "ResourceNotFoundException" => false,
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    if exists {
        if !dry_run {
            call(
                "PutSecretValue",
                json!({"SecretId": item.name, "SecretString": item.value.as_str()}),
            )
            .await?;
        }
        Ok(Outcome::Updated)
    } else {
        if !dry_run {
            call(
                "CreateSecret",
                json!({"Name": item.name, "SecretString": item.value.as_str()}),
            )
            .await?;
        }
        Ok(Outcome::Created)
    }
}

/// The error of a call to the source endpoint, said to be the source's.
fn at_source(url: &str) -> impl Fn(ClientError) -> ClientError + '_ {
    move |e| e.prefixed(&format!("{url} answered: "))
}

/// `kura import --from-endpoint URL`: copies every secret of another endpoint.
async fn from_endpoint(url: &str, a: &ImportArgs, args: &ClientArgs) -> Result<(), ClientError> {
    let out = args.out();
    let source = Client::connect(&ConnectOptions {
        endpoint: Some(url.to_string()),
        profile: a.from_profile.clone(),
        region: a.from_region.clone().or_else(|| args.region.clone()),
        credentials_file: None,
    })?;
    let target = Client::connect(&args.connect_options())?;
    if source.settings.endpoint == target.settings.endpoint {
        return Err(ClientError::Usage(format!(
            "--from-endpoint {url} is the destination too: give the destination with --endpoint"
        )));
    }
    let secrets = pages(json!({}), "SecretList", async |b| {
        source.call("secretsmanager.ListSecrets", b).await
    })
    .await
    .map_err(at_source(url))?;
    let bar = progress(secrets.len() as u64);
    let mut done: Vec<(String, Outcome)> = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    for d in &secrets {
        let name = d["Name"].as_str().unwrap_or_default().to_string();
        if let Some(b) = &bar {
            b.set_message(name.clone());
        }
        match copy_one(&source, &target, url, &name, a.prefix.as_str(), a.dry_run).await {
            Ok(o) => done.push((format!("{}{name}", a.prefix), o)),
            Err(e) => {
                let m = super::message(&e);
                let line = format!("kura: {name}: {m}");
                match &bar {
                    Some(b) => b.println(line),
                    None => eprintln!("{line}"),
                }
                failed.push((name, m));
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    summary(&out, a.dry_run, &done, &failed)
}

/// Copies one secret: its description, tags and resource policy, and every version that has
/// a label, with the same version id (ClientRequestToken), so a version already copied is
/// skipped and a re-run changes nothing.
async fn copy_one(
    source: &Client,
    target: &Client,
    url: &str,
    name: &str,
    prefix: &str,
    dry_run: bool,
) -> Result<Outcome, ClientError> {
    let src = at_source(url);
    let call = |c: &'static str, mut body: Json| async move {
        let r = target.call(&format!("secretsmanager.{c}"), &body).await;
        wipe(&mut body);
        r.map_err(|e| target.hinted(e))
    };
    let d = source
        .call("secretsmanager.DescribeSecret", &json!({"SecretId": name}))
        .await
        .map_err(&src)?;
    let policy = source
        .call(
            "secretsmanager.GetResourcePolicy",
            &json!({"SecretId": name}),
        )
        .await
        .map_err(&src)?;
    let policy: Option<Json> = policy["ResourcePolicy"]
        .as_str()
        .and_then(|p| serde_json::from_str(p).ok());
    let dest = format!("{prefix}{name}");
    let existing = match call("DescribeSecret", json!({"SecretId": dest})).await {
        Ok(t) => Some(t),
        Err(ClientError::Api { code, .. }) if code == "ResourceNotFoundException" => None,
        Err(e) => return Err(e),
    };
    let mut changed = existing.is_none();
    let description = d["Description"].as_str().unwrap_or_default();
    let tags: Vec<Json> = d["Tags"].as_array().cloned().unwrap_or_default();
    match &existing {
        None => {
            if !dry_run {
                let mut body = json!({"Name": dest});
                if !description.is_empty() {
                    body["Description"] = json!(description);
                }
                if !tags.is_empty() {
                    body["Tags"] = json!(tags);
                }
                call("CreateSecret", body).await?;
            }
        }
        Some(t) => {
            if t["Description"].as_str().unwrap_or_default() != description {
                changed = true;
                if !dry_run {
                    call(
                        "UpdateSecret",
                        json!({"SecretId": dest, "Description": description}),
                    )
                    .await?;
                }
            }
            let have: Vec<Json> = t["Tags"].as_array().cloned().unwrap_or_default();
            let missing: Vec<Json> = tags.iter().filter(|x| !have.contains(x)).cloned().collect();
            if !missing.is_empty() {
                changed = true;
                if !dry_run {
                    call("TagResource", json!({"SecretId": dest, "Tags": missing})).await?;
                }
            }
        }
    }
    if let Some(p) = &policy {
        let have: Option<Json> = match &existing {
            Some(_) => {
                call("GetResourcePolicy", json!({"SecretId": dest})).await?["ResourcePolicy"]
                    .as_str()
                    .and_then(|p| serde_json::from_str(p).ok())
            }
            None => None,
        };
        if have.as_ref() != Some(p) {
            changed = true;
            if !dry_run {
                call(
                    "PutResourcePolicy",
                    json!({"SecretId": dest, "ResourcePolicy": p.to_string()}),
                )
                .await?;
            }
        }
    }
    // Versions with labels, oldest first, so the source's AWSCURRENT is put last and the one
    // before it becomes AWSPREVIOUS as it did there.
    let present: Vec<String> = existing
        .as_ref()
        .and_then(|t| t["VersionIdsToStages"].as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let mut versions = pages(json!({"SecretId": name}), "Versions", async |b| {
        source.call("secretsmanager.ListSecretVersionIds", b).await
    })
    .await
    .map_err(&src)?;
    versions.retain(|v| v["VersionStages"].as_array().is_some_and(|s| !s.is_empty()));
    let has = |v: &Json, l: &str| {
        v["VersionStages"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == l))
    };
    let rank = |v: &Json| {
        if has(v, "AWSCURRENT") {
            2
        } else if has(v, "AWSPREVIOUS") {
            0
        } else {
            1
        }
    };
    versions.sort_by(|x, y| {
        rank(x).cmp(&rank(y)).then(
            x["CreatedDate"]
                .as_f64()
                .partial_cmp(&y["CreatedDate"].as_f64())
                .unwrap_or(std::cmp::Ordering::Equal),
        )
    });
    for v in &versions {
        let id = v["VersionId"].as_str().unwrap_or_default();
        if present.iter().any(|p| p == id) {
            continue;
        }
        changed = true;
        if dry_run {
            continue;
        }
        // AWSPREVIOUS is not set by hand: it comes from AWSCURRENT moving on.
        let mut stages: Vec<Json> = v["VersionStages"]
            .as_array()
            .map(|s| s.iter().filter(|x| *x != "AWSPREVIOUS").cloned().collect())
            .unwrap_or_default();
        if has(v, "AWSPREVIOUS") {
            stages.push(json!("AWSCURRENT"));
        }
        let mut value = source
            .call(
                "secretsmanager.GetSecretValue",
                &json!({"SecretId": name, "VersionId": id}),
            )
            .await
            .map_err(&src)?;
        let mut body = json!({"SecretId": dest, "ClientRequestToken": id});
        for key in ["SecretString", "SecretBinary"] {
            if let Some(x) = value.as_object_mut().and_then(|m| m.remove(key)) {
                body[key] = x;
            }
        }
        wipe(&mut value);
        if !stages.is_empty() {
            body["VersionStages"] = Json::Array(stages);
        }
        call("PutSecretValue", body).await?;
    }
    // Labels the source moved since a version was copied (a put skips versions already
    // there): each label but AWSPREVIOUS, which follows AWSCURRENT, moved to where it is there.
    if existing.is_some() {
        let now = if dry_run {
            existing.clone().unwrap_or_default()
        } else {
            call("DescribeSecret", json!({"SecretId": dest})).await?
        };
        let holder = |label: &str| -> Option<String> {
            now["VersionIdsToStages"].as_object().and_then(|m| {
                m.iter()
                    .find(|(_, st)| st.as_array().is_some_and(|a| a.iter().any(|x| x == label)))
                    .map(|(id, _)| id.clone())
            })
        };
        let mut moves: Vec<(String, String)> = Vec::new();
        for v in &versions {
            let id = v["VersionId"].as_str().unwrap_or_default();
            for label in v["VersionStages"].as_array().into_iter().flatten() {
                let Some(label) = label.as_str().filter(|l| *l != "AWSPREVIOUS") else {
                    continue;
                };
                // In a dry run, versions not yet copied would come with their labels.
                if dry_run && !present.iter().any(|p| p == id) {
                    continue;
                }
                if holder(label).as_deref() != Some(id) {
                    moves.push((label.to_string(), id.to_string()));
                }
            }
        }
        // AWSCURRENT last, so the version it leaves becomes AWSPREVIOUS after the others moved.
        moves.sort_by_key(|(l, _)| l == "AWSCURRENT");
        for (label, id) in moves {
            changed = true;
            if dry_run {
                continue;
            }
            let mut body = json!({"SecretId": dest, "VersionStage": label, "MoveToVersionId": id});
            if let Some(from) = holder(&label) {
                body["RemoveFromVersionId"] = json!(from);
            }
            call("UpdateSecretVersionStage", body).await?;
        }
    }
    Ok(match (existing.is_none(), changed) {
        (true, _) => Outcome::Created,
        (false, true) => Outcome::Updated,
        (false, false) => Outcome::Unchanged,
    })
}

fn guess_format(file: &Path) -> Result<FileFormat, ClientError> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let ext = file
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "json" => Ok(FileFormat::Json),
        "yaml" | "yml" => Ok(FileFormat::Yaml),
        "env" => Ok(FileFormat::Env),
        _ if name == ".env" || name.starts_with(".env.") => Ok(FileFormat::Env),
        _ => Err(ClientError::Usage(format!(
            "cannot tell the format of {} from its name: give --format env, json, yaml or vault",
            file.display()
        ))),
    }
}

fn read_input(file: &Path) -> Result<Zeroizing<String>, ClientError> {
    let mut text = Zeroizing::new(String::new());
    if file == Path::new("-") {
        use std::io::Read;
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| ClientError::Usage(format!("cannot read stdin: {e}")))?;
    } else {
        *text = std::fs::read_to_string(file)
            .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", file.display())))?;
    }
    Ok(text)
}

fn parse(
    text: &str,
    format: FileFormat,
    file: &Path,
    a: &ImportArgs,
) -> Result<Vec<Item>, ClientError> {
    let usage = |m: String| ClientError::Usage(m);
    let shown = file.display();
    match format {
        FileFormat::Env => {
            let pairs = parse_env(text).map_err(|m| usage(format!("{shown}: {m}")))?;
            if a.each {
                Ok(pairs
                    .into_iter()
                    .map(|(k, v)| Item {
                        name: format!("{}{k}", a.prefix),
                        value: v,
                    })
                    .collect())
            } else {
                let Some(name) = &a.name else {
                    return Err(usage(
                        "a .env file goes into one JSON secret (--name NAME) or one secret per key (--each [--prefix PATH/]): give one".into(),
                    ));
                };
                let mut map = serde_json::Map::new();
                for (k, v) in pairs {
                    map.insert(k, Json::String(v.to_string()));
                }
                let doc = Json::Object(map);
                let value = Zeroizing::new(doc.to_string());
                scrub(doc);
                Ok(vec![Item {
                    name: format!("{}{name}", a.prefix),
                    value,
                }])
            }
        }
        FileFormat::Json | FileFormat::Yaml => {
            let doc: Json = if format == FileFormat::Json {
                // serde_json's message names a line and column, never the text.
                serde_json::from_str(text)
                    .map_err(|e| usage(format!("{shown} is not JSON: {e}")))?
            } else {
                serde_norway::from_str(text)
                    .map_err(|e| usage(format!("{shown} is not YAML: {}", yaml_error(&e))))?
            };
            let Json::Object(map) = doc else {
                scrub(doc);
                return Err(usage(format!(
                    "{shown} is not a map of secret names to values ({{\"prod/db\": \"value\", ...}})"
                )));
            };
            // Metadata stored as values would replace the real ones: refuse the whole file.
            let metadata: Vec<String> = map
                .iter()
                .filter(|(_, v)| is_export_metadata(v))
                .map(|(n, _)| n.clone())
                .collect();
            if let Some(first) = metadata.first() {
                let more = match metadata.len() {
                    1 => String::new(),
                    n => format!(" and {} more", n - 1),
                };
                scrub(Json::Object(map));
                return Err(usage(format!(
                    "{shown} holds secrets' metadata, not their values ({first}{more}): it is the output of `kura export` without --with-values. Nothing was imported; export with --with-values to copy values"
                )));
            }
            Ok(map
                .into_iter()
                .map(|(name, v)| Item {
                    name: format!("{}{name}", a.prefix),
                    value: stored(v),
                })
                .collect())
        }
        FileFormat::Vault => {
            let doc: Json = serde_json::from_str(text)
                .map_err(|e| usage(format!("{shown} is not JSON: {e}")))?;
            vault_items(doc, file, a)
        }
    }
}

/// A YAML error's message without the text it quotes (which may be a value).
fn yaml_error(e: &serde_norway::Error) -> String {
    match e.location() {
        Some(l) => format!("syntax error at line {}, column {}", l.line(), l.column()),
        None => "not a map of names to values".into(),
    }
}

/// A value as stored: a string as it is, anything else as JSON text.
fn stored(v: Json) -> Zeroizing<String> {
    match v {
        Json::String(s) => Zeroizing::new(s),
        other => {
            let text = Zeroizing::new(other.to_string());
            scrub(other);
            text
        }
    }
}

/// Vault exports: one (named --name or after the file), a map {name: export}, or a list of
/// exports each with a "path" (or "name").
fn vault_items(doc: Json, file: &Path, a: &ImportArgs) -> Result<Vec<Item>, ClientError> {
    let usage = |m: String| ClientError::Usage(m);
    let shown = file.display().to_string();
    let one = |name: String, export: Json| -> Result<Item, ClientError> {
        let data = match export {
            Json::Object(mut m) => m
                .get_mut("data")
                .and_then(|d| d.as_object_mut())
                .and_then(|d| d.remove("data")),
            _ => None,
        };
        match data {
            Some(data @ Json::Object(_)) => Ok(Item {
                name: format!("{}{name}", a.prefix),
                value: stored(data),
            }),
            _ => Err(usage(format!(
                "{shown}: the export for {name} has no data.data object: is it the JSON of `vault kv get -format=json` (KV v2)?"
            ))),
        }
    };
    let is_export = |d: &Json| d["data"]["data"].is_object();
    if is_export(&doc) {
        let name = match &a.name {
            Some(n) => n.clone(),
            None => file
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .filter(|s| !s.is_empty() && s != "-")
                .ok_or_else(|| usage("give the secret's name with --name".into()))?,
        };
        return Ok(vec![one(name, doc)?]);
    }
    match doc {
        Json::Array(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let name = e["path"]
                    .as_str()
                    .or_else(|| e["name"].as_str())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        usage(format!(
                            "{shown}: export {} of the list has no \"path\" to name its secret",
                            i + 1
                        ))
                    })?;
                one(name, e)
            })
            .collect(),
        Json::Object(map) => map.into_iter().map(|(n, e)| one(n, e)).collect(),
        other => {
            scrub(other);
            Err(usage(format!(
                "{shown} is not a Vault KV v2 export ({{\"data\": {{\"data\": {{...}}}}}}), nor a map or list of them"
            )))
        }
    }
}

/// Wipes every string of a parsed document as it is dropped.
fn scrub(doc: Json) {
    match doc {
        Json::String(s) => drop(Zeroizing::new(s)),
        Json::Array(items) => items.into_iter().for_each(scrub),
        Json::Object(map) => map.into_iter().for_each(|(k, v)| {
            drop(Zeroizing::new(k));
            scrub(v)
        }),
        _ => {}
    }
}

/// `.env` lines: `KEY=VALUE`, `export KEY=VALUE`, `#` comments, values in double quotes
/// (escapes \n \t \" \\), single quotes (as written) or bare (a ` #` starts a comment).
/// Errors name the line, never its text (it may hold a value).
fn parse_env(text: &str) -> Result<Vec<(String, Zeroizing<String>)>, String> {
    let mut pairs: Vec<(String, Zeroizing<String>)> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let n = i + 1;
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, rest)) = line.split_once('=') else {
            return Err(format!("line {n} is not KEY=VALUE"));
        };
        let key = key.trim_end();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
        {
            return Err(format!(
                "line {n}: the key {key:?} is not a name (letters, digits, _ . - /)"
            ));
        }
        let rest = rest.trim_start();
        let mut value = Zeroizing::new(String::new());
        if let Some(body) = rest.strip_prefix('"') {
            // A double-quoted value may go on over several lines.
            let mut chars: Vec<char> = body.chars().collect();
            let mut closed = false;
            loop {
                let mut it = chars.iter();
                while let Some(c) = it.next() {
                    match c {
                        '\\' => match it.next() {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some('r') => value.push('\r'),
                            Some(o) => value.push(*o),
                            None => value.push('\\'),
                        },
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => value.push(*c),
                    }
                }
                let after: String = it.collect();
                chars.iter_mut().for_each(|c| *c = '\0');
                if closed {
                    let after = after.trim();
                    if !after.is_empty() && !after.starts_with('#') {
                        return Err(format!("line {n}: text after the closing quote of {key}"));
                    }
                    break;
                }
                match lines.next() {
                    Some((_, next)) => {
                        value.push('\n');
                        chars = next.chars().collect();
                    }
                    None => return Err(format!("line {n}: the quote of {key} is not closed")),
                }
            }
        } else if let Some(body) = rest.strip_prefix('\'') {
            let Some((inner, after)) = body.split_once('\'') else {
                return Err(format!("line {n}: the quote of {key} is not closed"));
            };
            let after = after.trim();
            if !after.is_empty() && !after.starts_with('#') {
                return Err(format!("line {n}: text after the closing quote of {key}"));
            }
            value.push_str(inner);
        } else {
            let bare = match rest.find(" #") {
                Some(at) => &rest[..at],
                None => rest,
            };
            value.push_str(bare.trim_end());
        }
        // A key given twice: the last one wins, as in shells.
        pairs.retain(|(k, _)| k != key);
        pairs.push((key.to_string(), value));
    }
    Ok(pairs)
}

/// The connection options of `kura export` (its --output-file is not the output format).
#[derive(Args, Clone)]
pub struct ConnArgs {
    /// The server's URL [default: as for `kura secret`].
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// A profile of ~/.aws/credentials and ~/.aws/config.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// The region to sign for.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

pub async fn export(a: ExportArgs, conn: &ConnArgs) -> Result<(), ClientError> {
    if a.format == FileFormat::Vault {
        return Err(ClientError::Usage(
            "kura export writes env, json or yaml; Vault's format is for import only".into(),
        ));
    }
    let client = Client::connect(&ConnectOptions {
        endpoint: conn.endpoint.clone(),
        profile: conn.profile.clone(),
        region: conn.region.clone(),
        credentials_file: None,
    })?;
    let hint = |e: ClientError| client.hinted(e);
    let body = super::secret::list_body(&a.filters)?;
    let mut secrets = pages(body, "SecretList", async |b| {
        client.call("secretsmanager.ListSecrets", b).await
    })
    .await
    .map_err(hint)?;
    secrets.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    if a.with_values {
        eprintln!(
            "kura: warning: this export holds secret values in clear text; keep it where only you can read it and delete it when done"
        );
    }
    let mut doc = serde_json::Map::new();
    // (name, why): secrets whose value could not be written; the others still are.
    let mut left_out: Vec<(String, String)> = Vec::new();
    let bar = progress(secrets.len() as u64).filter(|_| a.with_values);
    for d in &secrets {
        let name = d["Name"].as_str().unwrap_or_default().to_string();
        if a.with_values {
            let answer = client
                .call("secretsmanager.GetSecretValue", &json!({"SecretId": name}))
                .await;
            if let Some(b) = &bar {
                b.inc(1);
            }
            // Denied, or deleted since the listing: the rest is exported all the same.
            let mut answer = match answer {
                Ok(v) => v,
                Err(e) => {
                    left_out.push((name, super::message(&hint(e))));
                    continue;
                }
            };
            let value = match answer
                .as_object_mut()
                .and_then(|m| m.remove("SecretString"))
            {
                Some(Json::String(s)) => s,
                _ => {
                    wipe(&mut answer);
                    left_out.push((
                        name,
                        "it has a binary value (or none), which these formats cannot hold".into(),
                    ));
                    continue;
                }
            };
            wipe(&mut answer);
            doc.insert(name, Json::String(value));
        } else {
            let mut meta = serde_json::Map::new();
            for key in METADATA {
                if !d[key].is_null() {
                    meta.insert(key.into(), d[key].clone());
                }
            }
            if let Some(tags) = d["Tags"].as_array().filter(|t| !t.is_empty()) {
                let tags: serde_json::Map<String, Json> = tags
                    .iter()
                    .map(|t| {
                        (
                            t["Key"].as_str().unwrap_or_default().to_string(),
                            t["Value"].clone(),
                        )
                    })
                    .collect();
                meta.insert("Tags".into(), Json::Object(tags));
            }
            doc.insert(name, Json::Object(meta));
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let text: Zeroizing<String> = Zeroizing::new(match a.format {
        FileFormat::Json => {
            let mut t = serde_json::to_string_pretty(&doc).unwrap_or_default();
            t.push('\n');
            t
        }
        FileFormat::Yaml => serde_norway::to_string(&doc)
            .map_err(|e| ClientError::Other(format!("cannot write YAML: {e}")))?,
        _ => env_text(&doc, a.with_values),
    });
    scrub_all(&mut doc);
    match &a.output_file {
        None => emit(text.as_bytes())?,
        Some(path) => write_file(path, text.as_bytes(), a.with_values)?,
    }
    if left_out.is_empty() {
        return Ok(());
    }
    for (name, why) in &left_out {
        eprintln!("kura: {name}: left out: {why}");
    }
    Err(ClientError::Other(format!(
        "{} of {} secrets were left out of the export (listed above); it holds the others",
        left_out.len(),
        secrets.len()
    )))
}

fn scrub_all(doc: &mut serde_json::Map<String, Json>) {
    scrub(Json::Object(std::mem::take(doc)));
}

/// `.env` text: `NAME="value"` lines (values quoted and escaped), or without values one
/// `# NAME` comment a secret, so the file imports as nothing.
fn env_text(doc: &serde_json::Map<String, Json>, with_values: bool) -> String {
    let mut text = String::new();
    for (name, v) in doc {
        if with_values {
            let value = v.as_str().unwrap_or_default();
            let mut quoted = String::with_capacity(value.len() + 2);
            for c in value.chars() {
                match c {
                    '\\' => quoted.push_str("\\\\"),
                    '"' => quoted.push_str("\\\""),
                    '\n' => quoted.push_str("\\n"),
                    '\r' => quoted.push_str("\\r"),
                    '\t' => quoted.push_str("\\t"),
                    c => quoted.push(c),
                }
            }
            text.push_str(&format!("{name}=\"{quoted}\"\n"));
            drop(Zeroizing::new(quoted));
        } else {
            let desc = v["Description"].as_str().unwrap_or_default();
            if desc.is_empty() {
                text.push_str(&format!("# {name}\n"));
            } else {
                text.push_str(&format!("# {name}: {}\n", desc.replace('\n', " ")));
            }
        }
    }
    text
}

/// Writes the export; a file holding values is made readable by its owner only, before
/// anything is written to it.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), ClientError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail =
        |e: std::io::Error| ClientError::Usage(format!("cannot write {}: {e}", path.display()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if secret {
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(fail)?;
    if secret {
        // An existing file keeps its mode through open(): narrow it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
    }
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(text: &str) -> Vec<(String, String)> {
        parse_env(text)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect()
    }

    #[test]
    fn env_files_as_people_write_them() {
        let got = env(concat!(
            "# a comment\n",
            "\n",
            "PLAIN=abc\n",
            "export EXPORTED = x y  # trailing comment\n",
            "DQ=\"a \\\"b\\\" \\n c # not a comment\"\n",
            "SQ='lit\\n $x' # comment\n",
            "MULTI=\"one\n",
            "two\"\n",
            "EMPTY=\n",
            "PLAIN=again\n",
        ));
        assert_eq!(
            got,
            vec![
                ("EXPORTED".into(), "x y".into()),
                ("DQ".into(), "a \"b\" \n c # not a comment".into()),
                ("SQ".into(), "lit\\n $x".into()),
                ("MULTI".into(), "one\ntwo".into()),
                ("EMPTY".into(), "".into()),
                ("PLAIN".into(), "again".into()),
            ]
        );
    }

    #[test]
    fn env_errors_name_the_line_not_the_value() {
        let e = parse_env("A=1\nsecret-without-equals\n").unwrap_err();
        assert_eq!(e, "line 2 is not KEY=VALUE");
        let e = parse_env("A=\"hunter2\n").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn env_export_reads_back() {
        let mut doc = serde_json::Map::new();
        doc.insert("a/b".into(), json!("x \"y\"\n\\z"));
        let text = env_text(&doc, true);
        assert_eq!(env(&text), vec![("a/b".into(), "x \"y\"\n\\z".into())]);
    }
}
