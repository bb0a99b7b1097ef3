//! Managed rotation inside real databases: the PostgreSQL and MariaDB servers on this machine.
//! Roles and users are created per test with unique names; logins are checked with the
//! `psql` and `mariadb` clients, so "refused" means the server itself refused.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Runs SQL as PostgreSQL's superuser (trusted on loopback); panics on failure.
fn pg_admin(sql: &str) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-Atqc",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pg_login(user: &str, password: &str) -> bool {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            user,
            "-d",
            "postgres",
            "-w",
            "-Atqc",
            "SELECT 1",
        ])
        .env("PGPASSWORD", password)
        .output()
        .expect("run psql")
        .status
        .success()
}

/// Whether this machine's PostgreSQL checks passwords for the test roles (scripts/test-services).
fn postgres_ready() -> bool {
    let name = format!("kura_rt_probe_{}", unique_suffix());
    let ok = have("psql")
        && Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atqc",
                "SELECT 1",
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    if ok {
        pg_admin(&format!(
            "CREATE ROLE {name} LOGIN PASSWORD 'right' IN ROLE kura_rotation_tests"
        ));
        let checked = !pg_login(&name, "wrong") && pg_login(&name, "right");
        pg_admin(&format!("DROP ROLE {name}"));
        if checked {
            return true;
        }
    }
    assert!(
        !in_ci(),
        "PostgreSQL must check passwords of kura_rotation_tests members in CI (scripts/test-services)"
    );
    skip(
        "PostgreSQL on 127.0.0.1:5432 does not check passwords for kura_rotation_tests; run scripts/test-services",
    );
    false
}

fn mysql_admin(sql: &str) {
    let out = Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e", sql])
        .env_remove("MYSQL_PWD")
        .output()
        .expect("run mariadb");
    assert!(
        out.status.success(),
        "mariadb {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mysql_login(user: &str, password: &str) -> bool {
    Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            user,
            "-e",
            "SELECT 1",
        ])
        .env("MYSQL_PWD", password)
        .output()
        .expect("run mariadb")
        .status
        .success()
}

fn mysql_ready() -> bool {
    let ok = have("mariadb")
        && Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-u", "root", "-e", "SELECT 1"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    if !ok {
        assert!(
            !in_ci(),
            "MariaDB on 127.0.0.1:3306 must be reachable in CI"
        );
        skip("MariaDB is not reachable on 127.0.0.1:3306 as root");
    }
    ok
}

async fn rotate(server: &Server, id: &str, arn: &str, function: &str, token: Option<&str>) {
    let mut body = json!({"SecretId": id, "RotationLambdaARN": lambda_arn(arn, function)});
    if let Some(t) = token {
        body["ClientRequestToken"] = t.into();
    }
    server
        .raw("RotateSecret", &body.to_string(), SignMode::Root)
        .await
        .assert_ok();
}

