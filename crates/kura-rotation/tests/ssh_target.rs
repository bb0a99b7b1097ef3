//! The SSH helpers of the built-in rotation functions, against the OpenSSH server that
//! `scripts/test-sshd` starts on 127.0.0.1:22022. Runs as root: each test makes its own
//! throwaway Linux users (`useradd`, `chpasswd`) and deletes them at the end.
//!
//! Without that sshd (or without root) the tests print "SKIPPED: ..." and pass, except under
//! CI=true, where they fail.

#[path = "../src/functions/managed/ssh/client.rs"]
mod ssh;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::json;
use ssh::{KeyKind, SshTarget};
use zeroize::Zeroizing;

const HOST: &str = "127.0.0.1";
const PORT: u16 = 22022;
const LABEL: &str = "ssh 127.0.0.1:22022";
const PUNCTUATION: &str = r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##;

/// Whether the test can run: sshd up on 22022 and we're root. Otherwise SKIPPED, or a panic on CI.
fn environment_ready() -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], PORT).into();
    let problem = if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        Some(format!(
            "no sshd on {HOST}:{PORT}; run `bash scripts/test-sshd` (as root) first"
        ))
    } else if !is_root() {
        Some("these tests create Linux users and must run as root".to_string())
    } else {
        None
    };
    match problem {
        None => true,
        Some(p) if in_ci() => panic!("{p}"),
        Some(p) => {
            println!("SKIPPED: {p}");
            false
        }
    }
}

