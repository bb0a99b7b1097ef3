//! `kura server --config FILE` (TOML) and `--print-config`: the file's values are used, flags
//! and `KURA_*` variables override them, mistakes are refused by key and line, secrets are
//! masked; and the README's production files are `deploy/`'s, which the server reads.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tls::{ClientTls, TestCa, write_pair};
use common::{Server, have, start_refused};

const KURA: &str = env!("CARGO_BIN_EXE_kura");

fn temp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kura-test-")
        .tempdir()
        .expect("create temp dir")
}

/// Writes `text` as `dir/kura.toml` and returns its path as a string.
fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("kura.toml");
    std::fs::write(&path, text).expect("write kura.toml");
    path.to_str().expect("UTF-8 temp path").to_string()
}

/// `kura ARGS` with `env` (and no inherited `KURA_*` setting): exit code, stdout, stderr.
fn kura(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(KURA);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KURA_") {
            command.env_remove(name);
        }
    }
    let out = command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run kura");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kura server ARGS --print-config`, which must succeed: its TOML.
fn print_config(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["server"];
    all.extend_from_slice(args);
    all.push("--print-config");
    let (code, out, err) = kura(&all, env);
    assert_eq!(code, 0, "kura {all:?} failed: {err}");
    out
}

/// The line of the printed configuration that sets `key`.
fn printed<'a>(config: &'a str, key: &str) -> &'a str {
    config
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no `{key} = ` line in\n{config}"))
}

/// The region in the ARN of a secret created on `server`.
async fn arn_region(server: &Server) -> String {
    let client = server.client().await;
    let arn = common::create_plain(&client, "config/region", "value of the region probe").await;
    arn.split(':').nth(3).expect("ARN region field").to_string()
}

#[tokio::test]
async fn the_file_named_by_kura_config_sets_the_options() {
    let tmp = temp();
    let config = write_config(tmp.path(), "region = \"eu-west-3\"\nlog-json = true\n");
    let server = Server::start_in_with_env(tmp, &[], &[("KURA_CONFIG", &config)]).await;
    server.exempt_audit_trail("its log is JSON lines, where the harness finds no request lines");
    assert_eq!(arn_region(&server).await, "eu-west-3");
    let log = server.log();
    let first = log.lines().next().expect("the server logged");
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "log-json = true in the file, yet the log is not JSON lines:\n{log}"
    );
}

#[tokio::test]
async fn a_flag_overrides_the_file() {
    let tmp = temp();
    let config = write_config(tmp.path(), "region = \"eu-west-3\"\n");
    let server = Server::start_in_with(tmp, &["--config", &config, "--region", "ap-south-2"]).await;
    assert_eq!(arn_region(&server).await, "ap-south-2");
}

#[tokio::test]
async fn the_environment_overrides_the_file() {
    let tmp = temp();
    let config = write_config(tmp.path(), "region = \"eu-west-3\"\n");
    let server =
        Server::start_in_with_env(tmp, &["--config", &config], &[("KURA_REGION", "sa-east-1")])
            .await;
    assert_eq!(arn_region(&server).await, "sa-east-1");
}

#[test]
fn print_config_shows_each_value_and_where_it_came_from() {
    let tmp = temp();
    let config = write_config(
        tmp.path(),
        "listen = \"0.0.0.0:8443\"\nregion = \"eu-west-3\"\nmax-connections = 100\n\
         idle-timeout = 2.5\ninsecure-http = true\n",
    );
    let out = print_config(
        &["--config", &config, "--max-connections", "300"],
        &[("KURA_REGION", "sa-east-1"), ("KURA_IDLE_TIMEOUT", "7")],
    );
    assert_eq!(
        printed(&out, "listen"),
        format!("listen = \"0.0.0.0:8443\"  # {config}")
    );
    assert_eq!(
        printed(&out, "insecure-http"),
        format!("insecure-http = true  # {config}")
    );
    assert_eq!(
        printed(&out, "region"),
        "region = \"sa-east-1\"  # KURA_REGION"
    );
    assert_eq!(
        printed(&out, "idle-timeout"),
        "idle-timeout = 7  # KURA_IDLE_TIMEOUT"
    );
    assert_eq!(
        printed(&out, "max-connections"),
        "max-connections = 300  # --max-connections"
    );
    assert_eq!(
        printed(&out, "data-dir"),
        "data-dir = \"./kura-data\"  # default"
    );
    assert!(out.contains("# tls-cert: not set\n"), "{out}");

    // What it prints is a configuration file that gives the same configuration.
    let again = write_config(tmp.path(), &out);
    let out2 = print_config(&["--config", &again], &[]);
    for key in [
        "listen",
        "insecure-http",
        "region",
        "idle-timeout",
        "max-connections",
    ] {
        let value = |text: &str| printed(text, key).split("  #").next().unwrap().to_string();
        assert_eq!(
            value(&out2),
            value(&out),
            "{key} after a round trip:\n{out2}"
        );
    }
}