async fn current_json(c: &aws_sdk_secretsmanager::Client, id: &str) -> Value {
    serde_json::from_str(&get_string(c, id).await).expect("JSON secret")
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn postgres_single_user_rotation_changes_the_password_in_the_database() {
    if !postgres_ready() {
        return;
    }
    let user = format!("kura_rt_single_{}", unique_suffix());
    pg_admin(&format!(
        "CREATE ROLE {user} LOGIN PASSWORD 'initial-pw' IN ROLE kura_rotation_tests"
    ));
    let server = Server::start().await;
    let c = server.client().await;
    let value = json!({"engine": "postgres", "host": "127.0.0.1", "port": 5432, "username": user,
                       "password": "initial-pw", "dbname": "postgres"});
    let arn = create_plain(&c, "db/pg-single", &value.to_string()).await;
    rotate(
        &server,
        "db/pg-single",
        &arn,
        "kura-postgres-single-user",
        None,
    )
    .await;
    wait_rotation_succeeded(&server, "db/pg-single").await;

    let now = current_json(&c, "db/pg-single").await;
    assert_eq!(s(&now, "username"), user);
    assert_ne!(s(&now, "password"), "initial-pw");
    assert!(
        pg_login(&user, &s(&now, "password")),
        "the new password logs in"
    );
    assert!(
        !pg_login(&user, "initial-pw"),
        "the old password is refused"
    );
    assert_eq!(s(&now, "host"), "127.0.0.1", "other fields are kept");

    // A staged password with every punctuation character GetRandomPassword can produce.
    let hard = format!("Aa1{PUNCTUATION}");
    let mut staged = now.clone();
    staged["password"] = hard.clone().into();
    put_string_staged(
        &c,
        "db/pg-single",
        &staged.to_string(),
        &token(9),
        &["AWSPENDING"],
    )
    .await;
    rotate(
        &server,
        "db/pg-single",
        &arn,
        "kura-postgres-single-user",
        Some(&token(9)),
    )
    .await;
    wait_rotation_succeeded(&server, "db/pg-single").await;
    assert_eq!(s(&current_json(&c, "db/pg-single").await, "password"), hard);
    assert!(pg_login(&user, &hard));
    assert!(!pg_login(&user, &s(&now, "password")));
    pg_admin(&format!("DROP ROLE {user}"));
}

#[tokio::test]
async fn postgres_alternating_users_keep_the_previous_login_working_for_a_period() {
    if !postgres_ready() {
        return;
    }
    let sfx = unique_suffix();
    let user = format!("kura_rt_alt_{sfx}");
    let admin = format!("kura_rt_admin_{sfx}");
    pg_admin(&format!(
        "CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD 'admin-pw' IN ROLE kura_rotation_tests"
    ));
    pg_admin(&format!(
        "CREATE ROLE {user} LOGIN PASSWORD 'pw0' IN ROLE kura_rotation_tests"
    ));
    pg_admin(&format!("GRANT {user} TO {admin} WITH ADMIN OPTION"));
    pg_admin(&format!(
        "CREATE TABLE {user}_data (x int); INSERT INTO {user}_data VALUES (42); GRANT SELECT ON {user}_data TO {user}"
    ));
    let server = Server::start().await;
    let c = server.client().await;
    let admin_arn = create_plain(
        &c,
        "db/pg-admin",
        &json!({"engine": "postgres", "host": "127.0.0.1",
        "port": 5432, "username": admin, "password": "admin-pw"})
        .to_string(),
    )
    .await;
    let value = json!({"engine": "postgres", "host": "127.0.0.1", "port": 5432, "username": user,
                       "password": "pw0", "masterarn": admin_arn});
    let arn = create_plain(&c, "db/pg-alt", &value.to_string()).await;

    let mut held = vec![(user.clone(), "pw0".to_string())];
    let mut users = Vec::new();
    for round in 1..=3 {
        rotate(
            &server,
            "db/pg-alt",
            &arn,
            "kura-postgres-alternating-users",
            None,
        )
        .await;
        wait_rotation_succeeded(&server, "db/pg-alt").await;
        let now = current_json(&c, "db/pg-alt").await;
        let (u, p) = (s(&now, "username"), s(&now, "password"));
        assert!(pg_login(&u, &p), "round {round}: the new login works");
        let (pu, pp) = held.last().unwrap().clone();
        assert!(
            pg_login(&pu, &pp),
            "round {round}: the login applications held before still works"
        );
        held.push((u.clone(), p));
        users.push(u);
    }
    let clone = format!("{user}_clone");
    assert_eq!(
        users,
        vec![clone.clone(), user.clone(), clone.clone()],
        "username alternates"
    );
    // Round 3 changed the clone's password again: round 1's clone login is refused now.
    assert!(
        !pg_login(&held[1].0, &held[1].1),
        "the login from two rotations ago is refused"
    );
    // The clone has the original's privileges.
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            &clone,
            "-d",
            "postgres",
            "-w",
            "-Atqc",
            &format!("SELECT x FROM {user}_data"),
        ])
        .env("PGPASSWORD", &held[3].1)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "42",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pg_admin(&format!(
        "DROP TABLE {user}_data; DROP ROLE {clone}; DROP ROLE {user}; DROP ROLE {admin}"
    ));
}