/// Any non-empty `CI` (CI systems set `true`, `1`, `yes`…): there every check must run.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A random string of `len` letters and digits (test passwords; not security sensitive).
fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    (0..len)
        .map(|i| {
            let r = RandomState::new().hash_one(i);
            ALPHABET[(r % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

fn random_password() -> Zeroizing<String> {
    Zeroizing::new(random_alnum(24))
}

/// A throwaway Linux user, deleted (with its home and any sudoers entry) when dropped.
struct TestUser {
    name: String,
    sudoers: Option<PathBuf>,
}

impl TestUser {
    /// A new user whose password is locked (it can't log in until one is set).
    fn new(tag: &str) -> TestUser {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "kt{tag}{}{n}{}",
            std::process::id() % 100_000,
            random_alnum(3).to_ascii_lowercase()
        );
        assert!(name.len() <= 32, "{name} is too long for a user name");
        run_locked(
            "useradd",
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

    /// A new user with a password.
    fn with_password(tag: &str, password: &str) -> TestUser {
        let user = TestUser::new(tag);
        user.set_password_locally(password);
        user
    }

    fn set_password_locally(&self, password: &str) {
        run_locked(
            "chpasswd",
            || Command::new("chpasswd"),
            Some(&format!("{}:{password}\n", self.name)),
        );
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

    fn uid(&self) -> u32 {
        std::fs::metadata(self.home()).unwrap().uid()
    }

    fn shadow_hash(&self) -> String {
        let shadow = std::fs::read_to_string("/etc/shadow").unwrap();
        shadow
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{}:", self.name)))
            .and_then(|rest| rest.split(':').next())
            .unwrap_or_default()
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

async fn host_key() -> String {
    ssh::fetch_host_key(HOST, PORT)
        .await
        .expect("fetch_host_key")
}

fn password_target(user: &str, password: &str, host_key: &str) -> SshTarget {
    SshTarget::from_json(&json!({
        "host": HOST, "port": PORT, "username": user, "password": password, "host_key": host_key,
    }))
    .unwrap()
}

fn key_target(user: &str, private_key: &str, host_key: &str) -> SshTarget {
    SshTarget::from_json(&json!({
        "host": HOST, "port": PORT, "username": user, "private_key": private_key,
        "host_key": host_key,
    }))
    .unwrap()
}

/// A valid host key line that isn't the server's.
fn wrong_host_key() -> String {
    ssh::generate_keypair(KeyKind::Ed25519, "not-the-server")
        .unwrap()
        .1
}

fn assert_auth_failed(result: Result<(), String>, user: &str, secrets: &[&str]) {
    let err = result.expect_err("the login should have been refused");
    assert_eq!(
        err,
        format!("{LABEL}: authentication failed for user {user}")
    );
    assert_no_secrets(&err, secrets);
}

fn assert_no_secrets(message: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !message.contains(s),
            "the message shows a password: {message}"
        );
    }
}

/// The running test sshd (started by scripts/test-sshd, from this checkout or another):
/// found in /proc by its `-f …/test-sshd/sshd_config`.
struct TestSshd {
    proc_dir: PathBuf,
    config_dir: PathBuf,
}

fn test_sshd() -> Result<TestSshd, String> {
    let procs = std::fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))?;
    for entry in procs.flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let mut words = cmdline.split_whitespace();
        while let Some(w) = words.next() {
            if w == "-f"
                && let Some(config) = words.next()
                && config.ends_with("test-sshd/sshd_config")
            {
                return Ok(TestSshd {
                    proc_dir: entry.path(),
                    config_dir: Path::new(config).parent().unwrap().to_path_buf(),
                });
            }
        }
    }
    Err("no running sshd was started by scripts/test-sshd".into())
}

/// Reads the log through sshd's own descriptor, so a log file deleted while sshd still
/// writes it is read too.
fn test_sshd_log() -> Result<String, String> {
    let sshd = test_sshd()?;
    let fds = std::fs::read_dir(sshd.proc_dir.join("fd")).map_err(|e| format!("fds: {e}"))?;
    for fd in fds.flatten() {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        if target.to_string_lossy().contains("sshd.log") {
            return std::fs::read_to_string(fd.path())
                .map_err(|e| format!("{}: {e}", target.display()));
        }
    }
    Err("the test sshd writes no log".into())
}

/// What the test sshd logged, or `None` with a visible SKIPPED note when that cannot be
/// read; in CI that fails the test, since a check reading the log would pass without looking.
fn sshd_log() -> Option<String> {
    match test_sshd_log() {
        Ok(log) => Some(log),
        Err(why) => {
            assert!(!in_ci(), "cannot read the test sshd's log: {why}");
            println!("SKIPPED (in part): cannot read the test sshd's log: {why}");
            None
        }
    }
}

#[test]
fn target_from_json_checks_fields_and_hides_secrets() {
    let t = SshTarget::from_json(&json!({
        "host": "db.example", "username": "alice", "password": "hunter2-secret",
        "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nsecretkeymaterial\n",
    }))
    .unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.username.as_str()),
        ("db.example", 22, "alice")
    );
    assert!(t.host_key.is_none());
    let debug = format!("{t:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("secretkeymaterial"),
        "{debug}"
    );
    assert!(debug.contains("<redacted>"), "{debug}");

    let port = SshTarget::from_json(
        &json!({"host": "h", "port": "2222", "username": "u", "password": "p"}),
    );
    assert_eq!(port.unwrap().port, 2222);

    let cases = [
        (json!({"username": "u", "password": "p"}), "\"host\""),
        (json!({"host": "h", "password": "p"}), "\"username\""),
        (json!({"host": "h", "username": "u"}), "\"password\""),
        (
            json!({"host": "h", "username": "u", "password": 5}),
            "\"password\"",
        ),
        (
            json!({"host": "h", "port": 70000, "username": "u", "password": "p"}),
            "\"port\"",
        ),
        (
            json!({"host": "h", "port": true, "username": "u", "password": "p"}),
            "\"port\"",
        ),
        (
            json!({"host": "h", "username": "u", "password": "p", "host_key": "nonsense"}),
            "\"host_key\"",
        ),
        (json!("just a string"), "JSON object"),
    ];
    for (value, field) in cases {
        let err = SshTarget::from_json(&value).expect_err(&value.to_string());
        assert!(err.contains(field), "{value}: {err}");
    }
}

#[test]
fn generated_keys_parse_back() {
    for (kind, algorithm) in [
        (KeyKind::Ed25519, "ssh-ed25519"),
        (KeyKind::Rsa2048, "ssh-rsa"),
    ] {
        let (private, public) = ssh::generate_keypair(kind, "kura-test").unwrap();
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        let parts: Vec<&str> = public.split(' ').collect();
        assert_eq!(
            (parts[0], parts.len(), parts[2]),
            (algorithm, 3, "kura-test")
        );
        let key = russh::keys::decode_secret_key(&private, None).unwrap();
        assert_eq!(key.public_key().to_openssh().unwrap(), public);
        if kind == KeyKind::Rsa2048 {
            let russh::keys::ssh_key::private::KeypairData::Rsa(rsa) = key.key_data() else {
                panic!("not RSA")
            };
            assert_eq!(rsa.key_size(), 2048);
        }
    }
}

#[tokio::test]
async fn bad_user_names_are_refused_before_connecting() {
    // The names are checked first: had it connected, the error would be a host key mismatch.
    let t = password_target("alice", "pw", &wrong_host_key());
    for user in [
        "bob;reboot",
        "Root",
        "a b",
        "-rf",
        "",
        "x$(id)",
        &"a".repeat(33),
    ] {
        let err = ssh::set_password(&t, user, "new-password")
            .await
            .unwrap_err();
        assert!(err.contains("not a valid user name"), "{user:?}: {err}");
        let err = ssh::add_authorized_key(&t, user, &wrong_host_key())
            .await
            .unwrap_err();
        assert!(err.contains("not a valid user name"), "{user:?}: {err}");
    }
}

#[tokio::test]
async fn fetch_host_key_reports_the_servers_key() {
    if !environment_ready() {
        return;
    }
    let line = host_key().await;
    assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
    assert_eq!(line.split(' ').count(), 2, "{line}");
    assert_eq!(host_key().await, line, "the same key every time");
    match test_sshd() {
        Ok(sshd) => {
            let path = sshd.config_dir.join("ssh_host_ed25519_key.pub");
            let file = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(file.starts_with(&format!("{line} ")), "{file} vs {line}");
        }
        Err(why) => {
            assert!(!in_ci(), "{why}");
            println!("SKIPPED (in part): the host key file: {why}");
        }
    }

    let err = ssh::fetch_host_key(HOST, 1).await.unwrap_err();
    assert_eq!(err, "ssh 127.0.0.1:1: connection refused");
}

#[tokio::test]
async fn password_login_checks_password_and_pin() {
    if !environment_ready() {
        return;
    }
    let password = random_password();
    let user = TestUser::with_password("pw", &password);
    let pin = host_key().await;
    ssh::check_login(&password_target(&user.name, &password, &pin))
        .await
        .expect("login with the right password");
    // The pin's comment doesn't matter.
    ssh::check_login(&password_target(
        &user.name,
        &password,
        &format!("{pin} some comment"),
    ))
    .await
    .expect("login with a commented pin");

    let wrong = format!("{}x", &*password);
    let result = ssh::check_login(&password_target(&user.name, &wrong, &pin)).await;
    assert_auth_failed(result, &user.name, &[&password, &wrong]);

    let unknown = "ktnosuchuser";
    let result = ssh::check_login(&password_target(unknown, &password, &pin)).await;
    assert_auth_failed(result, unknown, &[&password]);

    let mut unpinned = password_target(&user.name, &password, &pin);
    unpinned.host_key = None;
    let err = ssh::check_login(&unpinned).await.unwrap_err();
    assert!(
        err.starts_with(LABEL) && err.contains("no host key pinned"),
        "{err}"
    );

    let err = ssh::check_login(&SshTarget {
        port: 1,
        ..password_target(&user.name, &password, &pin)
    })
    .await
    .unwrap_err();
    assert_eq!(err, "ssh 127.0.0.1:1: connection refused");
}

#[tokio::test]
async fn wrong_host_key_stops_before_authentication() {
    if !environment_ready() {
        return;
    }
    let password = random_password();
    let user = TestUser::with_password("pin", &password);
    let hash_before = user.shadow_hash();
    let pin = host_key().await;
    let wrong_pin = wrong_host_key();
    let wrong_target = password_target(&user.name, &password, &wrong_pin);

    let err = ssh::check_login(&wrong_target).await.unwrap_err();
    let pinned_fp = russh::keys::PublicKey::from_openssh(&wrong_pin)
        .unwrap()
        .fingerprint(russh::keys::HashAlg::Sha256)
        .to_string();
    let server_fp = russh::keys::PublicKey::from_openssh(&pin)
        .unwrap()
        .fingerprint(russh::keys::HashAlg::Sha256)
        .to_string();
    assert_eq!(
        err,
        format!(
            "{LABEL}: host key mismatch: the secret pins {pinned_fp}, the server presented {server_fp}"
        )
    );

    let new_password = random_password();
    let err = ssh::set_password(&wrong_target, &user.name, &new_password)
        .await
        .unwrap_err();
    assert!(err.contains("host key mismatch"), "{err}");
    let (private, public) = ssh::generate_keypair(KeyKind::Ed25519, "k").unwrap();
    let err = ssh::add_authorized_key(&wrong_target, &user.name, &public)
        .await
        .unwrap_err();
    assert!(err.contains("host key mismatch"), "{err}");

    // Nothing happened: same password hash, no key file, and sshd never saw a login attempt.
    assert_eq!(user.shadow_hash(), hash_before);
    assert!(!user.authorized_keys().exists());
    if let Some(log) = sshd_log() {
        assert!(!log.contains(&user.name), "sshd saw {}:\n{log}", user.name);
    }
    let result = ssh::check_login(&password_target(&user.name, &new_password, &pin)).await;
    assert_auth_failed(result, &user.name, &[&new_password]);
    let result = ssh::check_login(&key_target(&user.name, &private, &pin)).await;
    assert_auth_failed(result, &user.name, &[]);
    ssh::check_login(&password_target(&user.name, &password, &pin))
        .await
        .expect("the old password still works");
}

#[tokio::test]
async fn user_changes_own_password_with_passwd() {
    if !environment_ready() {
        return;
    }
    let old = random_password();
    let user = TestUser::with_password("self", &old);
    let pin = host_key().await;
    let new = random_password();
    ssh::set_password(&password_target(&user.name, &old, &pin), &user.name, &new)
        .await
        .expect("passwd as the user");
    let result = ssh::check_login(&password_target(&user.name, &old, &pin)).await;
    assert_auth_failed(result, &user.name, &[&old, &new]);
    ssh::check_login(&password_target(&user.name, &new, &pin))
        .await
        .expect("the new password works");

    // Every printable ASCII punctuation character, through the PTY.
    let punct = format!("Aa1{PUNCTUATION}{}", random_alnum(8));
    ssh::set_password(&password_target(&user.name, &new, &pin), &user.name, &punct)
        .await
        .expect("passwd with punctuation");
    ssh::check_login(&password_target(&user.name, &punct, &pin))
        .await
        .expect("the punctuation password works");

    // A wrong current password (logged in by key, so the login itself works): passwd refuses,
    // and the error quotes passwd without either password.
    let (private, public) = ssh::generate_keypair(KeyKind::Ed25519, "self").unwrap();
    ssh::add_authorized_key(
        &password_target(&user.name, &punct, &pin),
        &user.name,
        &public,
    )
    .await
    .unwrap();
    let wrong_current = format!("{}-wrong", random_alnum(12));
    let mut by_key = key_target(&user.name, &private, &pin);
    by_key.password = Some(Zeroizing::new(wrong_current.clone()));
    let newer = random_password();
    let err = ssh::set_password(&by_key, &user.name, &newer)
        .await
        .unwrap_err();
    assert!(
        err.starts_with(&format!("{LABEL}: passwd failed for {}: ", user.name)),
        "{err}"
    );
    assert!(
        err.contains("Authentication token manipulation error"),
        "{err}"
    );
    assert_no_secrets(&err, &[&wrong_current, &newer, &punct]);
    ssh::check_login(&password_target(&user.name, &punct, &pin))
        .await
        .expect("the password is unchanged");

    // Logged in by key with no password at all: passwd wants the current one.
    let err = ssh::set_password(&key_target(&user.name, &private, &pin), &user.name, &newer)
        .await
        .unwrap_err();
    assert!(err.contains("the secret has none"), "{err}");
}

#[tokio::test]
async fn admin_sets_password_with_sudo_chpasswd() {
    if !environment_ready() {
        return;
    }
    let admin_password = random_password();
    let mut admin = TestUser::with_password("adm", &admin_password);
    admin.grant_sudo();
    let victim = TestUser::new("vic"); // locked: can't log in itself
    let pin = host_key().await;
    let admin_target = password_target(&admin.name, &admin_password, &pin);

    let new = random_password();
    let result = ssh::check_login(&password_target(&victim.name, &new, &pin)).await;
    assert_auth_failed(result, &victim.name, &[&new]);
    ssh::set_password(&admin_target, &victim.name, &new)
        .await
        .expect("chpasswd through sudo");
    ssh::check_login(&password_target(&victim.name, &new, &pin))
        .await
        .expect("the victim logs in with the new password");

    let punct = format!("{PUNCTUATION}Zz9{}", random_alnum(8));
    ssh::set_password(&admin_target, &victim.name, &punct)
        .await
        .expect("chpasswd with punctuation");
    ssh::check_login(&password_target(&victim.name, &punct, &pin))
        .await
        .expect("the punctuation password works");

    // An administrator without sudo rights: refused, and the message says why.
    let plain_password = random_password();
    let plain = TestUser::with_password("nos", &plain_password);
    let newer = random_password();
    let err = ssh::set_password(
        &password_target(&plain.name, &plain_password, &pin),
        &victim.name,
        &newer,
    )
    .await
    .unwrap_err();
    assert!(
        err.starts_with(&format!(
            "{LABEL}: chpasswd for {} (as {}) failed",
            victim.name, plain.name
        )),
        "{err}"
    );
    assert!(err.contains("sudo"), "{err}");
    assert_no_secrets(&err, &[&plain_password, &newer]);
    ssh::check_login(&password_target(&victim.name, &punct, &pin))
        .await
        .expect("the password is unchanged");

    // A user that doesn't exist.
    let err = ssh::set_password(&admin_target, "ktnosuchuser", &newer)
        .await
        .unwrap_err();
    assert!(err.contains("chpasswd for ktnosuchuser"), "{err}");
    assert_no_secrets(&err, &[&admin_password, &newer]);
}

fn key_lines(user: &TestUser, public: &str) -> usize {
    let blob = public.split(' ').nth(1).unwrap();
    std::fs::read_to_string(user.authorized_keys())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(blob))
        .count()
}

