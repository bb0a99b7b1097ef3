//! A Pebble ACME server (Debian's `pebble`) and its `pebble-challtestsrv` DNS, started per
//! test on free ports with an HTTPS certificate made here: what the `kura-acme-certificate`
//! tests (and the README's ACME example) order from.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::tls::{ClientTls, TestCa};
use super::{free_port, have};

/// A Pebble ACME server and its challenge test server, stopped when dropped.
pub struct Pebble {
    children: Vec<Child>,
    pub dir: tempfile::TempDir,
    /// `https://127.0.0.1:<port>/dir`.
    pub directory: String,
    /// Pebble's management API (HTTPS): `/roots/0`, `/intermediates/0`.
    pub management: String,
    /// challtestsrv's management API (HTTP): `/set-txt`, `/clear-txt`.
    pub challenges: String,
    /// The CA of Pebble's HTTPS certificate: a secret's `directory_ca`.
    pub https_ca: String,
    client: reqwest::Client,
    log: PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Pebble {
    /// Starts Pebble validating http-01 on `http_port`; `None` (skipped) without Pebble.
    pub async fn start(http_port: u16) -> Option<Pebble> {
        if !have("pebble") || !have("pebble-challtestsrv") || !have("openssl") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("pebble https");
        let issued = ca.server_cert(1);
        let cert = dir.path().join("pebble.pem");
        let key = dir.path().join("pebble.key");
        std::fs::write(&cert, &issued.chain).unwrap();
        std::fs::write(&key, &issued.key).unwrap();
        let (acme, management, dns, challenges) =
            (free_port(), free_port(), free_port(), free_port());
        let config = dir.path().join("pebble.json");
        std::fs::write(
            &config,
            json!({"pebble": {
                "listenAddress": format!("127.0.0.1:{acme}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }})
            .to_string(),
        )
        .unwrap();
        let log = dir.path().join("pebble.log");
        let out = std::fs::File::create(&log).unwrap();
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{challenges}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Otherwise Pebble rejects 5 % of good nonces at random.
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start pebble");
        let p = Pebble {
            children: vec![challtestsrv, pebble],
            dir,
            directory: format!("https://127.0.0.1:{acme}/dir"),
            management: format!("https://127.0.0.1:{management}"),
            challenges: format!("http://127.0.0.1:{challenges}"),
            https_ca: ca.pem(),
            client: ClientTls::trusting(&ca).reqwest(),
            log,
        };
        let plain = reqwest::Client::new();
        for _ in 0..200 {
            let up = p.client.get(&p.directory).send().await.is_ok()
                && plain
                    .post(format!("{}/clear-txt", p.challenges))
                    .body(r#"{"host": "probe.test."}"#)
                    .send()
                    .await
                    .is_ok();
            if up {
                return Some(p);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("Pebble did not come up: {}", p.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Pebble's issuance root and intermediate (PEM).
    pub async fn issuance_chain(&self) -> (String, String) {
        let get = |path: &'static str| async move {
            let r = self
                .client
                .get(format!("{}{path}", self.management))
                .send()
                .await
                .expect("Pebble's management API");
            assert_eq!(r.status(), 200, "{path}");
            r.text().await.unwrap()
        };
        (get("/roots/0").await, get("/intermediates/0").await)
    }

    /// How many accounts Pebble made (it logs each).
    pub fn accounts_made(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("accounts in memory"))
            .count()
    }

    /// A dns-01 hook (an executable script) that sets and clears TXT records in challtestsrv
    /// as kura's `dns_provider` asks, noting each call (`set NAME`, `remove NAME`) in the file
    /// it returns second.
    pub fn dns_hook(&self) -> (PathBuf, PathBuf) {
        let calls = self.dir.path().join("dns-calls.txt");
        let hook = self.dir.path().join("acme-dns-hook");
        let script = format!(
            r#"#!/usr/bin/python3
import json, sys, urllib.request
req = json.load(sys.stdin)
host = req["Name"] + "."
if req["Action"] == "set":
    path, body = "/set-txt", {{"host": host, "value": req["Value"]}}
else:
    path, body = "/clear-txt", {{"host": host}}
r = urllib.request.Request({base:?} + path, data=json.dumps(body).encode(), method="POST")
urllib.request.urlopen(r, timeout=10).read()
with open({calls:?}, "a") as f:
    f.write(req["Action"] + " " + req["Name"] + "\n")
"#,
            base = self.challenges,
            calls = calls.to_str().unwrap(),
        );
        std::fs::write(&hook, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        (hook, calls)
    }

    /// A secret's request for `names` by `challenge`.
    pub fn request(&self, names: &[&str], challenge: &str) -> Value {
        json!({
            "directory_url": self.directory,
            "email": "certs@example.test",
            "common_name": names[0],
            "alt_names": &names[1..],
            "challenge": challenge,
            "directory_ca": self.https_ca,
        })
    }
}
