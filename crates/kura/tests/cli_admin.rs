//! `kura user …`, `kura key …`, `kura policy …` as a user runs them, against a real server.

mod common;

use common::cli::*;
use common::*;

const READ_APP: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
  "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}"#;

#[tokio::test]
async fn users_keys_and_their_policies() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let value = format!("app-value-{}", unique_suffix());
    server.remember(&value);
    cli.secret(&["create", "app/config", &value]).ok();

    let created = cli
        .kura(&["user", "create", "deployer", "--tag", "team=ops"])
        .ok()
        .json();
    assert_eq!(created["User"]["UserName"], "deployer");
    assert!(
        created["User"]["UserId"]
            .as_str()
            .unwrap()
            .starts_with("AIDA")
    );
    let table = cli.kura(&["user", "list", "--output", "table"]).ok().text();
    assert!(
        table.starts_with("NAME ") && table.contains("USER ID"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("deployer ")), "{table}");

    // create-key's text is a shared-credentials profile: used as it is, it signs as the user.
    let profile = cli
        .kura(&["user", "create-key", "deployer", "--output", "text"])
        .ok()
        .text();
    assert!(
        profile.starts_with("[deployer]\naws_access_key_id = AKIA"),
        "no profile: {} bytes",
        profile.len()
    );
    let secret = profile
        .lines()
        .find_map(|l| l.strip_prefix("aws_secret_access_key = "))
        .expect("a secret access key")
        .to_string();
    server.remember(&secret);
    let akid = profile
        .lines()
        .find_map(|l| l.strip_prefix("aws_access_key_id = "))
        .unwrap()
        .to_string();
    let creds = cli.shell.cwd.path().join("deployer-credentials");
    std::fs::write(&creds, &profile).unwrap();
    let mut deployer = Cli::new(&server);
    deployer
        .shell
        .set("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap());
    deployer.shell.set("AWS_PROFILE", "deployer");
    let me = deployer.kura(&["user", "whoami"]).ok().json();
    assert!(
        me["Arn"].as_str().unwrap().ends_with(":user/deployer"),
        "{me}"
    );
    let me = deployer
        .kura(&["user", "whoami", "-o", "table"])
        .ok()
        .text();
    assert!(
        me.contains(&akid) && me.contains("profile deployer of"),
        "{me}"
    );

    // No policy yet: denied (4); with one allowing reads, get works and list is still denied.
    deployer.secret(&["get", "app/config"]).fails(4);
    let policy = cli.shell.cwd.path().join("read.json");
    std::fs::write(&policy, READ_APP).unwrap();
    let at = format!("@{}", policy.display());
    cli.kura(&["policy", "validate", &at]).ok();
    cli.kura(&[
        "policy", "put", "--user", "deployer", "--name", "read-app", &at,
    ])
    .ok();
    assert_eq!(
        deployer.secret(&["get", "app/config"]).ok().stdout,
        value.as_bytes()
    );
    let err = deployer.secret(&["list"]).fails(4);
    assert!(
        err.contains("AccessDeniedException") && err.contains(&akid),
        "{err}"
    );
    let names = cli
        .kura(&["policy", "list", "--user", "deployer"])
        .ok()
        .json();
    assert_eq!(names["PolicyNames"], serde_json::json!(["read-app"]));
    let doc = cli
        .kura(&["policy", "get", "--user", "deployer", "--name", "read-app"])
        .ok()
        .json();
    assert_eq!(
        doc["Statement"][0]["Action"],
        "secretsmanager:GetSecretValue"
    );

    // A disabled key is refused (4) until enabled again.
    let keys = cli.kura(&["user", "keys", "deployer"]).ok().json();
    assert_eq!(keys["AccessKeyMetadata"][0]["AccessKeyId"], akid.as_str());
    cli.kura(&["user", "disable-key", &akid, "--user", "deployer"])
        .ok();
    let table = cli
        .kura(&["user", "keys", "deployer", "-o", "table"])
        .ok()
        .text();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&akid) && l.contains("Inactive")),
        "{table}"
    );
    deployer.kura(&["user", "whoami"]).fails(4);
    cli.kura(&["user", "enable-key", &akid, "--user", "deployer"])
        .ok();
    deployer.kura(&["user", "whoami"]).ok();

    // Deleting: the policy, the key, the user; then they are not found (3).
    cli.kura(&[
        "policy", "delete", "--user", "deployer", "--name", "read-app",
    ])
    .ok();
    let err = cli
        .kura(&["policy", "get", "--user", "deployer", "--name", "read-app"])
        .fails(3);
    assert!(err.contains("kura policy list --user deployer"), "{err}");
    cli.kura(&["user", "delete-key", &akid, "--user", "deployer"])
        .ok();
    deployer.kura(&["user", "whoami"]).fails(4);
    cli.kura(&["user", "delete", "deployer"]).ok();
    let err = cli.kura(&["user", "delete", "deployer"]).fails(3);
    assert!(err.contains("kura user list"), "{err}");
}

