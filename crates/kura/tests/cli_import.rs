//! `kura import` and `kura export` as a user runs them: the built binary against real servers,
//! every source format, re-runs that change nothing, dry runs, and an export imported into a
//! second server.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::cli::*;
use common::*;

async fn value(server: &Server, name: &str) -> String {
    server
        .client()
        .await
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {name}: {e:?}"))
        .secret_string()
        .unwrap()
        .to_string()
}

async fn version_count(server: &Server, name: &str) -> usize {
    server
        .client()
        .await
        .list_secret_version_ids()
        .secret_id(name)
        .include_deprecated(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("versions of {name}: {e:?}"))
        .versions()
        .len()
}

async fn exists(server: &Server, name: &str) -> bool {
    server
        .client()
        .await
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .is_ok()
}

fn names(summary: &serde_json::Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = summary[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {summary}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn env_files_as_one_json_secret_or_one_per_key_idempotent_and_dry_run() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let password = format!("pw-{}", unique_suffix());
    let token = format!("tok {}", unique_suffix());
    server.remember(&password);
    server.remember(&token);
    let env = cli.shell.cwd.path().join(".env");
    std::fs::write(
        &env,
        format!(
            "# the app's settings\nexport DB_PASSWORD=\"{password}\"\nAPI_TOKEN='{token}' # quoted\nPORT=8080\n"
        ),
    )
    .unwrap();
    let file = env.to_str().unwrap();

    // Neither --name nor --each: a clear usage error, nothing stored.
    let err = cli.kura(&["import", file]).fails(2);
    assert!(err.contains("--name") && err.contains("--each"), "{err}");

    // One JSON secret.
    let s = cli.kura(&["import", file, "--name", "app/env"]).ok().json();
    assert_eq!(names(&s, "Created"), ["app/env"]);
    let doc: serde_json::Value = serde_json::from_str(&value(&server, "app/env").await).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"DB_PASSWORD": password, "API_TOKEN": token, "PORT": "8080"})
    );

    // One secret per key, under a prefix.
    let s = cli
        .kura(&["import", file, "--each", "--prefix", "app/each/"])
        .ok()
        .json();
    assert_eq!(
        names(&s, "Created"),
        [
            "app/each/API_TOKEN",
            "app/each/DB_PASSWORD",
            "app/each/PORT"
        ]
    );
    assert_eq!(value(&server, "app/each/DB_PASSWORD").await, password);
    assert_eq!(value(&server, "app/each/API_TOKEN").await, token);

    // Again: nothing changes, no new versions.
    let s = cli
        .kura(&["import", file, "--each", "--prefix", "app/each/"])
        .ok()
        .json();
    assert_eq!(names(&s, "Unchanged").len(), 3, "{s}");
    assert!(names(&s, "Created").is_empty() && names(&s, "Updated").is_empty());
    let s = cli.kura(&["import", file, "--name", "app/env"]).ok().json();
    assert_eq!(names(&s, "Unchanged"), ["app/env"]);
    for n in [
        "app/env",
        "app/each/API_TOKEN",
        "app/each/DB_PASSWORD",
        "app/each/PORT",
    ] {
        assert_eq!(version_count(&server, n).await, 1, "{n}");
    }

    // A changed value and a new key, in a dry run: reported, nothing stored.
    let newpw = format!("pw2-{}", unique_suffix());
    server.remember(&newpw);
    std::fs::write(
        &env,
        format!("DB_PASSWORD={newpw}\nAPI_TOKEN='{token}'\nPORT=8080\nNEW=1\n"),
    )
    .unwrap();
    let dry = cli
        .kura(&[
            "import",
            file,
            "--each",
            "--prefix",
            "app/each/",
            "--dry-run",
        ])
        .ok()
        .json();
    assert_eq!(dry["DryRun"], true);
    assert_eq!(names(&dry, "Created"), ["app/each/NEW"]);
    assert_eq!(names(&dry, "Updated"), ["app/each/DB_PASSWORD"]);
    assert!(!exists(&server, "app/each/NEW").await);
    assert_eq!(value(&server, "app/each/DB_PASSWORD").await, password);
    assert_eq!(version_count(&server, "app/each/DB_PASSWORD").await, 1);
    // The text summary says it was a dry run.
    let text = cli
        .kura(&[
            "import",
            file,
            "--each",
            "--prefix",
            "app/each/",
            "--dry-run",
            "-o",
            "text",
        ])
        .ok()
        .text();
    assert!(
        text.contains("1 created, 1 updated, 2 unchanged, 0 failed (dry run"),
        "{text}"
    );

    // For real: a new version for the changed one, the new one created.
    let s = cli
        .kura(&["import", file, "--each", "--prefix", "app/each/"])
        .ok()
        .json();
    assert_eq!(names(&s, "Updated"), ["app/each/DB_PASSWORD"]);
    assert_eq!(value(&server, "app/each/DB_PASSWORD").await, newpw);
    assert_eq!(version_count(&server, "app/each/DB_PASSWORD").await, 2);
    assert_eq!(value(&server, "app/each/NEW").await, "1");

    // A malformed line: its number, not its text.
    std::fs::write(&env, format!("A=1\n{password}\n")).unwrap();
    let err = cli.kura(&["import", file, "--each"]).fails(2);
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains(&password), "{err}");
    server.assert_no_stored_value_leaked();
}

