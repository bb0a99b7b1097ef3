//! `kura secret …` as a user runs it: the built binary against a real server, its JSON parsed,
//! its tables read, its exit codes and its configuration (profiles, endpoint variables).

mod common;

use std::path::Path;
use std::process::Command;

use common::cli::*;
use common::*;

fn names(list: &serde_json::Value) -> Vec<String> {
    list["SecretList"]
        .as_array()
        .expect("SecretList")
        .iter()
        .map(|s| s["Name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_secret_command_against_a_server() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let first = format!("first-{}", unique_suffix());
    let second = format!("second-{}", unique_suffix());
    let third = format!("third-{}", unique_suffix());
    for v in [&first, &second, &third] {
        server.remember(v);
    }

    // create with the value as an argument; JSON by default when stdout is not a terminal.
    let created = cli
        .secret(&[
            "create",
            "app/db",
            &first,
            "--description",
            "the app's db",
            "--tag",
            "team=web",
        ])
        .ok()
        .json();
    assert_eq!(created["Name"], "app/db");
    let v1 = created["VersionId"].as_str().unwrap().to_string();

    // get prints the value exactly, no newline when piped.
    assert_eq!(cli.secret(&["get", "app/db"]).ok().stdout, first.as_bytes());

    // put from a file, then from stdin.
    let file = cli.shell.cwd.path().join("value.txt");
    std::fs::write(&file, &second).unwrap();
    let put = cli
        .secret(&["put", "app/db", &format!("@{}", file.display())])
        .ok()
        .json();
    let v2 = put["VersionId"].as_str().unwrap().to_string();
    assert_eq!(put["VersionStages"], serde_json::json!(["AWSCURRENT"]));
    assert_eq!(
        cli.secret(&["get", "app/db"]).ok().stdout,
        second.as_bytes()
    );
    let put = cli
        .secret_with(&["put", "app/db", "-"], third.as_bytes())
        .ok()
        .json();
    let v3 = put["VersionId"].as_str().unwrap().to_string();
    // No argument and stdin not a terminal: stdin is read too.
    let pending = format!("pending-{}", unique_suffix());
    server.remember(&pending);
    cli.secret_with(
        &["put", "app/db", "--stage", "AWSPENDING"],
        pending.as_bytes(),
    )
    .ok();
    assert_eq!(cli.secret(&["get", "app/db"]).ok().stdout, third.as_bytes());
    assert_eq!(
        cli.secret(&["get", "app/db", "--stage", "AWSPENDING"])
            .ok()
            .stdout,
        pending.as_bytes()
    );
    assert_eq!(
        cli.secret(&["get", "app/db", "--version", &v2]).ok().stdout,
        second.as_bytes()
    );
    // --output json: the whole answer.
    let answer = cli
        .secret(&[
            "get",
            "app/db",
            "--stage",
            "AWSPREVIOUS",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(answer["SecretString"], second.as_str());
    assert_eq!(answer["VersionId"], v2.as_str());

    // versions: every version with its labels.
    let versions = cli.secret(&["versions", "app/db"]).ok().json();
    let labels = |id: &str| -> Vec<String> {
        versions["Versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["VersionId"] == id)
            .map(|v| serde_json::from_value(v["VersionStages"].clone()).unwrap())
            .unwrap_or_default()
    };
    assert_eq!(labels(&v3), ["AWSCURRENT"]);
    assert_eq!(labels(&v2), ["AWSPREVIOUS"]);
    let table = cli
        .secret(&["versions", "app/db", "--output", "table"])
        .ok()
        .text();
    let mut lines = table.lines();
    assert!(
        lines.next().unwrap().starts_with("VERSION ") && table.contains("STAGES"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&v3) && l.contains("AWSCURRENT")),
        "{table}"
    );

    // label: AWSCURRENT back to the first version.
    cli.secret(&[
        "label",
        "app/db",
        "--stage",
        "AWSCURRENT",
        "--to",
        &v1,
        "--from",
        &v3,
    ])
    .ok();
    assert_eq!(cli.secret(&["get", "app/db"]).ok().stdout, first.as_bytes());
    // A custom label on, then off.
    cli.secret(&["label", "app/db", "--stage", "blue", "--to", &v2])
        .ok();
    assert_eq!(
        cli.secret(&["get", "app/db", "--stage", "blue"])
            .ok()
            .stdout,
        second.as_bytes()
    );
    cli.secret(&["label", "app/db", "--stage", "blue", "--from", &v2])
        .ok();
    cli.secret(&["get", "app/db", "--stage", "blue"]).fails(3);

    // tag, untag, update; describe shows them.
    cli.secret(&["tag", "app/db", "env=prod", "tier=1"]).ok();
    cli.secret(&["untag", "app/db", "tier"]).ok();
    cli.secret(&["update", "app/db", "--description", "primary db"])
        .ok();
    let d = cli.secret(&["describe", "app/db"]).ok().json();
    assert_eq!(d["Description"], "primary db");
    let mut tags: Vec<(String, String)> = d["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().into(),
                t["Value"].as_str().unwrap().into(),
            )
        })
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        [("env".into(), "prod".into()), ("team".into(), "web".into())]
    );
    assert_eq!(
        d["VersionIdsToStages"][&v1],
        serde_json::json!(["AWSCURRENT"])
    );

    // describe as a table: key/value lines, never a value.
    let table = cli
        .secret(&["describe", "app/db", "--output", "table"])
        .ok()
        .text();
    assert!(table.starts_with("Name:"), "{table}");
    // As text: key<TAB>value, a line for each version.
    let text = cli
        .secret(&["describe", "app/db", "-o", "text"])
        .ok()
        .text();
    assert!(text.lines().any(|l| l == "Name\tapp/db"), "{text}");
    let versions = text.lines().filter(|l| l.starts_with("Versions\t")).count();
    // Labelled versions only: AWSCURRENT, AWSPREVIOUS and AWSPENDING.
    assert_eq!(versions, 3, "{text}");
    assert!(
        table.contains("Description:") && table.contains("primary db"),
        "{table}"
    );
    assert!(table.contains("env=prod, team=web"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains(&v1) && l.contains("AWSCURRENT")),
        "{table}"
    );
    assert!(
        !table.contains('\x1b'),
        "colour when not a terminal: {table:?}"
    );
    for v in [&first, &second, &third, &pending] {
        assert!(
            !table.contains(v.as_str()),
            "describe's table shows a value"
        );
    }
    // update with a value.
    let fourth = format!("fourth-{}", unique_suffix());
    server.remember(&fourth);
    cli.secret(&["update", "app/db", "--value", &fourth]).ok();
    assert_eq!(
        cli.secret(&["get", "app/db"]).ok().stdout,
        fourth.as_bytes()
    );

    // delete with a recovery window, refused reads, restore; then delete for good.
    let deleted = cli
        .secret(&["delete", "app/db", "--recovery-window-days", "7"])
        .ok()
        .json();
    assert!(deleted["DeletionDate"].as_f64().is_some(), "{deleted}");
    let err = cli.secret(&["get", "app/db"]).fails(2);
    assert!(err.contains("kura secret restore app/db"), "{err}");
    assert_eq!(
        names(&cli.secret(&["list"]).ok().json()),
        Vec::<String>::new()
    );
    let text = cli
        .secret(&["delete", "app/db", "--output", "text"])
        .fails(2);
    assert!(text.contains("restore"), "{text}");
    cli.secret(&["restore", "app/db"]).ok();
    assert_eq!(
        cli.secret(&["get", "app/db"]).ok().stdout,
        fourth.as_bytes()
    );
    let line = cli
        .secret(&["delete", "app/db", "--force", "--output", "table"])
        .ok()
        .text();
    assert_eq!(line.trim(), "deleted app/db for good");
    let err = cli.secret(&["describe", "app/db"]).fails(3);
    assert!(
        err.contains("no secret named app/db") && err.contains("kura secret list"),
        "{err}"
    );
}

#[tokio::test]
async fn get_prints_one_field_and_binary_values_as_bytes() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let password = format!("pw-{}", unique_suffix());
    server.remember(&password);
    let value = serde_json::json!({"username": "app", "password": password, "port": 5432});
    cli.secret(&["create", "app/login", &value.to_string()])
        .ok();
    assert_eq!(
        cli.secret(&["get", "app/login", "--field", "password"])
            .ok()
            .stdout,
        password.as_bytes()
    );
    assert_eq!(
        cli.secret(&["get", "app/login", "--field", "port"])
            .ok()
            .stdout,
        b"5432"
    );
    let err = cli
        .secret(&["get", "app/login", "--field", "host"])
        .fails(2);
    assert!(
        err.contains("username") && err.contains("password"),
        "{err}"
    );
    assert!(!err.contains(&password), "an error shows the value");
    // --output json with --field: the field only, not the whole value.
    let shown = cli
        .secret(&[
            "get",
            "app/login",
            "--field",
            "username",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(shown["FieldValue"], "app");
    assert!(shown.get("SecretString").is_none(), "{shown}");

    // A table for get shows the value (the one table that does).
    let table = cli
        .secret(&["get", "app/login", "--output", "table"])
        .ok()
        .text();
    assert!(
        table.contains("AWSCURRENT") && table.contains(&password),
        "{table}"
    );

    // Bytes that are not UTF-8: refused as text, stored with --binary, printed as they are.
    let bytes: Vec<u8> = (0u8..=255).rev().chain(0u8..32).collect();
    let file = cli.shell.cwd.path().join("blob.bin");
    std::fs::write(&file, &bytes).unwrap();
    let at = format!("@{}", file.display());
    let err = cli.secret(&["create", "app/blob", &at]).fails(2);
    assert!(err.contains("--binary"), "{err}");
    cli.secret(&["create", "app/blob", &at, "--binary"]).ok();
    assert_eq!(cli.secret(&["get", "app/blob"]).ok().stdout, bytes);
    let err = cli.secret(&["get", "app/blob", "--field", "x"]).fails(2);
    assert!(err.contains("binary"), "{err}");

    // A secret with no value yet; an empty value is refused.
    let created = cli
        .secret(&["create", "app/later", "--no-value"])
        .ok()
        .json();
    assert!(created.get("VersionId").is_none(), "{created}");
    let err = cli.secret_with(&["put", "app/later"], b"").fails(2);
    assert!(err.contains("empty"), "{err}");
}

#[tokio::test]
async fn list_pages_through_everything_and_filters() {
    let server = Server::start().await;
    let client = server.client().await;
    let cli = Cli::new(&server);
    let mut expected = Vec::new();
    for i in 0..7 {
        let name = format!("prod/svc-{i}");
        create_plain(&client, &name, &format!("value-{i}-{}", unique_suffix())).await;
        expected.push(name);
    }
    create_plain(&client, "dev/tool", &format!("dev-{}", unique_suffix())).await;
    client
        .tag_resource()
        .secret_id("prod/svc-3")
        .tags(tag("team", "billing"))
        .send()
        .await
        .unwrap();

    // Pages of 2: all 8 come back.
    let all = names(&cli.secret(&["list", "--page-size", "2"]).ok().json());
    assert_eq!(all.len(), 8, "{all:?}");
    let prod = names(
        &cli.secret(&[
            "list",
            "--filter",
            "name=prod/",
            "--page-size",
            "3",
            "--sort-by",
            "name",
        ])
        .ok()
        .json(),
    );
    assert_eq!(prod, expected);
    let desc = names(
        &cli.secret(&[
            "list",
            "--filter",
            "name=prod/",
            "--sort-by",
            "name",
            "--sort",
            "desc",
        ])
        .ok()
        .json(),
    );
    assert_eq!(desc, expected.iter().rev().cloned().collect::<Vec<_>>());
    let tagged = names(
        &cli.secret(&["list", "--filter", "tag-key=team"])
            .ok()
            .json(),
    );
    assert_eq!(tagged, ["prod/svc-3"]);
    // Two values of one key: either matches.
    let two = names(
        &cli.secret(&[
            "list",
            "--filter",
            "name=dev/",
            "--filter",
            "name=prod/svc-1",
        ])
        .ok()
        .json(),
    );
    assert_eq!(two.len(), 2, "{two:?}");

    cli.secret(&["delete", "dev/tool"]).ok();
    assert_eq!(names(&cli.secret(&["list"]).ok().json()).len(), 7);
    let with_deleted = cli
        .secret(&["list", "--include-planned-deletion", "--output", "table"])
        .ok()
        .text();
    let mut lines = with_deleted.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("NAME ")
            && header.contains("ROTATION")
            && header.contains("LAST CHANGED"),
        "{with_deleted}"
    );
    assert!(header.contains("DELETION PLANNED"), "{with_deleted}");
    assert!(
        with_deleted
            .lines()
            .any(|l| l.starts_with("dev/tool ") && l.contains(" off ")),
        "{with_deleted}"
    );
    // text: tab-separated, no header.
    let text = cli
        .secret(&["list", "--output", "text", "--sort-by", "name"])
        .ok()
        .text();
    let first: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(first, expected);
    // A filter that is not KEY=VALUE, and one the server refuses.
    cli.secret(&["list", "--filter", "prod"]).fails(2);
    cli.secret(&["list", "--filter", "colour=blue"]).fails(2);
}

#[tokio::test]
async fn rotate_and_cancel_rotation() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let initial = format!("initial-{}", unique_suffix());
    server.remember(&initial);
    let value = serde_json::json!({"username": "app", "password": initial});
    cli.secret(&["create", "app/rotating", &value.to_string()])
        .ok();
    // Without a function yet: the error says how to give it one.
    let err = cli.secret(&["rotate", "app/rotating"]).fails(2);
    assert!(
        err.contains("kura secret rotate app/rotating --function kura-password")
            && err.contains("kura function list"),
        "{err}"
    );
    let rotated = cli
        .secret(&[
            "rotate",
            "app/rotating",
            "--function",
            "kura-password",
            "--schedule",
            "rate(30 days)",
        ])
        .ok()
        .json();
    assert!(rotated["VersionId"].is_string(), "{rotated}");
    wait_rotation_succeeded(&server, "app/rotating").await;
    let password = cli
        .secret(&["get", "app/rotating", "--field", "password"])
        .ok()
        .text();
    assert_eq!(password.len(), 32);
    assert_ne!(password, initial);
    let table = cli.secret(&["list", "--output", "table"]).ok().text();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("app/rotating ") && l.contains("rate(30 days) (kura-password)")),
        "{table}"
    );
    let d = cli.secret(&["describe", "app/rotating"]).ok().json();
    assert_eq!(d["RotationEnabled"], true);
    assert_eq!(d["RotationRules"]["ScheduleExpression"], "rate(30 days)");

    cli.secret(&["cancel-rotation", "app/rotating"]).ok();
    let d = cli.secret(&["describe", "app/rotating"]).ok().json();
    assert_eq!(d["RotationEnabled"], false);
    let line = cli
        .secret(&[
            "rotate",
            "app/rotating",
            "--every-days",
            "7",
            "--no-rotate-now",
            "-o",
            "table",
        ])
        .ok()
        .text();
    assert_eq!(line.trim(), "rotation of app/rotating set");
    let d = cli.secret(&["describe", "app/rotating"]).ok().json();
    assert_eq!(d["RotationRules"]["AutomaticallyAfterDays"], 7);
}

