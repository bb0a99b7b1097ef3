//! A SoftHSM2 token of its own per test (Debian's `softhsm2`, installed by `scripts/test`).

use std::path::{Path, PathBuf};

use tempfile::TempDir;

pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const PIN: &str = "4321";

pub struct Token {
    _dir: TempDir,
    /// `SOFTHSM2_CONF` for processes that use this token.
    pub conf: PathBuf,
    pub label: String,
}

impl Token {
    /// A new initialised token labelled `label`; `None` (the test skips, saying why) where
    /// SoftHSM2 is not installed.
    pub fn new(label: &str) -> Option<Token> {
        if !super::have("softhsm2-util") {
            return None;
        }
        if !Path::new(MODULE).exists() {
            super::skip(&format!(
                "SoftHSM2's module {MODULE} is missing; scripts/test installs the Debian package softhsm2"
            ));
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("kura-softhsm-")
            .tempdir()
            .expect("temp dir for the token");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let out = std::process::Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label, "--pin", PIN])
            .args(["--so-pin", "87654321"])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .expect("run softhsm2-util");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Token {
            _dir: dir,
            conf,
            label: label.to_string(),
        })
    }

    /// `kura server` flags for the PKCS#11 seal on this token (the PIN goes in the env).
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--seal".into(),
            "pkcs11".into(),
            "--pkcs11-module".into(),
            MODULE.into(),
            "--pkcs11-token-label".into(),
            self.label.clone(),
        ]
    }

    /// The environment: the token's configuration and `pin`.
    pub fn env(&self, pin: &str) -> Vec<(String, String)> {
        vec![
            ("SOFTHSM2_CONF".into(), self.conf.display().to_string()),
            ("KURA_PKCS11_PIN".into(), pin.into()),
        ]
    }

    /// `kura server` sealed by this token (the PIN in its environment), in `tmp`, or in a new
    /// temporary directory.
    pub async fn start_server(&self, tmp: Option<TempDir>) -> super::Server {
        let args = self.server_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env = self.env(PIN);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let tmp = tmp.unwrap_or_else(|| {
            tempfile::Builder::new()
                .prefix("kura-test-")
                .tempdir()
                .unwrap()
        });
        super::Server::start_in_with_env(tmp, &args, &env).await
    }
}
