//! Managed rotation of SSH logins (`kura-ssh-password`, `kura-ssh-keypair`) against the real
//! OpenSSH server that `scripts/test-sshd` starts on 127.0.0.1:22022. Runs as root: each test
//! makes its own throwaway Linux users (`useradd`, `chpasswd`, sudoers entries) and deletes them
//! at the end. Logins are checked with the `ssh` client binary (passwords through
//! `SSH_ASKPASS`), so "refused" means sshd itself refused.
//!
//! Without that sshd, root or the `ssh` client the tests print "SKIPPED: ..." and pass, except
//! under CI=true, where they fail.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tempfile::TempDir;

const HOST: &str = "127.0.0.1";
const PORT: u16 = 22022;
/// Every punctuation character GetRandomPassword can produce.
const PUNCTUATION: &str = r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##;
const PASSWORD_FN: &str = "kura-ssh-password";
const KEYPAIR_FN: &str = "kura-ssh-keypair";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether the test can run: root, the OpenSSH client tools, and sshd up on 22022.
fn ssh_ready() -> bool {
    if !have("ssh") || !have("ssh-keygen") || !have("useradd") {
        return false;
    }
    let addr: SocketAddr = ([127, 0, 0, 1], PORT).into();
    let problem = if !is_root() {
        Some("these tests create Linux users and must run as root".to_string())
    } else if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        Some(format!(
            "no sshd on {HOST}:{PORT}; run `bash scripts/test-services` (as root) first"
        ))
    } else {
        None
    };
    match problem {
        None => true,
        Some(p) => {
            assert!(!in_ci(), "{p} (in CI it must be ready)");
            skip(&p);
            false
        }
    }
}

/// `target/test-sshd/` of this checkout, if the sshd running is the one started from it.
fn our_sshd_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-sshd");
    let pid = std::fs::read_to_string(dir.join("sshd.pid")).ok()?;
    Path::new(&format!("/proc/{}", pid.trim()))
        .exists()
        .then_some(dir)
}

/// The server's host key as "ssh-ed25519 AAAA..." (no comment): the public half of
/// `target/test-sshd/ssh_host_ed25519_key`, or what ssh-keyscan sees when another checkout's
/// sshd is the one listening.
fn server_host_key() -> String {
    let line = match our_sshd_dir() {
        Some(dir) => std::fs::read_to_string(dir.join("ssh_host_ed25519_key.pub"))
            .expect("read the test sshd's host key"),
        None => {
            let out = Command::new("ssh-keyscan")
                .args(["-t", "ed25519", "-p", &PORT.to_string(), HOST])
                .output()
                .expect("run ssh-keyscan");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let line = text
                .lines()
                .find(|l| !l.starts_with('#') && !l.trim().is_empty())
                .unwrap_or_else(|| panic!("ssh-keyscan found no key: {text:?}"))
                .to_string();
            line.split_once(' ').unwrap().1.to_string()
        }
    };
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert!(
        fields.len() >= 2 && fields[0] == "ssh-ed25519",
        "unexpected host key line {line:?}"
    );
    format!("{} {}", fields[0], fields[1])
}

/// A random string of lower-case hex digits (test passwords and names; not security sensitive).
fn random_hex(len: usize) -> String {
    unique_suffix()[..len].to_string()
}

// ---------------------------------------------------------------------------------------------------------
// Linux users
// ---------------------------------------------------------------------------------------------------------