#[tokio::test]
async fn mysql_single_user_rotation_changes_the_password_in_mariadb() {
    if !mysql_ready() {
        return;
    }
    let user = format!("kura_rt_{}", unique_suffix());
    mysql_admin(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'initial-pw'"
    ));
    let server = Server::start().await;
    let c = server.client().await;
    let value = json!({"engine": "mysql", "host": "127.0.0.1", "port": 3306, "username": user, "password": "initial-pw"});
    let arn = create_plain(&c, "db/my-single", &value.to_string()).await;
    rotate(
        &server,
        "db/my-single",
        &arn,
        "kura-mysql-single-user",
        None,
    )
    .await;
    wait_rotation_succeeded(&server, "db/my-single").await;
    let now = current_json(&c, "db/my-single").await;
    assert!(mysql_login(&user, &s(&now, "password")));
    assert!(!mysql_login(&user, "initial-pw"));

    let hard = format!("Aa1{PUNCTUATION}");
    let mut staged = now.clone();
    staged["password"] = hard.clone().into();
    put_string_staged(
        &c,
        "db/my-single",
        &staged.to_string(),
        &token(9),
        &["AWSPENDING"],
    )
    .await;
    rotate(
        &server,
        "db/my-single",
        &arn,
        "kura-mysql-single-user",
        Some(&token(9)),
    )
    .await;
    wait_rotation_succeeded(&server, "db/my-single").await;
    assert!(mysql_login(&user, &hard));
    assert!(!mysql_login(&user, &s(&now, "password")));
    mysql_admin(&format!("DROP USER '{user}'@'%'"));
}

#[tokio::test]
async fn mysql_alternating_users_copy_grants_and_alternate() {
    if !mysql_ready() {
        return;
    }
    let sfx = unique_suffix();
    let user = format!("kura_rt_{sfx}");
    let admin = format!("kura_rta_{sfx}");
    let db = format!("kura_rt_db_{sfx}");
    mysql_admin(&format!(
        "CREATE USER '{admin}'@'%' IDENTIFIED BY 'admin-pw'; GRANT ALL ON *.* TO '{admin}'@'%' WITH GRANT OPTION; \
         CREATE DATABASE {db}; CREATE TABLE {db}.t (x INT); INSERT INTO {db}.t VALUES (7); \
         CREATE USER '{user}'@'%' IDENTIFIED BY 'pw0'; GRANT SELECT ON {db}.* TO '{user}'@'%'"
    ));
    let server = Server::start().await;
    let c = server.client().await;
    let admin_arn = create_plain(
        &c,
        "db/my-admin",
        &json!({"engine": "mysql", "host": "127.0.0.1",
        "port": 3306, "username": admin, "password": "admin-pw"})
        .to_string(),
    )
    .await;
    let arn = create_plain(
        &c,
        "db/my-alt",
        &json!({"engine": "mysql", "host": "127.0.0.1", "port": 3306,
        "username": user, "password": "pw0", "masterarn": admin_arn})
        .to_string(),
    )
    .await;
    let mut held = vec![(user.clone(), "pw0".to_string())];
    for round in 1..=3 {
        rotate(
            &server,
            "db/my-alt",
            &arn,
            "kura-mysql-alternating-users",
            None,
        )
        .await;
        wait_rotation_succeeded(&server, "db/my-alt").await;
        let now = current_json(&c, "db/my-alt").await;
        let (u, p) = (s(&now, "username"), s(&now, "password"));
        assert!(mysql_login(&u, &p), "round {round}");
        let (pu, pp) = held.last().unwrap().clone();
        assert!(
            mysql_login(&pu, &pp),
            "round {round}: the previous login still works"
        );
        held.push((u, p));
    }
    let names: Vec<&str> = held.iter().map(|(u, _)| u.as_str()).collect();
    let clone = format!("{user}_clone");
    assert_eq!(
        names,
        vec![user.as_str(), clone.as_str(), user.as_str(), clone.as_str()]
    );
    assert!(!mysql_login(&held[1].0, &held[1].1));
    let out = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            &clone,
            "-N",
            "-e",
            &format!("SELECT x FROM {db}.t"),
        ])
        .env("MYSQL_PWD", &held[3].1)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "7",
        "the clone has the grants: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    mysql_admin(&format!(
        "DROP USER '{user}'@'%'; DROP USER '{clone}'@'%'; DROP USER '{admin}'@'%'; DROP DATABASE {db}"
    ));
}

