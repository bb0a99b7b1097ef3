//! Where a managed function connects, read from a secret's JSON: a database login's target and
//! the field readers every managed function uses.

use serde_json::Value;
use zeroize::Zeroizing;

pub struct DbTarget {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Zeroizing<String>,
    pub dbname: Option<String>,
    /// Absent: TLS if the server offers it, else plain; true: TLS only; false: plain only.
    pub ssl: Option<bool>,
}

impl std::fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("dbname", &self.dbname)
            .finish_non_exhaustive()
    }
}

pub fn str_field<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    match v.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(format!(
            "the secret's \"{field}\" must be a non-empty string"
        )),
        None => Err(format!("the secret has no \"{field}\" field")),
    }
}

pub fn port_field(v: &Value, default: u16) -> Result<u16, String> {
    match v.get("port") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("the secret's \"port\" {n} is not a TCP port")),
        // AWS's templates accept the port as a string too.
        Some(Value::String(s)) => s
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("the secret's \"port\" {s:?} is not a TCP port")),
        Some(_) => Err("the secret's \"port\" must be a number".into()),
    }
}

impl DbTarget {
    pub fn from_json(v: &Value, default_port: u16) -> Result<Self, String> {
        let ssl = match v.get("ssl") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            Some(_) => return Err("the secret's \"ssl\" must be true or false".into()),
        };
        let dbname = match v.get("dbname") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => return Err("the secret's \"dbname\" must be a non-empty string".into()),
        };
        Ok(DbTarget {
            host: str_field(v, "host")?.to_string(),
            port: port_field(v, default_port)?,
            username: str_field(v, "username")?.to_string(),
            password: Zeroizing::new(str_field(v, "password")?.to_string()),
            dbname,
            ssl,
        })
    }

    /// `host:port`, as errors name the system.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The same server and database as `other`, with this login.
    pub fn same_server(&self, other: &DbTarget) -> bool {
        self.host == other.host && self.port == other.port
    }
}

/// A sqlx error as a message for LastError: the server's own words for database errors
/// (they name roles, never passwords), the OS error for connection failures.
pub fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".into()
        }
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(t) => format!("TLS: {t}"),
        sqlx::Error::PoolTimedOut => "timed out".into(),
        other => other.to_string(),
    }
}
