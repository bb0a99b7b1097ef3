//! The SSH side of the built-in rotation functions: log in to a server (by password or key,
//! always against a pinned host key), change a user's password, add or remove a key in a user's
//! `~/.ssh/authorized_keys`, and make new key pairs.
//!
//! Every error names the server ("ssh HOST:PORT: ...") and the cause, never a credential: the
//! remote output quoted in an error has every password involved scrubbed out of it. Secrets
//! travel only over the channel's stdin or PTY, never in a command line; user names are checked
//! against a strict pattern and passed as quoted arguments of fixed scripts.
//!
//! Self-contained (no `crate::` paths): the integration test `tests/ssh_target.rs` compiles it
//! as its own module.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use russh::keys::ssh_key::encoding::Mpint;
use russh::keys::ssh_key::private::{
    Ed25519Keypair, KeypairData, RsaKeypair, RsaPrivateKey as SshRsaPrivateKey,
};
use russh::keys::ssh_key::public::RsaPublicKey as SshRsaPublicKey;
use russh::keys::ssh_key::{HashAlg, LineEnding};
use russh::keys::{
    Algorithm, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate,
};
use russh::{ChannelMsg, Disconnect, MethodKind, Pty, client};
use serde_json::Value;
use zeroize::Zeroizing;

/// Time allowed to open the TCP connection and finish the key exchange.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for authentication, and for each remote command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a command's stdout or stderr is kept.
const OUTPUT_LIMIT: usize = 64 * 1024;
/// Where and how long a scrap of remote output may be in an error message.
const QUOTE_LIMIT: usize = 300;

/// Where and as whom to log in, from a secret in kura's server-secret layout
/// `{"host", "port", "username", "password" | "private_key" (+ "public_key"), "host_key"}`.
#[derive(Clone)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Option<Zeroizing<String>>,
    /// OpenSSH private key text (PKCS#8 and PKCS#1 PEM are read too).
    pub private_key: Option<Zeroizing<String>>,
    /// The server's host key as an OpenSSH public key line: "ssh-ed25519 AAAA... [comment]".
    pub host_key: Option<String>,
}

impl fmt::Debug for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |present: bool| if present { Some("<redacted>") } else { None };
        f.debug_struct("SshTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &redacted(self.password.is_some()))
            .field("private_key", &redacted(self.private_key.is_some()))
            .field("host_key", &self.host_key)
            .finish()
    }
}

impl SshTarget {
    /// Reads a target from a server secret. `port` defaults to 22; one of `password` and
    /// `private_key` is required; `host_key` is optional here (every login requires it).
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let obj = v
            .as_object()
            .ok_or("the secret is not a JSON object with \"host\", \"username\", ...")?;
        let string = |name: &str| -> Result<Option<&str>, String> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(format!("\"{name}\" must be a string")),
            }
        };
        let host = string("host")?
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or("the secret has no \"host\"")?;
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("\"host\" must be a host name or an IP address".into());
        }
        let port = match obj.get("port") {
            None | Some(Value::Null) => 22,
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or("\"port\" must be a number from 1 to 65535")?,
            Some(Value::String(s)) => s
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or("\"port\" must be a number from 1 to 65535")?,
            Some(_) => return Err("\"port\" must be a number from 1 to 65535".into()),
        };
        let username = string("username")?
            .filter(|u| !u.is_empty())
            .ok_or("the secret has no \"username\"")?;
        if username
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err("\"username\" must not contain spaces or control characters".into());
        }
        let password = string("password")?.map(|p| Zeroizing::new(p.to_owned()));
        let private_key = string("private_key")?
            .filter(|k| !k.trim().is_empty())
            .map(|k| Zeroizing::new(k.to_owned()));
        if password.is_none() && private_key.is_none() {
            return Err("the secret has neither \"password\" nor \"private_key\"".into());
        }
        let host_key = match string("host_key")?.map(str::trim) {
            None | Some("") => None,
            Some(line) => {
                parse_public_key(line).map_err(|e| format!("\"host_key\": {e}"))?;
                Some(line.to_owned())
            }
        };
        Ok(SshTarget {
            host: host.to_owned(),
            port,
            username: username.to_owned(),
            password,
            private_key,
            host_key,
        })
    }

    fn label(&self) -> String {
        label(&self.host, self.port)
    }
}

