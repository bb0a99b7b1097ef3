//! `kura secret …`: the AWS Secrets Manager operations, named after what they do.

use std::collections::BTreeMap;

use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::{Value as Json, json};

use super::{ClientArgs, Format, Out, Value, date, pages, print_raw, read_value, wipe};
use crate::client::{Client, ClientError};

const VALUE_HELP: &str = "The value: the text itself, @FILE (a file's contents), or - (stdin). \
Left out: asked for without echo on a terminal, else read from stdin. Stored exactly as given \
(a file's or stdin's final newline too); a value starting with @ goes on stdin";

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Create a secret, with its first value.
    #[command(
        after_help = "Examples:\n  kura secret create prod/db '{\"username\": \"app\", \"password\": \"s3cret\"}'\n  kura secret create prod/tls-key @server.key --description 'TLS key' --tag team=web\n  kura secret create prod/api-token          # asks for the value, not echoed"
    )]
    Create(CreateArgs),
    /// Print a secret's value (AWSCURRENT, or --stage/--version).
    #[command(
        after_help = "Examples:\n  kura secret get prod/db\n  kura secret get prod/db --field password\n  kura secret get prod/db --stage AWSPREVIOUS\n  kura secret get prod/cert > cert.der       # a binary value, as bytes\n  kura secret get prod/db --output json      # the whole answer, value included"
    )]
    Get(GetArgs),
    /// Store a new value; it becomes AWSCURRENT (the one it replaces, AWSPREVIOUS).
    #[command(
        after_help = "Examples:\n  kura secret put prod/db @db.json\n  printf %s \"$TOKEN\" | kura secret put prod/api-token -\n  kura secret put prod/db @next.json --stage AWSPENDING"
    )]
    Put(PutArgs),
    /// Change a secret's description or key, or store a new value.
    #[command(
        after_help = "Example:\n  kura secret update prod/db --description 'app database (primary)'"
    )]
    Update(UpdateArgs),
    /// Show a secret's details: dates, rotation, tags, versions and their labels.
    #[command(after_help = "Example:\n  kura secret describe prod/db")]
    Describe(NameArg),
    /// List secrets (every page), optionally filtered.
    #[command(
        after_help = "Examples:\n  kura secret list\n  kura secret list --filter name=prod/ --filter tag-key=team\n  kura secret list --include-planned-deletion --sort-by created-date --sort desc\n  kura secret list --output text | cut -f1    # names only"
    )]
    List(ListArgs),
    /// List a secret's versions and their stage labels.
    #[command(after_help = "Example:\n  kura secret versions prod/db --include-deprecated")]
    Versions(VersionsArgs),
    /// Move a stage label to a version (or take it off one).
    #[command(
        after_help = "Examples:\n  kura secret label prod/db --stage AWSCURRENT --to 3f1c…   # roll back or forward\n  kura secret label prod/db --stage blue --from 3f1c…       # take a label off"
    )]
    Label(LabelArgs),
    /// Add or change tags.
    #[command(after_help = "Example:\n  kura secret tag prod/db team=billing env=prod")]
    Tag(TagArgs),
    /// Remove tags.
    #[command(after_help = "Example:\n  kura secret untag prod/db env")]
    Untag(UntagArgs),
    /// Delete a secret after a recovery window (30 days unless told), or at once with --force.
    #[command(
        after_help = "Examples:\n  kura secret delete prod/old-db                          # restorable for 30 days\n  kura secret delete prod/old-db --recovery-window-days 7\n  kura secret delete scratch/tmp --force                  # no recovery"
    )]
    Delete(DeleteArgs),
    /// Cancel a planned deletion.
    #[command(after_help = "Example:\n  kura secret restore prod/old-db")]
    Restore(NameArg),
    /// Rotate a secret now, and set its rotation function and schedule.
    #[command(
        after_help = "Examples:\n  kura secret rotate prod/db --function kura-password --schedule 'rate(30 days)'\n  kura secret rotate prod/db                 # once more, as configured\n  kura secret rotate prod/db --every-days 7 --no-rotate-now"
    )]
    Rotate(RotateArgs),
    /// Turn a secret's rotation off.
    #[command(after_help = "Example:\n  kura secret cancel-rotation prod/db")]
    CancelRotation(NameArg),
    /// Set when a secret expires (notification targets hear of it before), or clear it.
    #[command(
        after_help = "Examples:\n  kura secret expire partners/api-key 2030-06-30T00:00:00Z\n  kura secret expire partners/api-key 1909008000   # epoch seconds\n  kura secret expire partners/api-key --clear"
    )]
    Expire(ExpireArgs),
}