fn assert_key_files_owned_by(user: &TestUser) {
    let dir = std::fs::metadata(user.home().join(".ssh")).unwrap();
    let file = std::fs::metadata(user.authorized_keys()).unwrap();
    assert_eq!(dir.mode() & 0o777, 0o700);
    assert_eq!(file.mode() & 0o777, 0o600);
    assert_eq!((dir.uid(), file.uid()), (user.uid(), user.uid()));
}

#[tokio::test]
async fn authorized_keys_as_the_user() {
    if !environment_ready() {
        return;
    }
    let password = random_password();
    let user = TestUser::with_password("key", &password);
    let pin = host_key().await;
    let login = password_target(&user.name, &password, &pin);

    for kind in [KeyKind::Ed25519, KeyKind::Rsa2048] {
        let (private, public) = ssh::generate_keypair(kind, "kura-rotation").unwrap();
        let by_key = key_target(&user.name, &private, &pin);
        assert_auth_failed(ssh::check_login(&by_key).await, &user.name, &[]);

        ssh::add_authorized_key(&login, &user.name, &public)
            .await
            .unwrap();
        ssh::add_authorized_key(&login, &user.name, &public)
            .await
            .unwrap();
        assert_eq!(key_lines(&user, &public), 1, "{kind:?}: added once");
        assert_key_files_owned_by(&user);
        ssh::check_login(&by_key)
            .await
            .unwrap_or_else(|e| panic!("{kind:?} key login: {e}"));

        // Logged in by that very key, remove it (the comment doesn't matter).
        let other_comment = format!("{} another-comment", public.rsplit_once(' ').unwrap().0);
        ssh::remove_authorized_key(&by_key, &user.name, &other_comment)
            .await
            .unwrap();
        assert_eq!(key_lines(&user, &public), 0, "{kind:?}: removed");
        assert_auth_failed(ssh::check_login(&by_key).await, &user.name, &[]);
        ssh::remove_authorized_key(&login, &user.name, &public)
            .await
            .expect("removing an absent key is fine");
    }

    // Other lines survive a removal, options and comments included; a file without a final
    // newline gets one before the appended key.
    let (_, keep) = ssh::generate_keypair(KeyKind::Ed25519, "keep me").unwrap();
    let (_, gone) = ssh::generate_keypair(KeyKind::Ed25519, "gone").unwrap();
    let path = user.authorized_keys();
    let before = format!("# a comment\nfrom=\"10.0.0.0/8\" {gone}\n{keep}\n{gone} dup");
    std::fs::write(&path, &before).unwrap();
    let (_, added) = ssh::generate_keypair(KeyKind::Ed25519, "added").unwrap();
    ssh::add_authorized_key(&login, &user.name, &added)
        .await
        .unwrap();
    ssh::remove_authorized_key(&login, &user.name, &gone)
        .await
        .unwrap();
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(after, format!("# a comment\n{keep}\n{added}\n"));
    assert_key_files_owned_by(&user);
}