/// The kinds of key pair [`generate_keypair`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    Ed25519,
}

/// A new key pair: (OpenSSH private key text, OpenSSH public key line "TYPE BASE64 COMMENT").
/// The randomness and the RSA key generation are aws-lc-rs's.
pub fn generate_keypair(
    kind: KeyKind,
    comment: &str,
) -> Result<(Zeroizing<String>, String), String> {
    if comment.chars().any(char::is_control) {
        return Err("a key comment must not contain control characters".into());
    }
    let data = match kind {
        KeyKind::Ed25519 => {
            let mut seed = Zeroizing::new([0u8; 32]);
            aws_lc_rs::rand::fill(&mut seed[..])
                .map_err(|_| "the system random generator failed".to_string())?;
            KeypairData::Ed25519(Ed25519Keypair::from_seed(&seed))
        }
        KeyKind::Rsa2048 => KeypairData::Rsa(generate_rsa_2048()?),
    };
    let key = PrivateKey::new(data, comment).map_err(|e| format!("building the key: {e}"))?;
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| format!("encoding the private key: {e}"))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| format!("encoding the public key: {e}"))?;
    Ok((private, public))
}

/// An RSA-2048 key from aws-lc-rs, carried over into ssh-key through its PKCS#8 encoding.
fn generate_rsa_2048() -> Result<RsaKeypair, String> {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| "generating an RSA key failed".to_string())?;
    let der: Pkcs8V1Der<'static> = pair
        .as_der()
        .map_err(|_| "encoding the RSA key failed".to_string())?;
    let c = rsa_components_from_pkcs8(der.as_ref())
        .ok_or("the generated RSA key has an unexpected encoding")?;
    let public = SshRsaPublicKey::new(
        Mpint::from_positive_bytes(c.e),
        Mpint::from_positive_bytes(c.n),
    )
    .map_err(|e| format!("the generated RSA key: {e}"))?;
    let private = SshRsaPrivateKey::new(
        Mpint::from_positive_bytes(c.d),
        Mpint::from_positive_bytes(c.iqmp),
        Mpint::from_positive_bytes(c.p),
        Mpint::from_positive_bytes(c.q),
    )
    .map_err(|e| format!("the generated RSA key: {e}"))?;
    RsaKeypair::new(public, private).map_err(|e| format!("the generated RSA key: {e}"))
}

/// The integers of an RSA key, borrowed from its DER encoding (big-endian, maybe 0-padded).
struct RsaComponents<'a> {
    n: &'a [u8],
    e: &'a [u8],
    d: &'a [u8],
    p: &'a [u8],
    q: &'a [u8],
    iqmp: &'a [u8],
}

/// Reads PKCS#8 `PrivateKeyInfo { version, algorithm, OCTET STRING { RSAPrivateKey } }`, where
/// `RSAPrivateKey` (PKCS#1) is `SEQUENCE { version, n, e, d, p, q, dp, dq, qinv }`.
fn rsa_components_from_pkcs8(der: &[u8]) -> Option<RsaComponents<'_>> {
    const INTEGER: u8 = 0x02;
    const OCTET_STRING: u8 = 0x04;
    const SEQUENCE: u8 = 0x30;
    let (info, _) = der_take(der, SEQUENCE)?;
    let (_version, rest) = der_take(info, INTEGER)?;
    let (_algorithm, rest) = der_take(rest, SEQUENCE)?;
    let (octets, _) = der_take(rest, OCTET_STRING)?;
    let (key, _) = der_take(octets, SEQUENCE)?;
    let mut fields = [&[][..]; 9];
    let mut rest = key;
    for field in &mut fields {
        let (value, next) = der_take(rest, INTEGER)?;
        *field = value;
        rest = next;
    }
    let [_version, n, e, d, p, q, _dp, _dq, iqmp] = fields;
    Some(RsaComponents {
        n,
        e,
        d,
        p,
        q,
        iqmp,
    })
}