#[test]
fn an_unknown_key_is_refused_by_name_and_line() {
    let tmp = temp();
    let data = tmp.path().join("data");
    let config = write_config(
        tmp.path(),
        "# production\nlisten = \"127.0.0.1:8200\"\ntls-certificate = \"/etc/kura/server.pem\"\n",
    );
    let (status, out) = start_refused(&data, &["--config", &config], &[]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains(&format!("{config} line 3: unknown key `tls-certificate`")),
        "{out}"
    );
    assert!(
        out.contains("tls-cert, "),
        "the valid keys are listed: {out}"
    );
    assert!(!data.exists(), "a refused start touched the data directory");

    // Sections are not options either: the keys are flat, as the flags are.
    let config = write_config(tmp.path(), "[tls]\ncert = \"/etc/kura/server.pem\"\n");
    let (status, out) = start_refused(&data, &["--config", &config], &[]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("line 1: unknown key `tls`"), "{out}");
}

#[test]
fn a_value_of_the_wrong_type_or_out_of_range_is_refused_by_key_and_line() {
    let tmp = temp();
    let data = tmp.path().join("data");
    let cases = [
        (
            "max-connections = \"many\"",
            "`max-connections` takes a number",
        ),
        (
            "log-json = \"yes\"",
            "`log-json` is a switch: write `log-json = true`",
        ),
        ("listen = 8200", "`listen` takes a string"),
        ("listen = \"nowhere\"", "`listen`: invalid value 'nowhere'"),
        (
            "header-read-timeout = 0",
            "give more than 0 and at most 86400 seconds",
        ),
        (
            "max-connections = 0",
            "`max-connections`: invalid value '0'",
        ),
        ("seal = \"vault\"", "possible values: file, shamir, pkcs11"),
        ("pkcs11-slot = \"one\"", "`pkcs11-slot` takes a number"),
        (
            "tls-cert = [\"/etc/kura/tls/server.pem\"]",
            "`tls-cert` takes a string",
        ),
    ];
    for (line, expected) in cases {
        let config = write_config(tmp.path(), &format!("region = \"eu-west-3\"\n{line}\n"));
        let (status, out) = start_refused(&data, &["--config", &config], &[]);
        assert_eq!(status.code(), Some(2), "{line}: {out}");
        assert!(out.contains(&format!("{config} line 2: ")), "{line}: {out}");
        assert!(out.contains(expected), "{line}: {out}");
    }

    let config = write_config(tmp.path(), "region = eu-west-3\n");
    let (status, out) = start_refused(&data, &["--config", &config], &[]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("is not valid TOML"), "{out}");
    assert!(out.contains("line 1"), "{out}");

    let (status, out) = start_refused(&data, &["--config", "/nonexistent/kura.toml"], &[]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("cannot read the configuration file /nonexistent/kura.toml"),
        "{out}"
    );
    assert!(!data.exists(), "a refused start touched the data directory");
}