#[tokio::test]
async fn authorized_keys_through_an_admin() {
    if !environment_ready() {
        return;
    }
    let admin_password = random_password();
    let mut admin = TestUser::with_password("kad", &admin_password);
    admin.grant_sudo();
    let victim_password = random_password();
    let victim = TestUser::with_password("kvi", &victim_password);
    let pin = host_key().await;
    let admin_target = password_target(&admin.name, &admin_password, &pin);

    let (private, public) = ssh::generate_keypair(KeyKind::Rsa2048, "via-admin").unwrap();
    ssh::add_authorized_key(&admin_target, &victim.name, &public)
        .await
        .unwrap();
    ssh::add_authorized_key(&admin_target, &victim.name, &public)
        .await
        .unwrap();
    assert_eq!(key_lines(&victim, &public), 1);
    assert_key_files_owned_by(&victim);
    assert!(!admin.home().join(".ssh/authorized_keys").exists());
    let by_key = key_target(&victim.name, &private, &pin);
    ssh::check_login(&by_key)
        .await
        .expect("victim logs in by key");

    ssh::remove_authorized_key(&admin_target, &victim.name, &public)
        .await
        .unwrap();
    assert_eq!(key_lines(&victim, &public), 0);
    assert_auth_failed(ssh::check_login(&by_key).await, &victim.name, &[]);

    // Without sudo rights: refused with sudo's reason.
    let plain_password = random_password();
    let plain = TestUser::with_password("kno", &plain_password);
    let err = ssh::add_authorized_key(
        &password_target(&plain.name, &plain_password, &pin),
        &victim.name,
        &public,
    )
    .await
    .unwrap_err();
    assert!(
        err.starts_with(&format!(
            "{LABEL}: adding the key to {}'s authorized_keys (as {}) failed",
            victim.name, plain.name
        )),
        "{err}"
    );
    assert!(err.contains("sudo"), "{err}");
    assert_no_secrets(&err, &[&plain_password]);
}