#[tokio::test]
async fn json_yaml_and_vault_files_and_failures_do_not_stop_the_rest() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let dir = cli.shell.cwd.path();
    let secret = format!("s-{}", unique_suffix());
    server.remember(&secret);

    let json_file = dir.join("secrets.json");
    std::fs::write(
        &json_file,
        serde_json::json!({"j/plain": secret, "j/obj": {"user": "app", "password": secret}})
            .to_string(),
    )
    .unwrap();
    let s = cli
        .kura(&["import", json_file.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(names(&s, "Created"), ["j/obj", "j/plain"]);
    assert_eq!(value(&server, "j/plain").await, secret);
    let obj: serde_json::Value = serde_json::from_str(&value(&server, "j/obj").await).unwrap();
    assert_eq!(obj, serde_json::json!({"user": "app", "password": secret}));

    let yaml_file = dir.join("secrets.yml");
    std::fs::write(
        &yaml_file,
        format!("y/plain: \"{secret}\"\ny/obj:\n  user: app\n  port: 5432\n"),
    )
    .unwrap();
    let s = cli
        .kura(&["import", yaml_file.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(names(&s, "Created"), ["y/obj", "y/plain"]);
    assert_eq!(value(&server, "y/plain").await, secret);
    let obj: serde_json::Value = serde_json::from_str(&value(&server, "y/obj").await).unwrap();
    assert_eq!(obj, serde_json::json!({"user": "app", "port": 5432}));
    let s = cli
        .kura(&["import", yaml_file.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(names(&s, "Unchanged"), ["y/obj", "y/plain"]);
    assert_eq!(version_count(&server, "y/obj").await, 1);

    // `vault kv get -format=json secret/app-db` as Vault prints it.
    let vault = serde_json::json!({
        "request_id": "7a1f0c2e-0000-0000-0000-000000000000",
        "lease_id": "", "lease_duration": 0, "renewable": false,
        "data": {
            "data": {"username": "app", "password": secret},
            "metadata": {"created_time": "2026-11-30T10:00:00Z", "custom_metadata": null,
                         "deletion_time": "", "destroyed": false, "version": 3}
        },
        "warnings": null
    });
    let vault_file = dir.join("app-db.json");
    std::fs::write(&vault_file, vault.to_string()).unwrap();
    let f = vault_file.to_str().unwrap();
    let s = cli.kura(&["import", f, "--format", "vault"]).ok().json();
    assert_eq!(names(&s, "Created"), ["app-db"]);
    let s = cli
        .kura(&["import", f, "--format", "vault", "--name", "v/db"])
        .ok()
        .json();
    assert_eq!(names(&s, "Created"), ["v/db"]);
    let got: serde_json::Value = serde_json::from_str(&value(&server, "v/db").await).unwrap();
    assert_eq!(
        got,
        serde_json::json!({"username": "app", "password": secret})
    );
    // Several: a map of name to export.
    let many = dir.join("many.json");
    std::fs::write(
        &many,
        serde_json::json!({"v/a": vault, "v/b": vault}).to_string(),
    )
    .unwrap();
    let s = cli
        .kura(&["import", many.to_str().unwrap(), "--format", "vault"])
        .ok()
        .json();
    assert_eq!(names(&s, "Created"), ["v/a", "v/b"]);
    let s = cli
        .kura(&["import", many.to_str().unwrap(), "--format", "vault"])
        .ok()
        .json();
    assert_eq!(names(&s, "Unchanged"), ["v/a", "v/b"]);
    // Several: a list of exports, each with its path.
    let mut a = vault.clone();
    a["path"] = serde_json::json!("v/list-a");
    let list = dir.join("list.json");
    std::fs::write(&list, serde_json::json!([a]).to_string()).unwrap();
    let s = cli
        .kura(&["import", list.to_str().unwrap(), "--format", "vault"])
        .ok()
        .json();
    assert_eq!(names(&s, "Created"), ["v/list-a"]);
    std::fs::write(&list, serde_json::json!([vault]).to_string()).unwrap();
    let err = cli
        .kura(&["import", list.to_str().unwrap(), "--format", "vault"])
        .fails(2);
    assert!(err.contains("no \"path\""), "{err}");
    assert!(!err.contains(&secret), "{err}");
    // Not a Vault export: said so.
    let err = cli
        .kura(&["import", json_file.to_str().unwrap(), "--format", "vault"])
        .fails(2);
    assert!(err.contains("data.data"), "{err}");

    // One bad name among good ones: the others are imported, the exit code says it failed.
    let mixed = dir.join("mixed.json");
    std::fs::write(
        &mixed,
        serde_json::json!({"m/good": "1", "m/bad name!": "2", "m/also-good": "3"}).to_string(),
    )
    .unwrap();
    let run = cli.kura(&["import", mixed.to_str().unwrap()]);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let s = run.json();
    assert_eq!(names(&s, "Created"), ["m/also-good", "m/good"]);
    assert_eq!(s["Failed"][0]["Name"], "m/bad name!");
    assert!(run.stderr.contains("m/bad name!"), "{}", run.stderr);
    assert!(run.stderr.contains("1 of 3"), "{}", run.stderr);
    server.assert_no_stored_value_leaked();
}

#[tokio::test]
async fn export_without_values_then_with_values_round_trips_into_another_server() {
    let source = Server::start().await;
    let target = Server::start().await;
    let cli = Cli::new(&source);
    let to = Cli::new(&target);
    let one = format!("one-{}", unique_suffix());
    let two = format!("two \"quoted\"\nline {}", unique_suffix());
    source.remember(&one);
    source.remember(&two);
    target.remember(&one);
    target.remember(&two);
    let c = source.client().await;
    c.create_secret()
        .name("exp/one")
        .secret_string(&one)
        .description("first")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("web")
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.create_secret()
        .name("exp/two")
        .secret_string(&two)
        .send()
        .await
        .unwrap();
    c.create_secret()
        .name("other/x")
        .secret_string("x")
        .send()
        .await
        .unwrap();

    // Names and metadata only: no values, no warning.
    for format in ["json", "yaml", "env"] {
        let run = cli
            .kura(&["export", "--format", format, "--filter", "name=exp/"])
            .ok();
        let text = run.text();
        assert!(
            text.contains("exp/one") && text.contains("exp/two"),
            "{text}"
        );
        assert!(!text.contains("other/x"), "{text}");
        assert!(!text.contains(&one) && !text.contains("quoted"), "{text}");
        assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    }
    let meta = cli
        .kura(&["export", "--format", "json", "--filter", "name=exp/"])
        .ok()
        .json();
    assert_eq!(meta["exp/one"]["Description"], "first");
    assert_eq!(meta["exp/one"]["Tags"]["team"], "web");

    // Such a file imported is refused whole: its metadata would become the values.
    for format in ["json", "yaml"] {
        let file = cli.shell.cwd.path().join(format!("names.{format}"));
        let run = cli
            .kura(&[
                "export",
                "--format",
                format,
                "--filter",
                "name=exp/",
                "--output-file",
                file.to_str().unwrap(),
            ])
            .ok();
        assert!(run.stdout.is_empty());
        let err = to.kura(&["import", file.to_str().unwrap()]).fails(2);
        assert!(
            err.contains("without --with-values") && err.contains("Nothing was imported"),
            "{format}: {err}"
        );
        assert!(err.contains("exp/one and 1 more"), "{format}: {err}");
        assert!(!exists(&target, "exp/one").await, "{format}");
        assert!(!exists(&target, "exp/two").await, "{format}");
    }

    // With values, to a file: a warning, mode 0600.
    for format in ["json", "yaml", "env"] {
        let file = cli.shell.cwd.path().join(format!("backup.{format}"));
        let run = cli
            .kura(&[
                "export",
                "--format",
                format,
                "--filter",
                "name=exp/",
                "--with-values",
                "--output-file",
                file.to_str().unwrap(),
            ])
            .ok();
        assert!(run.stdout.is_empty());
        assert!(
            run.stderr.contains("warning") && run.stderr.contains("secret values"),
            "{}",
            run.stderr
        );
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{format}");

        // Into the other server: the same values.
        let mut args = vec!["import", file.to_str().unwrap()];
        if format == "env" {
            args.push("--each");
        }
        let s = to.kura(&args).ok().json();
        let mut expected_created = vec!["exp/one".to_string(), "exp/two".to_string()];
        if format != "json" {
            // The first round already made them.
            expected_created.clear();
        }
        assert_eq!(names(&s, "Created"), expected_created, "{format}: {s}");
        assert_eq!(value(&target, "exp/one").await, one, "{format}");
        assert_eq!(value(&target, "exp/two").await, two, "{format}");
        assert_eq!(version_count(&target, "exp/two").await, 1, "{format}");
    }

    // Straight through a pipe, as the help shows.
    let exported = cli
        .kura(&["export", "--format", "json", "--with-values"])
        .ok();
    assert!(exported.stderr.contains("warning"));
    let s = to
        .shell
        .run_with(
            &[
                "import",
                "-",
                "--format",
                "json",
                "--endpoint",
                &target.endpoint(),
            ],
            &exported.stdout,
        )
        .ok()
        .json();
    assert_eq!(names(&s, "Created"), ["other/x"]);
    assert_eq!(value(&target, "other/x").await, "x");
    source.assert_no_stored_value_leaked();
    target.assert_no_stored_value_leaked();
}

/// Breaks if export stops at the first value it cannot read, writes nothing then, exits 0
/// with secrets missing, or does not say which are missing and why.
#[tokio::test]
async fn export_with_values_leaves_out_what_it_cannot_read_and_says_so() {
    let server = Server::start().await;
    let mut cli = Cli::new(&server);
    let c = server.client().await;
    let mut values = Vec::new();
    for name in ["exp/a", "exp/denied", "exp/z"] {
        let value = format!("{name}-value-{}", unique_suffix());
        server.remember(&value);
        create_plain(&c, name, &value).await;
        values.push(value);
    }
    c.create_secret()
        .name("exp/bin")
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![
            0u8, 1, 255,
        ]))
        .send()
        .await
        .unwrap();
    let denied = c
        .describe_secret()
        .secret_id("exp/denied")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    server
        .kura("CreateUser", r#"{"UserName": "exporter"}"#)
        .await
        .assert_ok();
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["secretsmanager:ListSecrets",
            "secretsmanager:GetSecretValue"], "Resource": "*"},
        {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue", "Resource": denied}]});
    server
        .kura(
            "PutUserPolicy",
            &serde_json::json!({"UserName": "exporter", "PolicyName": "export",
                "PolicyDocument": policy.to_string()})
            .to_string(),
        )
        .await
        .assert_ok();
    let (akid, secret) = server.new_access_key("exporter").await;
    cli.shell.set("AWS_ACCESS_KEY_ID", &akid);
    cli.shell.set("AWS_SECRET_ACCESS_KEY", &secret);

    let run = cli.kura(&[
        "export",
        "--format",
        "json",
        "--with-values",
        "--filter",
        "name=exp/",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let doc = run.json();
    assert_eq!(doc["exp/a"], values[0].as_str());
    assert_eq!(doc["exp/z"], values[2].as_str());
    assert_eq!(doc.as_object().unwrap().len(), 2, "{doc}");
    let err = &run.stderr;
    assert!(
        err.contains("exp/denied: left out") && err.contains("AccessDeniedException"),
        "{err}"
    );
    assert!(
        err.contains("exp/bin: left out") && err.contains("binary"),
        "{err}"
    );
    assert!(err.contains("2 of 4 secrets were left out"), "{err}");
    assert!(!err.contains(&values[1]), "{err}");

    // To a file: the same, the file holding what could be read.
    let file = cli.shell.cwd.path().join("partial.yaml");
    let run = cli.kura(&[
        "export",
        "--format",
        "yaml",
        "--with-values",
        "--filter",
        "name=exp/",
        "--output-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&values[0]) && text.contains(&values[2]),
        "{text}"
    );
    assert!(
        !text.contains(&values[1]) && !text.contains("exp/bin"),
        "{text}"
    );
    let help = cli.shell.run(&["export", "--help"]).ok().text();
    assert!(help.contains("the exit code is then 1"), "{help}");
    server.assert_no_stored_value_leaked();
}

#[tokio::test]
async fn help_shows_examples() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    for cmd in ["import", "export"] {
        let help = cli.shell.run(&[cmd, "--help"]).ok().text();
        assert!(help.contains("Examples:"), "{help}");
        assert!(help.contains(&format!("kura {cmd} ")), "{help}");
    }
}

#[tokio::test]
async fn import_from_another_endpoint_copies_versions_labels_tags_and_policy() {
    use aws_sdk_secretsmanager::primitives::Blob;
    use aws_sdk_secretsmanager::types::Tag;

    let source = Server::start().await;
    let target = Server::start().await;
    // ./kura-data is the source's: its root credentials sign the source's requests; the
    // target's come from a profile, as real AWS's would.
    let shell = Shell::new(&source.data_dir);
    let creds = target.credentials();
    std::fs::create_dir_all(shell.home.path().join(".aws")).unwrap();
    std::fs::write(
        shell.home.path().join(".aws/credentials"),
        format!(
            "[target]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            creds.access_key_id, creds.secret_access_key
        ),
    )
    .unwrap();
    let (src_url, dst_url) = (source.endpoint(), target.endpoint());
    let import = |extra: &[&str]| {
        let mut args = vec![
            "import",
            "--from-endpoint",
            &src_url,
            "--endpoint",
            &dst_url,
            "--profile",
            "target",
        ];
        args.extend_from_slice(extra);
        shell.run(&args)
    };

    let v: Vec<String> = (1..=3)
        .map(|i| format!("v{i}-{}", unique_suffix()))
        .collect();
    for x in &v {
        source.remember(x);
        target.remember(x);
    }
    let c = source.client().await;
    let first = c
        .create_secret()
        .name("ep/db")
        .secret_string(&v[0])
        .description("the db")
        .tags(Tag::builder().key("team").value("web").build())
        .send()
        .await
        .unwrap();
    let second = c
        .put_secret_value()
        .secret_id("ep/db")
        .secret_string(&v[1])
        .send()
        .await
        .unwrap();
    let pending = c
        .put_secret_value()
        .secret_id("ep/db")
        .secret_string(&v[2])
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    c.update_secret_version_stage()
        .secret_id("ep/db")
        .version_stage("blue")
        .move_to_version_id(first.version_id().unwrap())
        .send()
        .await
        .unwrap();
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    c.put_resource_policy()
        .secret_id("ep/db")
        .resource_policy(policy)
        .send()
        .await
        .unwrap();
    c.create_secret()
        .name("ep/bin")
        .secret_binary(Blob::new(vec![0u8, 1, 2, 255]))
        .send()
        .await
        .unwrap();

    // A dry run: both would be created, nothing is.
    let dry = import(&["--dry-run"]).ok().json();
    assert_eq!(names(&dry, "Created"), ["ep/bin", "ep/db"], "{dry}");
    assert!(!exists(&target, "ep/db").await);

    let s = import(&[]).ok().json();
    assert_eq!(names(&s, "Created"), ["ep/bin", "ep/db"], "{s}");
    let t = target.client().await;
    let d = t.describe_secret().secret_id("ep/db").send().await.unwrap();
    assert_eq!(d.description(), Some("the db"));
    assert_eq!(d.tags()[0].key(), Some("team"));
    assert_eq!(d.tags()[0].value(), Some("web"));
    let stages = |id: &str| -> Vec<String> {
        let mut s = d.version_ids_to_stages().unwrap()[id].clone();
        s.sort();
        s
    };
    assert_eq!(stages(first.version_id().unwrap()), ["AWSPREVIOUS", "blue"]);
    assert_eq!(stages(second.version_id().unwrap()), ["AWSCURRENT"]);
    assert_eq!(stages(pending.version_id().unwrap()), ["AWSPENDING"]);
    for (id, want) in [
        (first.version_id().unwrap(), &v[0]),
        (second.version_id().unwrap(), &v[1]),
        (pending.version_id().unwrap(), &v[2]),
    ] {
        let got = t
            .get_secret_value()
            .secret_id("ep/db")
            .version_id(id)
            .send()
            .await
            .unwrap();
        assert_eq!(got.secret_string(), Some(want.as_str()));
    }
    let got_policy = t
        .get_resource_policy()
        .secret_id("ep/db")
        .send()
        .await
        .unwrap();
    let got: serde_json::Value =
        serde_json::from_str(got_policy.resource_policy().unwrap()).unwrap();
    assert_eq!(
        got,
        serde_json::from_str::<serde_json::Value>(policy).unwrap()
    );
    let bin = t
        .get_secret_value()
        .secret_id("ep/bin")
        .send()
        .await
        .unwrap();
    assert_eq!(bin.secret_binary().unwrap().as_ref(), &[0u8, 1, 2, 255]);

    // Again: no-ops, no new versions.
    let s = import(&[]).ok().json();
    assert_eq!(names(&s, "Unchanged"), ["ep/bin", "ep/db"], "{s}");
    assert_eq!(version_count(&target, "ep/db").await, 3);
    assert_eq!(version_count(&target, "ep/bin").await, 1);

    // A new version at the source: the re-run copies only it, and AWSCURRENT follows.
    let fourth = c
        .put_secret_value()
        .secret_id("ep/db")
        .secret_string(&v[2])
        .send()
        .await
        .unwrap();
    let s = import(&[]).ok().json();
    assert_eq!(names(&s, "Updated"), ["ep/db"], "{s}");
    assert_eq!(names(&s, "Unchanged"), ["ep/bin"], "{s}");
    let cur = t
        .get_secret_value()
        .secret_id("ep/db")
        .send()
        .await
        .unwrap();
    assert_eq!(cur.version_id(), fourth.version_id());

    // A label moved at the source between versions already copied: moved there too.
    c.update_secret_version_stage()
        .secret_id("ep/db")
        .version_stage("blue")
        .move_to_version_id(second.version_id().unwrap())
        .remove_from_version_id(first.version_id().unwrap())
        .send()
        .await
        .unwrap();
    let dry = import(&["--dry-run"]).ok().json();
    assert_eq!(names(&dry, "Updated"), ["ep/db"], "{dry}");
    let s = import(&[]).ok().json();
    assert_eq!(names(&s, "Updated"), ["ep/db"], "{s}");
    let d = t.describe_secret().secret_id("ep/db").send().await.unwrap();
    let mut blue = d.version_ids_to_stages().unwrap()[second.version_id().unwrap()].clone();
    blue.sort();
    assert_eq!(blue, ["AWSPREVIOUS", "blue"]);
    let s = import(&[]).ok().json();
    assert_eq!(names(&s, "Unchanged"), ["ep/bin", "ep/db"], "{s}");
    assert_eq!(version_count(&target, "ep/db").await, 4);
    source.assert_no_stored_value_leaked();
    target.assert_no_stored_value_leaked();
}