/// One DER element of the given tag: (its contents, what follows it).
fn der_take(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        (
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
            rest,
        )
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

/// The server's host key as an OpenSSH public key line (for trust on first use): connects,
/// records the key the server proves it holds, and disconnects without authenticating.
pub async fn fetch_host_key(host: &str, port: u16) -> Result<String, String> {
    let label = label(host, port);
    let seen = Arc::new(Mutex::new(None));
    let handler = Client {
        check: HostKeyCheck::Record(seen.clone()),
    };
    let conn = Conn::open(host, port, label.clone(), None, handler).await?;
    conn.close().await;
    let key = seen
        .lock()
        .map_err(|_| format!("{label}: internal error (a lock was poisoned)"))?
        .take()
        .ok_or_else(|| format!("{label}: the server presented no host key"))?;
    key.to_openssh()
        .map_err(|e| format!("{label}: encoding the host key: {e}"))
}

/// Logs in (key first if there is one, then password) against the pinned host key and runs
/// `true`. Ok if that worked.
pub async fn check_login(t: &SshTarget) -> Result<(), String> {
    let conn = Conn::login(t).await?;
    let result = conn.run("true", &[]).await;
    conn.close().await;
    let out = result?;
    if out.status == Some(0) {
        Ok(())
    } else {
        Err(format!(
            "{}: logged in as {}, but running `true` failed ({}){}",
            conn.label,
            t.username,
            out.describe_status(),
            quote_tail(&out.stderr, &secrets_of(t, None)),
        ))
    }
}

/// Sets `user`'s login password.
///
/// If `login.username == user`, as the user itself: `passwd` in a PTY, answering its prompts
/// (the current password from `login.password`, then the new one twice) and requiring exit
/// status 0. Otherwise `login` is an administrator: `chpasswd` reads "user:new" on stdin, run
/// directly when the login is root (uid 0), else through `sudo -n`.
pub async fn set_password(login: &SshTarget, user: &str, new_password: &str) -> Result<(), String> {
    validate_user(user)?;
    if new_password.is_empty() {
        return Err("the new password is empty".into());
    }
    if new_password.chars().any(char::is_control) {
        return Err("the new password contains a control character".into());
    }
    let conn = Conn::login(login).await?;
    let result = if login.username == user {
        passwd_in_pty(&conn, login, new_password).await
    } else {
        chpasswd(&conn, login, user, new_password).await
    };
    conn.close().await;
    result
}

/// `passwd` as the logged-in user, in a PTY so it asks for the passwords at all. PAM reads each
/// answer only after showing its prompt (and flushes the terminal's input first), so the
/// answers go one at a time, each in reply to its prompt.
async fn passwd_in_pty(conn: &Conn, login: &SshTarget, new: &str) -> Result<(), String> {
    let label = &conn.label;
    let user = &login.username;
    let secrets = secrets_of(login, Some(new));
    let fail = |why: String| format!("{label}: passwd failed for {user}: {why}");
    let work = async {
        let mut ch = conn
            .handle
            .channel_open_session()
            .await
            .map_err(|e| fail(e.to_string()))?;
        // No echo, so not even a misbehaving program can show a password back to us.
        ch.request_pty(false, "dumb", 80, 24, 0, 0, &[(Pty::ECHO, 0)])
            .await
            .map_err(|e| fail(e.to_string()))?;
        ch.exec(true, "env LC_ALL=C LANG=C passwd")
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut transcript = String::new();
        let mut since_answer = String::new();
        let (mut sent_current, mut sent_new, mut sent_retype) = (false, false, false);
        let mut status = None;
        let mut refused = false;
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                    let text = String::from_utf8_lossy(&data);
                    if transcript.len() < OUTPUT_LIMIT {
                        transcript.push_str(&text);
                    }
                    since_answer.push_str(&text);
                    let Some(prompt) = password_prompt(&since_answer) else {
                        continue;
                    };
                    let answer: &str = match prompt {
                        Prompt::Current if !sent_current => {
                            sent_current = true;
                            match &login.password {
                                Some(p) => p.as_str(),
                                None => {
                                    let _ = ch.close().await;
                                    return Err(fail(
                                        "it asks for the current password, and the secret has none"
                                            .into(),
                                    ));
                                }
                            }
                        }
                        Prompt::New if !sent_new => {
                            sent_new = true;
                            new
                        }
                        Prompt::Retype if sent_new && !sent_retype => {
                            sent_retype = true;
                            new
                        }
                        _ => {
                            // Asked again: the previous answer was refused (a wrong current
                            // password, or a new one that fails the quality checks).
                            let _ = ch.close().await;
                            let why = last_lines(&transcript, &secrets, true);
                            return Err(fail(if why.is_empty() {
                                "it asked again for a password it had been given".into()
                            } else {
                                why
                            }));
                        }
                    };
                    since_answer.clear();
                    let line = Zeroizing::new(format!("{answer}\n"));
                    ch.data(line.as_bytes())
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Failure => refused = true,
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        if refused {
            return Err(fail("the server refused to run it".into()));
        }
        match status {
            Some(0) if sent_new && sent_retype => Ok(()),
            Some(0) => Err(fail(format!(
                "it exited without asking for the new password: {}",
                last_lines(&transcript, &secrets, false)
            ))),
            other => {
                let why = last_lines(&transcript, &secrets, false);
                let status = match other {
                    Some(code) => format!("exit status {code}"),
                    None => "no exit status".into(),
                };
                Err(fail(if why.is_empty() {
                    status
                } else {
                    format!("{why} ({status})")
                }))
            }
        }
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, work).await {
        Ok(result) => result,
        Err(_) => Err(fail(format!(
            "no answer within {} s",
            COMMAND_TIMEOUT.as_secs()
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prompt {
    Current,
    New,
    Retype,
}

/// Whether `text` ends with a password prompt ("Current password: ", "New password: ",
/// "Retype new password: ", "(current) UNIX password: ", ...), and which.
fn password_prompt(text: &str) -> Option<Prompt> {
    let last = text.rsplit(['\n', '\r']).find(|l| !l.trim().is_empty())?;
    let trimmed = last.trim();
    if !trimmed.ends_with(':') || !text.trim_end_matches([' ', '\t']).ends_with(':') {
        return None;
    }
    let lower = trimmed.to_ascii_lowercase();
    if !lower.contains("password") {
        return None;
    }
    if lower.contains("retype")
        || lower.contains("again")
        || lower.contains("re-enter")
        || lower.contains("repeat")
        || lower.contains("confirm")
    {
        Some(Prompt::Retype)
    } else if lower.contains("current") || lower.contains("old") {
        Some(Prompt::Current)
    } else {
        Some(Prompt::New)
    }
}

/// `chpasswd` as root, or through `sudo -n`, reading "user:password" on stdin.
async fn chpasswd(conn: &Conn, login: &SshTarget, user: &str, new: &str) -> Result<(), String> {
    const SCRIPT: &str =
        r#"if [ "$(id -u)" = 0 ]; then exec chpasswd; else exec sudo -n chpasswd; fi"#;
    let command = format!("sh -c {}", sh_quote(SCRIPT));
    let input = Zeroizing::new(format!("{user}:{new}\n"));
    let out = conn.run(&command, input.as_bytes()).await?;
    if out.status == Some(0) {
        return Ok(());
    }
    let secrets = secrets_of(login, Some(new));
    Err(format!(
        "{}: chpasswd for {user} (as {}) failed ({}){}",
        conn.label,
        login.username,
        out.describe_status(),
        quote_tail(
            &[out.stderr.as_slice(), out.stdout.as_slice()].concat(),
            &secrets
        ),
    ))
}

/// Adds `public_key` to `user`'s `~/.ssh/authorized_keys` unless a line already has that key
/// (type and base64; comments and options aside). Creates `~/.ssh` (0700) and the file (0600)
/// as needed. The edit runs as `user`: directly when that is the login, else through `su` (a
/// root login) or `sudo -n -u` (another administrator), so ownership comes out right and no
/// link in the user's home can redirect a privileged write.
pub async fn add_authorized_key(
    login: &SshTarget,
    user: &str,
    public_key: &str,
) -> Result<(), String> {
    edit_authorized_keys(login, user, public_key, KeyEdit::Add).await
}

/// Removes every line of `user`'s `~/.ssh/authorized_keys` whose key (type and base64) is
/// `public_key`'s; comments and options don't matter. Nothing to remove is success.
pub async fn remove_authorized_key(
    login: &SshTarget,
    user: &str,
    public_key: &str,
) -> Result<(), String> {
    edit_authorized_keys(login, user, public_key, KeyEdit::Remove).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyEdit {
    Add,
    Remove,
}

/// Runs as the target user; reads four lines on stdin: the edit, the key type, the key's
/// base64, the whole authorized_keys line. Written so any login shell parses it (one line, no
/// backslashes, no `!`).
const AUTHORIZED_KEYS_SCRIPT: &str = concat!(
    "set -eu; umask 077; ",
    "IFS= read -r mode; IFS= read -r t; IFS= read -r b; IFS= read -r line; ",
    "me=$(id -un); ",
    "h=$(getent passwd \"$me\" 2>/dev/null | cut -d: -f6) || h=; ",
    "if [ -z \"$h\" ]; then h=$HOME; fi; ",
    "d=$h/.ssh; f=$d/authorized_keys; ",
    "has() { [ -f \"$f\" ] && awk -v t=\"$t\" -v b=\"$b\" ",
    "'{ for (i = 1; i < NF; i++) if ($i == t && $(i + 1) == b) found = 1 } END { exit (found ? 0 : 1) }' \"$f\"; }; ",
    "case $mode in ",
    "add) ",
    "if has; then echo present; exit 0; fi; ",
    "if [ -d \"$d\" ]; then :; else mkdir -m 700 \"$d\"; fi; ",
    "if [ -s \"$f\" ] && [ -n \"$(tail -c 1 \"$f\")\" ]; then echo >>\"$f\"; fi; ",
    "printf '%s\\n' \"$line\" >>\"$f\"; chmod 600 \"$f\"; echo added;; ",
    "remove) ",
    "if has; then :; else echo absent; exit 0; fi; ",
    "tmp=$(mktemp \"$d/.authorized_keys.XXXXXX\"); ",
    "awk -v t=\"$t\" -v b=\"$b\" ",
    "'{ for (i = 1; i < NF; i++) if ($i == t && $(i + 1) == b) next; print }' \"$f\" >\"$tmp\"; ",
    "if [ -L \"$f\" ]; then cat \"$tmp\" >\"$f\"; rm -f \"$tmp\"; else chmod 600 \"$tmp\"; mv -f \"$tmp\" \"$f\"; fi; ",
    "echo removed;; ",
    "*) echo \"unknown edit $mode\" >&2; exit 2;; ",
    "esac",
);

/// Runs its second argument (a script) as the user named by its first: directly if that is who
/// we are, through `su` as root, else through `sudo -n -u`.
const AS_USER_SCRIPT: &str = concat!(
    "u=$1; w=$2; ",
    "if [ \"$(id -un)\" = \"$u\" ]; then exec sh -c \"$w\"; ",
    "elif [ \"$(id -u)\" = 0 ]; then exec su -s /bin/sh -c \"$w\" \"$u\"; ",
    "else exec sudo -n -u \"$u\" sh -c \"$w\"; fi",
);

async fn edit_authorized_keys(
    login: &SshTarget,
    user: &str,
    public_key: &str,
    edit: KeyEdit,
) -> Result<(), String> {
    validate_user(user)?;
    let key = parse_public_key(public_key.trim()).map_err(|e| format!("the public key: {e}"))?;
    let line = key
        .to_openssh()
        .map_err(|e| format!("encoding the public key: {e}"))?;
    if line.chars().any(char::is_control) {
        return Err("the public key's comment must not contain control characters".into());
    }
    let mut parts = line.split(' ');
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err("the public key did not encode as \"TYPE BASE64 [COMMENT]\"".into());
    };
    let mode = match edit {
        KeyEdit::Add => "add",
        KeyEdit::Remove => "remove",
    };
    let input = format!("{mode}\n{kind}\n{blob}\n{line}\n");
    let command = format!(
        "sh -c {} kura-ssh {} {}",
        sh_quote(AS_USER_SCRIPT),
        sh_quote(user),
        sh_quote(AUTHORIZED_KEYS_SCRIPT)
    );
    let conn = Conn::login(login).await?;
    let result = conn.run(&command, input.as_bytes()).await;
    conn.close().await;
    let out = result?;
    if out.status == Some(0) {
        return Ok(());
    }
    let action = match edit {
        KeyEdit::Add => "adding the key to",
        KeyEdit::Remove => "removing the key from",
    };
    Err(format!(
        "{}: {action} {user}'s authorized_keys (as {}) failed ({}){}",
        conn.label,
        login.username,
        out.describe_status(),
        quote_tail(&out.stderr, &secrets_of(login, None)),
    ))
}

/// "ssh HOST:PORT", the prefix of every error about that server.
fn label(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("ssh [{host}]:{port}")
    } else {
        format!("ssh {host}:{port}")
    }
}

/// Login names this module puts into remote commands: `^[a-z_][a-z0-9_-]{0,31}$`.
fn validate_user(user: &str) -> Result<(), String> {
    let mut chars = user.chars();
    let ok = matches!(chars.next(), Some('a'..='z' | '_'))
        && user.len() <= 32
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a valid user name (lower-case letters, digits, '_' and '-', starting with a letter or '_', at most 32)",
            user.chars().take(40).collect::<String>()
        ))
    }
}

fn parse_public_key(line: &str) -> Result<PublicKey, String> {
    if line.chars().any(char::is_control) {
        return Err("not a single line".into());
    }
    PublicKey::from_openssh(line)
        .map_err(|_| "not an OpenSSH public key line (\"ssh-ed25519 AAAA... [comment]\")".into())
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Single-quotes `s` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The passwords that must never show in an error about `t`.
fn secrets_of<'a>(t: &'a SshTarget, extra: Option<&'a str>) -> Vec<&'a str> {
    t.password
        .as_deref()
        .map(String::as_str)
        .into_iter()
        .chain(extra)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Replaces every secret in `text` by "[redacted]" and drops control characters.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut sorted: Vec<&str> = secrets.to_vec();
    // Longest first, so a password that contains another is removed whole.
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for s in sorted {
        out = out.replace(s, "[redacted]");
    }
    out.chars().filter(|c| !c.is_control()).collect()
}

/// ": <the last non-empty line of output, scrubbed>", or "" if there is none.
fn quote_tail(output: &[u8], secrets: &[&str]) -> String {
    let text = String::from_utf8_lossy(output);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let line = shorten(scrub(line.trim(), secrets));
    if line.is_empty() {
        String::new()
    } else {
        format!(": {line}")
    }
}

/// The last non-empty lines of a PTY transcript that aren't prompts, scrubbed and joined with
/// "; ". `before_prompt`: only what precedes the final prompt (why it asked again).
fn last_lines(transcript: &str, secrets: &[&str], before_prompt: bool) -> String {
    let lines: Vec<&str> = transcript
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut picked: Vec<&str> = Vec::new();
    for l in lines.iter().rev() {
        let is_prompt = password_prompt(l).is_some();
        if is_prompt {
            if picked.is_empty() && before_prompt {
                continue;
            }
            break;
        }
        picked.push(l);
        if picked.len() == 3 {
            break;
        }
    }
    picked.reverse();
    shorten(scrub(&picked.join("; "), secrets))
}

fn shorten(mut s: String) -> String {
    if s.len() > QUOTE_LIMIT {
        let mut cut = QUOTE_LIMIT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// What a remote command did.
#[derive(Default)]
struct Output {
    status: Option<u32>,
    signal: Option<String>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Output {
    fn describe_status(&self) -> String {
        match (&self.status, &self.signal) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => "no exit status".into(),
        }
    }
}

/// How `check_server_key` treats the server's host key.
enum HostKeyCheck {
    /// Accept any key and keep it (for `fetch_host_key`, which never authenticates).
    Record(Arc<Mutex<Option<PublicKey>>>),
    /// Accept only this key (its type and data; the comment doesn't matter).
    Pinned(PublicKey),
}

struct Client {
    check: HostKeyCheck,
}

#[derive(Debug)]
enum ClientError {
    Ssh(russh::Error),
    HostKeyMismatch { presented: PublicKey },
}

impl From<russh::Error> for ClientError {
    fn from(e: russh::Error) -> Self {
        ClientError::Ssh(e)
    }
}

impl client::Handler for Client {
    type Error = ClientError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let presented = server_key.public_key();
        match &self.check {
            HostKeyCheck::Record(seen) => {
                if let Ok(mut seen) = seen.lock() {
                    *seen = Some(presented);
                }
                Ok(true)
            }
            HostKeyCheck::Pinned(pinned) if pinned.key_data() == presented.key_data() => Ok(true),
            HostKeyCheck::Pinned(_) => Err(ClientError::HostKeyMismatch { presented }),
        }
    }
}

/// The host key algorithms to offer when `pinned` is the expected key: only its own, so a
/// server with several host keys proves the one that was pinned.
fn host_key_algorithms(pinned: &PublicKey) -> Vec<Algorithm> {
    match pinned.algorithm() {
        Algorithm::Rsa { .. } => vec![
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
            Algorithm::Rsa { hash: None },
        ],
        other => vec![other],
    }
}

/// An open SSH connection.
struct Conn {
    handle: client::Handle<Client>,
    label: String,
}

impl Conn {
    async fn open(
        host: &str,
        port: u16,
        label: String,
        pinned: Option<&PublicKey>,
        handler: Client,
    ) -> Result<Conn, String> {
        let mut config = client::Config {
            inactivity_timeout: Some(COMMAND_TIMEOUT * 2),
            ..Default::default()
        };
        if let Some(pinned) = pinned {
            config.preferred.key = Cow::Owned(host_key_algorithms(pinned));
        }
        let connect = client::connect(Arc::new(config), (host, port), handler);
        let handle = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Err(_) => {
                return Err(format!(
                    "{label}: no connection within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ));
            }
            Ok(Ok(handle)) => handle,
            Ok(Err(ClientError::HostKeyMismatch { presented })) => {
                let pinned = pinned.map(fingerprint).unwrap_or_default();
                return Err(format!(
                    "{label}: host key mismatch: the secret pins {pinned}, the server presented {}",
                    fingerprint(&presented)
                ));
            }
            Ok(Err(ClientError::Ssh(e))) => return Err(connect_error(&label, pinned, e)),
        };
        Ok(Conn { handle, label })
    }

    /// Connects with the pinned host key, then authenticates.
    async fn login(t: &SshTarget) -> Result<Conn, String> {
        let label = t.label();
        let line = t.host_key.as_deref().ok_or_else(|| {
            format!("{label}: no host key pinned (the secret needs \"host_key\")")
        })?;
        let pinned =
            parse_public_key(line.trim()).map_err(|e| format!("{label}: \"host_key\": {e}"))?;
        let handler = Client {
            check: HostKeyCheck::Pinned(pinned.clone()),
        };
        let mut conn = Conn::open(&t.host, t.port, label, Some(&pinned), handler).await?;
        let auth = tokio::time::timeout(COMMAND_TIMEOUT, conn.authenticate(t)).await;
        let result = match auth {
            Ok(result) => result,
            Err(_) => Err(format!(
                "{}: authentication as {} took more than {} s",
                conn.label,
                t.username,
                COMMAND_TIMEOUT.as_secs()
            )),
        };
        match result {
            Ok(()) => Ok(conn),
            Err(e) => {
                conn.close().await;
                Err(e)
            }
        }
    }

    async fn authenticate(&mut self, t: &SshTarget) -> Result<(), String> {
        let label = self.label.clone();
        let ssh_err = |e: russh::Error| format!("{label}: authentication as {}: {e}", t.username);
        let mut remaining: Option<Vec<MethodKind>> = None;
        if let Some(text) = &t.private_key {
            let key = russh::keys::decode_secret_key(text, None).map_err(|e| match e {
                russh::keys::Error::KeyIsEncrypted => {
                    format!("{label}: the private key is encrypted with a passphrase")
                }
                _ => format!(
                    "{label}: the private key can't be read (is it an OpenSSH private key?)"
                ),
            })?;
            let hash = if key.algorithm().is_rsa() {
                match self.handle.best_supported_rsa_hash().await {
                    Ok(Some(hash)) => hash,
                    // The server didn't list its signature algorithms: SHA-256 is the safe bet.
                    _ => Some(HashAlg::Sha256),
                }
            } else {
                None
            };
            let result = self
                .handle
                .authenticate_publickey(
                    &t.username,
                    PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                )
                .await
                .map_err(ssh_err)?;
            match result {
                russh::client::AuthResult::Success => return Ok(()),
                russh::client::AuthResult::Failure {
                    remaining_methods, ..
                } => remaining = Some(remaining_methods.to_vec()),
            }
        }
        if let Some(password) = &t.password {
            let allows = |remaining: &Option<Vec<MethodKind>>, m: MethodKind| {
                remaining.as_ref().is_none_or(|r| r.contains(&m))
            };
            if allows(&remaining, MethodKind::Password) {
                let result = self
                    .handle
                    .authenticate_password(&t.username, password.as_str())
                    .await
                    .map_err(ssh_err)?;
                match result {
                    russh::client::AuthResult::Success => return Ok(()),
                    russh::client::AuthResult::Failure {
                        remaining_methods, ..
                    } => remaining = Some(remaining_methods.to_vec()),
                }
            }
            // Servers that take passwords only through PAM's keyboard-interactive.
            if allows(&remaining, MethodKind::KeyboardInteractive)
                && self
                    .keyboard_interactive(t, password)
                    .await
                    .map_err(ssh_err)?
            {
                return Ok(());
            }
        }
        Err(format!(
            "{label}: authentication failed for user {}",
            t.username
        ))
    }

    /// Answers keyboard-interactive prompts: hidden ones with the password, others with "".
    async fn keyboard_interactive(
        &mut self,
        t: &SshTarget,
        password: &str,
    ) -> Result<bool, russh::Error> {
        use russh::client::KeyboardInteractiveAuthResponse as R;
        let mut response = self
            .handle
            .authenticate_keyboard_interactive_start(&t.username, None)
            .await?;
        let mut answered_hidden = false;
        for _ in 0..4 {
            match response {
                R::Success => return Ok(true),
                R::Failure { .. } => return Ok(false),
                R::InfoRequest { prompts, .. } => {
                    let hidden = prompts.iter().filter(|p| !p.echo).count();
                    if hidden > 0 && answered_hidden || hidden > 1 {
                        // Asked for the password again (it was wrong) or for more than one
                        // secret (e.g. a one-time code): not something we can answer.
                        return Ok(false);
                    }
                    answered_hidden |= hidden > 0;
                    let answers = prompts
                        .iter()
                        .map(|p| {
                            if p.echo {
                                String::new()
                            } else {
                                password.to_owned()
                            }
                        })
                        .collect();
                    response = self
                        .handle
                        .authenticate_keyboard_interactive_respond(answers)
                        .await?;
                }
            }
        }
        Ok(false)
    }

    /// Runs `command`, feeding it `stdin` then end-of-file, and collects what it does.
    async fn run(&self, command: &str, stdin: &[u8]) -> Result<Output, String> {
        let label = &self.label;
        let work = async {
            let mut ch = self.handle.channel_open_session().await?;
            ch.exec(true, command).await?;
            if !stdin.is_empty() {
                ch.data(stdin).await?;
            }
            ch.eof().await?;
            let mut out = Output::default();
            let mut refused = false;
            while let Some(msg) = ch.wait().await {
                match msg {
                    ChannelMsg::Data { data } => append_limited(&mut out.stdout, &data),
                    ChannelMsg::ExtendedData { data, .. } => append_limited(&mut out.stderr, &data),
                    ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        out.signal = Some(format!("{signal_name:?}"));
                    }
                    ChannelMsg::Failure => refused = true,
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            Ok::<_, russh::Error>((out, refused))
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, work).await {
            Err(_) => Err(format!(
                "{label}: a command took more than {} s",
                COMMAND_TIMEOUT.as_secs()
            )),
            Ok(Err(e)) => Err(format!("{label}: running a command: {e}")),
            Ok(Ok((_, true))) => Err(format!("{label}: the server refused to run a command")),
            Ok(Ok((out, false))) => Ok(out),
        }
    }

    async fn close(&self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

fn append_limited(buf: &mut Vec<u8>, data: &[u8]) {
    let room = OUTPUT_LIMIT.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..data.len().min(room)]);
}

fn connect_error(label: &str, pinned: Option<&PublicKey>, e: russh::Error) -> String {
    use std::io::ErrorKind;
    match e {
        russh::Error::IO(io) => match io.kind() {
            ErrorKind::ConnectionRefused => format!("{label}: connection refused"),
            ErrorKind::TimedOut => format!("{label}: connection timed out"),
            ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof => {
                format!("{label}: the server closed the connection during the handshake")
            }
            _ => format!("{label}: {io}"),
        },
        russh::Error::NoCommonAlgo {
            kind: russh::AlgorithmKind::Key,
            ..
        } if pinned.is_some() => format!(
            "{label}: the server has no host key of the pinned type {}",
            pinned
                .map(|k| k.algorithm().to_string())
                .unwrap_or_default()
        ),
        russh::Error::Disconnect | russh::Error::HUP => {
            format!("{label}: the server closed the connection during the handshake")
        }
        other => format!("{label}: SSH handshake failed: {other}"),
    }
}
