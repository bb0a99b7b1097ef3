//! PostgreSQL: logins, and password changes sent as SCRAM-SHA-256 verifiers so the plaintext
//! never reaches the server or its statement log.

use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{AssertSqlSafe, Connection};

use super::target::{DbTarget, describe};

pub const DEFAULT_PORT: u16 = 5432;

fn err(t: &DbTarget, e: &sqlx::Error) -> String {
    format!("postgres {}: {}", t.address(), describe(e))
}

/// `"name"` with embedded quotes doubled: safe whatever the name holds.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled (standard_conforming_strings is on since 9.1).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

pub async fn connect(t: &DbTarget) -> Result<PgConnection, String> {
    if t.username.contains('\0') {
        return Err(format!(
            "postgres {}: the user name contains NUL",
            t.address()
        ));
    }
    let opts = PgConnectOptions::new()
        .host(&t.host)
        .port(t.port)
        .username(&t.username)
        .password(&t.password)
        .database(t.dbname.as_deref().unwrap_or("postgres"))
        .ssl_mode(match t.ssl {
            None => PgSslMode::Prefer,
            Some(true) => PgSslMode::Require,
            Some(false) => PgSslMode::Disable,
        })
        .application_name("kura-rotation");
    PgConnection::connect_with(&opts)
        .await
        .map_err(|e| err(t, &e))
}

pub async fn check_login(t: &DbTarget) -> Result<(), String> {
    let mut c = connect(t).await?;
    sqlx::query("SELECT 1")
        .execute(&mut c)
        .await
        .map_err(|e| err(t, &e))?;
    let _ = c.close().await;
    Ok(())
}

async fn exec(c: &mut PgConnection, t: &DbTarget, sql: String) -> Result<(), String> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(|e| err(t, &e))
}

/// The logged-in user changes its own password.
pub async fn set_own_password(login: &DbTarget, new_password: &str) -> Result<(), String> {
    let verifier = kura_crypto::verifiers::postgres_scram(new_password).map_err(|e| e.message)?;
    let mut c = connect(login).await?;
    let r = exec(
        &mut c,
        login,
        format!(
            "ALTER ROLE CURRENT_USER WITH PASSWORD {}",
            literal(&verifier)
        ),
    )
    .await;
    let _ = c.close().await;
    r
}

/// An administrator sets `user`'s password, creating the role first (as a member of
/// `member_of`, so it has the same privileges) when it does not exist.
pub async fn set_user_password(
    admin: &DbTarget,
    user: &str,
    new_password: &str,
    member_of: Option<&str>,
) -> Result<(), String> {
    let verifier = kura_crypto::verifiers::postgres_scram(new_password).map_err(|e| e.message)?;
    let mut c = connect(admin).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(user)
            .fetch_one(&mut c)
            .await
            .map_err(|e| err(admin, &e))?;
    let r = if exists {
        exec(
            &mut c,
            admin,
            format!(
                "ALTER ROLE {} WITH PASSWORD {}",
                ident(user),
                literal(&verifier)
            ),
        )
        .await
    } else {
        let mut sql = format!(
            "CREATE ROLE {} WITH LOGIN PASSWORD {}",
            ident(user),
            literal(&verifier)
        );
        if let Some(role) = member_of {
            sql.push_str(&format!(" IN ROLE {}", ident(role)));
        }
        exec(&mut c, admin, sql).await
    };
    let _ = c.close().await;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_backslashes() {
        assert_eq!(ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(literal(r"it's \ fine"), r"'it''s \ fine'");
    }
}