/// A key created with an expiry signs as its user until then (not as a rotation step's
/// assumed role), is listed with it, and is refused as expired once the clock passes it.
#[tokio::test]
async fn an_access_key_with_an_expiry_stops_authenticating_then() {
    let server = Server::start_with(&["--test-clock"]).await;
    let cli = Cli::new(&server);
    cli.kura(&["user", "create", "ci"]).ok();

    let bad = server
        .kura(
            "CreateAccessKey",
            &serde_json::json!({"UserName": "ci", "ExpiresIn": "soon"}).to_string(),
        )
        .await
        .assert_error("InvalidParameterException");
    assert!(bad.contains("ExpiresIn") && bad.contains("30m"), "{bad}");
    let err = cli
        .kura(&["user", "create-key", "ci", "--expires-in", "0d"])
        .fails(2);
    assert!(err.contains("ExpiresIn"), "{err}");

    let created = cli
        .kura(&[
            "user",
            "create-key",
            "ci",
            "--expires-in",
            "2h",
            "-o",
            "json",
        ])
        .ok()
        .json();
    let key = &created["AccessKey"];
    let field = |f: &str| key[f].as_str().unwrap_or_default().to_string();
    let (akid, secret) = (field("AccessKeyId"), field("SecretAccessKey"));
    server.remember(&secret);
    let lifetime = key["Expiration"].as_f64().unwrap() - key["CreateDate"].as_f64().unwrap();
    assert_eq!(lifetime, 7200.0, "{key}");
    let listed = cli.kura(&["user", "keys", "ci"]).ok().json();
    assert_eq!(
        listed["AccessKeyMetadata"][0]["Expiration"], key["Expiration"],
        "{listed}"
    );
    let table = cli.kura(&["user", "keys", "ci", "-o", "table"]).ok().text();
    assert!(table.contains("EXPIRES"), "{table}");
    // A second key still fits under the two-key limit alongside it.
    cli.kura(&["user", "create-key", "ci", "-o", "json"]).ok();

    let creds = cli.shell.cwd.path().join("ci-credentials");
    std::fs::write(
        &creds,
        format!("[ci]\naws_access_key_id = {akid}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    let mut ci = Cli::new(&server);
    ci.shell
        .set("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap());
    ci.shell.set("AWS_PROFILE", "ci");
    let me = ci.kura(&["user", "whoami"]).ok().json();
    assert!(me["Arn"].as_str().unwrap().ends_with(":user/ci"), "{me}");
    assert!(me["UserId"].as_str().unwrap().starts_with("AIDA"), "{me}");

    // Just before the expiry it still works; past it, it is refused as expired.
    server
        .kura(
            "AdvanceClock",
            &serde_json::json!({"Seconds": 7_190}).to_string(),
        )
        .await
        .assert_ok();
    ci.kura(&["user", "whoami"]).ok();
    server
        .kura(
            "AdvanceClock",
            &serde_json::json!({"Seconds": 20}).to_string(),
        )
        .await
        .assert_ok();
    let err = ci.kura(&["user", "whoami"]).fails(4);
    assert!(
        err.contains("The security token included in the request is expired.")
            && err.contains(&akid)
            && err.contains("kura user create-key"),
        "{err}"
    );
    let raw = server
        .raw_as(&akid, &secret, "Kura.GetCallerIdentity", "{}")
        .await
        .assert_error("UnrecognizedClientException");
    assert!(raw.contains("expired"), "{raw}");
    // Kept (listed, refused as expired) for a while rather than swept at once.
    let listed = cli.kura(&["user", "keys", "ci"]).ok().json();
    assert_eq!(
        listed["AccessKeyMetadata"].as_array().unwrap().len(),
        2,
        "{listed}"
    );
}

#[tokio::test]
async fn policies_are_validated_and_secrets_get_resource_policies() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let value = format!("guarded-{}", unique_suffix());
    server.remember(&value);
    cli.secret(&["create", "app/guarded", &value]).ok();

    // validate: kura's parser, no server needed; a bad document is 2 and says where.
    let offline = Shell::new(std::path::Path::new("/nonexistent"));
    let ok = offline.run(&["policy", "validate", READ_APP]).ok().json();
    assert_eq!(ok["PolicyValidationPassed"], true);
    let bad = READ_APP.replace("Allow", "Perhaps");
    let err = offline.run(&["policy", "validate", &bad]).fails(2);
    assert!(err.contains("Statement[0].Effect"), "{err}");
    let err = offline.run(&["policy", "validate", "{not json"]).fails(2);
    assert!(err.contains("not JSON"), "{err}");
    // A resource policy must name its principals.
    offline
        .run(&["policy", "validate", "--resource", READ_APP])
        .fails(2);
    // From stdin.
    offline
        .run_with(&["policy", "validate", "-"], READ_APP.as_bytes())
        .ok();

    let resource = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
      "Principal": {"AWS": "*"}, "Action": "secretsmanager:DeleteSecret", "Resource": "*"}]}"#;
    cli.kura(&["policy", "validate", "--resource", resource])
        .ok();
    let err = cli
        .kura(&["policy", "get", "--secret", "app/guarded"])
        .fails(3);
    assert!(
        err.contains("kura policy put --secret app/guarded"),
        "{err}"
    );
    cli.kura(&["policy", "put", "--secret", "app/guarded", resource])
        .ok();
    let doc = cli
        .kura(&["policy", "get", "--secret", "app/guarded"])
        .ok()
        .json();
    assert_eq!(doc["Statement"][0]["Effect"], "Deny");
    // The policy applies: a user allowed everything on secrets may not delete this one.
    cli.kura(&["user", "create", "ops"]).ok();
    let all = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
      "Action": "secretsmanager:*", "Resource": "*"}]}"#;
    cli.kura(&["policy", "put", "--user", "ops", "--name", "all", all])
        .ok();
    let (akid, secret) = server.new_access_key("ops").await;
    let mut ops = Cli::new(&server);
    ops.shell.set("AWS_ACCESS_KEY_ID", &akid);
    ops.shell.set("AWS_SECRET_ACCESS_KEY", &secret);
    assert_eq!(
        ops.secret(&["get", "app/guarded"]).ok().stdout,
        value.as_bytes()
    );
    let err = ops.secret(&["delete", "app/guarded", "--force"]).fails(4);
    assert!(err.contains("AccessDeniedException"), "{err}");
    cli.kura(&["policy", "delete", "--secret", "app/guarded"])
        .ok();
    cli.kura(&["policy", "get", "--secret", "app/guarded"])
        .fails(3);
    ops.secret(&["delete", "app/guarded", "--force"]).ok();
    // Neither --user nor --secret: usage.
    cli.kura(&["policy", "get"]).fails(2);
    cli.kura(&["policy", "get", "--user", "x"]).fails(2);
}