#[derive(Args)]
pub struct ExpireArgs {
    /// The secret's name or ARN.
    name: String,
    /// When: RFC 3339 (2030-06-30T00:00:00Z) or epoch seconds.
    #[arg(required_unless_present = "clear", value_name = "TIME")]
    at: Option<String>,
    /// Remove the expiration.
    #[arg(long, conflicts_with = "at")]
    clear: bool,
}

#[derive(Args)]
pub struct NameArg {
    /// The secret's name or ARN.
    name: String,
}

#[derive(Args)]
pub struct CreateArgs {
    /// The secret's name (e.g. prod/db).
    name: String,
    #[arg(help = VALUE_HELP)]
    value: Option<String>,
    /// Store the value as bytes (SecretBinary) instead of text.
    #[arg(long)]
    binary: bool,
    /// Create the secret without a value (add one later with `kura secret put`).
    #[arg(long, conflicts_with_all = ["value", "binary"])]
    no_value: bool,
    #[arg(long)]
    description: Option<String>,
    /// The key protecting its values: id, ARN or alias [default: alias/kura/default].
    #[arg(long, value_name = "KEY")]
    kms_key_id: Option<String>,
    /// A tag KEY=VALUE; repeat it for more.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    tags: Vec<String>,
}

#[derive(Args)]
pub struct GetArgs {
    /// The secret's name or ARN.
    name: String,
    /// Print one field of a JSON value (a string as it is, anything else as JSON).
    #[arg(long, value_name = "FIELD")]
    field: Option<String>,
    /// The version with this label.
    #[arg(long, value_name = "LABEL")]
    stage: Option<String>,
    /// The version with this id.
    #[arg(long, value_name = "VERSION_ID")]
    version: Option<String>,
}

#[derive(Args)]
pub struct PutArgs {
    /// The secret's name or ARN.
    name: String,
    #[arg(help = VALUE_HELP)]
    value: Option<String>,
    /// Store the value as bytes (SecretBinary) instead of text.
    #[arg(long)]
    binary: bool,
    /// Label the new version with this (repeat it for more) instead of AWSCURRENT.
    #[arg(long = "stage", value_name = "LABEL")]
    stages: Vec<String>,
}

#[derive(Args)]
pub struct UpdateArgs {
    /// The secret's name or ARN.
    name: String,
    #[arg(long)]
    description: Option<String>,
    /// The key protecting new values: id, ARN or alias.
    #[arg(long, value_name = "KEY")]
    kms_key_id: Option<String>,
    /// A new value (becomes AWSCURRENT): the text, @FILE, or - (stdin).
    #[arg(long, value_name = "VALUE")]
    value: Option<String>,
    /// Store --value as bytes (SecretBinary).
    #[arg(long, requires = "value")]
    binary: bool,
}

#[derive(Args)]
pub struct ListArgs {
    /// KEY=VALUE, KEY one of name, description, tag-key, tag-value, owning-service,
    /// primary-region, all; a value is a prefix, `!` before it negates. Repeat for more
    /// (a secret must match every key, and any value of a key).
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    filters: Vec<String>,
    /// Include secrets whose deletion is planned.
    #[arg(long)]
    include_planned_deletion: bool,
    /// asc or desc.
    #[arg(long, value_parser = ["asc", "desc"])]
    sort: Option<String>,
    /// name, created-date, last-changed-date or last-accessed-date.
    #[arg(long, value_parser = ["name", "created-date", "last-changed-date", "last-accessed-date"])]
    sort_by: Option<String>,
    /// Secrets asked for per request (every page is fetched either way).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    page_size: Option<u32>,
}

