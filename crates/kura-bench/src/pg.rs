//! PostgreSQL for a measured kura: a fresh database per store, made on the server that
//! `--database-url` names and dropped afterwards, and the bulk fill of its filler secrets.

use std::collections::HashMap;

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, Row};

use crate::kura::{CpuTime, Layout, cpu_time};

/// `url` naming database `name` instead of its own (user, host, port and parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let host_from = base.find("://").map_or(0, |i| i + 3);
    let server = match base[host_from..].find('/') {
        Some(i) => &base[..host_from + i],
        None => base,
    };
    format!("{server}/{name}{query}")
}

/// A database `kura_bench_<random>` that exists while this value does: dropped with
/// `WITH (FORCE)` (whatever is still connected) when it goes, after an error too.
pub struct FreshDatabase {
    admin_url: String,
    pub name: String,
    /// What the kura nodes are given: the admin URL naming the fresh database.
    pub url: String,
}

async fn connect(url: &str) -> Result<PgConnection, String> {
    // The URL may hold a password: name only the failure, not the URL.
    PgConnection::connect(url)
        .await
        .map_err(|e| format!("cannot connect to the --database-url server: {e}"))
}

impl FreshDatabase {
    pub async fn create(admin_url: &str) -> Result<FreshDatabase, String> {
        if !(admin_url.starts_with("postgres://") || admin_url.starts_with("postgresql://")) {
            return Err("--database-url must be a postgres:// URL".into());
        }
        let name = format!("kura_bench_{:016x}", rand::random::<u64>());
        let mut admin = connect(admin_url).await?;
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
        let _ = admin.close().await;
        Ok(FreshDatabase {
            admin_url: admin_url.to_string(),
            url: with_database(admin_url, &name),
            name,
        })
    }

    /// The database's size on disk (tables, indexes, TOAST), in bytes.
    pub async fn bytes(&self) -> u64 {
        let size = async {
            let mut c = connect(&self.url).await.ok()?;
            let n: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&mut c)
                .await
                .ok()?;
            let _ = c.close().await;
            u64::try_from(n).ok()
        };
        size.await.unwrap_or(0)
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop is not async and may run on the runtime's own thread: a thread with a
        // runtime of its own, joined, so the database is gone before the bench goes on.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut admin = connect(&url).await?;
                admin
                    .execute(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = admin.close().await;
                Ok::<_, String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("kura-bench: could not drop database {}: {e}", self.name),
            Err(_) => eprintln!("kura-bench: could not drop database {}", self.name),
        }
    }
}

/// The PostgreSQL twin of [`crate::kura::bulk_fill`]: the filler secrets of `layout`, each
/// with one version of filler ciphertext (bytes of the real length that open under no
/// key) labelled AWSCURRENT, inserted while every node is stopped. One transaction.
pub async fn bulk_fill(url: &str, layout: &Layout, sample_arn: &str) -> Result<u64, String> {
    let err = |what: &'static str| move |e: sqlx::Error| format!("bulk fill, {what}: {e}");
    let arn_prefix = match sample_arn.find(":secret:") {
        Some(i) => &sample_arn[..i + ":secret:".len()],
        None => return Err(format!("unexpected ARN {sample_arn:?}")),
    };
    let mut conn = connect(url).await?;
    let template = sqlx::query(
        "SELECT length(ciphertext) AS ct, length(wrapped_key) AS wk, key_name, key_version, value_kind \
         FROM secret_versions WHERE ciphertext IS NOT NULL ORDER BY secret_id LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(err("reading a template version"))?;
    let ct: i32 = template.try_get("ct").map_err(err("template"))?;
    let wk: i32 = template.try_get("wk").map_err(err("template"))?;
    let key_name: String = template.try_get("key_name").map_err(err("template"))?;
    let key_version: i64 = template.try_get("key_version").map_err(err("template"))?;
    let value_kind: String = template.try_get("value_kind").map_err(err("template"))?;
    let now_ms = chrono::Utc::now().timestamp_millis();

    let mut tx = conn.begin().await.map_err(err("begin"))?;
    let before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM secrets")
        .fetch_one(&mut *tx)
        .await
        .map_err(err("max id"))?;
    // Same names as the SQLite fill (`bench-%08d`), so both backends hold the same store.
    let inserted = sqlx::query(
        "INSERT INTO secrets (name, arn, created_at, changed_at) \
         SELECT 'bench-' || lpad(k::text, 8, '0'), \
                $2 || 'bench-' || lpad(k::text, 8, '0') || '-' || substr(md5(random()::text), 1, 6), \
                $4, $4 \
         FROM generate_series(0, $1 - 1) AS k WHERE k % $3 <> 0",
    )
    .bind(layout.total as i64)
    .bind(arn_prefix)
    .bind(layout.stride as i64)
    .bind(now_ms)
    .execute(&mut *tx)
    .await
    .map_err(err("secrets"))?
    .rows_affected();
    // Filler bytes: a random MD5 repeated to the length (PostgreSQL has no randomblob()
    // without the pgcrypto extension; nothing ever decrypts these).
    sqlx::query(
        "INSERT INTO secret_versions \
         (secret_id, version_id, created_at, value_kind, ciphertext, wrapped_key, key_name, key_version) \
         SELECT id, gen_random_uuid()::text, created_at, $2, \
                substring(decode(repeat(md5(random()::text), $3 / 16 + 1), 'hex') FROM 1 FOR $3), \
                substring(decode(repeat(md5(random()::text), $4 / 16 + 1), 'hex') FROM 1 FOR $4), \
                $5, $6 \
         FROM secrets WHERE id > $1",
    )
    .bind(before)
    .bind(&value_kind)
    .bind(ct)
    .bind(wk)
    .bind(&key_name)
    .bind(key_version)
    .execute(&mut *tx)
    .await
    .map_err(err("secret_versions"))?;
    sqlx::query(
        "INSERT INTO version_stages (secret_id, stage, version_id) \
         SELECT secret_id, 'AWSCURRENT', version_id FROM secret_versions WHERE secret_id > $1",
    )
    .bind(before)
    .execute(&mut *tx)
    .await
    .map_err(err("version_stages"))?;
    tx.commit().await.map_err(err("commit"))?;
    // Fresh statistics, as a database that grew by use would have them after autovacuum.
    conn.execute("ANALYZE").await.map_err(err("analyze"))?;
    let _ = conn.close().await;
    Ok(inserted)
}

/// The CPU time of the PostgreSQL backends serving one database, read from `/proc`: only
/// when PostgreSQL runs on this machine, in this PID namespace (otherwise `None`).
pub struct Backends {
    conn: PgConnection,
}

/// CPU time per backend process.
pub type BackendsCpu = HashMap<u32, CpuTime>;

impl Backends {
    pub async fn open(url: &str) -> Option<Backends> {
        Some(Backends {
            conn: connect(url).await.ok()?,
        })
    }

    /// Every backend of the database but this probe's own, and the CPU each has used.
    pub async fn cpu(&mut self) -> Option<BackendsCpu> {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut self.conn)
        .await
        .ok()?;
        let mut cpu = HashMap::new();
        for pid in pids {
            let pid = u32::try_from(pid).ok()?;
            // A process of that number that is not a postgres one: the server is elsewhere
            // (another host, a container), so these numbers mean nothing here.
            match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
                Ok(comm) if comm.trim() == "postgres" => {}
                Ok(_) => return None,
                // Gone since the listing (a pool closed it): its time is lost either way.
                Err(_) => continue,
            }
            if let Some(c) = cpu_time(Some(pid)) {
                cpu.insert(pid, c);
            }
        }
        Some(cpu)
    }

    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}