#[tokio::test]
async fn keys_are_created_rotated_and_scheduled_for_deletion() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let created = cli
        .kura(&[
            "key",
            "create",
            "--alias",
            "alias/team",
            "--description",
            "the team's key",
        ])
        .ok()
        .json();
    let key_id = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let table = cli.kura(&["key", "list", "-o", "table"]).ok().text();
    assert!(
        table.starts_with("KEY ID ") && table.contains("ALIAS"),
        "{table}"
    );
    assert!(
        table.lines().any(|l| l.starts_with(&key_id)
            && l.contains("alias/team")
            && l.contains("the team's key")),
        "{table}"
    );
    let listed = cli.kura(&["key", "list"]).ok().json();
    assert_eq!(listed["Keys"].as_array().unwrap().len(), 2, "{listed}");

    // A secret under it.
    let value = format!("team-{}", unique_suffix());
    server.remember(&value);
    cli.secret(&["create", "team/db", &value, "--kms-key-id", "alias/team"])
        .ok();
    let d = cli
        .secret(&["describe", "team/db", "-o", "table"])
        .ok()
        .text();
    assert!(
        d.lines()
            .any(|l| l.starts_with("Key:") && l.ends_with(" alias/team")),
        "{d}"
    );

    let rotated = cli.kura(&["key", "rotate", "alias/team"]).ok().json();
    assert_eq!(rotated["KeyMetadata"]["CurrentVersion"], 2);
    let described = cli
        .kura(&["key", "describe", "alias/team", "-o", "table"])
        .ok()
        .text();
    assert!(
        described.contains("Version:")
            && described
                .lines()
                .any(|l| l.starts_with("Version:") && l.ends_with(" 2")),
        "{described}"
    );
    assert_eq!(
        cli.secret(&["get", "team/db"]).ok().stdout,
        value.as_bytes()
    );

    // A new policy from a file: the key's default one with a statement id added.
    let mut policy: serde_json::Value =
        serde_json::from_str(created["KeyMetadata"]["Policy"].as_str().unwrap()).unwrap();
    policy["Statement"][0]["Sid"] = serde_json::json!("SetByTheCli");
    let file = cli.shell.cwd.path().join("team-key.json");
    std::fs::write(&file, policy.to_string()).unwrap();
    let at_file = format!("@{}", file.display());
    let line = cli
        .kura(&["key", "put-policy", "alias/team", &at_file, "-o", "text"])
        .ok()
        .text();
    assert!(line.contains("policy of key alias/team replaced"), "{line}");
    let d = cli.kura(&["key", "describe", "alias/team"]).ok().json();
    let now: serde_json::Value =
        serde_json::from_str(d["KeyMetadata"]["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(now["Statement"][0]["Sid"], "SetByTheCli", "{now}");
    let err = cli
        .kura(&["key", "put-policy", "alias/team", r#"{"Statement": "no"}"#])
        .fails(2);
    assert!(err.contains("Statement"), "{err}");

    // In use: deletion refused; unused: scheduled, then cancelled.
    cli.kura(&["key", "delete", "alias/team", "--pending-window-days", "7"])
        .fails(2);
    let spare = cli
        .kura(&["key", "create", "--alias", "alias/spare"])
        .ok()
        .json();
    assert!(spare["KeyMetadata"]["KeyId"].is_string());
    let line = cli
        .kura(&[
            "key",
            "delete",
            "alias/spare",
            "--pending-window-days",
            "7",
            "-o",
            "table",
        ])
        .ok()
        .text();
    assert!(
        line.contains("kura key cancel-deletion alias/spare"),
        "{line}"
    );
    let d = cli.kura(&["key", "describe", "alias/spare"]).ok().json();
    assert!(d["KeyMetadata"]["DeletionDate"].is_number(), "{d}");
    cli.kura(&["key", "cancel-deletion", "alias/spare"]).ok();
    let d = cli.kura(&["key", "describe", "alias/spare"]).ok().json();
    assert!(d["KeyMetadata"]["DeletionDate"].is_null(), "{d}");
    let err = cli.kura(&["key", "describe", "alias/none"]).fails(3);
    assert!(err.contains("kura key list"), "{err}");
}

/// The subcommands a `--help` lists under "Commands:" (clap's layout: two spaces, the name),
/// without `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// Walks `kura --help` down to every command that has no subcommands: each one's help has an
/// example of itself. Breaks if a command is added without one.
#[test]
fn every_command_has_an_example_in_its_help() {
    let shell = Shell::new(std::path::Path::new("/nonexistent"));
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    let mut leaves = Vec::new();
    let mut missing = Vec::new();
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = shell.run(&args).ok().text();
        let subs = subcommands(&help);
        if subs.is_empty() {
            let command = format!("kura {}", path.join(" "));
            // The command itself, not a longer one it begins (`kura operator seal` in
            // `kura operator seal-x`).
            let shown = help.lines().any(|l| {
                l.match_indices(command.as_str()).any(|(at, _)| {
                    let rest = &l[at + command.len()..];
                    rest.is_empty() || rest.starts_with(' ')
                })
            });
            if !(help.contains("Example") && shown) {
                missing.push(command.clone());
            }
            leaves.push(command);
        }
        for sub in subs {
            let mut next = path.clone();
            next.push(sub);
            todo.push(next);
        }
    }
    assert!(
        missing.is_empty(),
        "no example of itself in the help of: {missing:#?}"
    );
    // The walk found the commands (not an empty list from a changed help layout).
    for command in [
        "kura secret get",
        "kura user create-key",
        "kura audit lookup",
        "kura operator unseal",
        "kura run",
        "kura completion",
    ] {
        assert!(
            leaves.iter().any(|l| l == command),
            "{command} in {leaves:#?}"
        );
    }
    let help = shell.run(&["--help"]).ok().text();
    assert!(
        help.contains(
            "function, notify, ca, cert-template, audit lookup, agent, import, export, api)"
        ),
        "{help}"
    );
}

#[tokio::test]
async fn audit_lookup_shows_who_did_what() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let value = format!("audited-{}", unique_suffix());
    server.remember(&value);
    cli.secret(&["create", "audit/one", &value]).ok();
    cli.secret(&["get", "audit/one"]).ok();
    cli.secret(&["get", "audit/missing"]).fails(3);

    let errors = cli
        .kura(&["audit", "lookup", "--since", "5m", "--outcome", "Error"])
        .ok()
        .json();
    let events = errors["Events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{errors}");
    assert_eq!(events[0]["Action"], "secretsmanager:GetSecretValue");
    assert_eq!(events[0]["ErrorCode"], "ResourceNotFoundException");
    // The CLI names itself in the trail.
    assert!(
        events[0]["UserAgent"]
            .as_str()
            .unwrap_or("")
            .starts_with("kura/"),
        "{errors}"
    );
    let reads = cli
        .kura(&[
            "audit",
            "lookup",
            "--action",
            "secretsmanager:GetSecretValue",
        ])
        .ok()
        .json();
    assert_eq!(reads["Events"].as_array().unwrap().len(), 2, "{reads}");
    let limited = cli.kura(&["audit", "lookup", "--limit", "1"]).ok().json();
    assert_eq!(limited["Events"].as_array().unwrap().len(), 1);
    assert_eq!(
        limited["Events"][0]["Action"],
        "secretsmanager:CreateSecret"
    );
    // Nothing in the future.
    let none = cli
        .kura(&["audit", "lookup", "--since", "2099-01-01T00:00:00Z"])
        .ok()
        .json();
    assert_eq!(none["Events"], serde_json::json!([]));

    let table = cli
        .kura(&["audit", "lookup", "--outcome", "Error", "-o", "table"])
        .ok()
        .text();
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("TIME (UTC) ") && header.contains("ACTION"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("secretsmanager:GetSecretValue")
                && l.contains("ResourceNotFoundException")),
        "{table}"
    );
    let err = cli
        .kura(&["audit", "lookup", "--since", "yesterday"])
        .fails(2);
    assert!(err.contains("RFC 3339"), "{err}");
    // `audit verify` is still there, beside it.
    let help = cli.shell.run(&["audit", "--help"]).ok().text();
    assert!(help.contains("verify") && help.contains("lookup"), "{help}");
}