#[derive(Args)]
pub struct VersionsArgs {
    /// The secret's name or ARN.
    name: String,
    /// Include versions without a label (kept until the secret has more than 100).
    #[arg(long)]
    include_deprecated: bool,
    /// Versions asked for per request (every page is fetched either way).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    page_size: Option<u32>,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("target").required(true).multiple(true).args(["to", "from"]))]
pub struct LabelArgs {
    /// The secret's name or ARN.
    name: String,
    /// The label to move (AWSCURRENT, AWSPENDING, or one of your own).
    #[arg(long, value_name = "LABEL")]
    stage: String,
    /// The version that gets the label.
    #[arg(long, value_name = "VERSION_ID")]
    to: Option<String>,
    /// The version that has it now (required when it is on one and --to is given; alone, it
    /// takes the label off).
    #[arg(long, value_name = "VERSION_ID")]
    from: Option<String>,
}

#[derive(Args)]
pub struct TagArgs {
    /// The secret's name or ARN.
    name: String,
    /// KEY=VALUE pairs.
    #[arg(required = true, value_name = "KEY=VALUE")]
    tags: Vec<String>,
}

#[derive(Args)]
pub struct UntagArgs {
    /// The secret's name or ARN.
    name: String,
    /// Tag keys to remove.
    #[arg(required = true, value_name = "KEY")]
    keys: Vec<String>,
}

#[derive(Args)]
pub struct DeleteArgs {
    /// The secret's name or ARN.
    name: String,
    /// Days (7 to 30) during which `kura secret restore` can undo the deletion [default: 30].
    #[arg(long, value_name = "N", conflicts_with = "force")]
    recovery_window_days: Option<u32>,
    /// Delete at once, with no recovery.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
pub struct RotateArgs {
    /// The secret's name or ARN.
    name: String,
    /// The rotation function: kura-password (built in), or one made with `kura function
    /// create` (`kura function list` shows them).
    #[arg(long, value_name = "NAME")]
    function: Option<String>,
    /// When to rotate: rate(30 days), rate(12 hours), or cron(0 4 1 * ? *).
    #[arg(long, value_name = "EXPRESSION", conflicts_with = "every_days")]
    schedule: Option<String>,
    /// Rotate every N days.
    #[arg(long, value_name = "N")]
    every_days: Option<u32>,
    /// How long the rotation window stays open, e.g. 4h.
    #[arg(long, value_name = "DURATION")]
    window: Option<String>,
    /// Only set the function and schedule; do not rotate now.
    #[arg(long)]
    no_rotate_now: bool,
}

/// Runs one `kura secret` command.
pub async fn run(command: SecretCommand, args: &ClientArgs) -> Result<(), ClientError> {
    let out = args.out();
    let client = Client::connect(&args.connect_options())?;
    let s = Secrets { client, out };
    match command {
        SecretCommand::Create(a) => s.create(a).await,
        SecretCommand::Get(a) => s.get(a).await,
        SecretCommand::Put(a) => s.put(a).await,
        SecretCommand::Update(a) => s.update(a).await,
        SecretCommand::Describe(a) => s.describe(&a.name).await,
        SecretCommand::List(a) => s.list(a).await,
        SecretCommand::Versions(a) => s.versions(a).await,
        SecretCommand::Label(a) => s.label(a).await,
        SecretCommand::Tag(a) => s.tag(a).await,
        SecretCommand::Untag(a) => s.untag(a).await,
        SecretCommand::Delete(a) => s.delete(a).await,
        SecretCommand::Restore(a) => s.restore(&a.name).await,
        SecretCommand::Rotate(a) => s.rotate(a).await,
        SecretCommand::CancelRotation(a) => s.cancel_rotation(&a.name).await,
        SecretCommand::Expire(a) => s.expire(a).await,
    }
}

struct Secrets {
    client: Client,
    out: Out,
}

/// `KEY=VALUE` split at the first `=`.
fn key_value(text: &str, what: &str) -> Result<(String, String), ClientError> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| ClientError::Usage(format!("{what} {text:?} is not KEY=VALUE")))
}

/// A ListSecrets request for `kura secret list --filter` (and `kura export --filter`):
/// KEY=VALUE filters, the values of one key together, as ListSecrets matches any value of a
/// key and every key.
pub fn list_body(filters: &[String]) -> Result<Json, ClientError> {
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    for f in filters {
        let (k, v) = key_value(f, "the filter")?;
        match keys.iter_mut().find(|(key, _)| *key == k) {
            Some((_, values)) => values.push(v),
            None => keys.push((k, vec![v])),
        }
    }
    let mut body = json!({});
    if !keys.is_empty() {
        body["Filters"] = keys
            .iter()
            .map(|(k, v)| json!({"Key": k, "Values": v}))
            .collect();
    }
    Ok(body)
}

