//! `kura user …`, `kura key …`, `kura policy …`: kura's identity and key extensions
//! (`Kura.*` operations) and secrets' resource policies, on the same plumbing as `kura secret`.

use clap::{Args, Subcommand};
use serde_json::{Value as Json, json};
use zeroize::Zeroizing;

use super::{ClientArgs, Format, Out, date, emit, pages, read_document, read_text};
use crate::client::{Client, ClientError};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user (give it a key with `kura user create-key` and a policy with `kura policy put`).
    #[command(after_help = "Example:\n  kura user create billing --tag team=billing")]
    Create {
        name: String,
        /// A tag KEY=VALUE (aws:PrincipalTag/KEY in policies); repeat it for more.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// List the users.
    #[command(after_help = "Example:\n  kura user list")]
    List,
    /// Delete a user (its keys and policies go with it).
    #[command(after_help = "Example:\n  kura user delete billing")]
    Delete { name: String },
    /// Show whom the credentials in use belong to.
    #[command(after_help = "Example:\n  kura user whoami --profile prod")]
    Whoami,
    /// Create an access key for a user; its secret is shown this once.
    #[command(
        after_help = "Examples:\n  kura user create-key billing --output json > billing-key.json\n  kura user create-key ci --expires-in 30d"
    )]
    CreateKey {
        /// The user [default: the caller].
        user: Option<String>,
        /// The key stops authenticating after this long (e.g. 30d, 12h, 3600s) [default: never].
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
    /// List access keys (a user's, or the caller's).
    #[command(after_help = "Example:\n  kura user keys billing")]
    Keys { user: Option<String> },
    /// Make an access key inactive: it is refused until enabled again.
    #[command(after_help = "Example:\n  kura user disable-key AKIA... --user billing")]
    DisableKey(KeyIdArgs),
    /// Make an inactive access key work again.
    #[command(after_help = "Example:\n  kura user enable-key AKIA... --user billing")]
    EnableKey(KeyIdArgs),
    /// Delete an access key.
    #[command(after_help = "Example:\n  kura user delete-key AKIA... --user billing")]
    DeleteKey(KeyIdArgs),
}

#[derive(Args)]
pub struct KeyIdArgs {
    /// The access key id.
    access_key_id: String,
    /// Its user [default: the caller].
    #[arg(long)]
    user: Option<String>,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a key to protect secrets with (name it in `kura secret create --kms-key-id`).
    #[command(
        after_help = "Example:\n  kura key create --alias alias/billing --description 'billing team' --policy @billing-key.json"
    )]
    Create {
        #[arg(long, value_name = "alias/NAME")]
        alias: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// The key policy: JSON, @FILE or - (stdin) [default: the users' own policies decide].
        #[arg(long, value_name = "DOCUMENT")]
        policy: Option<String>,
        /// A tag KEY=VALUE; repeat it for more.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// List the keys.
    #[command(after_help = "Example:\n  kura key list")]
    List,
    /// Show a key: versions, state, re-wrap progress, policy.
    #[command(after_help = "Example:\n  kura key describe alias/billing")]
    Describe {
        /// Id, ARN or alias [default: the default key].
        key: Option<String>,
    },
    /// Add a key version that new values use; older data keys are re-wrapped in the background.
    #[command(after_help = "Example:\n  kura key rotate alias/billing")]
    Rotate {
        /// Id, ARN or alias [default: the default key].
        key: Option<String>,
    },
    /// Replace a key's policy.
    #[command(after_help = "Example:\n  kura key put-policy alias/billing @billing-key.json")]
    PutPolicy {
        key: String,
        /// JSON, @FILE or - (stdin).
        document: String,
    },
    /// Delete a key nothing uses after a waiting period.
    #[command(after_help = "Example:\n  kura key delete alias/billing --pending-window-days 7")]
    Delete {
        key: String,
        /// Days (7 to 30) before it is deleted; `kura key cancel-deletion` undoes it meanwhile.
        #[arg(long, value_name = "N")]
        pending_window_days: Option<u32>,
    },
    /// Cancel a key's planned deletion.
    #[command(after_help = "Example:\n  kura key cancel-deletion alias/billing")]
    CancelDeletion { key: String },
}

/// Whose policy: a user's (by name), or a secret's resource policy.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("owner").required(true).args(["user", "secret"]))]
pub struct PolicyOwner {
    /// A user's identity policy (with --name).
    #[arg(long, requires = "name")]
    user: Option<String>,
    /// The policy's name (with --user).
    #[arg(long, requires = "user")]
    name: Option<String>,
    /// A secret's resource policy.
    #[arg(long, conflicts_with = "name")]
    secret: Option<String>,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check a policy document without storing it (kura's own parser, no server needed).
    #[command(
        after_help = "Examples:\n  kura policy validate @read-billing.json\n  kura policy validate --resource @secret-policy.json"
    )]
    Validate {
        /// JSON, @FILE or - (stdin).
        document: String,
        /// A resource policy (it names its principals) instead of a user's.
        #[arg(long)]
        resource: bool,
    },
    /// Set a user's policy, or a secret's resource policy.
    #[command(
        after_help = "Examples:\n  kura policy put --user billing --name read-billing @read-billing.json\n  kura policy put --secret prod/db @secret-policy.json"
    )]
    Put {
        #[command(flatten)]
        owner: PolicyOwner,
        /// JSON, @FILE or - (stdin).
        document: String,
    },
    /// Print a policy document.
    #[command(
        after_help = "Examples:\n  kura policy get --user billing --name read-billing\n  kura policy get --secret prod/db"
    )]
    Get {
        #[command(flatten)]
        owner: PolicyOwner,
    },
    /// List a user's policies.
    #[command(after_help = "Example:\n  kura policy list --user billing")]
    List {
        #[arg(long)]
        user: String,
    },
    /// Delete a user's policy, or a secret's resource policy.
    #[command(
        after_help = "Examples:\n  kura policy delete --user billing --name read-billing\n  kura policy delete --secret prod/db"
    )]
    Delete {
        #[command(flatten)]
        owner: PolicyOwner,
    },
}