#[tokio::test]
async fn exit_codes_say_what_went_wrong() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let value = format!("guarded-{}", unique_suffix());
    server.remember(&value);
    cli.secret(&["create", "team/guarded", &value]).ok();

    // 2: usage (clap's), input, and what the server calls invalid.
    let err = cli.secret(&["get"]).fails(2);
    assert!(err.contains("Usage"), "{err}");
    cli.secret(&[
        "delete",
        "team/guarded",
        "--force",
        "--recovery-window-days",
        "7",
    ])
    .fails(2);
    let err = cli
        .secret(&["delete", "team/guarded", "--recovery-window-days", "3"])
        .fails(2);
    assert!(
        err.contains("RecoveryWindowInDays") || err.contains("7"),
        "{err}"
    );
    cli.secret(&["tag", "team/guarded", "no-equals-sign"])
        .fails(2);
    cli.secret(&["create", "x/y", "@/nonexistent/file"])
        .fails(2);
    cli.secret(&["update", "team/guarded"]).fails(2);

    // 3: not found, saying where to look.
    let err = cli.secret(&["get", "team/missing"]).fails(3);
    assert!(
        err.contains("no secret named team/missing") && err.contains("kura secret list"),
        "{err}"
    );
    assert!(err.contains("ResourceNotFoundException"), "{err}");

    // 4: a user without permission, an unknown key, a wrong secret key.
    server
        .kura("CreateUser", r#"{"UserName": "nobody"}"#)
        .await
        .assert_ok();
    let (akid, secret) = server.new_access_key("nobody").await;
    let mut as_nobody = Cli::new(&server);
    as_nobody.shell.set("AWS_ACCESS_KEY_ID", &akid);
    as_nobody.shell.set("AWS_SECRET_ACCESS_KEY", &secret);
    let err = as_nobody.secret(&["get", "team/guarded"]).fails(4);
    assert!(
        err.contains("AccessDeniedException")
            && err.contains(&akid)
            && err.contains("AWS_ACCESS_KEY_ID"),
        "{err}"
    );
    let mut unknown = Cli::new(&server);
    unknown
        .shell
        .set("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN000000000");
    unknown
        .shell
        .set("AWS_SECRET_ACCESS_KEY", "wrong-secret-key");
    unknown.secret(&["list"]).fails(4);
    let mut wrong = Cli::new(&server);
    wrong.shell.set("AWS_ACCESS_KEY_ID", &akid);
    wrong
        .shell
        .set("AWS_SECRET_ACCESS_KEY", "not-the-secret-key");
    let err = wrong.secret(&["list"]).fails(4);
    assert!(err.contains("secret key"), "{err}");

    // An endpoint without its scheme: 2, saying how to write it.
    for slip in ["localhost:8200", "127.0.0.1:8200"] {
        let err = cli
            .shell
            .run(&["secret", "list", "--endpoint", slip])
            .fails(2);
        assert!(err.contains(&format!("http://{slip}")), "{err}");
    }

    // 1: something that is not kura answers (a proxy's error page).
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let answering = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = proxy.accept().unwrap();
        let mut buf = [0u8; 65536];
        let _ = conn.read(&mut buf);
        let page = "<html>Bad Gateway</html>";
        let _ = write!(
            conn,
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
    });
    let err = cli
        .shell
        .run(&["secret", "list", "--endpoint", &proxy_url])
        .fails(1);
    answering.join().unwrap();
    assert!(
        err.contains("not from a kura server") && err.contains("Bad Gateway"),
        "{err}"
    );

    // 5: nothing listening.
    let closed = closed_port_endpoint();
    let err = cli
        .shell
        .run(&["secret", "list", "--endpoint", &closed])
        .fails(5);
    assert!(
        err.contains(&closed) && err.contains("cannot reach"),
        "{err}"
    );

    // The help documents them, and every command has an example.
    let help = cli.shell.run(&["--help"]).ok().text();
    for code in [
        "2  bad usage",
        "3  not found",
        "4  denied",
        "5  the server could not be reached",
    ] {
        assert!(help.contains(code), "{help}");
    }
    for command in [
        "create",
        "get",
        "put",
        "update",
        "describe",
        "list",
        "versions",
        "label",
        "tag",
        "untag",
        "delete",
        "restore",
        "rotate",
        "cancel-rotation",
    ] {
        let help = cli.shell.run(&["secret", command, "--help"]).ok().text();
        assert!(
            help.contains("Example") && help.contains(&format!("kura secret {command} ")),
            "{command}: {help}"
        );
    }
}