fn tags_json(tags: &[String]) -> Result<Vec<Json>, ClientError> {
    tags.iter()
        .map(|t| key_value(t, "the tag").map(|(k, v)| json!({"Key": k, "Value": v})))
        .collect()
}

/// Puts a value into a request body as SecretString or SecretBinary.
fn set_value(body: &mut Json, value: &Value) {
    match value {
        Value::Text(t) => body["SecretString"] = Json::String(t.to_string()),
        Value::Binary(b) => {
            body["SecretBinary"] =
                Json::String(base64::engine::general_purpose::STANDARD.encode(b.as_slice()))
        }
    }
}

fn s(v: &Json) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// One field of a JSON value: a string as it is, anything else as JSON.
fn field_of(
    bytes: &[u8],
    field: &str,
    name: &str,
) -> Result<zeroize::Zeroizing<Vec<u8>>, ClientError> {
    let usage = |m: String| ClientError::Usage(m);
    let text = std::str::from_utf8(bytes)
        .map_err(|_| usage(format!("{name} is binary: --field needs a JSON value")))?;
    let doc: Json = serde_json::from_str(text).map_err(|_| {
        usage(format!(
            "the value of {name} is not JSON, so it has no field {field}; leave --field out"
        ))
    })?;
    let found = match doc.as_object() {
        None => Err(usage(format!(
            "the value of {name} is not a JSON object, so it has no field {field}"
        ))),
        Some(obj) => match obj.get(field) {
            Some(Json::String(v)) => Ok(zeroize::Zeroizing::new(v.as_bytes().to_vec())),
            Some(other) => Ok(zeroize::Zeroizing::new(other.to_string().into_bytes())),
            None => {
                // The names only: an error never shows a value.
                let names: Vec<&str> = obj.keys().map(String::as_str).collect();
                Err(usage(format!(
                    "the value of {name} has no field {field:?}; its fields: {}",
                    names.join(", ")
                )))
            }
        },
    };
    scrub(doc);
    found
}

/// Wipes every string of a JSON document (a parsed value) as it is dropped.
fn scrub(doc: Json) {
    match doc {
        Json::String(s) => drop(zeroize::Zeroizing::new(s)),
        Json::Array(items) => items.into_iter().for_each(scrub),
        Json::Object(map) => map.into_iter().for_each(|(k, v)| {
            drop(zeroize::Zeroizing::new(k));
            scrub(v)
        }),
        _ => {}
    }
}

/// `-` for a field that has no value, so a table has no blank cells.
fn or_dash(text: String) -> String {
    if text.is_empty() { "-".into() } else { text }
}

/// Versions' stage labels, as `describe` and `versions` show them.
fn stages(v: &Json) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// A secret's rotation in a few words: `off`, or its schedule and function.
fn rotation(d: &Json) -> String {
    if d["RotationEnabled"].as_bool() != Some(true) {
        return "off".into();
    }
    let rules = &d["RotationRules"];
    let when = match (
        rules["ScheduleExpression"].as_str(),
        rules["AutomaticallyAfterDays"].as_i64(),
    ) {
        (Some(e), _) => e.to_string(),
        (None, Some(n)) => format!("every {n} days"),
        (None, None) => "on demand".into(),
    };
    match d["RotationLambdaARN"].as_str() {
        Some(f) => format!("{when} ({})", f.rsplit(':').next().unwrap_or(f)),
        None => when,
    }
}

impl Secrets {
    async fn call(&self, op: &str, body: &Json, id: &str) -> Result<Json, ClientError> {
        self.client
            .call(&format!("secretsmanager.{op}"), body)
            .await
            .map_err(|e| self.explain(e, id))
    }

    /// The server's error, with what to do about it.
    fn explain(&self, e: ClientError, id: &str) -> ClientError {
        e.explained(|code, message| match code {
            "ResourceNotFoundException"
                if message == "Secrets Manager can't find the specified secret." =>
            {
                format!(
                    "no secret named {id}; `kura secret list` shows the names \
                     (`--include-planned-deletion` those being deleted)"
                )
            }
            "ResourceNotFoundException" => format!(
                "{} ({id}); `kura secret versions {id}` shows its versions and labels",
                message.trim_end_matches('.')
            ),
            "ResourceExistsException" => format!(
                "a secret named {id} exists already; `kura secret put {id}` stores a new value"
            ),
            "InvalidRequestException" if message.contains("has no rotation function") => format!(
                "{id} has no rotation function yet: `kura secret rotate {id} --function kura-password` \
                 (built in), or a function of `kura function list`"
            ),
            "InvalidRequestException" if message.contains("marked for deletion") => {
                format!("{id} is to be deleted: `kura secret restore {id}` first ({message})")
            }
            "InvalidRequestException" if message.contains("scheduled for deletion") => format!(
                "a secret named {id} is to be deleted: `kura secret restore {id}`, or wait until it is gone ({message})"
            ),
            c => self.client.general_hint(c, &message).unwrap_or(message),
        })
    }