#[tokio::test]
async fn rotation_functions_and_notification_targets() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let pin = r#"{"Name": "pin", "Type": "kura-password",
      "PasswordRules": {"PasswordLength": 8, "ExcludePunctuation": true}}"#;
    let created = cli.kura(&["function", "create", pin]).ok().json();
    assert_eq!(created["Name"], "pin");
    let listed = cli.kura(&["function", "list"]).ok().json();
    let names: Vec<&str> = listed["RotationFunctions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["Name"].as_str())
        .collect();
    assert!(
        names.contains(&"pin") && names.contains(&"kura-password"),
        "{names:?}"
    );
    let table = cli.kura(&["function", "list", "-o", "table"]).ok().text();
    assert!(
        table.starts_with("NAME ") && table.contains("BUILT-IN"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("pin ") && l.contains("kura-password") && l.contains(" no ")),
        "{table}"
    );

    // A secret rotated by it: eight characters, no punctuation.
    let initial = format!("initial-{}", unique_suffix());
    server.remember(&initial);
    cli.secret(&["create", "app/pin", &initial]).ok();
    cli.secret(&["rotate", "app/pin", "--function", "pin"]).ok();
    wait_rotation_succeeded(&server, "app/pin").await;
    let value = cli.secret(&["get", "app/pin"]).ok().text();
    assert!(
        value.len() == 8 && value.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{} bytes",
        value.len()
    );
    // In use: refused, saying so.
    let refused = cli.kura(&["function", "delete", "pin"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("app/pin") || refused.stderr.contains("use"),
        "{}",
        refused.stderr
    );

    // A webhook function: the signing secret kura made is shown once, after the line.
    let hook = r#"{"Name": "hook", "Type": "webhook", "Url": "http://127.0.0.1:9/rotate"}"#;
    let shown = cli
        .kura(&["function", "create", hook, "-o", "table"])
        .ok()
        .text();
    let mut lines = shown.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("created rotation function hook (webhook)"),
        "{} bytes",
        shown.len()
    );
    let secret = lines
        .next()
        .unwrap()
        .strip_prefix("SigningSecret: ")
        .expect("the signing secret");
    server.remember(secret);
    let listed = cli.kura(&["function", "list"]).ok().text();
    assert!(!listed.contains(secret), "list shows a signing secret");
    cli.kura(&["function", "delete", "hook"]).ok();
    cli.kura(&["function", "delete", "hook"]).fails(3);
    cli.kura(&["function", "create", "{\"Name\": \"x\"}"])
        .fails(2);

    // Notification targets.
    let made = cli
        .kura(&[
            "notify",
            "create",
            "http://127.0.0.1:9/events",
            "--event",
            "RotationFailed",
            "--event",
            "SecretDeleted",
            "-o",
            "json",
        ])
        .ok()
        .json();
    let target = made["TargetId"].as_str().unwrap().to_string();
    let generated = made["SigningSecret"]
        .as_str()
        .expect("a generated signing secret")
        .to_string();
    server.remember(&generated);
    let own = format!("own-signing-secret-{}", unique_suffix());
    server.remember(&own);
    let second = cli
        .shell
        .run_with(
            &[
                "notify",
                "create",
                "http://127.0.0.1:9/other",
                "--event",
                "SecretValueChanged",
                "--signing-secret",
                "-",
                "--endpoint",
                &server.endpoint(),
            ],
            own.as_bytes(),
        )
        .ok()
        .json();
    assert!(second.get("SigningSecret").is_none(), "{second}");
    let table = cli.kura(&["notify", "list", "-o", "table"]).ok().text();
    assert!(
        table.starts_with("TARGET ID ") && table.contains("EVENTS"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&target) && l.contains("RotationFailed,SecretDeleted")),
        "{table}"
    );
    assert!(!table.contains(&generated) && !table.contains(&own));
    cli.kura(&["notify", "delete", &target]).ok();
    cli.kura(&["notify", "delete", &target]).fails(3);
    cli.kura(&[
        "notify",
        "create",
        "http://127.0.0.1:9/x",
        "--event",
        "Nope",
    ])
    .fails(2);
}