/// A connection and an output, for the commands of this module.
struct Admin {
    client: Client,
    out: Out,
}

impl Admin {
    fn new(args: &ClientArgs) -> Result<Admin, ClientError> {
        Ok(Admin {
            out: args.out(),
            client: Client::connect(&args.connect_options())?,
        })
    }

    /// `Kura.<op>` (or `secretsmanager.<op>`), its errors with what to do: `list` names the
    /// command that shows what exists.
    async fn call(&self, target: &str, body: &Json, list: &str) -> Result<Json, ClientError> {
        let target = if target.contains('.') {
            target.to_string()
        } else {
            format!("Kura.{target}")
        };
        match self.client.call(&target, body).await {
            Err(ClientError::Api {
                status,
                code,
                message,
            }) => {
                let message = match code.as_str() {
                    "ResourceNotFoundException" => {
                        format!(
                            "{}; `{list}` shows what exists",
                            message.trim_end_matches('.')
                        )
                    }
                    c => self.client.general_hint(c, &message).unwrap_or(message),
                };
                Err(ClientError::Api {
                    status,
                    code,
                    message,
                })
            }
            other => other,
        }
    }

    fn done(&self, answer: &Json, line: String) -> Result<(), ClientError> {
        match self.out.format {
            Format::Json => self.out.json(answer),
            _ => self.out.line(&line),
        }
    }
}

fn tags_json(tags: &[String]) -> Result<Json, ClientError> {
    let tags: Result<Vec<Json>, ClientError> = tags
        .iter()
        .map(|t| {
            t.split_once('=')
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .ok_or_else(|| ClientError::Usage(format!("the tag {t:?} is not KEY=VALUE")))
        })
        .collect();
    Ok(Json::Array(tags?))
}

fn s(v: &Json) -> String {
    v.as_str().unwrap_or_default().to_string()
}