    /// A one-line report of a change (table and text), or the answer (JSON).
    fn done(&self, answer: &Json, line: String) -> Result<(), ClientError> {
        match self.out.format {
            Format::Json => self.out.json(answer),
            _ => self.out.line(&line),
        }
    }

    async fn create(&self, a: CreateArgs) -> Result<(), ClientError> {
        let mut body = json!({"Name": a.name});
        if let Some(d) = &a.description {
            body["Description"] = json!(d);
        }
        if let Some(k) = &a.kms_key_id {
            body["KmsKeyId"] = json!(k);
        }
        if !a.tags.is_empty() {
            body["Tags"] = Json::Array(tags_json(&a.tags)?);
        }
        if !a.no_value {
            let value = read_value(a.value.as_deref(), a.binary, &a.name)?;
            set_value(&mut body, &value);
        }
        let answer = self.call("CreateSecret", &body, &a.name).await;
        wipe(&mut body);
        let answer = answer?;
        let line = match answer["VersionId"].as_str() {
            Some(v) => format!("created {} (version {v})", a.name),
            None => format!("created {} (no value yet)", a.name),
        };
        self.done(&answer, line)
    }

    async fn get(&self, a: GetArgs) -> Result<(), ClientError> {
        let mut body = json!({"SecretId": a.name});
        if let Some(st) = &a.stage {
            body["VersionStage"] = json!(st);
        }
        if let Some(v) = &a.version {
            body["VersionId"] = json!(v);
        }
        let mut answer = self.call("GetSecretValue", &body, &a.name).await?;
        let printed = self.print_value(&a, &answer);
        wipe(&mut answer);
        printed
    }

