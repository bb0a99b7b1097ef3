//! `kura run` as a user runs it: the built binary against a real server, real child processes
//! (`sh -c`) writing what they got to files, signals sent with kill(1).

mod common;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::cli::*;
use common::*;

/// `kura run --endpoint E ARGS`.
fn run(shell: &Shell, endpoint: &str, args: &[&str]) -> Run {
    let mut all = vec!["run", "--endpoint", endpoint];
    all.extend_from_slice(args);
    shell.run(&all)
}

fn spawn(shell: &Shell, endpoint: &str, args: &[&str]) -> Child {
    let mut all = vec!["run", "--endpoint", endpoint];
    all.extend_from_slice(args);
    shell.command(&all).spawn().expect("start kura run")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until `check` holds (30 s at most).
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(signal: &str, pid: u32) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

fn finish(child: Child) -> Run {
    let out = child.wait_with_output().expect("wait for kura run");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn variables_their_names_prefixes_and_conflicts() {
    let server = Server::start().await;
    let mut cli = Cli::new(&server);
    let ep = server.endpoint();
    let password = format!("pw-{}", unique_suffix());
    let key = format!("key-{}", unique_suffix());
    server.remember(&password);
    server.remember(&key);
    let db =
        serde_json::json!({"password": password, "user-name": "app", "port": 5432}).to_string();
    cli.secret(&["create", "prod/app-db", &db]).ok();
    cli.secret(&["create", "prod/api-key", &key]).ok();
    server.remember("other-pw");
    let other = serde_json::json!({"password": "other-pw"}).to_string();
    cli.secret(&["create", "prod/other", &other]).ok();

    let out = cli.shell.cwd.path().join("out");
    let script =
        r#"printf '%s|%s|%s|%s' "$DB_PASSWORD" "$DB_USER_NAME" "$DB_PORT" "$API_KEY" > out"#;
    run(
        &cli.shell,
        &ep,
        &[
            "--secret",
            "prod/app-db=DB_",
            "--secret",
            "prod/api-key",
            "--",
            "sh",
            "-c",
            script,
        ],
    )
    .ok();
    assert_eq!(read(&out), format!("{password}|app|5432|{key}"));

    // --as: the whole value under one name, even a JSON one.
    run(
        &cli.shell,
        &ep,
        &[
            "--secret",
            "prod/app-db",
            "--as",
            "DB_JSON",
            "--",
            "sh",
            "-c",
            r#"printf '%s' "$DB_JSON" > out"#,
        ],
    )
    .ok();
    assert_eq!(read(&out), db);

    // --dry-run: the names, never the values.
    let dry = run(
        &cli.shell,
        &ep,
        &[
            "--secret",
            "prod/app-db",
            "--secret",
            "prod/api-key",
            "--dry-run",
        ],
    )
    .ok();
    assert_eq!(dry.text(), "API_KEY\nPASSWORD\nPORT\nUSER_NAME\n");
    assert!(!dry.stderr.contains(&password));

    // --print-env: the values, in the format asked for.
    let json = run(
        &cli.shell,
        &ep,
        &["--secret", "prod/app-db", "--print-env", "json"],
    )
    .ok()
    .json();
    assert_eq!(json["PASSWORD"], password.as_str());
    assert_eq!(json["PORT"], "5432");
    let shell = run(
        &cli.shell,
        &ep,
        &["--secret", "prod/app-db", "--print-env", "shell"],
    )
    .ok()
    .text();
    let std_out = std::process::Command::new("sh")
        .args(["-c", &format!("{shell}\nprintf '%s' \"$PASSWORD\"")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&std_out.stdout), password);

    // Two secrets giving PASSWORD: an error naming both, unless --allow-override.
    let err = run(
        &cli.shell,
        &ep,
        &[
            "--secret",
            "prod/app-db",
            "--secret",
            "prod/other",
            "--",
            "true",
        ],
    )
    .fails(2);
    assert!(
        err.contains("prod/app-db") && err.contains("prod/other") && err.contains("PASSWORD"),
        "{err}"
    );
    assert!(!err.contains(&password), "{err}");
    run(
        &cli.shell,
        &ep,
        &[
            "--secret",
            "prod/app-db",
            "--secret",
            "prod/other",
            "--allow-override",
            "--",
            "sh",
            "-c",
            r#"printf '%s' "$PASSWORD" > out"#,
        ],
    )
    .ok();
    assert_eq!(read(&out), "other-pw");

    // The parent's variable: replaced, unless --no-override.
    cli.shell.set("PASSWORD", "from-parent");
    let args = [
        "--secret",
        "prod/app-db",
        "--",
        "sh",
        "-c",
        r#"printf '%s' "$PASSWORD" > out"#,
    ];
    run(&cli.shell, &ep, &args).ok();
    assert_eq!(read(&out), password);
    let mut kept = vec!["--no-override"];
    kept.extend_from_slice(&args);
    run(&cli.shell, &ep, &kept).ok();
    assert_eq!(read(&out), "from-parent");

    // An unknown secret: exit 3, nothing run.
    let err = run(
        &cli.shell,
        &ep,
        &["--secret", "prod/none", "--", "sh", "-c", "touch ran"],
    )
    .fails(3);
    assert!(err.contains("prod/none"), "{err}");
    assert!(!cli.shell.cwd.path().join("ran").exists());
}

#[tokio::test]
async fn exit_codes_and_signals_pass_through() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let ep = server.endpoint();
    let token = format!("token-{}", unique_suffix());
    server.remember(&token);
    cli.secret(&["create", "app/token", &token]).ok();
    let s = |script: &str| {
        run(
            &cli.shell,
            &ep,
            &["--secret", "app/token", "--", "sh", "-c", script],
        )
    };
    assert_eq!(s("exit 7").code, 7);
    assert_eq!(s("kill -TERM $$").code, 128 + 15);
    let r = run(
        &cli.shell,
        &ep,
        &["--secret", "app/token", "--", "no-such-command-here"],
    );
    assert_eq!(r.code, 127, "{}", r.stderr);

    // SIGTERM to kura run reaches the child, which traps it; its exit code comes back.
    let script =
        r#"trap 'echo got-term > sig; exit 3' TERM; touch ready; while :; do sleep 0.1; done"#;
    let child = spawn(
        &cli.shell,
        &ep,
        &["--secret", "app/token", "--", "sh", "-c", script],
    );
    let ready = cli.shell.cwd.path().join("ready");
    wait_for("the child to start", || ready.exists());
    kill("TERM", child.id());
    let r = finish(child);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(read(&cli.shell.cwd.path().join("sig")), "got-term\n");

    // SIGUSR1 too; the child goes on.
    let script = r#"trap 'echo usr1 >> sig2' USR1; trap 'exit 0' TERM; touch ready2; while :; do sleep 0.1; done"#;
    let child = spawn(
        &cli.shell,
        &ep,
        &["--secret", "app/token", "--", "sh", "-c", script],
    );
    let ready = cli.shell.cwd.path().join("ready2");
    wait_for("the child to start", || ready.exists());
    kill("USR1", child.id());
    let sig2 = cli.shell.cwd.path().join("sig2");
    wait_for("the child to get SIGUSR1", || read(&sig2) == "usr1\n");
    kill("TERM", child.id());
    assert_eq!(finish(child).code, 0);
}

#[tokio::test]
async fn watch_restarts_the_child_when_the_secret_moves() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let ep = server.endpoint();
    let first = format!("first-{}", unique_suffix());
    let second = format!("second-{}", unique_suffix());
    server.remember(&first);
    server.remember(&second);
    cli.secret(&["create", "app/pw", &first]).ok();
    let script =
        r#"printf '%s\n' "$PW" >> starts; trap 'exit 0' TERM; while :; do sleep 0.1; done"#;
    let child = spawn(
        &cli.shell,
        &ep,
        &[
            "--secret",
            "app/pw",
            "--watch",
            "--interval",
            "200ms",
            "--grace",
            "5s",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    let starts = cli.shell.cwd.path().join("starts");
    wait_for("the first start", || read(&starts) == format!("{first}\n"));
    cli.secret(&["put", "app/pw", &second]).ok();
    wait_for("the restart with the new value", || {
        read(&starts) == format!("{first}\n{second}\n")
    });
    kill("TERM", child.id());
    let r = finish(child);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr.matches("restarting").count(), 1, "{}", r.stderr);
    assert!(
        !r.stderr.contains(&first) && !r.stderr.contains(&second),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn fallback_when_kura_is_unreachable() {
    let server = Server::start().await;
    let mut shell = Shell::new(&server.data_dir);
    let ep = server.endpoint();
    let value = format!("fb-{}", unique_suffix());
    server.remember(&value);
    shell
        .run(&["secret", "create", "app/fb", &value, "--endpoint", &ep])
        .ok();
    let file = shell.cwd.path().join("fallback.enc");
    let f = file.to_str().unwrap().to_string();
    let args = [
        "--secret",
        "app/fb",
        "--fallback",
        &f,
        "--",
        "sh",
        "-c",
        // The passphrase is not passed on: the command gets the value alone.
        r#"printf '%s%s' "$FB" "${KURA_FALLBACK_PASSPHRASE-}" > out"#,
    ];

    // No passphrase: refused before anything runs.
    let err = run(&shell, &ep, &args).fails(2);
    assert!(err.contains("KURA_FALLBACK_PASSPHRASE"), "{err}");
    shell.set("KURA_FALLBACK_PASSPHRASE", "correct horse");
    run(&shell, &ep, &args).ok();
    let out = shell.cwd.path().join("out");
    assert_eq!(read(&out), value);
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    assert!(
        !read(&file).contains(&value),
        "the fallback holds the value in clear"
    );

    // An unknown secret is not covered up by the fallback.
    let err = run(
        &shell,
        &ep,
        &["--secret", "app/none", "--fallback", &f, "--", "true"],
    )
    .fails(3);
    assert!(!err.contains("fallback"), "{err}");

    // Server stopped: the fallback's value, and stderr says so.
    std::fs::remove_file(&out).unwrap();
    let _tmp = server.stop().await;
    let r = run(&shell, &ep, &args).ok();
    assert_eq!(read(&out), value);
    assert!(
        r.stderr.contains("using the fallback") && r.stderr.contains("ago"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(&value));

    // A wrong passphrase: a clear error, nothing run.
    std::fs::remove_file(&out).unwrap();
    shell.set("KURA_FALLBACK_PASSPHRASE", "wrong");
    let err = run(&shell, &ep, &args).fails(1);
    assert!(err.contains("KURA_FALLBACK_PASSPHRASE"), "{err}");
    assert!(!out.exists());

    // A damaged file.
    std::fs::write(&file, "{not json").unwrap();
    let err = run(&shell, &ep, &args).fails(1);
    assert!(err.contains("damaged"), "{err}");
}

#[tokio::test]
async fn watch_kills_a_child_that_ignores_sigterm_after_the_grace() {
    let server = Server::start().await;
    let cli = Cli::new(&server);
    let ep = server.endpoint();
    let first = format!("first-{}", unique_suffix());
    let second = format!("second-{}", unique_suffix());
    server.remember(&first);
    server.remember(&second);
    cli.secret(&["create", "app/stubborn", &first]).ok();
    // Ignores SIGTERM; only SIGKILL ends it.
    let script = r#"echo $$ > pid; printf '%s\n' "$STUBBORN" >> starts; trap '' TERM; while :; do sleep 0.1; done"#;
    let child = spawn(
        &cli.shell,
        &ep,
        &[
            "--secret",
            "app/stubborn",
            "--watch",
            "--interval",
            "200ms",
            "--grace",
            "300ms",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    let starts = cli.shell.cwd.path().join("starts");
    wait_for("the first start", || read(&starts) == format!("{first}\n"));
    cli.secret(&["put", "app/stubborn", &second]).ok();
    wait_for("the restart after SIGKILL", || {
        read(&starts) == format!("{first}\n{second}\n")
    });
    // kura run ends with the command it runs: SIGKILL's 128+9.
    let pid = read(&cli.shell.cwd.path().join("pid"));
    kill("KILL", pid.trim().parse().unwrap());
    let r = finish(child);
    assert_eq!(r.code, 128 + 9, "{}", r.stderr);
    assert!(r.stderr.contains("SIGKILL"), "{}", r.stderr);
}