#[tokio::test]
async fn certificate_authorities_and_templates_from_the_command_line() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let root = cli
        .kura(&[
            "ca",
            "create",
            "root",
            "--type",
            "root",
            "--key-algorithm",
            "ED25519",
        ])
        .ok()
        .json();
    assert_eq!(root["CertificateAuthority"]["Status"], "Active");
    let pem = cli.kura(&["ca", "certificate", "root"]).ok().text();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    // An intermediate for an external root: the CSR alone on stdout.
    let csr = cli
        .kura(&[
            "ca",
            "create",
            "ext",
            "--type",
            "intermediate",
            "-o",
            "table",
        ])
        .ok()
        .text();
    assert!(
        csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
        "{csr}"
    );
    let refused = cli.kura(&["ca", "certificate", "ext"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("kura ca import ext"),
        "{}",
        refused.stderr
    );
    let table = cli.kura(&["ca", "list", "-o", "table"]).ok().text();
    assert!(
        table.starts_with("NAME ") && table.contains("STATUS"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("ext ") && l.contains("PendingCertificate")),
        "{table}"
    );

    cli.kura(&[
        "cert-template",
        "create",
        "web",
        "--ca",
        "root",
        "--allowed-domain",
        ".example.test",
        "--ttl",
        "10d",
        "--key-usage",
        "client",
    ])
    .ok();
    let t = cli.kura(&["cert-template", "describe", "web"]).ok().json();
    assert_eq!(
        t["CertificateTemplate"]["KeyUsages"],
        serde_json::json!(["client"])
    );
    assert_eq!(t["CertificateTemplate"]["MaxTtl"], "10d");
    let table = cli
        .kura(&["cert-template", "list", "-o", "table"])
        .ok()
        .text();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web ") && l.contains(".example.test")),
        "{table}"
    );
    let bad = cli.kura(&[
        "cert-template",
        "create",
        "x",
        "--ca",
        "root",
        "--allowed-domain",
        "a.test",
        "--key-usage",
        "email",
    ]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("KeyUsages"), "{}", bad.stderr);

    // A certificate, then its revocation.
    let request = r#"{"template": "web", "common_name": "c.example.test"}"#;
    server.remember(request);
    cli.secret(&["create", "certs/c", request]).ok();
    cli.secret(&[
        "rotate",
        "certs/c",
        "--function",
        "kura-private-certificate",
    ])
    .ok();
    wait_rotation_succeeded(&server, "certs/c").await;
    let serial = cli
        .secret(&["get", "certs/c", "--field", "serial_number"])
        .ok()
        .text();
    let revoked = cli
        .kura(&["ca", "revoke", "root", serial.trim()])
        .ok()
        .json();
    assert_eq!(revoked["SerialNumber"], serial.trim());
    let refused = cli.kura(&["ca", "delete", "root"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("web"), "{}", refused.stderr);
    cli.kura(&["cert-template", "delete", "web"]).ok();
    cli.kura(&["ca", "delete", "root"]).ok();
    let gone = cli.kura(&["ca", "describe", "root"]);
    assert_eq!(gone.code, 3, "not found: {}", gone.stderr);
}