#[test]
fn print_config_masks_the_pin_and_database_passwords() {
    let tmp = temp();
    let pin = "pin-9f3c1e77";
    let password = "pw-b81d5a0c";
    let config = write_config(
        tmp.path(),
        &format!(
            "seal = \"pkcs11\"\npkcs11-module = \"/usr/lib/softhsm/libsofthsm2.so\"\n\
             pkcs11-token-label = \"kura\"\npkcs11-pin = \"{pin}\"\n\
             database-url = \"postgres://kura:{password}@db.example:5432/kura?sslmode=require\"\n"
        ),
    );
    let out = print_config(&["--config", &config], &[]);
    assert!(!out.contains(pin) && !out.contains(password), "{out}");
    assert_eq!(
        printed(&out, "pkcs11-pin"),
        format!("pkcs11-pin = \"<masked>\"  # {config}")
    );
    assert_eq!(
        printed(&out, "database-url"),
        format!(
            "database-url = \"postgres://kura:<masked>@db.example:5432/kura?sslmode=require\"  # {config}"
        )
    );
    assert_eq!(
        printed(&out, "pkcs11-module"),
        format!("pkcs11-module = \"/usr/lib/softhsm/libsofthsm2.so\"  # {config}")
    );

    // From the environment too, and a password given as a URL parameter.
    let env_url = format!("postgres://db.example/kura?user=kura&password={password}");
    let out = print_config(
        &[],
        &[
            ("KURA_SEAL", "pkcs11"),
            ("KURA_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so"),
            ("KURA_PKCS11_SLOT", "0"),
            ("KURA_PKCS11_PIN", pin),
            ("KURA_DATABASE_URL", &env_url),
        ],
    );
    assert!(!out.contains(pin) && !out.contains(password), "{out}");
    assert_eq!(
        printed(&out, "pkcs11-pin"),
        "pkcs11-pin = \"<masked>\"  # KURA_PKCS11_PIN"
    );
    assert_eq!(
        printed(&out, "database-url"),
        "database-url = \"postgres://db.example/kura?user=kura&password=<masked>\"  # KURA_DATABASE_URL"
    );

    // Fed back as it is, the masked values are refused; given again, they are used.
    let printed_file = tmp.path().join("printed.toml");
    std::fs::write(&printed_file, &out).expect("write printed.toml");
    let printed_path = printed_file.to_str().unwrap();
    let (code, _, err) = kura(&["server", "--config", printed_path, "--print-config"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("holds <masked>, which --print-config shows in place of a secret"),
        "{err}"
    );
    let again = print_config(
        &["--config", printed_path],
        &[("KURA_PKCS11_PIN", pin), ("KURA_DATABASE_URL", &env_url)],
    );
    assert_eq!(
        printed(&again, "pkcs11-pin"),
        "pkcs11-pin = \"<masked>\"  # KURA_PKCS11_PIN"
    );

    // `--help` does not show the database URL from the environment.
    let (code, help, _) = kura(&["server", "--help"], &[("KURA_DATABASE_URL", &env_url)]);
    assert_eq!(code, 0);
    assert!(!help.contains(password), "{help}");
}

#[test]
fn tls_options_that_do_not_go_together_are_refused_wherever_they_come_from() {
    let tmp = temp();
    let data = tmp.path().join("data");
    let config = write_config(tmp.path(), "tls-cert = \"/etc/kura/tls/server.pem\"\n");
    let (status, out) = start_refused(&data, &["--config", &config], &[]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("--tls-cert needs --tls-key"), "{out}");

    let config = write_config(tmp.path(), "tls-client-ca = \"/etc/kura/tls/ca.pem\"\n");
    let (status, out) = start_refused(&data, &["--config", &config], &[]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("--tls-client-ca needs --tls-cert"), "{out}");
    assert!(!data.exists(), "a refused start touched the data directory");

    // The file's certificate and the flag's key make a pair.
    let config = write_config(tmp.path(), "tls-cert = \"/etc/kura/tls/server.pem\"\n");
    let out = print_config(
        &["--config", &config, "--tls-key", "/run/kura/server.key"],
        &[],
    );
    assert_eq!(
        printed(&out, "tls-key"),
        "tls-key = \"/run/kura/server.key\"  # --tls-key"
    );
}

#[tokio::test]
async fn a_server_serves_tls_with_the_files_its_configuration_names() {
    let tmp = temp();
    let ca = TestCa::new("config");
    let (cert, key) = write_pair(tmp.path(), &ca.server_cert(1));
    let config = write_config(
        tmp.path(),
        &format!(
            "tls-cert = \"{}\"\ntls-key = \"{}\"\nregion = \"eu-west-3\"\n",
            cert.display(),
            key.display()
        ),
    );
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write ca.pem");
    let server = Server::start_tls(tmp, &["--config", &config], ClientTls::trusting(&ca)).await;
    assert!(server.endpoint().starts_with("https://"));
    assert_eq!(arn_region(&server).await, "eu-west-3");

    // `kura operator`, as the production set-up runs it, trusts the CA in AWS_CA_BUNDLE.
    let endpoint = server.endpoint();
    let status = ["operator", "status", "--endpoint", endpoint.as_str()];
    let (code, out, err) = kura(&status, &[("AWS_CA_BUNDLE", ca_file.to_str().unwrap())]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "seal file: unsealed, serving; root key generation 1"
    );
    let (code, _, err) = kura(&status, &[]);
    assert_eq!(
        code, 1,
        "without the CA the server's certificate is not trusted: {err}"
    );
    assert!(err.contains("cannot reach"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// README "Production set-up" and deploy/
// ---------------------------------------------------------------------------------------------

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fenced block that follows `<!-- file: PATH -->` in README.md.
fn readme_file_block(path: &str) -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("read README.md");
    let marker = format!("<!-- file: {path} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"))
        .1;
    let body = after
        .split_once("```")
        .and_then(|(_, rest)| rest.split_once('\n'))
        .map(|(_, rest)| rest)
        .expect("a fenced block after the marker");
    body.split_once("```").expect("closing fence").0.to_string()
}

#[test]
fn the_readme_shows_the_deploy_files_as_they_are() {
    for path in ["deploy/kura.toml", "deploy/kura.service"] {
        let file = std::fs::read_to_string(repo().join(path))
            .unwrap_or_else(|e| panic!("read {path}: {e}"));
        assert_eq!(
            readme_file_block(path),
            file,
            "README.md's block for {path} differs from the file"
        );
    }
}

#[test]
fn the_server_reads_deploy_kura_toml() {
    let path = repo().join("deploy/kura.toml");
    let path = path.to_str().expect("UTF-8 path");
    let text = std::fs::read_to_string(path).expect("read deploy/kura.toml");
    let out = print_config(&["--config", path], &[]);
    let settings: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert!(settings.len() >= 5, "deploy/kura.toml sets almost nothing");
    for line in settings {
        assert!(
            out.contains(&format!("{line}  # {path}\n")),
            "`{line}` of deploy/kura.toml is not in the effective configuration:\n{out}"
        );
    }
}

#[test]
fn systemd_accepts_deploy_kura_service() {
    if !have("systemd-analyze") {
        return;
    }
    let unit = std::fs::read_to_string(repo().join("deploy/kura.service"))
        .expect("read deploy/kura.service");
    let installed = "/usr/local/bin/kura";
    assert!(unit.contains(&format!("ExecStart={installed} server --config ")));
    // `verify` checks that ExecStart's program exists: the one just built stands in for the
    // installed one; the rest of the unit is checked as printed.
    let tmp = temp();
    let copy = tmp.path().join("kura.service");
    std::fs::write(&copy, unit.replace(installed, KURA)).expect("write the unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify: {text}");
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify warns: {text}"
    );
}

/// `kura ARGS` with `env` and `stdin`, which must succeed: its stdout.
fn kura_ok(args: &[&str], env: &[(&str, &str)], stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(KURA)
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kura");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for kura");
    assert!(
        out.status.success(),
        "kura {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The README's production set-up on one node, with deploy/kura.toml as printed but for the
/// TLS files' paths (and the address and data directory, which the harness gives as flags):
/// the server starts sealed under Shamir, `kura operator init` and `unseal` reach it over TLS
/// with AWS_CA_BUNDLE, and each restart is sealed until unsealed.
#[tokio::test]
async fn the_production_set_up_runs_on_deploy_kura_toml() {
    let tmp = temp();
    let ca = TestCa::new("production");
    let (cert, key) = write_pair(tmp.path(), &ca.server_cert(1));
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write ca.pem");
    let deployed = std::fs::read_to_string(repo().join("deploy/kura.toml"))
        .expect("read deploy/kura.toml")
        .replace("/etc/kura/tls/server.pem", cert.to_str().unwrap())
        .replace("/etc/kura/tls/server.key", key.to_str().unwrap());
    assert!(deployed.contains(cert.to_str().unwrap()) && deployed.contains(key.to_str().unwrap()));
    let config = write_config(tmp.path(), &deployed);
    let args = ["--config", config.as_str()];
    let client_tls = ClientTls::trusting(&ca);
    let server = Server::start_tls(tmp, &args, client_tls.clone()).await;
    server.exempt_audit_trail(
        "deploy/kura.toml logs JSON lines, where the harness finds no request lines",
    );

    let endpoint = server.endpoint();
    let env = [
        ("KURA_ENDPOINT", endpoint.as_str()),
        ("AWS_CA_BUNDLE", ca_file.to_str().unwrap()),
    ];
    let out = kura_ok(&["operator", "status"], &env, "");
    assert!(out.contains("seal shamir: not initialised"), "{out}");
    let out = kura_ok(
        &["operator", "init", "--shares", "5", "--threshold", "3"],
        &env,
        "",
    );
    let shares = common::operator::printed_shares(&out);
    assert_eq!(shares.len(), 5, "{out}");
    let client = server.client().await;
    common::create_plain(&client, "prod/db", "kept under shamir over TLS").await;

    // A restart (as systemd's Restart=on-failure would do) is sealed until 3 shares are given.
    let tmp = server.stop().await;
    let server = Server::start_tls(tmp, &args, client_tls).await;
    server.exempt_audit_trail(
        "deploy/kura.toml logs JSON lines, where the harness finds no request lines",
    );
    let endpoint = server.endpoint();
    let env = [
        ("KURA_ENDPOINT", endpoint.as_str()),
        ("AWS_CA_BUNDLE", ca_file.to_str().unwrap()),
    ];
    let out = kura_ok(&["operator", "status"], &env, "");
    assert!(out.contains("sealed, 0 of 3 shares given"), "{out}");
    for share in &shares[2..] {
        kura_ok(&["operator", "unseal"], &env, &format!("{share}\n"));
    }
    let out = kura_ok(&["operator", "status"], &env, "");
    assert_eq!(
        out.trim(),
        "seal shamir: unsealed, serving; root key generation 1"
    );
    let client = server.client().await;
    assert_eq!(
        common::get_string(&client, "prod/db").await,
        "kept under shamir over TLS"
    );
}
