//! A fresh PostgreSQL database per test, on the machine's PostgreSQL (127.0.0.1:5432, user
//! postgres, trust authentication), for the tests of kura nodes on PostgreSQL.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use super::{Server, psql, unique_suffix};

/// A language's collation, as most installations have (the machine's databases sort in `C`),
/// so nothing passes here only because PostgreSQL happened to sort like SQLite.
pub const LANGUAGE_COLLATION: &str =
    "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'";

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const PG_ADDR: &str = "127.0.0.1:5432";

/// A database created for one test and dropped (with whatever is still connected) on drop.
pub struct Database {
    pub name: String,
    pub url: String,
}

impl Database {
    pub fn create() -> Database {
        let reachable = Command::new("psql")
            .args(["-X", "-Atc", "SELECT 1", PG_ADMIN_URL])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            reachable,
            "PostgreSQL is not reachable at {PG_ADMIN_URL} (psql on PATH, trust auth for user \
             postgres on 127.0.0.1): the cluster tests need it. Start it, e.g. \
             `service postgresql start` (or `pg_ctlcluster 15 main start`), then run \
             scripts/test-services"
        );
        let name = format!("kura_cluster_{}", &unique_suffix()[..16]);
        psql(
            PG_ADMIN_URL,
            &format!("CREATE DATABASE {name} {LANGUAGE_COLLATION}"),
        );
        Database {
            url: format!("postgres://postgres@{PG_ADDR}/{name}"),
            name,
        }
    }

    /// The same database reached through another address (a relay).
    pub fn url_via(&self, addr: &str) -> String {
        format!("postgres://postgres@{addr}/{}", self.name)
    }

    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }

    /// Every row of every table, in a stable order: what "the database did not change" compares.
    pub fn dump(&self) -> String {
        let out = Command::new("pg_dump")
            .args([
                "--data-only",
                "--no-owner",
                "--inserts",
                "--dbname",
                &self.url,
            ])
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("INSERT"))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines.join("\n")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-X",
                "-Atc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
                PG_ADMIN_URL,
            ])
            .output();
    }
}

// ---------------------------------------------------------------------------------------------
// A cluster: nodes on one fresh database
// ---------------------------------------------------------------------------------------------

/// A temporary directory whose `data/` holds a copy of `root_key` (when given), as a joining
/// node's data directory does.
pub fn node_dir(root_key: Option<&Path>) -> TempDir {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let tmp = tempfile::Builder::new()
        .prefix("kura-node-")
        .tempdir()
        .expect("create temp dir");
    let data = tmp.path().join("data");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&data)
        .expect("create the data directory");
    if let Some(key) = root_key {
        let copy = data.join("root.key");
        std::fs::copy(key, &copy).expect("copy root.key");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    tmp
}

/// Nodes on one fresh database. Fields drop in order: the nodes (whose drop-time checks read
/// the database) before the database.
pub struct Cluster {
    pub nodes: Vec<Server>,
    pub db: Database,
}

impl Cluster {
    /// Starts one node per entry of `args` (extra `kura server` flags): the first initialises
    /// the database, the others join it with a copy of its root.key.
    pub async fn start(args: &[&[&str]]) -> Cluster {
        let db = Database::create();
        let mut nodes: Vec<Server> = Vec::new();
        for a in args {
            let key = nodes.first().map(|n| n.data_dir.join("root.key"));
            let mut node = Server::start_node(node_dir(key.as_deref()), &db.url, &db.url, a).await;
            if let Some(first) = nodes.first() {
                node.use_credentials(first.credentials());
            }
            nodes.push(node);
        }
        Cluster { nodes, db }
    }

    /// Three nodes without extra flags.
    pub async fn three() -> Cluster {
        Cluster::start(&[&[], &[], &[]]).await
    }
}
