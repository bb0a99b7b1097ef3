//! `kura agent` as an application meets it: the AWS Secrets Manager Agent's HTTP interface
//! (answers, errors, the SSRF token, X-Forwarded-For), a change reaching the cache within a
//! second through the watch, a watch missed while the server restarted, and files written
//! with mode 0600 and rewritten on change.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::cli::*;
use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "agent-test-token-0123456789";

/// A running `kura agent`, killed on drop.
struct Agent {
    child: Child,
    url: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `kura agent --endpoint SERVER --listen 127.0.0.1:PORT ARGS` in `shell` and waits
/// for `/ping`.
async fn agent(shell: &Shell, server: &Server, args: &[&str]) -> Agent {
    let addr = format!("127.0.0.1:{}", free_port());
    let endpoint = server.endpoint();
    let mut all = vec!["agent", "--endpoint", &endpoint, "--listen", &addr];
    all.extend_from_slice(args);
    let mut cmd = shell.command(&all);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    let child = cmd.spawn().expect("start kura agent");
    let mut agent = Agent {
        child,
        url: format!("http://{addr}"),
    };
    let http = http_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{}/ping", agent.url)).send().await
            && r.status() == 200
        {
            return agent;
        }
        if let Some(status) = agent.child.try_wait().unwrap() {
            panic!("kura agent exited with {status} before answering /ping");
        }
        assert!(Instant::now() < deadline, "kura agent did not answer /ping");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn shell_with_token(server: &Server) -> Shell {
    let mut shell = Shell::new(&server.data_dir);
    shell.set("AWS_TOKEN", TOKEN);
    shell
}

async fn get(agent: &Agent, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = http_client().get(format!("{}{path}", agent.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("the agent answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The value the agent serves for `name` (with the right token).
async fn value(agent: &Agent, name: &str) -> String {
    let (status, body) = get(
        agent,
        &format!("/secretsmanager/get?secretId={name}"),
        &[("X-Aws-Parameters-Secrets-Token", TOKEN)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["SecretString"].as_str().unwrap().to_string()
}

/// Waits until `agent` serves `want` for `name`; how long that took.
async fn until_served(agent: &Agent, name: &str, want: &str, max: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if value(agent, name).await == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < max,
            "the agent still serves the old value of {name} after {max:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn it_answers_as_the_aws_agent_does() {
    let server = Server::start().await;
    let c = server.client().await;
    let v1 = format!("agent-value-{}", unique_suffix());
    server.remember(&v1);
    let (arn, version) = create_string(&c, "prod/app-db", &v1, &token(1)).await;
    let shell = shell_with_token(&server);
    let a = agent(&shell, &server, &[]).await;
    let right = [("X-Aws-Parameters-Secrets-Token", TOKEN)];

    assert_eq!(get(&a, "/ping", &[]).await, (200, "healthy".to_string()));
    for path in [
        "/secretsmanager/get?secretId=prod/app-db",
        "/v1/prod/app-db",
    ] {
        assert_eq!(get(&a, path, &[]).await, (403, "Bad Token".to_string()));
        assert_eq!(
            get(&a, path, &[("X-Aws-Parameters-Secrets-Token", "wrong")]).await,
            (403, "Bad Token".to_string())
        );
        assert_eq!(
            get(
                &a,
                path,
                &[
                    ("X-Aws-Parameters-Secrets-Token", TOKEN),
                    ("X-Forwarded-For", "10.0.0.1")
                ]
            )
            .await,
            (400, "Forwarded".to_string())
        );
    }
    for path in [
        "/secretsmanager/get?secretId=prod/app-db",
        "/secretsmanager/get?secretId=prod%2Fapp-db&versionStage=AWSCURRENT",
        "/v1/prod/app-db",
        &format!("/v1/{arn}?versionId={version}"),
    ] {
        let (status, body) = get(&a, path, &right).await;
        assert_eq!(status, 200, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["ARN"], arn.as_str(), "{path}");
        assert_eq!(v["Name"], "prod/app-db");
        assert_eq!(v["VersionId"], version.as_str());
        assert_eq!(v["SecretString"], v1.as_str());
        assert_eq!(v["VersionStages"], json!(["AWSCURRENT"]));
        assert!(v["CreatedDate"].is_number(), "{body}");
    }
    // AWS's agent also takes the token as X-Vault-Token.
    let (status, _) = get(&a, "/v1/prod/app-db", &[("X-Vault-Token", TOKEN)]).await;
    assert_eq!(status, 200);

    let (status, body) = get(&a, "/secretsmanager/get?secretId=prod/nope", &right).await;
    assert_eq!(status, 400, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["__type"], "ResourceNotFoundException");
    assert!(e["message"].is_string());
    assert_eq!(
        get(&a, "/secretsmanager/get?versionStage=AWSCURRENT", &right).await,
        (400, "missing parameter secretId".to_string())
    );
    assert_eq!(
        get(&a, "/secretsmanager/get?secretId=prod/app-db&abc=1", &right).await,
        (400, "unknown parameter: abc".to_string())
    );
    assert_eq!(
        get(&a, "/v1/prod/app-db?refreshNow=soon", &right).await,
        (400, "invalid refreshNow value".to_string())
    );
    assert_eq!(
        get(&a, "/elsewhere", &right).await,
        (404, "Not found".to_string())
    );
    let post = http_client()
        .post(format!("{}/v1/prod/app-db", a.url))
        .header("X-Aws-Parameters-Secrets-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 405);
}

#[tokio::test]
async fn the_token_comes_from_aws_token_or_a_file_and_is_required() {
    let server = Server::start().await;
    let c = server.client().await;
    create_string(&c, "tok/app", "token-file-value", &token(1)).await;
    let mut shell = Shell::new(&server.data_dir);
    let file = shell.cwd.path().join("token");
    std::fs::write(&file, "from-a-file-token\n").unwrap();
    shell.set("AWS_TOKEN", &format!("file://{}", file.display()));
    let a = agent(&shell, &server, &["--no-watch"]).await;
    let (status, _) = get(
        &a,
        "/v1/tok/app",
        &[("X-Aws-Parameters-Secrets-Token", "from-a-file-token")],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = get(
        &a,
        "/v1/tok/app",
        &[(
            "X-Aws-Parameters-Secrets-Token",
            &format!("file://{}", file.display()),
        )],
    )
    .await;
    assert_eq!(status, 403, "the variable's text is not the token");

    // Without a token it does not start, and says what to set.
    let bare = Shell::new(&server.data_dir);
    let out = bare.run(&[
        "agent",
        "--endpoint",
        &server.endpoint(),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    let err = out.fails(2);
    assert!(err.contains("AWS_TOKEN"), "{err}");
}

#[tokio::test]
async fn a_change_reaches_the_agent_within_a_second() {
    let server = Server::start().await;
    let c = server.client().await;
    let (arn, _) = create_string(&c, "fresh/app", "fresh-value-1", &token(1)).await;
    let shell = shell_with_token(&server);
    let a = agent(&shell, &server, &[]).await;
    let stale = agent(&shell, &server, &["--no-watch"]).await;
    assert_eq!(value(&a, "fresh/app").await, "fresh-value-1");
    assert_eq!(value(&stale, "fresh/app").await, "fresh-value-1");
    // Give the watch time to be waiting on the server.
    tokio::time::sleep(Duration::from_millis(300)).await;

    put_string(&c, "fresh/app", "fresh-value-2", &token(2)).await;
    let took = until_served(&a, "fresh/app", "fresh-value-2", Duration::from_secs(1)).await;
    eprintln!("PutSecretValue reached the agent in {took:?}");
    // Without the watch the TTL (300 s) keeps the old answer: the cache is really a cache.
    assert_eq!(value(&stale, "fresh/app").await, "fresh-value-1");
    // refreshNow goes to the server, as with AWS's agent.
    let (_, body) = get(
        &stale,
        "/v1/fresh/app?refreshNow=true",
        &[("X-Aws-Parameters-Secrets-Token", TOKEN)],
    )
    .await;
    assert!(body.contains("fresh-value-2"));

    ok(c.update_secret_version_stage()
        .secret_id("fresh/app")
        .version_stage("AWSCURRENT")
        .move_to_version_id(token(1))
        .remove_from_version_id(token(2))
        .send()
        .await);
    until_served(&a, "fresh/app", "fresh-value-1", Duration::from_secs(1)).await;

    // A rotation by the engine: once AWSCURRENT moved, the agent follows within a second.
    ok(c.rotate_secret()
        .secret_id("fresh/app")
        .rotation_lambda_arn(lambda_arn(&arn, "kura-password"))
        .client_request_token(token(3))
        .send()
        .await);
    let deadline = Instant::now() + Duration::from_secs(30);
    let rotated = loop {
        let (version, v, _) = get_stage(&c, "fresh/app", "AWSCURRENT").await;
        if version == token(3) {
            break v;
        }
        assert!(Instant::now() < deadline, "the rotation did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    server.remember(&rotated);
    until_served(&a, "fresh/app", &rotated, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_watch_missed_while_the_server_restarted_resumes_from_its_cursor() {
    let server = Server::start().await;
    let c = server.client().await;
    create_string(&c, "gap/app", "gap-value-1", &token(1)).await;
    let shell = shell_with_token(&server);
    let a = agent(&shell, &server, &[]).await;
    assert_eq!(value(&a, "gap/app").await, "gap-value-1");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Down long enough for the agent's retries to back off past a second, so the change
    // below is made while its watch is not yet back: only resuming from its cursor (not
    // watching "from now") reports it.
    let server = server.restart_same_port(Duration::from_millis(1500)).await;
    let c = server.client().await;
    put_string(&c, "gap/app", "gap-value-2", &token(2)).await;
    // The watch comes back within its backoff (at most 5 s) and catches up from its cursor.
    let took = until_served(&a, "gap/app", "gap-value-2", Duration::from_secs(8)).await;
    eprintln!("the change after the restart reached the agent in {took:?}");
}

#[tokio::test]
async fn an_expired_answer_is_served_while_the_server_is_down_and_limits_are_awss() {
    let server = Server::start().await;
    let c = server.client().await;
    create_string(&c, "down/app", "down-value-1", &token(1)).await;
    let shell = shell_with_token(&server);
    let a = agent(&shell, &server, &["--ttl-seconds", "1", "--no-watch"]).await;
    assert_eq!(value(&a, "down/app").await, "down-value-1");
    let (status, _) = get(
        &a,
        "/v1/down/nothing",
        &[("X-Aws-Parameters-Secrets-Token", TOKEN)],
    )
    .await;
    assert_eq!(status, 400);
    let _dir = server.stop().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Past its TTL, with no server to ask: the last answer, as AWS's agent does.
    assert_eq!(value(&a, "down/app").await, "down-value-1");
    // Nothing cached: the failure, as AWS's agent reports it.
    let (status, body) = get(
        &a,
        "/v1/down/other",
        &[("X-Aws-Parameters-Secrets-Token", TOKEN)],
    )
    .await;
    assert_eq!(status, 502, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["__type"], "ConnectionError");

    for bad in [["--ttl-seconds", "3601"], ["--cache-size", "0"]] {
        let mut args = vec!["agent"];
        args.extend_from_slice(&bad);
        let err = shell.run(&args).fails(2);
        assert!(err.contains(bad[0]), "{err}");
    }
}

/// The same access key in a server: user `agent`, allowed to read and watch everything.
async fn agent_user(server: &Server) {
    server
        .kura("CreateUser", r#"{"UserName": "agent"}"#)
        .await
        .assert_ok();
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret",
                   "kura:WatchSecrets"],
        "Resource": "*"}]});
    server
        .kura(
            "PutUserPolicy",
            &json!({"UserName": "agent", "PolicyName": "agent", "PolicyDocument": policy.to_string()})
                .to_string(),
        )
        .await
        .assert_ok();
    server
        .kura(
            "CreateAccessKey",
            &json!({"UserName": "agent", "AccessKeyId": AGENT_KEY_ID,
                    "SecretAccessKey": AGENT_KEY_SECRET})
            .to_string(),
        )
        .await
        .assert_ok();
}

const AGENT_KEY_ID: &str = "AKIAAGENTTESTKEY0001";
const AGENT_KEY_SECRET: &str = "agent-test-secret-access-key-0001";

#[tokio::test]
async fn a_cursor_the_server_cannot_resume_drops_everything_cached() {
    // The agent's server is replaced by another installation on the same address (as a
    // database restored from an older backup): its audit trail is shorter than the agent's
    // cursor, so the agent cannot know what it missed and must drop what it holds.
    let first = Server::start().await;
    agent_user(&first).await;
    let c = first.client().await;
    create_string(&c, "reset/app", "reset-value-old", &token(1)).await;
    for _ in 0..30 {
        get_string(&c, "reset/app").await;
    }
    let mut shell = shell_with_token(&first);
    shell.set("AWS_ACCESS_KEY_ID", AGENT_KEY_ID);
    shell.set("AWS_SECRET_ACCESS_KEY", AGENT_KEY_SECRET);
    let a = agent(&shell, &first, &[]).await;
    assert_eq!(value(&a, "reset/app").await, "reset-value-old");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let addr = first.addr();
    drop(first.stop().await);
    let second = Server::start_at(addr).await;
    agent_user(&second).await;
    let c = second.client().await;
    create_string(&c, "reset/app", "reset-value-new", &token(1)).await;
    until_served(&a, "reset/app", "reset-value-new", Duration::from_secs(8)).await;
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn files_are_written_private_and_rewritten_on_change() {
    let server = Server::start().await;
    let c = server.client().await;
    let db = json!({"username": "app", "password": "file-pw-1", "port": 5432}).to_string();
    server.remember("file-pw-1");
    create_string(&c, "files/db", &db, &token(1)).await;
    let shell = shell_with_token(&server);
    let dir = shell.cwd.path().to_path_buf();
    let template = dir.join("db.env.tmpl");
    std::fs::write(
        &template,
        "DB_USER={{ .username }}\nDB_PASSWORD={{.password}}\nDB_PORT={{ .port }}\n",
    )
    .unwrap();
    let whole = dir.join("db.json");
    let password = dir.join("db-password");
    let env = dir.join("db.env");
    let file_arg = format!("files/db={}", whole.display());
    let field_arg = format!("files/db={}:password", password.display());
    let template_arg = format!("files/db={}:{}", env.display(), template.display());
    let _a = agent(
        &shell,
        &server,
        &[
            "--file",
            &file_arg,
            "--file",
            &field_arg,
            "--template",
            &template_arg,
        ],
    )
    .await;
    assert_eq!(read(&whole), db);
    assert_eq!(read(&password), "file-pw-1");
    assert_eq!(
        read(&env),
        "DB_USER=app\nDB_PASSWORD=file-pw-1\nDB_PORT=5432\n"
    );
    for f in [&whole, &password, &env] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let db2 = json!({"username": "app", "password": "file-pw-2", "port": 5432}).to_string();
    server.remember("file-pw-2");
    put_string(&c, "files/db", &db2, &token(2)).await;
    let start = Instant::now();
    while read(&password) != "file-pw-2" || !read(&env).contains("file-pw-2") {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "files not rewritten: {:?}",
            read(&password)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(read(&whole), db2);
    assert_eq!(mode(&password), 0o600);
    // Only the files themselves: no temporary file left beside them.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".kura-"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}
