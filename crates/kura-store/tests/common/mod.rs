//! PostgreSQL for the store's tests: a fresh database per test on the machine's server.

/// Where the PostgreSQL tests create their databases: a server on which this user may
/// CREATE DATABASE.
pub fn pg_admin_url() -> String {
    std::env::var("KURA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` naming database `name` instead of its own.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(i) => &base[..authority_end + i],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// A fresh database, dropped (connections and all) when this guard goes, even after a
/// failed assertion.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    pub async fn create() -> PgDatabase {
        use sqlx::{Connection, Executor};
        let admin_url = pg_admin_url();
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {admin_url} ({e}). The store contract runs on \
                 PostgreSQL too and is never skipped: start the server (e.g. `service postgresql \
                 start` or `pg_ctlcluster 15 main start`), or set KURA_TEST_PG_URL to a server \
                 where this user may CREATE DATABASE."
                )
            });
        let name = format!("kura_contract_{:016x}", rand::random::<u64>());
        admin
            // A language's collation, as most installations have, so an ORDER BY that relies on
            // the database sorting like SQLite (code point order) fails here.
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            )))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} at {admin_url}: {e}"));
        let _ = admin.close().await;
        PgDatabase { admin_url, name }
    }

    pub fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside async code (and maybe while unwinding): a thread of its own with
        // its own runtime.
        let _ = std::thread::spawn(move || {
            use sqlx::{Connection, Executor};
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(e) = admin.execute(sqlx::AssertSqlSafe(sql)).await {
                        eprintln!("dropping test database {name}: {e}");
                    }
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}
