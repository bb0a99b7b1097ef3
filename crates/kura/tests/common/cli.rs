//! Running the `kura` binary as a user would: a shell with its own home and working directory
//! (`./kura-data` is the server's), no AWS or kura variables but those a test sets.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::Server;

/// What one run of `kura` gave.
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}); exit {}, stderr: {}\nstdout: {}",
                self.code,
                self.stderr,
                self.text()
            )
        })
    }
    /// Asserts success; returns itself for the output.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "kura failed: {}", self.stderr);
        self
    }
    /// Asserts the exit code; returns stderr.
    pub fn fails(self, code: i32) -> String {
        assert_eq!(
            self.code,
            code,
            "expected exit {code}; stderr: {}; stdout: {}",
            self.stderr,
            self.text()
        );
        assert!(self.stdout.is_empty(), "a failure printed: {}", self.text());
        self.stderr
    }
}

/// A user's shell: a home without AWS configuration, a working directory whose `./kura-data`
/// is the server's data directory, and no AWS or kura variables but those set here.
pub struct Shell {
    pub home: tempfile::TempDir,
    pub cwd: tempfile::TempDir,
    env: Vec<(String, String)>,
}

pub const AWS_VARS: &[&str] = &[
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "KURA_ENDPOINT",
    "NO_COLOR",
];

impl Shell {
    pub fn new(data_dir: &Path) -> Shell {
        let home = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(data_dir, cwd.path().join("kura-data")).unwrap();
        Shell {
            home,
            cwd,
            env: Vec::new(),
        }
    }

    pub fn set(&mut self, k: &str, v: &str) {
        self.env.push((k.to_string(), v.to_string()));
    }

    /// `kura ARGS` in this shell, not started (stdin, stdout and stderr piped).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kura"));
        cmd.args(args)
            .current_dir(self.cwd.path())
            .env("HOME", self.home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for v in AWS_VARS {
            cmd.env_remove(v);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run_with(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut cmd = self.command(args);
        let mut child = cmd.spawn().expect("run kura");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, b"")
    }
}

/// `kura secret ARGS --endpoint SERVER` in a shell whose ./kura-data is the server's.
pub struct Cli<'a> {
    pub server: &'a Server,
    pub shell: Shell,
}

impl<'a> Cli<'a> {
    pub fn new(server: &'a Server) -> Cli<'a> {
        Cli {
            server,
            shell: Shell::new(&server.data_dir),
        }
    }
    pub fn secret_with(&self, args: &[&str], stdin: &[u8]) -> Run {
        let endpoint = self.server.endpoint();
        let mut all = vec!["secret"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--endpoint", &endpoint]);
        self.shell.run_with(&all, stdin)
    }
    pub fn secret(&self, args: &[&str]) -> Run {
        self.secret_with(args, b"")
    }
    /// `kura ARGS --endpoint SERVER`.
    pub fn kura(&self, args: &[&str]) -> Run {
        let endpoint = self.server.endpoint();
        let mut all = args.to_vec();
        all.extend_from_slice(&["--endpoint", &endpoint]);
        self.shell.run(&all)
    }
}

/// An address where nothing listens.
pub fn closed_port_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}