#[tokio::test]
async fn a_failing_database_rotation_says_why_and_leaves_awscurrent_alone() {
    let server = Server::start().await;
    let c = server.client().await;
    // Nothing listens on port 1.
    let value = json!({"engine": "postgres", "host": "127.0.0.1", "port": 1, "username": "nobody", "password": "pw-that-must-not-leak"});
    let arn = create_plain(&c, "db/unreachable", &value.to_string()).await;
    let body = json!({"SecretId": "db/unreachable", "RotationLambdaARN": lambda_arn(&arn, "kura-postgres-single-user")});
    server
        .raw("RotateSecret", &body.to_string(), SignMode::Root)
        .await
        .assert_ok();
    let r = wait_rotation_settled(
        &server,
        "db/unreachable",
        std::time::Duration::from_secs(30),
    )
    .await;
    let err = r["LastError"].as_str().unwrap_or("");
    // The host is part of the value, which DescribeSecret alone must not reveal.
    assert_eq!(
        err, "setSecret: [redacted] [redacted]:1: connection refused",
        "{r:#}"
    );
    assert!(!err.contains("pw-that-must-not-leak"));
    assert_eq!(current_json(&c, "db/unreachable").await, value);
    assert!(
        !server.log().contains("pw-that-must-not-leak"),
        "no secret in the log"
    );
}

#[tokio::test]
async fn a_rotation_interrupted_after_set_secret_completes_after_restart() {
    if !postgres_ready() {
        return;
    }
    let user = format!("kura_rt_crash_{}", unique_suffix());
    pg_admin(&format!(
        "CREATE ROLE {user} LOGIN PASSWORD 'before-crash' IN ROLE kura_rotation_tests"
    ));
    let server =
        Server::start_with(&["--test-clock", "--test-pause-before-step", "testSecret"]).await;
    let c = server.client().await;
    let value = json!({"engine": "postgres", "host": "127.0.0.1", "username": user, "password": "before-crash"});
    let arn = create_plain(&c, "db/crash", &value.to_string()).await;
    rotate(
        &server,
        "db/crash",
        &arn,
        "kura-postgres-single-user",
        Some(&token(5)),
    )
    .await;
    // Wait until setSecret is recorded as done (the engine now hangs before testSecret).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = describe_json(&server, "db/crash").await["KuraRotation"].clone();
        if r["Step"] == "testSecret" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "setSecret never finished: {r:#}\n{}",
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let pending =
        serde_json::from_str::<Value>(&get_version_string(&c, "db/crash", &token(5)).await)
            .unwrap();
    assert!(
        pg_login(&user, &s(&pending, "password")),
        "setSecret changed the database"
    );
    assert!(!pg_login(&user, "before-crash"));

    let tmp = server.kill().await;
    let server = Server::start_in(tmp).await;
    wait_rotation_succeeded(&server, "db/crash").await;
    let c = server.client().await;
    let now = current_json(&c, "db/crash").await;
    assert_eq!(get_stage(&c, "db/crash", "AWSCURRENT").await.0, token(5));
    assert!(
        pg_login(&user, &s(&now, "password")),
        "database and AWSCURRENT agree"
    );
    pg_admin(&format!("DROP ROLE {user}"));
}