/// Runs `cmd` (with `input` on stdin); retries while another process holds the passwd/shadow
/// locks (other test binaries add users at the same time). Panics on any other failure.
fn run_locked(what: &str, make: impl Fn() -> Command, input: Option<&str>) {
    let mut last = String::new();
    for _ in 0..100 {
        let mut cmd = make();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut stdin = child.stdin.take().unwrap();
        if let Some(text) = input {
            stdin.write_all(text.as_bytes()).unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            return;
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        if !last.contains("lock") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} failed: {last}");
}

/// A throwaway Linux user, deleted (with its home and any sudoers entry) when dropped.
struct TestUser {
    name: String,
    sudoers: Option<PathBuf>,
}

impl TestUser {
    /// A new user whose password is locked (it can't log in with one until one is set).
    fn new(tag: &str) -> TestUser {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("ks{tag}{n}{}", random_hex(8));
        assert!(name.len() <= 32, "{name} is too long for a user name");
        run_locked(
            &format!("useradd {name}"),
            || {
                let mut c = Command::new("useradd");
                c.args(["-m", "-s", "/bin/bash", &name]);
                c
            },
            None,
        );
        TestUser {
            name,
            sudoers: None,
        }
    }

    fn with_password(tag: &str, password: &str) -> TestUser {
        let user = TestUser::new(tag);
        run_locked(
            &format!("chpasswd for {}", user.name),
            || Command::new("chpasswd"),
            Some(&format!("{}:{password}\n", user.name)),
        );
        user
    }

    /// Lets the user run anything as anyone through sudo, without a password.
    fn grant_sudo(&mut self) {
        let path = PathBuf::from(format!("/etc/sudoers.d/{}", self.name));
        std::fs::write(&path, format!("{} ALL=(ALL) NOPASSWD: ALL\n", self.name)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).unwrap();
        self.sudoers = Some(path);
    }

    fn home(&self) -> PathBuf {
        PathBuf::from(format!("/home/{}", self.name))
    }

    fn authorized_keys(&self) -> PathBuf {
        self.home().join(".ssh/authorized_keys")
    }

    /// Installs `lines` as the user's authorized_keys, owned by the user, as sshd wants it.
    fn write_authorized_keys(&self, lines: &str) {
        let dir = self.home().join(".ssh");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(self.authorized_keys(), lines).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(
            self.authorized_keys(),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let status = Command::new("chown")
            .args(["-R", &format!("{0}:{0}", self.name)])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "chown {}", dir.display());
    }

    /// The key lines (not comments or blank lines) of the user's authorized_keys.
    fn key_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.authorized_keys())
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect()
    }

    /// The password hash field of the user's /etc/shadow line.
    fn shadow_hash(&self) -> String {
        let shadow = std::fs::read_to_string("/etc/shadow").unwrap();
        shadow
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{}:", self.name)))
            .and_then(|rest| rest.split(':').next())
            .unwrap_or_else(|| panic!("{} is not in /etc/shadow", self.name))
            .to_string()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        if let Some(path) = &self.sudoers {
            let _ = std::fs::remove_file(path);
        }
        for _ in 0..50 {
            let status = Command::new("userdel")
                .args(["-r", "-f", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // 10: can't update the password file (locked by someone else); try again.
            if !matches!(status.map(|s| s.code()), Ok(Some(10))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Logins with the OpenSSH client
// ---------------------------------------------------------------------------------------------------------

/// The client side: a known_hosts file pinning the server's key, an askpass helper, key files.
struct SshClient {
    dir: TempDir,
    host_key: String,
    known_hosts: PathBuf,
    askpass: PathBuf,
}

impl SshClient {
    fn new() -> SshClient {
        let dir = tempfile::Builder::new()
            .prefix("kura-ssh-client-")
            .tempdir()
            .unwrap();
        let host_key = server_host_key();
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, format!("[{HOST}]:{PORT} {host_key}\n")).unwrap();
        let askpass = dir.path().join("askpass");
        std::fs::write(
            &askpass,
            "#!/bin/sh\nprintf '%s\\n' \"$KURA_TEST_SSH_PASSWORD\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
        SshClient {
            dir,
            host_key,
            known_hosts,
            askpass,
        }
    }

    /// `ssh user@127.0.0.1 true`; Err(stderr) when it fails.
    fn login(&self, user: &str, extra: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
        let out = Command::new("ssh")
            .args(["-F", "/dev/null", "-p", &PORT.to_string()])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .args(["-o", "UpdateHostKeys=no"])
            .args(["-o", "ConnectTimeout=10"])
            .args(["-o", "NumberOfPasswordPrompts=1"])
            .args(["-o", "IdentityAgent=none"])
            .args(["-o", "KbdInteractiveAuthentication=no"])
            .args(extra)
            .arg(format!("{user}@{HOST}"))
            .arg("true")
            .env_remove("SSH_AUTH_SOCK")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run ssh");
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    fn password_login(&self, user: &str, password: &str) -> Result<(), String> {
        self.login(
            user,
            &[
                "-o",
                "BatchMode=no",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
            ],
            &[
                ("SSH_ASKPASS", self.askpass.to_str().unwrap()),
                ("SSH_ASKPASS_REQUIRE", "force"),
                ("KURA_TEST_SSH_PASSWORD", password),
            ],
        )
    }

    fn key_login(&self, user: &str, private_key: &str) -> Result<(), String> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = self
            .dir
            .path()
            .join(format!("id-{}", COUNTER.fetch_add(1, Ordering::Relaxed)));
        let mut file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        file.write_all(private_key.as_bytes()).unwrap();
        if !private_key.ends_with('\n') {
            file.write_all(b"\n").unwrap();
        }
        drop(file);
        let result = self.login(
            user,
            &[
                "-i",
                path.to_str().unwrap(),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "PreferredAuthentications=publickey",
                "-o",
                "PasswordAuthentication=no",
            ],
            &[],
        );
        let _ = std::fs::remove_file(&path);
        result
    }

    /// A valid host key line that isn't the server's.
    fn wrong_host_key(&self) -> String {
        let (_, public) = self.keygen("ed25519", "not-the-server");
        let fields: Vec<&str> = public.split_whitespace().collect();
        format!("{} {}", fields[0], fields[1])
    }

    /// A new key pair from ssh-keygen: (OpenSSH private key, public key line).
    fn keygen(&self, kind: &str, comment: &str) -> (String, String) {
        let path = self.dir.path().join(format!("gen-{}", random_hex(12)));
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"])
            .arg(&path)
            .output()
            .expect("run ssh-keygen");
        assert!(
            out.status.success(),
            "ssh-keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let private = std::fs::read_to_string(&path).unwrap();
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        (private, public.trim().to_string())
    }

    /// `ssh-keygen -l` of a public key line: "2048 SHA256:... comment (RSA)".
    fn describe_public_key(&self, public: &str) -> String {
        let path = self.dir.path().join(format!("pub-{}", random_hex(12)));
        std::fs::write(&path, format!("{public}\n")).unwrap();
        let out = Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("run ssh-keygen -l");
        assert!(
            out.status.success(),
            "ssh-keygen -l {public:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

#[track_caller]
fn assert_login(result: Result<(), String>, what: &str) {
    if let Err(e) = result {
        panic!("{what}: the login failed: {e}");
    }
}

/// The login was refused by sshd (not failed for some other reason, like the connection).
#[track_caller]
fn assert_refused(result: Result<(), String>, what: &str) {
    match result {
        Ok(()) => panic!("{what}: the login worked, but it should be refused"),
        Err(e) => assert!(
            e.contains("Permission denied"),
            "{what}: expected sshd to refuse the login, but ssh said: {e}"
        ),
    }
}

/// A login to try with the `ssh` client.
enum Login<'a> {
    /// (user, password)
    Password(&'a str, &'a str),
    /// (user, OpenSSH private key)
    Key(&'a str, &'a str),
}

use Login::{Key, Password};

impl SshClient {
    fn try_login(&self, login: &Login<'_>) -> Result<(), String> {
        match *login {
            Password(user, password) => self.password_login(user, password),
            Key(user, private_key) => self.key_login(user, private_key),
        }
    }

    /// Checks logins at the same time (each refused password costs sshd's ~3 s failure delay):
    /// `(what, login, true)` must log in, `(what, login, false)` must be refused by sshd.
    #[track_caller]
    fn expect_logins(&self, checks: &[(&str, Login<'_>, bool)]) {
        let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = checks
                .iter()
                .map(|(_, login, _)| scope.spawn(move || self.try_login(login)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for ((what, _, works), result) in checks.iter().zip(results) {
            if *works {
                assert_login(result, what);
            } else {
                assert_refused(result, what);
            }
        }
    }
}

/// The log of the test sshd that is listening (this checkout's or another's), or `None`
/// with a visible SKIPPED note when it cannot be read; in CI that fails the test, since the
/// checks that read it ("sshd never saw a login") would otherwise pass without looking.
fn sshd_log() -> Option<String> {
    match test_sshd_log() {
        Ok(log) => Some(log),
        Err(why) => {
            assert!(!in_ci(), "cannot read the test sshd's log: {why}");
            eprintln!("SKIPPED (in part): cannot read the test sshd's log: {why}");
            None
        }
    }
}

/// Reads the log through the sshd process's own descriptor (found in /proc by its
/// `-f …/test-sshd/sshd_config`), so it works for another checkout's sshd and for a log
/// file deleted while sshd still writes it.
fn test_sshd_log() -> Result<String, String> {
    let procs = std::fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))?;
    for entry in procs.flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains("test-sshd/sshd_config") {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            if target.to_string_lossy().contains("sshd.log") {
                return std::fs::read_to_string(fd.path())
                    .map_err(|e| format!("{}: {e}", target.display()));
            }
        }
    }
    Err("no running sshd started by scripts/test-sshd writes a log".into())
}

// ---------------------------------------------------------------------------------------------------------
// Secrets and rotation
// ---------------------------------------------------------------------------------------------------------

fn password_value(ssh: &SshClient, user: &str, password: &str) -> Value {
    json!({"host": HOST, "port": PORT, "username": user, "password": password,
           "host_key": ssh.host_key})
}

fn keypair_value(ssh: &SshClient, user: &str, private_key: &str, public_key: &str) -> Value {
    json!({"host": HOST, "port": PORT, "username": user, "private_key": private_key,
           "public_key": public_key, "host_key": ssh.host_key})
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

/// Advances the test clock until the rotation gives up; returns `KuraRotation`.
async fn wait_rotation_failed(server: &Server, id: &str) -> Value {
    for _ in 0..12 {
        let r = wait_rotation_settled(server, id, Duration::from_secs(30)).await;
        if r["State"] == "Failed" {
            return r;
        }
        assert_eq!(r["State"], "InProgress", "{id}: {r:#}");
        server
            .kura("AdvanceClock", &json!({ "Seconds": 3600 }).to_string())
            .await
            .assert_ok();
    }
    let r = describe_json(server, id).await["KuraRotation"].clone();
    panic!(
        "rotation of {id} never failed for good: {r:#}\n--- server log ---\n{}",
        server.log()
    );
}

/// Waits until the engine has finished `setSecret` and hangs before testSecret.
async fn wait_paused_before_test(server: &Server, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = describe_json(server, id).await["KuraRotation"].clone();
        if r["Step"] == "testSecret" {
            return;
        }
        assert!(
            r.get("LastError").is_none() && r["State"] != "Failed",
            "{id}: rotation failed before testSecret: {r:#}\n{}",
            server.log()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "{id}: setSecret never finished: {r:#}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What of `secret` must not show in a log: the whole text (raw and JSON-escaped), or, for a
/// private key, each line of its base64 body.
fn secret_needles(secret: &str) -> Vec<String> {
    if secret.contains("PRIVATE KEY-----") {
        return secret
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
            .map(String::from)
            .collect();
    }
    let escaped = serde_json::to_string(secret).unwrap();
    let escaped = escaped[1..escaped.len() - 1].to_string();
    let debug = format!("{secret:?}");
    let debug = debug[1..debug.len() - 1].to_string();
    let mut out = vec![secret.to_string(), escaped, debug];
    out.dedup();
    out
}

#[track_caller]
fn assert_log_clean(server: &Server, secrets: &[&str]) {
    let log = server.log();
    for secret in secrets {
        assert!(!secret.is_empty());
        for needle in secret_needles(secret) {
            assert!(
                !log.contains(&needle),
                "the server log shows a secret value ({needle:?}):\n{log}"
            );
        }
    }
}

/// Every secret string (passwords, private keys) of a JSON value.
fn secrets_of(v: &Value) -> Vec<String> {
    ["password", "private_key"]
        .iter()
        .filter_map(|k| v[*k].as_str())
        .map(String::from)
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Passwords
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn password_rotation_as_the_user_changes_the_login_password() {
    if !ssh_ready() {
        return;
    }
    let ssh = SshClient::new();
    let initial = format!("Initial-{}", random_hex(16));
    let user = TestUser::with_password("pw", &initial);
    assert_login(ssh.password_login(&user.name, &initial), "before rotation");

    let server = Server::start().await;
    let c = server.client().await;
    let mut value = password_value(&ssh, &user.name, &initial);
    value["note"] = "kept as is".into();
    let arn = create_plain(&c, "ssh/pw-self", &value.to_string()).await;
    rotate(&server, "ssh/pw-self", &arn, PASSWORD_FN, None).await;
    wait_rotation_succeeded(&server, "ssh/pw-self").await;

    let now = current_json(&c, "ssh/pw-self").await;
    let new = s(&now, "password");
    assert_ne!(new, initial);
    assert_eq!(new.chars().count(), 32, "a 32-character password: {new:?}");
    let mut expected = value.clone();
    expected["password"] = new.clone().into();
    assert_eq!(
        now, expected,
        "only the password changes; username, host_key and other fields are kept"
    );
    ssh.expect_logins(&[
        ("the new password", Password(&user.name, &new), true),
        ("the old password", Password(&user.name, &initial), false),
    ]);
    let (_, previous, _) = get_stage(&c, "ssh/pw-self", "AWSPREVIOUS").await;
    assert_eq!(serde_json::from_str::<Value>(&previous).unwrap(), value);

    // A second rotation starts from the new password.
    rotate(&server, "ssh/pw-self", &arn, PASSWORD_FN, None).await;
    wait_rotation_succeeded(&server, "ssh/pw-self").await;
    let newer = s(&current_json(&c, "ssh/pw-self").await, "password");
    assert_ne!(newer, new);
    ssh.expect_logins(&[
        ("the newer password", Password(&user.name, &newer), true),
        (
            "the first rotation's password",
            Password(&user.name, &new),
            false,
        ),
    ]);
    assert_log_clean(&server, &[&initial, &new, &newer]);
}

#[tokio::test]
async fn password_rotation_through_an_administrator_sets_a_locked_users_password() {
    if !ssh_ready() {
        return;
    }
    let ssh = SshClient::new();
    let admin_password = format!("Admin-{}", random_hex(16));
    let mut admin = TestUser::with_password("adm", &admin_password);
    admin.grant_sudo();
    let user = TestUser::new("loc"); // locked: its own password is unknown to everyone
    let hash_before = user.shadow_hash();
    assert!(hash_before.starts_with('!'), "locked: {hash_before:?}");
    let unknown = format!("unknown-{}", random_hex(16));

    let server = Server::start().await;
    let c = server.client().await;
    let admin_value = password_value(&ssh, &admin.name, &admin_password);
    let admin_arn = create_plain(&c, "ssh/admin", &admin_value.to_string()).await;
    let mut value = password_value(&ssh, &user.name, &unknown);
    value["masterarn"] = admin_arn.clone().into();
    let arn = create_plain(&c, "ssh/pw-admin", &value.to_string()).await;
    rotate(&server, "ssh/pw-admin", &arn, PASSWORD_FN, None).await;
    wait_rotation_succeeded(&server, "ssh/pw-admin").await;

    let now = current_json(&c, "ssh/pw-admin").await;
    let new = s(&now, "password");
    assert_ne!(new, unknown);
    assert_eq!(s(&now, "username"), user.name);
    assert_eq!(s(&now, "masterarn"), admin_arn, "masterarn is kept");
    assert_ne!(user.shadow_hash(), hash_before, "the password was set");
    // The administrator's secret and login are untouched.
    assert_eq!(current_json(&c, "ssh/admin").await, admin_value);
    ssh.expect_logins(&[
        ("the new password", Password(&user.name, &new), true),
        (
            "the secret's old password",
            Password(&user.name, &unknown),
            false,
        ),
        (
            "the administrator",
            Password(&admin.name, &admin_password),
            true,
        ),
    ]);

    // A staged password full of punctuation goes through sudo chpasswd intact.
    let hard = format!("Aa1{PUNCTUATION}{}", random_hex(8));
    let mut staged = now.clone();
    staged["password"] = hard.clone().into();
    put_string_staged(
        &c,
        "ssh/pw-admin",
        &staged.to_string(),
        &token(3),
        &["AWSPENDING"],
    )
    .await;
    rotate(&server, "ssh/pw-admin", &arn, PASSWORD_FN, Some(&token(3))).await;
    wait_rotation_succeeded(&server, "ssh/pw-admin").await;
    assert_eq!(current_json(&c, "ssh/pw-admin").await, staged);
    ssh.expect_logins(&[
        (
            "the punctuation password",
            Password(&user.name, &hard),
            true,
        ),
        ("the generated password", Password(&user.name, &new), false),
    ]);
    assert_log_clean(&server, &[&admin_password, &unknown, &new, &hard]);
}

#[tokio::test]
async fn password_with_every_punctuation_character_rotates_as_the_user() {
    if !ssh_ready() {
        return;
    }
    let ssh = SshClient::new();
    let initial = format!("Initial-{}", random_hex(16));
    let user = TestUser::with_password("pun", &initial);
    let server = Server::start().await;
    let c = server.client().await;
    let value = password_value(&ssh, &user.name, &initial);
    let arn = create_plain(&c, "ssh/punct", &value.to_string()).await;

    let hard = format!("Aa1{PUNCTUATION}{}", random_hex(8));
    let mut staged = value.clone();
    staged["password"] = hard.clone().into();
    put_string_staged(
        &c,
        "ssh/punct",
        &staged.to_string(),
        &token(7),
        &["AWSPENDING"],
    )
    .await;
    rotate(&server, "ssh/punct", &arn, PASSWORD_FN, Some(&token(7))).await;
    wait_rotation_succeeded(&server, "ssh/punct").await;

    let (version, text, _) = get_stage(&c, "ssh/punct", "AWSCURRENT").await;
    assert_eq!(version, token(7), "the staged version became AWSCURRENT");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), staged);
    ssh.expect_logins(&[
        (
            "the punctuation password",
            Password(&user.name, &hard),
            true,
        ),
        ("the old password", Password(&user.name, &initial), false),
    ]);
    assert_log_clean(&server, &[&initial, &hard]);
}

// ---------------------------------------------------------------------------------------------------------
// Key pairs
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn keypair_rotation_replaces_the_key_in_authorized_keys() {
    if !ssh_ready() {
        return;
    }
    let ssh = SshClient::new();
    // A password nobody knows: the rotation logs in with keys only.
    let user = TestUser::with_password("key", &format!("Unused-{}", random_hex(16)));
    let (initial_private, initial_public) = ssh.keygen("ed25519", "initial-key");
    user.write_authorized_keys(&format!("{initial_public}\n"));
    assert_login(ssh.key_login(&user.name, &initial_private), "initial key");

    let server = Server::start().await;
    let c = server.client().await;
    let value = keypair_value(&ssh, &user.name, &initial_private, &initial_public);
    let arn = create_plain(&c, "ssh/key", &value.to_string()).await;
    rotate(&server, "ssh/key", &arn, KEYPAIR_FN, None).await;
    wait_rotation_succeeded(&server, "ssh/key").await;

    let first = current_json(&c, "ssh/key").await;
    let (private1, public1) = (s(&first, "private_key"), s(&first, "public_key"));
    assert!(
        private1.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"),
        "{first:#}"
    );
    assert!(public1.starts_with("ssh-rsa "), "RSA by default: {public1}");
    let described = ssh.describe_public_key(&public1);
    assert!(
        described.starts_with("2048 ") && described.ends_with("(RSA)"),
        "an RSA-2048 key: {described}"
    );
    assert_eq!(s(&first, "username"), user.name);
    assert_eq!(s(&first, "host_key"), ssh.host_key);
    assert_eq!(first["port"], PORT);
    assert_login(ssh.key_login(&user.name, &private1), "the new RSA key");
    assert_refused(
        ssh.key_login(&user.name, &initial_private),
        "the old key after rotation",
    );
    assert_eq!(
        user.key_lines(),
        vec![public1.clone()],
        "the old key left authorized_keys, the new one is in it"
    );

    rotate(&server, "ssh/key", &arn, KEYPAIR_FN, None).await;
    wait_rotation_succeeded(&server, "ssh/key").await;
    let second = current_json(&c, "ssh/key").await;
    let (private2, public2) = (s(&second, "private_key"), s(&second, "public_key"));
    assert_ne!(public2, public1);
    assert_login(ssh.key_login(&user.name, &private2), "the second new key");
    assert_refused(
        ssh.key_login(&user.name, &private1),
        "the first rotation's key after the second rotation",
    );
    assert_refused(
        ssh.key_login(&user.name, &initial_private),
        "the initial key",
    );
    let lines = user.key_lines();
    assert_eq!(lines, vec![public2.clone()], "exactly one key line");
    assert_eq!(
        lines.iter().filter(|l| l.contains("kura:")).count(),
        1,
        "exactly one kura key: {lines:?}"
    );
    let meta = std::fs::metadata(user.authorized_keys()).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "authorized_keys stays 0600");
    assert_eq!(
        meta.uid(),
        std::fs::metadata(user.home()).unwrap().uid(),
        "authorized_keys stays the user's"
    );
    assert_log_clean(&server, &[&initial_private, &private1, &private2]);
}

#[tokio::test]
async fn keypair_rotation_with_ed25519_keys() {
    if !ssh_ready() {
        return;
    }
    let ssh = SshClient::new();
    let user = TestUser::with_password("ked", &format!("Unused-{}", random_hex(16)));
    let (initial_private, initial_public) = ssh.keygen("ed25519", "initial-key");
    user.write_authorized_keys(&format!("{initial_public}\n"));

    let server = Server::start().await;
    let c = server.client().await;
    let mut value = keypair_value(&ssh, &user.name, &initial_private, &initial_public);
    value["key_type"] = "ed25519".into();
    let arn = create_plain(&c, "ssh/ed", &value.to_string()).await;
    rotate(&server, "ssh/ed", &arn, KEYPAIR_FN, None).await;
    wait_rotation_succeeded(&server, "ssh/ed").await;

    let now = current_json(&c, "ssh/ed").await;
    let (private, public) = (s(&now, "private_key"), s(&now, "public_key"));
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    assert!(
        ssh.describe_public_key(&public).ends_with("(ED25519)"),
        "{public}"
    );
    assert_eq!(s(&now, "key_type"), "ed25519", "key_type is kept");
    assert_login(ssh.key_login(&user.name, &private), "the new Ed25519 key");
    assert_refused(
        ssh.key_login(&user.name, &initial_private),
        "the old key after rotation",
    );
    assert_eq!(user.key_lines(), vec![public.clone()]);
    assert_log_clean(&server, &[&initial_private, &private]);
}

// ---------------------------------------------------------------------------------------------------------
// Host keys
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_pinned_host_key_fails_the_rotation_without_touching_anything() {
    if !ssh_ready() {
        return;
    }
    let ssh = SshClient::new();
    let password = format!("Pinned-{}", random_hex(16));
    let user = TestUser::with_password("pin", &password);
    let (private, public) = ssh.keygen("ed25519", "pinned-key");
    user.write_authorized_keys(&format!("{public}\n"));
    let hash_before = user.shadow_hash();
    let keys_before = std::fs::read_to_string(user.authorized_keys()).unwrap();
    let wrong = ssh.wrong_host_key();

    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    let mut pw_value = password_value(&ssh, &user.name, &password);
    pw_value["host_key"] = wrong.clone().into();
    let pw_arn = create_plain(&c, "ssh/pin-pw", &pw_value.to_string()).await;
    let mut key_value = keypair_value(&ssh, &user.name, &private, &public);
    key_value["host_key"] = wrong.clone().into();
    let key_arn = create_plain(&c, "ssh/pin-key", &key_value.to_string()).await;
    let (pw_version, _, _) = get_stage(&c, "ssh/pin-pw", "AWSCURRENT").await;
    let (key_version, _, _) = get_stage(&c, "ssh/pin-key", "AWSCURRENT").await;

    rotate(&server, "ssh/pin-pw", &pw_arn, PASSWORD_FN, None).await;
    rotate(&server, "ssh/pin-key", &key_arn, KEYPAIR_FN, None).await;
    let mut pending_secrets = Vec::new();
    for (id, version, value) in [
        ("ssh/pin-pw", &pw_version, &pw_value),
        ("ssh/pin-key", &key_version, &key_value),
    ] {
        let r = wait_rotation_failed(&server, id).await;
        let error = r["LastError"].as_str().unwrap_or_default();
        assert!(
            error.contains("host key mismatch"),
            "{id}: LastError should say host key mismatch: {r:#}"
        );
        assert_eq!(r["Attempt"], 5, "{id}: five attempts: {r:#}");
        let (now_version, now_text, _) = get_stage(&c, id, "AWSCURRENT").await;
        assert_eq!(&now_version, version, "{id}: AWSCURRENT did not move");
        assert_eq!(&serde_json::from_str::<Value>(&now_text).unwrap(), value);
        // createSecret ran (it needs no connection), so AWSPENDING holds what it generated,
        // which must not leak either: a read that fails here would hide it from the check.
        let out = ok(c
            .get_secret_value()
            .secret_id(id)
            .version_stage("AWSPENDING")
            .send()
            .await);
        let pending: Value = serde_json::from_str(out.secret_string().unwrap()).unwrap();
        let generated = secrets_of(&pending);
        assert!(
            !generated.is_empty(),
            "{id}: no generated secret in AWSPENDING"
        );
        pending_secrets.extend(generated);
    }

    assert_eq!(
        user.shadow_hash(),
        hash_before,
        "the password hash is unchanged"
    );
    assert_eq!(
        std::fs::read_to_string(user.authorized_keys()).unwrap(),
        keys_before,
        "authorized_keys is unchanged"
    );
    if let Some(log) = sshd_log() {
        // The pin is checked before authentication: sshd never saw a login for the user.
        assert!(
            !log.contains(&format!(" {} ", user.name))
                && !log.contains(&format!("user {}", user.name)),
            "sshd saw a login attempt for {}:\n{log}",
            user.name
        );
    }
    ssh.expect_logins(&[
        (
            "the old password still works",
            Password(&user.name, &password),
            true,
        ),
        ("the old key still works", Key(&user.name, &private), true),
    ]);
    let mut secrets = vec![password.clone(), private.clone()];
    secrets.extend(pending_secrets);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_log_clean(&server, &secrets);
}

#[tokio::test]
async fn trust_on_first_use_records_the_servers_host_key() {
    if !ssh_ready() {
        return;
    }
    let ssh = SshClient::new();
    let password = format!("Tofu-{}", random_hex(16));
    let user = TestUser::with_password("tof", &password);
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;

    let mut tofu = json!({"host": HOST, "port": PORT, "username": user.name,
                          "password": password, "trust_on_first_use": true});
    let arn = create_plain(&c, "ssh/tofu", &tofu.to_string()).await;
    rotate(&server, "ssh/tofu", &arn, PASSWORD_FN, None).await;
    wait_rotation_succeeded(&server, "ssh/tofu").await;
    let now = current_json(&c, "ssh/tofu").await;
    assert_eq!(
        s(&now, "host_key"),
        ssh.host_key,
        "the key the server presented is recorded: {now:#}"
    );
    let new = s(&now, "password");
    tofu["password"] = new.clone().into();
    tofu["host_key"] = ssh.host_key.clone().into();
    assert_eq!(now, tofu, "the rest of the value is kept");
    ssh.expect_logins(&[
        ("the new password", Password(&user.name, &new), true),
        ("the old password", Password(&user.name, &password), false),
    ]);
    assert_log_clean(&server, &[&password, &new]);
}

#[tokio::test]
async fn without_a_host_key_or_trust_on_first_use_the_rotation_fails() {
    if !ssh_ready() {
        return;
    }
    let ssh = SshClient::new();
    let password = format!("Unpinned-{}", random_hex(16));
    let user = TestUser::with_password("unp", &password);
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    let hash_before = user.shadow_hash();
    let unpinned = json!({"host": HOST, "port": PORT, "username": user.name, "password": password});
    let arn = create_plain(&c, "ssh/unpinned", &unpinned.to_string()).await;
    let (version, _, _) = get_stage(&c, "ssh/unpinned", "AWSCURRENT").await;
    rotate(&server, "ssh/unpinned", &arn, PASSWORD_FN, None).await;
    let r = wait_rotation_failed(&server, "ssh/unpinned").await;
    let error = r["LastError"].as_str().unwrap_or_default();
    assert!(
        error.contains("host_key"),
        "LastError should mention host_key: {r:#}"
    );
    assert!(
        !error.contains(&password),
        "LastError shows the password: {error}"
    );
    assert_eq!(
        get_stage(&c, "ssh/unpinned", "AWSCURRENT").await.0,
        version,
        "AWSCURRENT did not move"
    );
    assert_eq!(current_json(&c, "ssh/unpinned").await, unpinned);
    assert_eq!(user.shadow_hash(), hash_before, "the password is unchanged");
    assert_login(
        ssh.password_login(&user.name, &password),
        "the password still works",
    );
    assert_log_clean(&server, &[&password]);
}

// ---------------------------------------------------------------------------------------------------------
// Crash recovery
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rotation_interrupted_after_set_secret_completes_after_restart() {
    if !ssh_ready() {
        return;
    }
    let ssh = SshClient::new();
    let password = format!("Crash-{}", random_hex(16));
    let user = TestUser::with_password("cr", &password);
    let (initial_private, initial_public) = ssh.keygen("ed25519", "initial-key");
    user.write_authorized_keys(&format!("{initial_public}\n"));

    let server =
        Server::start_with(&["--test-clock", "--test-pause-before-step", "testSecret"]).await;
    let c = server.client().await;
    let pw_value = password_value(&ssh, &user.name, &password);
    let pw_arn = create_plain(&c, "ssh/crash-pw", &pw_value.to_string()).await;
    let key_value = keypair_value(&ssh, &user.name, &initial_private, &initial_public);
    let key_arn = create_plain(&c, "ssh/crash-key", &key_value.to_string()).await;
    rotate(
        &server,
        "ssh/crash-pw",
        &pw_arn,
        PASSWORD_FN,
        Some(&token(5)),
    )
    .await;
    rotate(
        &server,
        "ssh/crash-key",
        &key_arn,
        KEYPAIR_FN,
        Some(&token(6)),
    )
    .await;
    wait_paused_before_test(&server, "ssh/crash-pw").await;
    wait_paused_before_test(&server, "ssh/crash-key").await;

    // setSecret changed the system; AWSCURRENT has not moved yet.
    let pending_pw: Value =
        serde_json::from_str(&get_version_string(&c, "ssh/crash-pw", &token(5)).await).unwrap();
    let pending_key: Value =
        serde_json::from_str(&get_version_string(&c, "ssh/crash-key", &token(6)).await).unwrap();
    let new_password = s(&pending_pw, "password");
    let new_private = s(&pending_key, "private_key");
    ssh.expect_logins(&[
        (
            "setSecret set the pending password",
            Password(&user.name, &new_password),
            true,
        ),
        (
            "the old password after setSecret",
            Password(&user.name, &password),
            false,
        ),
        (
            "setSecret added the pending key",
            Key(&user.name, &new_private),
            true,
        ),
    ]);
    assert_eq!(current_json(&c, "ssh/crash-pw").await, pw_value);
    assert_eq!(current_json(&c, "ssh/crash-key").await, key_value);

    let tmp = server.kill().await;
    let server = Server::start_in(tmp).await;
    wait_rotation_succeeded(&server, "ssh/crash-pw").await;
    wait_rotation_succeeded(&server, "ssh/crash-key").await;
    let c = server.client().await;

    assert_eq!(
        get_stage(&c, "ssh/crash-pw", "AWSCURRENT").await.0,
        token(5)
    );
    let now_pw = current_json(&c, "ssh/crash-pw").await;
    assert_eq!(now_pw, pending_pw);
    assert_eq!(
        get_stage(&c, "ssh/crash-key", "AWSCURRENT").await.0,
        token(6)
    );
    let now_key = current_json(&c, "ssh/crash-key").await;
    assert_eq!(now_key, pending_key);
    let (current_password, current_key) = (s(&now_pw, "password"), s(&now_key, "private_key"));
    ssh.expect_logins(&[
        (
            "AWSCURRENT's password",
            Password(&user.name, &current_password),
            true,
        ),
        ("the old password", Password(&user.name, &password), false),
        ("AWSCURRENT's key", Key(&user.name, &current_key), true),
        (
            "the old key after finishSecret",
            Key(&user.name, &initial_private),
            false,
        ),
    ]);
    assert_eq!(user.key_lines(), vec![s(&now_key, "public_key")]);
    assert_log_clean(
        &server,
        &[&password, &new_password, &initial_private, &new_private],
    );
}