#[tokio::test]
async fn configuration_is_found_as_the_aws_cli_finds_it() {
    let server = Server::start().await;
    let value = format!("configured-{}", unique_suffix());
    server.remember(&value);
    let root = server.credentials();
    let closed = closed_port_endpoint();

    // Nothing configured but ./kura-data: the root credentials, and KURA_ENDPOINT.
    let mut shell = Shell::new(&server.data_dir);
    shell.set("KURA_ENDPOINT", &server.endpoint());
    shell.run(&["secret", "create", "cfg/one", &value]).ok();

    // A profile in ~/.aws: its key from credentials, its endpoint_url from config.
    let aws = shell.home.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[default]\naws_access_key_id = AKIANOTKNOWN00000000\naws_secret_access_key = x\n\n\
             [kura]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            root.access_key_id, root.secret_access_key
        ),
    )
    .unwrap();
    std::fs::write(
        aws.join("config"),
        format!(
            "[profile kura]\nregion = eu-west-1\nendpoint_url = {}\n",
            server.endpoint()
        ),
    )
    .unwrap();
    let mut shell = Shell::new(&server.data_dir);
    std::fs::create_dir_all(shell.home.path().join(".aws")).unwrap();
    for f in ["credentials", "config"] {
        std::fs::copy(aws.join(f), shell.home.path().join(".aws").join(f)).unwrap();
    }
    shell.set("KURA_ENDPOINT", &closed);
    let get = |shell: &Shell, args: &[&str]| {
        let mut all = vec!["secret", "get", "cfg/one"];
        all.extend_from_slice(args);
        shell.run(&all)
    };
    // --profile: the profile's endpoint_url comes before KURA_ENDPOINT.
    assert_eq!(
        get(&shell, &["--profile", "kura"]).ok().stdout,
        value.as_bytes()
    );
    // The default profile's key is not known to the server: 4, naming where it came from.
    let err = shell
        .run(&["secret", "list", "--endpoint", &server.endpoint()])
        .fails(4);
    assert!(
        err.contains("profile default of") && err.contains(".aws/credentials"),
        "{err}"
    );
    // AWS_PROFILE names it too.
    shell.set("AWS_PROFILE", "kura");
    assert_eq!(get(&shell, &[]).ok().stdout, value.as_bytes());
    // AWS_ENDPOINT_URL_SECRETS_MANAGER beats the profile's endpoint_url (here: nothing there).
    shell.set("AWS_ENDPOINT_URL_SECRETS_MANAGER", &closed);
    get(&shell, &[]).fails(5);
    // ... and --endpoint beats that.
    assert_eq!(
        get(&shell, &["--endpoint", &server.endpoint()]).ok().stdout,
        value.as_bytes()
    );
    // A session token is sent, and signed (the server refuses unsigned x-amz-* headers).
    let mut with_token = Shell::new(&server.data_dir);
    with_token.set("AWS_ACCESS_KEY_ID", &root.access_key_id);
    with_token.set("AWS_SECRET_ACCESS_KEY", &root.secret_access_key);
    with_token.set("AWS_SESSION_TOKEN", "a-session-token");
    with_token.set("AWS_ENDPOINT_URL", &server.endpoint());
    assert_eq!(get(&with_token, &[]).ok().stdout, value.as_bytes());
    // A profile that does not exist: 2, naming the files.
    let err = get(&shell, &["--profile", "nope"]).fails(2);
    assert!(
        err.contains("no profile nope") && err.contains("--profile"),
        "{err}"
    );

    // AWS_ENDPOINT_URL_SECRETS_MANAGER alone, and AWS_SHARED_CREDENTIALS_FILE.
    let mut shell = Shell::new(&server.data_dir);
    shell.set("AWS_ENDPOINT_URL_SECRETS_MANAGER", &server.endpoint());
    shell.set("KURA_ENDPOINT", &closed);
    shell.set(
        "AWS_SHARED_CREDENTIALS_FILE",
        server.data_dir.join("root-credentials").to_str().unwrap(),
    );
    assert_eq!(get(&shell, &[]).ok().stdout, value.as_bytes());

    // No credentials anywhere: 2, saying what to set.
    let empty = tempfile::tempdir().unwrap();
    let mut shell = Shell::new(empty.path());
    shell.set("KURA_ENDPOINT", &server.endpoint());
    let err = shell.run(&["secret", "list"]).fails(2);
    assert!(
        err.contains("AWS_ACCESS_KEY_ID") && err.contains("--profile"),
        "{err}"
    );

    // kura api shares the resolution: the profile's endpoint and key.
    let mut shell = Shell::new(empty.path());
    std::fs::create_dir_all(shell.home.path().join(".aws")).unwrap();
    for f in ["credentials", "config"] {
        std::fs::copy(aws.join(f), shell.home.path().join(".aws").join(f)).unwrap();
    }
    shell.set("AWS_PROFILE", "kura");
    let out = shell
        .run(&["api", "DescribeSecret", r#"{"SecretId": "cfg/one"}"#])
        .ok()
        .json();
    assert_eq!(out["Name"], "cfg/one");
    let err = shell
        .run(&["api", "DescribeSecret", r#"{"SecretId": "cfg/none"}"#])
        .fails(3);
    assert!(err.contains("ResourceNotFoundException"), "{err}");
}

#[tokio::test]
async fn on_a_terminal_a_coloured_table_and_a_prompt_without_echo() {
    if !have("script") {
        return skip("no `script` (util-linux) to run kura on a terminal");
    }
    let server = Server::start().await;
    let shell = Shell::new(&server.data_dir);
    let kura = env!("CARGO_BIN_EXE_kura");
    let endpoint = server.endpoint();
    // `script` runs the command on a pseudo-terminal; its exit code is the command's. Each
    // answer is typed once the prompt before it is on the screen (typed earlier, it would be
    // echoed).
    let on_tty = |command: &str, answers: &[(&str, &str)], no_color: bool| {
        use std::io::{Read, Write};
        let script = format!("{kura} {command} --endpoint {endpoint}");
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &script, "/dev/null"])
            .current_dir(shell.cwd.path())
            .env("HOME", shell.home.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        for v in AWS_VARS {
            cmd.env_remove(v);
        }
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let mut child = cmd.spawn().expect("run script");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reader = {
            let screen = screen.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    screen.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        };
        for (prompt, answer) in answers {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !String::from_utf8_lossy(&screen.lock().unwrap()).contains(prompt) {
                assert!(std::time::Instant::now() < deadline, "no prompt {prompt:?}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            // A moment for the prompt to turn echo off after printing itself.
            std::thread::sleep(std::time::Duration::from_millis(300));
            stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
        }
        let status = child.wait().expect("wait for script");
        drop(stdin);
        reader.join().unwrap();
        let out = String::from_utf8_lossy(&screen.lock().unwrap()).replace("\r\n", "\n");
        (status.code().unwrap_or(-1), out)
    };

    let typed = format!("typed-{}", unique_suffix());
    server.remember(&typed);
    let answers = [
        ("Value of tty/typed (not shown): ", typed.as_str()),
        ("The same again: ", typed.as_str()),
    ];
    let (code, out) = on_tty("secret create tty/typed", &answers, false);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("created tty/typed (version "), "{out}");
    assert!(!out.contains(&typed), "the typed value was echoed: {out}");
    let client = server.client().await;
    assert_eq!(get_string(&client, "tty/typed").await, typed);
    // Two different values: nothing stored.
    let answers = [
        ("Value of tty/typed (not shown): ", "one-value"),
        ("The same again: ", "another-value"),
    ];
    let (code, out) = on_tty("secret put tty/typed", &answers, false);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("differ"), "{out}");
    assert_eq!(get_string(&client, "tty/typed").await, typed);

    // A table by default, its header bold; NO_COLOR: the same table, plain.
    let (code, out) = on_tty("secret list", &[], false);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("\x1b[1mNAME"), "{out:?}");
    assert!(out.lines().any(|l| l.starts_with("tty/typed ")), "{out}");
    let (code, plain) = on_tty("secret list", &[], true);
    assert_eq!(code, 0, "{plain}");
    assert!(
        plain.starts_with("NAME ") && !plain.contains('\x1b'),
        "{plain:?}"
    );
    // On a terminal get ends the value with a newline.
    let (_, out) = on_tty("secret get tty/typed", &[], false);
    assert_eq!(out, format!("{typed}\n"));
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish() {
    let shell = Shell::new(Path::new("/nonexistent"));
    let bash = shell.run(&["completion", "bash"]).ok().text();
    for word in [
        "secret",
        "cancel-rotation",
        "--recovery-window-days",
        "--output",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let file = shell.cwd.path().join("kura.bash");
    std::fs::write(&file, &bash).unwrap();
    // It parses, and once sourced completes `kura secret de` to delete and describe.
    let check = format!(
        "source {}; COMP_WORDS=(kura secret de); COMP_CWORD=2; _kura kura de secret; echo \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash").args(["-c", &check]).output().unwrap();
    let words = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && words.contains("delete") && words.contains("describe"),
        "{words} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zsh = shell.run(&["completion", "zsh"]).ok().text();
    assert!(
        zsh.starts_with("#compdef kura") && zsh.contains("cancel-rotation"),
        "{zsh}"
    );
    let fish = shell.run(&["completion", "fish"]).ok().text();
    assert!(fish.contains("complete -c kura") && fish.contains("cancel-rotation"));
    shell.run(&["completion", "tcsh"]).fails(2);
    // A reader that stops early (89 KB is more than a pipe holds): a quiet, successful end.
    let piped = format!(
        "{} completion bash | head -c 10 >/dev/null; exit ${{PIPESTATUS[0]}}",
        env!("CARGO_BIN_EXE_kura")
    );
    let out = Command::new("bash").args(["-c", &piped]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.is_empty(),
        "{:?} {err}",
        out.status
    );
}

#[tokio::test]
async fn a_sealed_server_is_an_error_that_says_how_to_unseal() {
    let server = Server::start_with(&["--seal", "shamir"]).await;
    // Not initialised, so no root credentials yet: any key will do, the seal answers first.
    let mut cli = Cli::new(&server);
    cli.shell.set("AWS_ACCESS_KEY_ID", "AKIAANYTHING00000000");
    cli.shell.set("AWS_SECRET_ACCESS_KEY", "anything");
    let err = cli.secret(&["list"]).fails(1);
    assert!(
        err.contains("ServiceUnavailable") && err.contains("kura operator unseal"),
        "{err}"
    );
    let err = cli.kura(&["user", "list"]).fails(1);
    assert!(err.contains("kura operator unseal"), "{err}");
}