/// A Python with boto3 and the pg8000 driver (scripts/test installs both into its venv).
fn python_with_pg8000() -> Option<std::path::PathBuf> {
    let python = python_with_boto3()?;
    let found = Command::new(&python)
        .args(["-c", "import pg8000.native"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        assert!(
            !in_ci(),
            "{} has no pg8000; in CI it must (scripts/test installs it)",
            python.display()
        );
        skip("python3 has no pg8000; run the tests through scripts/test");
        return None;
    }
    Some(python)
}

#[tokio::test]
async fn an_aws_style_multi_user_postgres_function_reads_the_admin_secret_its_policy_allows() {
    if !postgres_ready() {
        return;
    }
    let Some(python) = python_with_pg8000() else {
        return;
    };
    let sfx = unique_suffix();
    let user = format!("kura_rt_mu_{sfx}");
    let clone = format!("{user}_clone");
    let admin = format!("kura_rt_muadmin_{sfx}");
    pg_admin(&format!(
        "CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD 'admin-pw' IN ROLE kura_rotation_tests"
    ));
    pg_admin(&format!(
        "CREATE ROLE {user} LOGIN PASSWORD 'pw0-initial' IN ROLE kura_rotation_tests"
    ));
    let server = Server::start().await;
    let c = server.client().await;
    let admin_arn = create_plain(
        &c,
        "db/mu-admin",
        &json!({"engine": "postgres", "host": "127.0.0.1", "port": 5432,
                "username": admin, "password": "admin-pw"})
        .to_string(),
    )
    .await;
    let arn = create_plain(
        &c,
        "db/mu-app",
        &json!({"engine": "postgres", "host": "127.0.0.1", "port": 5432, "username": user,
                "password": "pw0-initial", "masterarn": admin_arn})
        .to_string(),
    )
    .await;
    server
        .kura(
            "CreateRotationFunction",
            &json!({
                "Name": "pg-multi-user",
                "Type": "command",
                "Command": [python, rotation_fixture("run_lambda.py"), "postgres_multi_user"],
                // As a Lambda's execution role would: the template reads the admin secret.
                "Policy": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": admin_arn,
                }]},
                "MaxAttempts": 1,
            })
            .to_string(),
        )
        .await
        .assert_ok();

    // Round 1: the clone is created with a new password; the original login keeps working.
    rotate(&server, "db/mu-app", &arn, "pg-multi-user", None).await;
    wait_rotation_succeeded(&server, "db/mu-app").await;
    let first = current_json(&c, "db/mu-app").await;
    assert_eq!(s(&first, "username"), clone, "{first}");
    assert_eq!(s(&first, "masterarn"), admin_arn, "{first}");
    let clone_pw = s(&first, "password");
    assert_ne!(clone_pw, "pw0-initial");
    assert!(pg_login(&clone, &clone_pw), "round 1: the clone logs in");
    assert!(!pg_login(&clone, "pw0-initial"), "passwords are checked");
    assert!(
        pg_login(&user, "pw0-initial"),
        "round 1: the original login still works"
    );

    // Round 2: back to the original user, with a new password; the clone's login still works.
    rotate(&server, "db/mu-app", &arn, "pg-multi-user", None).await;
    wait_rotation_succeeded(&server, "db/mu-app").await;
    let second = current_json(&c, "db/mu-app").await;
    assert_eq!(s(&second, "username"), user, "{second}");
    let user_pw = s(&second, "password");
    assert!(
        pg_login(&user, &user_pw),
        "round 2: the original user logs in"
    );
    assert!(
        !pg_login(&user, "pw0-initial"),
        "round 2: the original user's old password is refused"
    );
    assert!(
        pg_login(&clone, &clone_pw),
        "round 2: the clone's login (now AWSPREVIOUS) still works"
    );
    let (_, previous, _) = get_stage(&c, "db/mu-app", "AWSPREVIOUS").await;
    assert_eq!(
        serde_json::from_str::<Value>(&previous).unwrap(),
        first,
        "AWSPREVIOUS is round 1's value"
    );
    pg_admin(&format!(
        "DROP ROLE {clone}; DROP ROLE {user}; DROP ROLE {admin}"
    ));
}