pub async fn user(command: UserCommand, args: &ClientArgs) -> Result<(), ClientError> {
    let a = Admin::new(args)?;
    const LIST: &str = "kura user list";
    match command {
        UserCommand::Create { name, tags } => {
            let mut body = json!({"UserName": name});
            if !tags.is_empty() {
                body["Tags"] = tags_json(&tags)?;
            }
            let answer = a.call("CreateUser", &body, LIST).await?;
            let id = s(&answer["User"]["UserId"]);
            a.done(
                &answer,
                format!("created user {name} ({id}); `kura user create-key {name}` gives it a key"),
            )
        }
        UserCommand::List => {
            let answer = a.call("ListUsers", &json!({}), LIST).await?;
            if a.out.format == Format::Json {
                return a.out.json(&answer);
            }
            let rows: Vec<Vec<String>> = answer["Users"]
                .as_array()
                .map(|users| {
                    users
                        .iter()
                        .map(|u| {
                            vec![
                                s(&u["UserName"]),
                                s(&u["UserId"]),
                                date(&u["CreateDate"]),
                                s(&u["Arn"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            a.out.rows(&["NAME", "USER ID", "CREATED", "ARN"], &rows)
        }
        UserCommand::Delete { name } => {
            let answer = a
                .call("DeleteUser", &json!({"UserName": name}), LIST)
                .await?;
            a.done(&answer, format!("deleted user {name}"))
        }
        UserCommand::Whoami => {
            let answer = a.call("GetCallerIdentity", &json!({}), LIST).await?;
            if a.out.format == Format::Json {
                return a.out.json(&answer);
            }
            a.out.pairs(&[
                ("ARN", s(&answer["Arn"])),
                ("User id", s(&answer["UserId"])),
                ("Account", s(&answer["Account"])),
                (
                    "Access key",
                    a.client.settings.credentials.access_key_id.clone(),
                ),
                ("From", a.client.settings.credentials_source.clone()),
                ("Endpoint", a.client.settings.endpoint.clone()),
            ])
        }
        UserCommand::CreateKey { user, expires_in } => {
            let mut body = json!({});
            if let Some(u) = &user {
                body["UserName"] = json!(u);
            }
            if let Some(d) = &expires_in {
                body["ExpiresIn"] = json!(d);
            }
            let mut answer = a.call("CreateAccessKey", &body, LIST).await?;
            let key = &answer["AccessKey"];
            let shown = match a.out.format {
                Format::Json => a.out.json(&answer),
                // The shared-credentials format: paste it into ~/.aws/credentials.
                _ => {
                    let text = Zeroizing::new(format!(
                        "[{}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                        s(&key["UserName"]),
                        s(&key["AccessKeyId"]),
                        key["SecretAccessKey"].as_str().unwrap_or_default()
                    ));
                    emit(text.as_bytes())
                }
            };
            if shown.is_ok() && a.out.tty {
                eprintln!(
                    "kura: the secret access key is shown this once; keep it in ~/.aws/credentials or a secret"
                );
            }
            if let Some(Json::String(secret)) = answer["AccessKey"]
                .as_object_mut()
                .and_then(|k| k.remove("SecretAccessKey"))
            {
                drop(Zeroizing::new(secret));
            }
            shown
        }
        UserCommand::Keys { user } => {
            let mut body = json!({});
            if let Some(u) = &user {
                body["UserName"] = json!(u);
            }
            let answer = a.call("ListAccessKeys", &body, LIST).await?;
            if a.out.format == Format::Json {
                return a.out.json(&answer);
            }
            let rows: Vec<Vec<String>> = answer["AccessKeyMetadata"]
                .as_array()
                .map(|keys| {
                    keys.iter()
                        .map(|k| {
                            let used = date(&k["LastUsedDate"]);
                            let expires = date(&k["Expiration"]);
                            vec![
                                s(&k["AccessKeyId"]),
                                s(&k["UserName"]),
                                s(&k["Status"]),
                                date(&k["CreateDate"]),
                                if used.is_empty() { "-".into() } else { used },
                                if expires.is_empty() {
                                    "-".into()
                                } else {
                                    expires
                                },
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            a.out.rows(
                &[
                    "ACCESS KEY",
                    "USER",
                    "STATUS",
                    "CREATED",
                    "LAST USED",
                    "EXPIRES",
                ],
                &rows,
            )
        }
        UserCommand::DisableKey(k) => set_key_status(&a, k, "Inactive").await,
        UserCommand::EnableKey(k) => set_key_status(&a, k, "Active").await,
        UserCommand::DeleteKey(k) => {
            let mut body = json!({"AccessKeyId": k.access_key_id});
            if let Some(u) = &k.user {
                body["UserName"] = json!(u);
            }
            let answer = a.call("DeleteAccessKey", &body, "kura user keys").await?;
            a.done(&answer, format!("deleted access key {}", k.access_key_id))
        }
    }
}

async fn set_key_status(a: &Admin, k: KeyIdArgs, status: &str) -> Result<(), ClientError> {
    let mut body = json!({"AccessKeyId": k.access_key_id, "Status": status});
    if let Some(u) = &k.user {
        body["UserName"] = json!(u);
    }
    let answer = a.call("UpdateAccessKey", &body, "kura user keys").await?;
    a.done(
        &answer,
        format!(
            "access key {} is {}",
            k.access_key_id,
            status.to_lowercase()
        ),
    )
}

/// A key's details as `key describe` shows them.
fn key_pairs(m: &Json) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("Key id", s(&m["KeyId"])),
        ("ARN", s(&m["Arn"])),
        ("Alias", s(&m["Alias"])),
        ("Description", s(&m["Description"])),
        ("State", s(&m["KeyState"])),
        ("Version", m["CurrentVersion"].to_string()),
        ("Created", date(&m["CreationDate"])),
    ];
    if !m["DeletionDate"].is_null() {
        pairs.push(("Deletion planned", date(&m["DeletionDate"])));
    }
    let r = &m["RewrapStatus"];
    if let Some(state) = r["State"].as_str() {
        pairs.push((
            "Re-wrap",
            format!(
                "{state} to version {}: {} done, {} remaining",
                r["TargetVersion"], r["Done"], r["Remaining"]
            ),
        ));
    }
    if let Some(p) = m["Policy"].as_str() {
        let pretty = serde_json::from_str::<Json>(p)
            .ok()
            .and_then(|j| serde_json::to_string_pretty(&j).ok())
            .unwrap_or_else(|| p.to_string());
        pairs.push(("Policy", pretty));
    }
    pairs
}

pub async fn key(command: KeyCommand, args: &ClientArgs) -> Result<(), ClientError> {
    let a = Admin::new(args)?;
    const LIST: &str = "kura key list";
    let key_body = |key: &Option<String>| match key {
        Some(k) => json!({"KeyId": k}),
        None => json!({}),
    };
    let show = |answer: &Json, line: String| -> Result<(), ClientError> {
        match a.out.format {
            Format::Json => a.out.json(answer),
            _ if line.is_empty() => a.out.pairs(&key_pairs(&answer["KeyMetadata"])),
            _ => a.out.line(&line),
        }
    };
    match command {
        KeyCommand::Create {
            alias,
            description,
            policy,
            tags,
        } => {
            let mut body = json!({});
            if let Some(x) = alias {
                body["Alias"] = json!(x);
            }
            if let Some(x) = description {
                body["Description"] = json!(x);
            }
            if let Some(p) = policy {
                body["Policy"] = read_document(&p)?;
            }
            if !tags.is_empty() {
                body["Tags"] = tags_json(&tags)?;
            }
            let answer = a.call("CreateKey", &body, LIST).await?;
            let m = &answer["KeyMetadata"];
            let name = m["Alias"]
                .as_str()
                .unwrap_or(m["KeyId"].as_str().unwrap_or(""));
            show(&answer, format!("created key {name} ({})", s(&m["KeyId"])))
        }
        KeyCommand::List => {
            let keys = pages(json!({}), "Keys", async |b| {
                a.call("ListKeys", b, LIST).await
            })
            .await?;
            if a.out.format == Format::Json {
                return a.out.json(&json!({"Keys": keys}));
            }
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    vec![
                        s(&k["KeyId"]),
                        s(&k["Alias"]),
                        s(&k["KeyState"]),
                        k["CurrentVersion"].to_string(),
                        date(&k["CreationDate"]),
                        s(&k["Description"]),
                    ]
                })
                .collect();
            a.out.rows(
                &[
                    "KEY ID",
                    "ALIAS",
                    "STATE",
                    "VERSION",
                    "CREATED",
                    "DESCRIPTION",
                ],
                &rows,
            )
        }
        KeyCommand::Describe { key } => {
            let answer = a.call("DescribeKey", &key_body(&key), LIST).await?;
            show(&answer, String::new())
        }
        KeyCommand::Rotate { key } => {
            let answer = a.call("RotateKey", &key_body(&key), LIST).await?;
            let m = &answer["KeyMetadata"];
            show(
                &answer,
                format!(
                    "key {} is at version {}; older data keys are re-wrapped in the background (`kura key describe` shows how far)",
                    s(&m["KeyId"]),
                    m["CurrentVersion"]
                ),
            )
        }
        KeyCommand::PutPolicy { key, document } => {
            let body = json!({"KeyId": key, "Policy": read_document(&document)?});
            let answer = a.call("PutKeyPolicy", &body, LIST).await?;
            a.done(&answer, format!("policy of key {key} replaced"))
        }
        KeyCommand::Delete {
            key,
            pending_window_days,
        } => {
            let mut body = json!({"KeyId": key});
            if let Some(n) = pending_window_days {
                body["PendingWindowInDays"] = json!(n);
            }
            let answer = a.call("ScheduleKeyDeletion", &body, LIST).await?;
            show(
                &answer,
                format!(
                    "key {key} will be deleted on {}; `kura key cancel-deletion {key}` undoes it until then",
                    date(&answer["KeyMetadata"]["DeletionDate"])
                ),
            )
        }
        KeyCommand::CancelDeletion { key } => {
            let answer = a
                .call("CancelKeyDeletion", &json!({"KeyId": key}), LIST)
                .await?;
            show(&answer, format!("key {key} will not be deleted"))
        }
    }
}

pub async fn policy(command: PolicyCommand, args: &ClientArgs) -> Result<(), ClientError> {
    if let PolicyCommand::Validate { document, resource } = &command {
        return validate(document, *resource, &args.out());
    }
    let a = Admin::new(args)?;
    match command {
        PolicyCommand::Validate { .. } => Ok(()),
        PolicyCommand::Put { owner, document } => {
            let doc = read_document(&document)?;
            match (owner.user, owner.name, owner.secret) {
                (Some(user), Some(name), _) => {
                    let body = json!({"UserName": user, "PolicyName": name, "PolicyDocument": doc});
                    let answer = a.call("PutUserPolicy", &body, "kura user list").await?;
                    a.done(&answer, format!("policy {name} of user {user} set"))
                }
                (_, _, Some(secret)) => {
                    // AWS takes the document as a string.
                    let body = json!({"SecretId": secret, "ResourcePolicy": doc.to_string()});
                    let answer = a
                        .call(
                            "secretsmanager.PutResourcePolicy",
                            &body,
                            "kura secret list",
                        )
                        .await?;
                    a.done(&answer, format!("resource policy of {secret} set"))
                }
                _ => Err(ClientError::Usage(
                    "give --user and --name, or --secret".into(),
                )),
            }
        }
        PolicyCommand::Get { owner } => {
            let (answer, text) = match (owner.user, owner.name, owner.secret) {
                (Some(user), Some(name), _) => {
                    let body = json!({"UserName": user, "PolicyName": name});
                    let answer = a
                        .call(
                            "GetUserPolicy",
                            &body,
                            &format!("kura policy list --user {user}"),
                        )
                        .await?;
                    let text = s(&answer["PolicyDocument"]);
                    (answer, text)
                }
                (_, _, Some(secret)) => {
                    let answer = a
                        .call(
                            "secretsmanager.GetResourcePolicy",
                            &json!({"SecretId": secret}),
                            "kura secret list",
                        )
                        .await?;
                    let Some(text) = answer["ResourcePolicy"].as_str().map(str::to_string) else {
                        return Err(ClientError::Api {
                            status: 400,
                            code: "ResourceNotFoundException".into(),
                            message: format!(
                                "{secret} has no resource policy; `kura policy put --secret {secret} DOCUMENT` sets one"
                            ),
                        });
                    };
                    (answer, text)
                }
                _ => {
                    return Err(ClientError::Usage(
                        "give --user and --name, or --secret".into(),
                    ));
                }
            };
            match a.out.format {
                Format::Json if a.out.explicit => a.out.json(&answer),
                // The document itself, ready for `kura policy put … -`.
                _ => match serde_json::from_str::<Json>(&text) {
                    Ok(doc) => a.out.json(&doc),
                    Err(_) => a.out.line(&text),
                },
            }
        }
        PolicyCommand::List { user } => {
            let answer = a
                .call(
                    "ListUserPolicies",
                    &json!({"UserName": user}),
                    "kura user list",
                )
                .await?;
            if a.out.format == Format::Json {
                return a.out.json(&answer);
            }
            let rows: Vec<Vec<String>> = answer["PolicyNames"]
                .as_array()
                .map(|n| n.iter().map(|n| vec![s(n)]).collect())
                .unwrap_or_default();
            a.out.rows(&["POLICY"], &rows)
        }
        PolicyCommand::Delete { owner } => match (owner.user, owner.name, owner.secret) {
            (Some(user), Some(name), _) => {
                let body = json!({"UserName": user, "PolicyName": name});
                let answer = a
                    .call(
                        "DeleteUserPolicy",
                        &body,
                        &format!("kura policy list --user {user}"),
                    )
                    .await?;
                a.done(&answer, format!("policy {name} of user {user} deleted"))
            }
            (_, _, Some(secret)) => {
                let answer = a
                    .call(
                        "secretsmanager.DeleteResourcePolicy",
                        &json!({"SecretId": secret}),
                        "kura secret list",
                    )
                    .await?;
                a.done(&answer, format!("resource policy of {secret} deleted"))
            }
            _ => Err(ClientError::Usage(
                "give --user and --name, or --secret".into(),
            )),
        },
    }
}

/// Checks a document with the parser the server uses; exit 2 with where it is wrong.
fn validate(document: &str, resource: bool, out: &Out) -> Result<(), ClientError> {
    let doc = read_document(document)?;
    let kind = if resource {
        kura_iam::policy::PolicyKind::Resource
    } else {
        kura_iam::policy::PolicyKind::Identity
    };
    match kura_iam::policy::parse(&doc.to_string(), kind) {
        Ok(_) => match out.format {
            Format::Json => {
                out.json(&json!({"PolicyValidationPassed": true, "ValidationErrors": []}))
            }
            _ => out.line("the policy is valid"),
        },
        Err(e) => Err(ClientError::Usage(format!("the policy is not valid: {e}"))),
    }
}

#[derive(Subcommand)]
pub enum FunctionCommand {
    /// Create a rotation function from its definition (Kura.CreateRotationFunction's JSON).
    #[command(
        after_help = "Examples:\n  kura function create '{\"Name\": \"pin\", \"Type\": \"kura-password\", \"PasswordRules\": {\"PasswordLength\": 8, \"ExcludePunctuation\": true}}'\n  kura function create @rotate-app.json     # {\"Name\", \"Type\": \"command\", \"Command\": [...], ...}\n  kura secret rotate prod/pin --function pin --every-days 30"
    )]
    Create {
        /// JSON, @FILE or - (stdin).
        definition: String,
    },
    /// List the rotation functions, built-in ones included.
    #[command(after_help = "Example:\n  kura function list")]
    List,
    /// Delete a rotation function (refused while a secret uses it).
    #[command(after_help = "Example:\n  kura function delete pin")]
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum NotifyCommand {
    /// Send events to a URL (signed JSON, retried until it answers 2xx).
    #[command(
        after_help = "Example:\n  kura notify create https://hooks.example/kura --event RotationFailed --event SecretDeleted"
    )]
    Create {
        url: String,
        /// RotationStarted, RotationSucceeded, RotationFailed, SecretValueChanged,
        /// SecretScheduledForDeletion, SecretDeleted, SecretExpiring or SecretExpired; repeat
        /// it for more.
        #[arg(long = "event", required = true, value_name = "EVENT")]
        events: Vec<String>,
        /// With SecretExpiring: how many days before an expiration to send it; repeat it for
        /// more [default: 30, 7 and 1].
        #[arg(long = "expiring-days", value_name = "DAYS")]
        expiring_days: Vec<i64>,
        /// Sign with this secret (@FILE or - for stdin) [default: kura makes one and shows it once].
        #[arg(long, value_name = "SECRET")]
        signing_secret: Option<String>,
    },
    /// List the notification targets.
    #[command(after_help = "Example:\n  kura notify list")]
    List,
    /// Stop sending to a target.
    #[command(after_help = "Example:\n  kura notify delete 6f1c…")]
    Delete { target_id: String },
}

/// Prints a secret the server made and shows once, after `line`; wipes it from the answer.
fn once(a: &Admin, answer: &mut Json, field: &str, line: String) -> Result<(), ClientError> {
    let shown = match a.out.format {
        Format::Json => a.out.json(answer),
        _ => match answer[field].as_str() {
            Some(secret) => {
                let text = Zeroizing::new(format!("{line}\n{field}: {secret}\n"));
                emit(text.as_bytes())
            }
            None => a.out.line(&line),
        },
    };
    if let Some(Json::String(secret)) = answer.as_object_mut().and_then(|m| m.remove(field)) {
        drop(Zeroizing::new(secret));
    }
    shown
}

pub async fn function(command: FunctionCommand, args: &ClientArgs) -> Result<(), ClientError> {
    let a = Admin::new(args)?;
    const LIST: &str = "kura function list";
    match command {
        FunctionCommand::Create { definition } => {
            let body = read_document(&definition)?;
            let mut answer = a.call("CreateRotationFunction", &body, LIST).await?;
            let line = format!(
                "created rotation function {} ({}); `kura secret rotate NAME --function {}` uses it",
                s(&answer["Name"]),
                s(&answer["Type"]),
                s(&answer["Name"])
            );
            once(&a, &mut answer, "SigningSecret", line)
        }
        FunctionCommand::List => {
            let answer = a.call("ListRotationFunctions", &json!({}), LIST).await?;
            if a.out.format == Format::Json {
                return a.out.json(&answer);
            }
            let rows: Vec<Vec<String>> = answer["RotationFunctions"]
                .as_array()
                .map(|fs| {
                    fs.iter()
                        .map(|f| {
                            vec![
                                s(&f["Name"]),
                                s(&f["Type"]),
                                if f["BuiltIn"].as_bool() == Some(true) {
                                    "yes".into()
                                } else {
                                    "no".into()
                                },
                                f["TimeoutSeconds"].to_string(),
                                f["MaxAttempts"].to_string(),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            a.out.rows(
                &["NAME", "TYPE", "BUILT-IN", "TIMEOUT (S)", "MAX ATTEMPTS"],
                &rows,
            )
        }
        FunctionCommand::Delete { name } => {
            let answer = a
                .call("DeleteRotationFunction", &json!({"Name": name}), LIST)
                .await?;
            a.done(&answer, format!("deleted rotation function {name}"))
        }
    }
}

pub async fn notify(command: NotifyCommand, args: &ClientArgs) -> Result<(), ClientError> {
    let a = Admin::new(args)?;
    const LIST: &str = "kura notify list";
    match command {
        NotifyCommand::Create {
            url,
            events,
            expiring_days,
            signing_secret,
        } => {
            let mut body = json!({"Url": url, "Events": events});
            if !expiring_days.is_empty() {
                body["ExpiringDays"] = json!(expiring_days);
            }
            if let Some(secret) = signing_secret {
                let value = super::read_value(Some(&secret), false, "the signing secret")?;
                if let super::Value::Text(t) = &value {
                    body["SigningSecret"] = json!(t.as_str());
                }
            }
            let answer = a.call("CreateNotificationTarget", &body, LIST).await;
            if let Some(Json::String(s)) =
                body.as_object_mut().and_then(|m| m.remove("SigningSecret"))
            {
                drop(Zeroizing::new(s));
            }
            let mut answer = answer?;
            let line = format!("created notification target {}", s(&answer["TargetId"]));
            once(&a, &mut answer, "SigningSecret", line)
        }
        NotifyCommand::List => {
            let answer = a.call("ListNotificationTargets", &json!({}), LIST).await?;
            if a.out.format == Format::Json {
                return a.out.json(&answer);
            }
            let rows: Vec<Vec<String>> = answer["NotificationTargets"]
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .map(|t| {
                            let events: Vec<&str> = t["Events"]
                                .as_array()
                                .map(|e| e.iter().filter_map(Json::as_str).collect())
                                .unwrap_or_default();
                            vec![
                                s(&t["TargetId"]),
                                s(&t["Url"]),
                                events.join(","),
                                date(&t["CreatedDate"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            a.out
                .rows(&["TARGET ID", "URL", "EVENTS", "CREATED"], &rows)
        }
        NotifyCommand::Delete { target_id } => {
            let answer = a
                .call(
                    "DeleteNotificationTarget",
                    &json!({"TargetId": target_id}),
                    LIST,
                )
                .await?;
            a.done(&answer, format!("deleted notification target {target_id}"))
        }
    }
}

#[derive(Subcommand)]
pub enum CaCommand {
    /// Create a certificate authority: a root, an intermediate signed by a kura CA (--parent),
    /// or an intermediate whose CSR an external root signs (no --parent; finish it with
    /// `kura ca import`).
    #[command(
        after_help = "Examples:\n  kura ca create root --type root --common-name \"Example Root\" --key-algorithm EC_P384\n  kura ca create issuing --type intermediate --parent root --ttl 365d\n  kura ca create ext --type intermediate > ext.csr     # the CSR, for the external root"
    )]
    Create {
        name: String,
        /// root or intermediate.
        #[arg(long = "type", default_value = "root")]
        kind: String,
        /// The kura CA that signs an intermediate.
        #[arg(long)]
        parent: Option<String>,
        /// [default: the name]
        #[arg(long)]
        common_name: Option<String>,
        /// RSA_2048, RSA_3072, RSA_4096, EC_P256, EC_P384 or ED25519 [default: EC_P256].
        #[arg(long)]
        key_algorithm: Option<String>,
        /// How long the CA lives, e.g. 3650d [default: 10 years for a root, 5 for an intermediate].
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Give an intermediate the certificate an external root signed for its CSR.
    #[command(
        after_help = "Example:\n  kura ca import ext --certificate @ext.pem --chain @ext-chain.pem"
    )]
    Import {
        name: String,
        /// PEM, @FILE or - (stdin).
        #[arg(long)]
        certificate: String,
        /// The certificates between it and the root, root excluded (PEM, @FILE or -).
        #[arg(long)]
        chain: Option<String>,
    },
    /// Show a CA (never its key).
    #[command(after_help = "Example:\n  kura ca describe issuing")]
    Describe { name: String },
    /// Print a CA's certificate (PEM), as GET /pki/NAME/ca.pem serves it.
    #[command(after_help = "Example:\n  kura ca certificate root > root.pem")]
    Certificate { name: String },
    /// List the CAs.
    #[command(after_help = "Example:\n  kura ca list")]
    List,
    /// Delete a CA (refused while a template uses it or it signed an intermediate).
    #[command(after_help = "Example:\n  kura ca delete issuing")]
    Delete { name: String },
    /// Revoke a certificate the CA issued, by serial number (it goes on the CA's CRL).
    #[command(after_help = "Example:\n  kura ca revoke issuing 4f:1c:09:…")]
    Revoke { name: String, serial_number: String },
}

#[derive(Subcommand)]
pub enum CertTemplateCommand {
    /// Create a certificate template: which CA issues, for how long, for which names.
    #[command(
        after_help = "Example:\n  kura cert-template create web --ca issuing --allowed-domain .example.com --ttl 30d --max-ttl 90d --key-usage server"
    )]
    Create {
        name: String,
        /// The CA that issues.
        #[arg(long = "ca")]
        authority: String,
        /// example.com (exactly), .example.com (any name below it) or a glob such as
        /// web-*.example.com; repeat it for more.
        #[arg(long = "allowed-domain", required = true, value_name = "DOMAIN")]
        allowed_domains: Vec<String>,
        /// A certificate's lifetime unless the secret asks for another [default: 720h].
        #[arg(long)]
        ttl: Option<String>,
        /// The longest lifetime a secret may ask for [default: the ttl].
        #[arg(long)]
        max_ttl: Option<String>,
        /// Allow IP addresses among a certificate's names.
        #[arg(long)]
        allow_ip_sans: bool,
        /// The issued keys' algorithm [default: EC_P256].
        #[arg(long)]
        key_algorithm: Option<String>,
        /// server, client or code_signing; repeat it for more [default: server].
        #[arg(long = "key-usage", value_name = "USAGE")]
        key_usages: Vec<String>,
    },
    /// Show a template's rules.
    #[command(after_help = "Example:\n  kura cert-template describe web")]
    Describe { name: String },
    /// List the templates.
    #[command(after_help = "Example:\n  kura cert-template list")]
    List,
    /// Delete a template.
    #[command(after_help = "Example:\n  kura cert-template delete web")]
    Delete { name: String },
}

fn ca_line(ca: &Json) -> String {
    let mut line = format!(
        "{} ({} CA, {}): {}",
        s(&ca["Name"]),
        s(&ca["Type"]),
        s(&ca["KeyAlgorithm"]),
        s(&ca["Status"])
    );
    if ca["ExpirationDate"].is_number() {
        line.push_str(&format!(", expires {}", date(&ca["ExpirationDate"])));
    }
    line
}

pub async fn ca(command: CaCommand, args: &ClientArgs) -> Result<(), ClientError> {
    let a = Admin::new(args)?;
    const LIST: &str = "kura ca list";
    match command {
        CaCommand::Create {
            name,
            kind,
            parent,
            common_name,
            key_algorithm,
            ttl,
        } => {
            let mut body = json!({"Name": name, "Type": kind});
            for (field, v) in [
                ("ParentAuthority", parent),
                ("CommonName", common_name),
                ("KeyAlgorithm", key_algorithm),
                ("Ttl", ttl),
            ] {
                if let Some(v) = v {
                    body[field] = Json::String(v);
                }
            }
            let answer = a.call("CreateCertificateAuthority", &body, LIST).await?;
            let ca = &answer["CertificateAuthority"];
            match (a.out.format, ca["Csr"].as_str()) {
                (Format::Json, _) => a.out.json(&answer),
                // The CSR alone on stdout, for the external root; what to do next on stderr.
                (_, Some(csr)) => {
                    eprintln!(
                        "created {}; have the external root sign this CSR, then `kura ca import {} --certificate @SIGNED.pem`",
                        ca_line(ca),
                        s(&ca["Name"])
                    );
                    emit(csr.as_bytes())
                }
                _ => a.out.line(&format!(
                    "created {}; its certificate: `kura ca certificate {}` or GET {}",
                    ca_line(ca),
                    s(&ca["Name"]),
                    s(&ca["CertificatePath"])
                )),
            }
        }
        CaCommand::Import {
            name,
            certificate,
            chain,
        } => {
            let mut body = json!({"Name": name, "Certificate": read_text(&certificate)?});
            if let Some(c) = chain {
                body["CertificateChain"] = Json::String(read_text(&c)?);
            }
            let answer = a
                .call("ImportCertificateAuthorityCertificate", &body, LIST)
                .await?;
            a.done(
                &answer,
                format!("imported: {}", ca_line(&answer["CertificateAuthority"])),
            )
        }
        CaCommand::Describe { name } => {
            let answer = a
                .call("DescribeCertificateAuthority", &json!({"Name": name}), LIST)
                .await?;
            if a.out.format == Format::Json {
                return a.out.json(&answer);
            }
            let ca = &answer["CertificateAuthority"];
            let mut lines = vec![ca_line(ca)];
            lines.push(format!("common name: {}", s(&ca["CommonName"])));
            if let Some(p) = ca["ParentAuthority"].as_str() {
                lines.push(format!("signed by: {p}"));
            }
            lines.push(format!("certificate: GET {}", s(&ca["CertificatePath"])));
            lines.push(format!("CRL: GET {}", s(&ca["CrlPath"])));
            a.out.line(&lines.join("\n"))
        }
        CaCommand::Certificate { name } => {
            let answer = a
                .call("DescribeCertificateAuthority", &json!({"Name": name}), LIST)
                .await?;
            match answer["CertificateAuthority"]["Certificate"].as_str() {
                Some(pem) => emit(pem.as_bytes()),
                None => Err(ClientError::Usage(format!(
                    "the CA {name} has no certificate yet: `kura ca import {name} --certificate @SIGNED.pem` gives it the one its external root signed"
                ))),
            }
        }
        CaCommand::List => {
            let answer = a
                .call("ListCertificateAuthorities", &json!({}), LIST)
                .await?;
            if a.out.format == Format::Json {
                return a.out.json(&answer);
            }
            let rows: Vec<Vec<String>> = answer["CertificateAuthorities"]
                .as_array()
                .map(|cas| {
                    cas.iter()
                        .map(|c| {
                            vec![
                                s(&c["Name"]),
                                s(&c["Type"]),
                                s(&c["Status"]),
                                s(&c["KeyAlgorithm"]),
                                date(&c["ExpirationDate"]),
                                s(&c["ParentAuthority"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            a.out.rows(
                &["NAME", "TYPE", "STATUS", "KEY", "EXPIRES", "PARENT"],
                &rows,
            )
        }
        CaCommand::Delete { name } => {
            let answer = a
                .call("DeleteCertificateAuthority", &json!({"Name": name}), LIST)
                .await?;
            a.done(&answer, format!("deleted certificate authority {name}"))
        }
        CaCommand::Revoke {
            name,
            serial_number,
        } => {
            let body = json!({"CertificateAuthority": name, "SerialNumber": serial_number});
            let answer = a.call("RevokeCertificate", &body, LIST).await?;
            a.done(
                &answer,
                format!(
                    "revoked {} of {name}; it is on GET /pki/{name}/crl",
                    s(&answer["SerialNumber"])
                ),
            )
        }
    }
}

fn template_rows(t: &Json) -> Vec<String> {
    let list = |v: &Json| {
        v.as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    };
    vec![
        s(&t["Name"]),
        s(&t["CertificateAuthority"]),
        s(&t["Ttl"]),
        s(&t["MaxTtl"]),
        list(&t["AllowedDomains"]),
        if t["AllowIpSans"].as_bool() == Some(true) {
            "yes".into()
        } else {
            "no".into()
        },
        s(&t["KeyAlgorithm"]),
        list(&t["KeyUsages"]),
    ]
}

const TEMPLATE_HEADER: [&str; 8] = [
    "NAME", "CA", "TTL", "MAX TTL", "DOMAINS", "IP SANS", "KEY", "USAGES",
];

pub async fn cert_template(
    command: CertTemplateCommand,
    args: &ClientArgs,
) -> Result<(), ClientError> {
    let a = Admin::new(args)?;
    const LIST: &str = "kura cert-template list";
    match command {
        CertTemplateCommand::Create {
            name,
            authority,
            allowed_domains,
            ttl,
            max_ttl,
            allow_ip_sans,
            key_algorithm,
            key_usages,
        } => {
            let mut body = json!({
                "Name": name,
                "CertificateAuthority": authority,
                "AllowedDomains": allowed_domains,
                "AllowIpSans": allow_ip_sans,
            });
            for (field, v) in [
                ("Ttl", ttl),
                ("MaxTtl", max_ttl),
                ("KeyAlgorithm", key_algorithm),
            ] {
                if let Some(v) = v {
                    body[field] = Json::String(v);
                }
            }
            if !key_usages.is_empty() {
                body["KeyUsages"] = json!(key_usages);
            }
            let answer = a.call("CreateCertificateTemplate", &body, LIST).await?;
            let t = &answer["CertificateTemplate"];
            a.done(
                &answer,
                format!(
                    "created certificate template {} (CA {}, ttl {}, max {}); a secret {{\"template\": \"{}\", \"common_name\": ...}} rotated by kura-private-certificate uses it",
                    s(&t["Name"]),
                    s(&t["CertificateAuthority"]),
                    s(&t["Ttl"]),
                    s(&t["MaxTtl"]),
                    s(&t["Name"])
                ),
            )
        }
        CertTemplateCommand::Describe { name } => {
            let answer = a
                .call("DescribeCertificateTemplate", &json!({"Name": name}), LIST)
                .await?;
            if a.out.format == Format::Json {
                return a.out.json(&answer);
            }
            a.out.rows(
                &TEMPLATE_HEADER,
                &[template_rows(&answer["CertificateTemplate"])],
            )
        }
        CertTemplateCommand::List => {
            let answer = a.call("ListCertificateTemplates", &json!({}), LIST).await?;
            if a.out.format == Format::Json {
                return a.out.json(&answer);
            }
            let rows: Vec<Vec<String>> = answer["CertificateTemplates"]
                .as_array()
                .map(|ts| ts.iter().map(template_rows).collect())
                .unwrap_or_default();
            a.out.rows(&TEMPLATE_HEADER, &rows)
        }
        CertTemplateCommand::Delete { name } => {
            let answer = a
                .call("DeleteCertificateTemplate", &json!({"Name": name}), LIST)
                .await?;
            a.done(&answer, format!("deleted certificate template {name}"))
        }
    }
}
