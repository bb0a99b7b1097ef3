//! MySQL and MariaDB: logins and password changes. MariaDB takes the password as a
//! `mysql_native_password` hash, so the plaintext never reaches it; MySQL 8 has no hashed
//! form kura can compute for its default plugin and gets the quoted plaintext.

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlSslMode};
use sqlx::{AssertSqlSafe, Connection, Row};

use super::target::{DbTarget, describe};

pub const DEFAULT_PORT: u16 = 3306;

fn err(t: &DbTarget, e: &sqlx::Error) -> String {
    format!("mysql {}: {}", t.address(), describe(e))
}

/// User names kura will put into SQL: MySQL's own limit is 80 characters on MariaDB.
fn valid_user(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_$.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "mysql user name {name:?} has characters kura does not rotate (letters, digits and _ $ . - only)"
        ))
    }
}

fn valid_host(host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.%:-/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "mysql account host {host:?} has unexpected characters"
        ))
    }
}

/// `'user'@'host'` for names already validated (no quotes or backslashes can occur).
fn account(user: &str, host: &str) -> String {
    format!("'{user}'@'{host}'")
}

pub async fn connect(t: &DbTarget) -> Result<MySqlConnection, String> {
    let mut opts = MySqlConnectOptions::new()
        .host(&t.host)
        .port(t.port)
        .username(&t.username)
        .password(&t.password)
        .ssl_mode(match t.ssl {
            None => MySqlSslMode::Preferred,
            Some(true) => MySqlSslMode::Required,
            Some(false) => MySqlSslMode::Disabled,
        });
    if let Some(db) = &t.dbname {
        opts = opts.database(db);
    }
    MySqlConnection::connect_with(&opts)
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

async fn exec(c: &mut MySqlConnection, t: &DbTarget, sql: String) -> Result<(), String> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(|e| err(t, &e))
}

/// How this server takes a new password in `IDENTIFIED BY ...` / `SET PASSWORD = ...`.
async fn password_clause(
    c: &mut MySqlConnection,
    t: &DbTarget,
    new_password: &str,
) -> Result<(bool, String), String> {
    let row = sqlx::query("SELECT VERSION(), @@sql_mode")
        .fetch_one(&mut *c)
        .await
        .map_err(|e| err(t, &e))?;
    let version: String = row.try_get(0).map_err(|e| err(t, &e))?;
    let mode: String = row.try_get(1).map_err(|e| err(t, &e))?;
    if version.contains("MariaDB") {
        return Ok((
            true,
            format!("'{}'", kura_crypto::verifiers::mysql_native(new_password)),
        ));
    }
    let mut escaped = new_password.replace('\'', "''");
    if !mode.contains("NO_BACKSLASH_ESCAPES") {
        escaped = escaped.replace('\\', "\\\\");
    }
    Ok((false, format!("'{escaped}'")))
}

/// The logged-in user changes its own password.
pub async fn set_own_password(login: &DbTarget, new_password: &str) -> Result<(), String> {
    let mut c = connect(login).await?;
    let (hashed, value) = password_clause(&mut c, login, new_password).await?;
    let sql = if hashed {
        format!("SET PASSWORD = {value}")
    } else {
        format!("ALTER USER CURRENT_USER() IDENTIFIED BY {value}")
    };
    let r = exec(&mut c, login, sql).await;
    let _ = c.close().await;
    r
}

/// An administrator sets `user`'s password on every host `template` has an account for,
/// creating the accounts with `template`'s grants when they do not exist.
pub async fn set_user_password(
    admin: &DbTarget,
    user: &str,
    new_password: &str,
    template: &str,
) -> Result<(), String> {
    valid_user(user)?;
    valid_user(template)?;
    let mut c = connect(admin).await?;
    let (hashed, value) = password_clause(&mut c, admin, new_password).await?;
    let identified = if hashed {
        format!("IDENTIFIED BY PASSWORD {value}")
    } else {
        format!("IDENTIFIED BY {value}")
    };
    let hosts: Vec<String> = sqlx::query_scalar("SELECT Host FROM mysql.user WHERE User = ?")
        .bind(template)
        .fetch_all(&mut c)
        .await
        .map_err(|e| err(admin, &e))?;
    if hosts.is_empty() {
        return Err(format!(
            "mysql {}: the user {template} has no account to copy",
            admin.address()
        ));
    }
    for host in &hosts {
        valid_host(host)?;
        let exists: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?")
                .bind(user)
                .bind(host)
                .fetch_one(&mut c)
                .await
                .map_err(|e| err(admin, &e))?;
        if exists > 0 {
            exec(
                &mut c,
                admin,
                format!("ALTER USER {} {identified}", account(user, host)),
            )
            .await?;
            continue;
        }
        exec(
            &mut c,
            admin,
            format!("CREATE USER {} {identified}", account(user, host)),
        )
        .await?;
        let grants: Vec<String> = sqlx::raw_sql(AssertSqlSafe(format!(
            "SHOW GRANTS FOR {}",
            account(template, host)
        )))
        .fetch_all(&mut c)
        .await
        .map_err(|e| err(admin, &e))?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .map_err(|e| err(admin, &e))?;
        for g in grants {
            if let Some(sql) = copy_grant(&g, template, user, host) {
                exec(&mut c, admin, sql).await?;
            }
        }
    }
    let _ = c.close().await;
    Ok(())
}

/// A `SHOW GRANTS` line for `from` rewritten for `to`, without any IDENTIFIED clause (the
/// password is set separately). `None` for lines that grant nothing to copy.
fn copy_grant(line: &str, from: &str, to: &str, host: &str) -> Option<String> {
    if !line.starts_with("GRANT ") {
        return None;
    }
    let mut out = line.to_string();
    for quote in ['`', '\''] {
        let old = format!("TO {quote}{from}{quote}@{quote}{host}{quote}");
        out = out.replace(&old, &format!("TO {}", account(to, host)));
    }
    if out == line {
        return None; // a grant to some other account (e.g. a role line)
    }
    if let Some(i) = out.find(" IDENTIFIED ") {
        let rest = &out[i..];
        let tail = rest
            .find(" WITH ")
            .map(|j| rest[j..].to_string())
            .unwrap_or_default();
        out = format!("{}{tail}", &out[..i]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_copied_without_the_password() {
        let line = "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABC' WITH MAX_QUERIES_PER_HOUR 5";
        assert_eq!(
            copy_grant(line, "app", "app_clone", "%").as_deref(),
            Some("GRANT USAGE ON *.* TO 'app_clone'@'%' WITH MAX_QUERIES_PER_HOUR 5")
        );
        let line = "GRANT SELECT, INSERT ON `test`.* TO `app`@`%`";
        assert_eq!(
            copy_grant(line, "app", "app_clone", "%").as_deref(),
            Some("GRANT SELECT, INSERT ON `test`.* TO 'app_clone'@'%'")
        );
        assert_eq!(copy_grant("GRANT r TO `other`@`%`", "app", "x", "%"), None);
    }

    #[test]
    fn names_with_quotes_are_refused() {
        assert!(valid_user("a'b").is_err());
        assert!(valid_host("%' OR").is_err());
        assert!(valid_user("app_clone").is_ok());
    }
}