    fn print_value(&self, a: &GetArgs, answer: &Json) -> Result<(), ClientError> {
        let bytes: zeroize::Zeroizing<Vec<u8>> = if let Some(text) = answer["SecretString"].as_str()
        {
            zeroize::Zeroizing::new(text.as_bytes().to_vec())
        } else if let Some(b64) = answer["SecretBinary"].as_str() {
            zeroize::Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| ClientError::Other(format!("the server sent bad base64: {e}")))?,
            )
        } else {
            return Err(ClientError::Other(format!(
                "the server's answer for {} holds no value",
                a.name
            )));
        };
        let bytes = match &a.field {
            None => bytes,
            Some(field) => field_of(&bytes, field, &a.name)?,
        };
        match (self.out.explicit, self.out.format) {
            (true, Format::Json) if a.field.is_some() => {
                // The field asked for, not the whole value.
                let mut shown = answer.clone();
                wipe(&mut shown);
                shown["Field"] = json!(a.field);
                shown["FieldValue"] = json!(String::from_utf8_lossy(&bytes));
                let printed = self.out.json(&shown);
                scrub(shown);
                printed
            }
            (true, Format::Json) => self.out.json(answer),
            (true, Format::Table) => {
                let value = match std::str::from_utf8(&bytes) {
                    Ok(t) => t.to_string(),
                    Err(_) => format!(
                        "({} bytes of binary; --output text prints them)",
                        bytes.len()
                    ),
                };
                let mut pairs = [
                    ("Name", s(&answer["Name"])),
                    ("Version", s(&answer["VersionId"])),
                    ("Stages", stages(&answer["VersionStages"])),
                    ("Created", date(&answer["CreatedDate"])),
                    ("Value", value),
                ];
                let printed = self.out.pairs(&pairs);
                drop(zeroize::Zeroizing::new(std::mem::take(&mut pairs[4].1)));
                printed
            }
            _ => print_raw(&bytes, self.out.tty),
        }
    }

    async fn put(&self, a: PutArgs) -> Result<(), ClientError> {
        let value = read_value(a.value.as_deref(), a.binary, &a.name)?;
        let mut body = json!({"SecretId": a.name});
        set_value(&mut body, &value);
        if !a.stages.is_empty() {
            body["VersionStages"] = json!(a.stages);
        }
        let answer = self.call("PutSecretValue", &body, &a.name).await;
        wipe(&mut body);
        let answer = answer?;
        let line = format!(
            "stored a new version of {}: {} ({})",
            a.name,
            s(&answer["VersionId"]),
            stages(&answer["VersionStages"])
        );
        self.done(&answer, line)
    }

    async fn update(&self, a: UpdateArgs) -> Result<(), ClientError> {
        if a.description.is_none() && a.kms_key_id.is_none() && a.value.is_none() {
            return Err(ClientError::Usage(
                "nothing to change: give --description, --kms-key-id or --value".into(),
            ));
        }
        let mut body = json!({"SecretId": a.name});
        if let Some(d) = &a.description {
            body["Description"] = json!(d);
        }
        if let Some(k) = &a.kms_key_id {
            body["KmsKeyId"] = json!(k);
        }
        if let Some(v) = &a.value {
            let value = read_value(Some(v), a.binary, &a.name)?;
            set_value(&mut body, &value);
        }
        let answer = self.call("UpdateSecret", &body, &a.name).await;
        wipe(&mut body);
        let answer = answer?;
        let line = match answer["VersionId"].as_str() {
            Some(v) => format!("updated {} (new version {v})", a.name),
            None => format!("updated {}", a.name),
        };
        self.done(&answer, line)
    }

    async fn describe(&self, name: &str) -> Result<(), ClientError> {
        let d = self
            .call("DescribeSecret", &json!({"SecretId": name}), name)
            .await?;
        if self.out.format == Format::Json {
            return self.out.json(&d);
        }
        let mut pairs: Vec<(&str, String)> = vec![
            ("Name", s(&d["Name"])),
            ("ARN", s(&d["ARN"])),
            ("Description", or_dash(s(&d["Description"]))),
            (
                "Key",
                d["KmsKeyId"]
                    .as_str()
                    .unwrap_or("alias/kura/default")
                    .to_string(),
            ),
            ("Created", date(&d["CreatedDate"])),
            ("Last changed", or_dash(date(&d["LastChangedDate"]))),
            ("Last accessed", or_dash(date(&d["LastAccessedDate"]))),
            ("Rotation", rotation(&d)),
        ];
        if !d["LastRotatedDate"].is_null() {
            pairs.push(("Last rotated", date(&d["LastRotatedDate"])));
        }
        if !d["NextRotationDate"].is_null() {
            pairs.push(("Next rotation", date(&d["NextRotationDate"])));
        }
        if let Some(state) = d["KuraRotation"]["State"].as_str() {
            let mut text = state.to_string();
            if let Some(err) = d["KuraRotation"]["LastError"].as_str() {
                text.push_str(&format!(": {err}"));
            }
            pairs.push(("Rotation state", text));
        }
        if !d["KuraExpirationDate"].is_null() {
            pairs.push(("Expires", date(&d["KuraExpirationDate"])));
        }
        if let Some(state) = d["KuraState"].as_str() {
            pairs.push(("State", state.to_string()));
        }
        if !d["DeletedDate"].is_null() {
            pairs.push(("Deletion planned", date(&d["DeletedDate"])));
        }
        let tags: Vec<String> = d["Tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| format!("{}={}", s(&t["Key"]), s(&t["Value"])))
                    .collect()
            })
            .unwrap_or_default();
        pairs.push(("Tags", or_dash(tags.join(", "))));
        let versions: BTreeMap<String, String> = d["VersionIdsToStages"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), stages(v))).collect())
            .unwrap_or_default();
        let versions: Vec<String> = versions
            .iter()
            .map(|(id, st)| format!("{id} {st}"))
            .collect();
        pairs.push(("Versions", versions.join("\n")));
        self.out.pairs(&pairs)
    }

    async fn list(&self, a: ListArgs) -> Result<(), ClientError> {
        let mut body = list_body(&a.filters)?;
        if a.include_planned_deletion {
            body["IncludePlannedDeletion"] = json!(true);
        }
        if let Some(o) = &a.sort {
            body["SortOrder"] = json!(o);
        }
        if let Some(b) = &a.sort_by {
            body["SortBy"] = json!(b);
        }
        if let Some(n) = a.page_size {
            body["MaxResults"] = json!(n);
        }
        let all = pages(body, "SecretList", async |b| {
            self.call("ListSecrets", b, "").await
        })
        .await?;
        if self.out.format == Format::Json {
            return self.out.json(&json!({"SecretList": all}));
        }
        let deleting = all.iter().any(|d| !d["DeletedDate"].is_null());
        let mut header = vec!["NAME", "ROTATION", "LAST CHANGED"];
        if deleting {
            header.push("DELETION PLANNED");
        }
        header.push("DESCRIPTION");
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|d| {
                let mut row = vec![s(&d["Name"]), rotation(d), date(&d["LastChangedDate"])];
                if deleting {
                    row.push(date(&d["DeletedDate"]));
                }
                row.push(s(&d["Description"]).replace('\n', " "));
                row
            })
            .collect();
        self.out.rows(&header, &rows)
    }

    async fn versions(&self, a: VersionsArgs) -> Result<(), ClientError> {
        let mut body = json!({"SecretId": a.name});
        if a.include_deprecated {
            body["IncludeDeprecated"] = json!(true);
        }
        if let Some(n) = a.page_size {
            body["MaxResults"] = json!(n);
        }
        let all = pages(body, "Versions", async |b| {
            self.call("ListSecretVersionIds", b, &a.name).await
        })
        .await?;
        if self.out.format == Format::Json {
            return self.out.json(&json!({"Name": a.name, "Versions": all}));
        }
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|v| {
                vec![
                    s(&v["VersionId"]),
                    stages(&v["VersionStages"]),
                    date(&v["CreatedDate"]),
                    or_dash(date(&v["LastAccessedDate"])),
                ]
            })
            .collect();
        self.out
            .rows(&["VERSION", "STAGES", "CREATED", "LAST ACCESSED"], &rows)
    }

    async fn label(&self, a: LabelArgs) -> Result<(), ClientError> {
        let mut body = json!({"SecretId": a.name, "VersionStage": a.stage});
        if let Some(to) = &a.to {
            body["MoveToVersionId"] = json!(to);
        }
        if let Some(from) = &a.from {
            body["RemoveFromVersionId"] = json!(from);
        }
        let answer = self
            .call("UpdateSecretVersionStage", &body, &a.name)
            .await?;
        let line = match (&a.to, &a.from) {
            (Some(to), _) => format!("{} of {} is on version {to}", a.stage, a.name),
            (None, Some(from)) => format!("{} of {} is off version {from}", a.stage, a.name),
            (None, None) => String::new(),
        };
        self.done(&answer, line)
    }

    async fn tag(&self, a: TagArgs) -> Result<(), ClientError> {
        let body = json!({"SecretId": a.name, "Tags": tags_json(&a.tags)?});
        let answer = self.call("TagResource", &body, &a.name).await?;
        self.done(&answer, format!("tagged {}", a.name))
    }

    async fn untag(&self, a: UntagArgs) -> Result<(), ClientError> {
        let body = json!({"SecretId": a.name, "TagKeys": a.keys});
        let answer = self.call("UntagResource", &body, &a.name).await?;
        self.done(&answer, format!("untagged {}", a.name))
    }

    async fn delete(&self, a: DeleteArgs) -> Result<(), ClientError> {
        let mut body = json!({"SecretId": a.name});
        if a.force {
            body["ForceDeleteWithoutRecovery"] = json!(true);
        }
        if let Some(n) = a.recovery_window_days {
            body["RecoveryWindowInDays"] = json!(n);
        }
        let answer = self.call("DeleteSecret", &body, &a.name).await?;
        let line = if a.force {
            format!("deleted {} for good", a.name)
        } else {
            format!(
                "{} will be deleted on {}; `kura secret restore {}` undoes it until then",
                a.name,
                date(&answer["DeletionDate"]),
                a.name
            )
        };
        self.done(&answer, line)
    }

    async fn restore(&self, name: &str) -> Result<(), ClientError> {
        let answer = self
            .call("RestoreSecret", &json!({"SecretId": name}), name)
            .await?;
        self.done(&answer, format!("restored {name}"))
    }

    async fn rotate(&self, a: RotateArgs) -> Result<(), ClientError> {
        let mut body = json!({"SecretId": a.name});
        if let Some(f) = &a.function {
            body["RotationLambdaARN"] = json!(f);
        }
        let mut rules = serde_json::Map::new();
        if let Some(e) = &a.schedule {
            rules.insert("ScheduleExpression".into(), json!(e));
        }
        if let Some(n) = a.every_days {
            rules.insert("AutomaticallyAfterDays".into(), json!(n));
        }
        if let Some(w) = &a.window {
            rules.insert("Duration".into(), json!(w));
        }
        if !rules.is_empty() {
            body["RotationRules"] = Json::Object(rules);
        }
        if a.no_rotate_now {
            body["RotateImmediately"] = json!(false);
        }
        let answer = self.call("RotateSecret", &body, &a.name).await?;
        let line = if a.no_rotate_now {
            format!("rotation of {} set", a.name)
        } else {
            format!(
                "rotating {} (new version {}); `kura secret describe {}` shows how it goes",
                a.name,
                s(&answer["VersionId"]),
                a.name
            )
        };
        self.done(&answer, line)
    }

    async fn expire(&self, a: ExpireArgs) -> Result<(), ClientError> {
        let at = match &a.at {
            None => None,
            Some(t) => Some(match t.parse::<f64>() {
                Ok(secs) => secs,
                Err(_) => chrono::DateTime::parse_from_rfc3339(t)
                    .map(|d| d.timestamp_millis() as f64 / 1000.0)
                    .map_err(|_| {
                        ClientError::Usage(format!(
                            "{t:?} is not a time: write RFC 3339 (2030-06-30T00:00:00Z) or epoch seconds"
                        ))
                    })?,
            }),
        };
        let body = json!({"SecretId": a.name, "ExpirationDate": at});
        let answer = self
            .client
            .call("Kura.SetSecretExpiration", &body)
            .await
            .map_err(|e| self.explain(e, &a.name))?;
        let line = match &a.at {
            Some(t) => format!("{} expires at {t}", a.name),
            None => format!("{} no longer expires", a.name),
        };
        self.done(&answer, line)
    }

    async fn cancel_rotation(&self, name: &str) -> Result<(), ClientError> {
        let answer = self
            .call("CancelRotateSecret", &json!({"SecretId": name}), name)
            .await?;
        self.done(&answer, format!("rotation of {name} is off"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_printed_bare_and_a_missing_one_lists_names_only() {
        let value = br#"{"username": "app", "password": "hunter2-secret", "port": 5432}"#;
        assert_eq!(
            field_of(value, "password", "x").unwrap().as_slice(),
            b"hunter2-secret"
        );
        assert_eq!(field_of(value, "port", "x").unwrap().as_slice(), b"5432");
        let Err(ClientError::Usage(e)) = field_of(value, "host", "prod/db") else {
            panic!("a missing field is a usage error");
        };
        assert!(
            // In the value's own order.
            e.contains("username, password, port") && !e.contains("hunter2"),
            "{e}"
        );
        assert!(matches!(
            field_of(b"plain", "a", "x"),
            Err(ClientError::Usage(_))
        ));
        assert!(matches!(
            field_of(b"[1]", "a", "x"),
            Err(ClientError::Usage(_))
        ));
        assert!(matches!(
            field_of(&[0xff, 0xfe], "a", "x"),
            Err(ClientError::Usage(_))
        ));
    }

    #[test]
    fn rotation_in_a_few_words() {
        assert_eq!(rotation(&json!({})), "off");
        assert_eq!(rotation(&json!({"RotationEnabled": false})), "off");
        let d = json!({"RotationEnabled": true,
            "RotationLambdaARN": "arn:aws:lambda:us-east-1:1:function:kura-password",
            "RotationRules": {"ScheduleExpression": "rate(30 days)"}});
        assert_eq!(rotation(&d), "rate(30 days) (kura-password)");
        let d = json!({"RotationEnabled": true, "RotationRules": {"AutomaticallyAfterDays": 7}});
        assert_eq!(rotation(&d), "every 7 days");
        assert_eq!(rotation(&json!({"RotationEnabled": true})), "on demand");
    }

    #[test]
    fn key_value_splits_at_the_first_equals_sign() {
        assert_eq!(
            key_value("name=a=b", "x").unwrap(),
            ("name".to_string(), "a=b".to_string())
        );
        assert!(key_value("name", "the filter").is_err());
    }
}