/// The CPU the backends used between two readings. A backend that appeared meanwhile
/// counts whole; one that ended meanwhile is lost (pools keep theirs open under load).
pub fn backends_cpu_since(after: &BackendsCpu, before: &BackendsCpu) -> CpuTime {
    after
        .iter()
        .fold(CpuTime::default(), |sum, (pid, a)| match before.get(pid) {
            Some(b) => CpuTime {
                user: sum.user + (a.user - b.user),
                sys: sum.sys + (a.sys - b.sys),
            },
            None => CpuTime {
                user: sum.user + a.user,
                sys: sum.sys + a.sys,
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server the store's PostgreSQL tests use too.
    fn admin_url() -> String {
        std::env::var("KURA_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    async fn exists(name: &str) -> bool {
        let mut c = connect(&admin_url()).await.expect("PostgreSQL reachable");
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
        )
        .bind(name)
        .fetch_one(&mut c)
        .await
        .expect("query pg_database")
    }

    #[tokio::test]
    async fn a_fresh_database_is_made_for_the_run_and_dropped_with_its_connections() {
        let db = FreshDatabase::create(&admin_url())
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (or KURA_TEST_PG_URL) where this user may CREATE DATABASE");
        let name = db.name.clone();
        assert!(name.starts_with("kura_bench_"), "{name}");
        // The URL kura gets names the fresh database, on the same server.
        let mut on_it = connect(&db.url)
            .await
            .expect("connect to the fresh database");
        let current: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut on_it)
            .await
            .expect("current_database()");
        assert_eq!(current, name);
        assert!(db.bytes().await > 0);
        // Still connected, as a node killed mid-run would be: FORCE drops it anyway.
        drop(db);
        assert!(!exists(&name).await, "{name} was not dropped");
        assert!(
            sqlx::query("SELECT 1").execute(&mut on_it).await.is_err(),
            "the open connection should have been ended"
        );
    }

    #[tokio::test]
    async fn only_postgres_urls_are_taken() {
        let e = FreshDatabase::create("mysql://root@127.0.0.1:3306/x")
            .await
            .err()
            .expect("refused");
        assert!(e.contains("postgres://"), "{e}");
    }

    #[test]
    fn with_database_replaces_only_the_database_name() {
        assert_eq!(
            with_database(
                "postgres://postgres@127.0.0.1:5432/postgres",
                "kura_bench_1"
            ),
            "postgres://postgres@127.0.0.1:5432/kura_bench_1"
        );
        assert_eq!(
            with_database("postgres://u:p@db.example/app?sslmode=require", "x"),
            "postgres://u:p@db.example/x?sslmode=require"
        );
        assert_eq!(
            with_database("postgresql://u@localhost", "x"),
            "postgresql://u@localhost/x"
        );
    }
}
