//! The SQL both backends run, written once.
//!
//! SQLite and PostgreSQL take the same statements for nearly everything kura stores: the
//! same tables, `$1`-numbered parameters (sqlx's SQLite driver reads `$N` as the N-th bound
//! value), `RETURNING`, `ON CONFLICT … DO`. So each write's and read's body lives here once,
//! as a function over a [`Conn`], and each backend keeps only what truly differs: how its
//! transactions begin and end (`BEGIN IMMEDIATE` behind one writer queue; row locks with
//! retries), the few statements with no common form (JSON event lists, word inserts, id lists)
//! and the few constants below (row locks, collation, the insertion-order column, NUL).
//!
//! Statements are built with [`Stmt`] (`stmt("…").bind(x)`), whose values are bound to the
//! backend's own query at execution: no `sqlx::Any`, each backend runs on its own driver and
//! connection types, and the generic functions are instantiated once per backend.

use std::borrow::Cow;
use std::future::Future;

use kura_core::{Error, Result, Timestamp};
use sqlx::{AssertSqlSafe, Database, Encode, Type};

use crate::rows::{Column, Columns};

pub(crate) mod audit_log;
pub(crate) mod identity;
pub(crate) mod keys;
pub(crate) mod notifications;
pub(crate) mod pki;
pub(crate) mod rotation;
pub(crate) mod secrets;
pub(crate) mod sessions;
pub(crate) mod settings;

/// One backend's connection (or transaction, which derefs to one), as the shared SQL uses it.
pub(crate) trait Conn: Send {
    type Row: Columns + Send;

    /// Appended to a `SELECT` that reads rows the transaction is about to change: PostgreSQL
    /// locks them (`FOR UPDATE`); SQLite's write transaction already excludes other writers.
    const FOR_UPDATE: &'static str;
    /// Appended to an `ORDER BY` text column: code point order, which is SQLite's own
    /// (`BINARY`); PostgreSQL sorts by its locale unless told `COLLATE "C"`.
    const CODE_POINT_ORDER: &'static str;
    /// The column that orders a secret's versions created in the same millisecond in the
    /// order they were written (`rowid` on SQLite, the `seq` identity on PostgreSQL).
    const INSERTION_ORDER: &'static str;
    /// Whether text columns can hold NUL characters (PostgreSQL's cannot).
    const TEXT_HOLDS_NUL: bool;
    /// Whether audit lookups by resource or principal go through the lookup tables filled
    /// behind the trail (SQLite: `audit_by_resource`, `audit_by_principal`, `audit_indexed`,
    /// in the attached lookup file) rather than indexes on `audit_log` itself (PostgreSQL).
    const AUDIT_LOOKUP_BEHIND: bool;

    /// Runs a statement; returns the rows it changed.
    fn execute(&mut self, s: Stmt<'_>) -> impl Future<Output = Result<u64>> + Send;
    fn fetch_all(&mut self, s: Stmt<'_>) -> impl Future<Output = Result<Vec<Self::Row>>> + Send;
    fn fetch_optional(
        &mut self,
        s: Stmt<'_>,
    ) -> impl Future<Output = Result<Option<Self::Row>>> + Send;

    /// A listed secret's (`s`) tags, as a JSON array of `[key, value]` pairs in key order,
    /// and its labels, as `[stage, version_id]` pairs (either NULL or `[]` when it has none):
    /// aggregated inside a page's own statement, so a page of any size is one statement.
    const TAGS_JSON: &'static str;
    const STAGES_JSON: &'static str;
    /// A secret's (`s`) versions as `[version_id, created_at, accessed_at, has_value (0/1)]`
    /// arrays, oldest first, in the order they were written within a millisecond (as
    /// `load_versions` reads them); NULL when it has none.
    const VERSIONS_JSON: &'static str;
    /// Inserts a secret's `secret_words` rows (`(field, word)`; its old ones are gone).
    fn insert_words(
        &mut self,
        secret_id: i64,
        words: Vec<(i64, String)>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Queues `body` for every target subscribed to `event`, in this transaction.
    fn queue_event(
        &mut self,
        event: &str,
        body: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Makes this transaction the only one reading and extending the audit chain's tail
    /// until it ends.
    fn lock_audit_tail(&mut self) -> impl Future<Output = Result<()>> + Send;
}

/// The statement-running methods of a [`Conn`] implementation, the same for both drivers:
/// bind, run on the connection, map the error. `$db_err` is the backend's mapping of its
/// driver's errors.
macro_rules! run_statements {
    ($db_err:expr) => {
        async fn execute(&mut self, mut s: $crate::sql::Stmt<'_>) -> kura_core::Result<u64> {
            match s.query().execute(&mut *self).await {
                Ok(done) => Ok(done.rows_affected()),
                Err(e) => Err(s.error(e, $db_err)),
            }
        }

        async fn fetch_all(
            &mut self,
            mut s: $crate::sql::Stmt<'_>,
        ) -> kura_core::Result<Vec<Self::Row>> {
            let q = s.query();
            q.fetch_all(&mut *self)
                .await
                .map_err(|e| s.error(e, $db_err))
        }

        async fn fetch_optional(
            &mut self,
            mut s: $crate::sql::Stmt<'_>,
        ) -> kura_core::Result<Option<Self::Row>> {
            let q = s.query();
            q.fetch_optional(&mut *self)
                .await
                .map_err(|e| s.error(e, $db_err))
        }
    };
}
pub(crate) use run_statements;

/// Text kura records rather than validates (error output, an audited request's raw fields),
/// in a form the backend can store: PostgreSQL text cannot hold NUL, so NULs become U+FFFD
/// there; SQLite keeps the text as it is.
pub(crate) fn recordable<C: Conn>(s: &str) -> Cow<'_, str> {
    if !C::TEXT_HOLDS_NUL && s.contains('\0') {
        s.replace('\0', "\u{FFFD}").into()
    } else {
        s.into()
    }
}

/// Whether a lookup by these keys can find nothing because the backend cannot store them
/// (a NUL on PostgreSQL, which would also refuse the parameter): then the lookup answers
/// "none" without asking, as SQLite's answer would be.
pub(crate) fn unstorable<C: Conn>(keys: &[&str]) -> bool {
    !C::TEXT_HOLDS_NUL && keys.iter().any(|k| k.contains('\0'))
}

/// A value bound to a statement parameter. Nullable values keep their type, so PostgreSQL
/// knows what a NULL is.
#[derive(Debug, Clone)]
pub(crate) enum Arg<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(Cow<'a, str>),
    OptText(Option<Cow<'a, str>>),
    Bytes(&'a [u8]),
    OptBytes(Option<&'a [u8]>),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}
impl From<Timestamp> for Arg<'_> {
    fn from(v: Timestamp) -> Self {
        Arg::Int(v.0)
    }
}
impl From<Option<Timestamp>> for Arg<'_> {
    fn from(v: Option<Timestamp>) -> Self {
        Arg::OptInt(v.map(|t| t.0))
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v.into())
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v.as_str().into())
    }
}
impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(v.into())
    }
}
impl<'a> From<Cow<'a, str>> for Arg<'a> {
    fn from(v: Cow<'a, str>) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::OptText(v.map(Cow::Borrowed))
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::OptText(v.as_deref().map(Cow::Borrowed))
    }
}
impl<'a> From<Option<Cow<'a, str>>> for Arg<'a> {
    fn from(v: Option<Cow<'a, str>>) -> Self {
        Arg::OptText(v)
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}
impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Arg::Bytes(v)
    }
}
impl<'a> From<Option<&'a [u8]>> for Arg<'a> {
    fn from(v: Option<&'a [u8]>) -> Self {
        Arg::OptBytes(v)
    }
}

/// Parameters of SQL built at run time: each value pushed answers its placeholder, so text
/// and values are written together and cannot drift apart.
#[derive(Debug, Default)]
pub(crate) struct Args<'a>(Vec<Arg<'a>>);

impl<'a> Args<'a> {
    /// Binds `v`; returns its placeholder (`$N`).
    pub(crate) fn push(&mut self, v: impl Into<Arg<'a>>) -> String {
        self.0.push(v.into());
        format!("${}", self.0.len())
    }
}

/// A backend's query with its values bound.
pub(crate) type Query<DB> = sqlx::query::Query<'static, DB, <DB as Database>::Arguments>;

/// One statement and its values.
#[derive(Debug)]
pub(crate) struct Stmt<'a> {
    sql: Cow<'static, str>,
    args: Vec<Arg<'a>>,
    /// What a unique violation means to the caller (a taken name), if anything.
    taken: Option<Error>,
}

/// A statement written here, its parameters numbered `$1, $2, …`.
pub(crate) fn stmt<'a>(sql: &'static str) -> Stmt<'a> {
    Stmt {
        sql: Cow::Borrowed(sql),
        args: Vec::new(),
        taken: None,
    }
}

/// A statement assembled at run time from text written here (column lists, conditions) and
/// placeholders from `args`; values never enter the text.
pub(crate) fn built(sql: String, args: Args<'_>) -> Stmt<'_> {
    Stmt {
        sql: Cow::Owned(sql),
        args: args.0,
        taken: None,
    }
}

impl<'a> Stmt<'a> {
    pub(crate) fn bind(mut self, v: impl Into<Arg<'a>>) -> Self {
        self.args.push(v.into());
        self
    }

    /// A unique violation answers `e` instead of an internal error.
    pub(crate) fn taken(mut self, e: Error) -> Self {
        self.taken = Some(e);
        self
    }

    /// The error to answer for `e`, given the backend's own mapping of everything else.
    pub(crate) fn error(&mut self, e: sqlx::Error, db_err: fn(sqlx::Error) -> Error) -> Error {
        let unique = matches!(&e, sqlx::Error::Database(d) if d.is_unique_violation());
        self.error_with(unique, || db_err(e))
    }

    /// The error to answer for a failure that is a unique violation or not (`other`).
    pub(crate) fn error_with(&mut self, unique: bool, other: impl FnOnce() -> Error) -> Error {
        match self.taken.take() {
            Some(taken) if unique => taken,
            _ => other(),
        }
    }

    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    /// The text, if it is one written here (not assembled at run time).
    pub(crate) fn static_sql(&self) -> Option<&'static str> {
        match self.sql {
            Cow::Borrowed(s) => Some(s),
            Cow::Owned(_) => None,
        }
    }

    pub(crate) fn args(&self) -> &[Arg<'a>] {
        &self.args
    }

    /// The backend's query for this statement, values bound in order.
    pub(crate) fn query<DB>(&self) -> Query<DB>
    where
        DB: Database,
        i64: for<'t> Encode<'t, DB> + Type<DB>,
        Option<i64>: for<'t> Encode<'t, DB> + Type<DB>,
        for<'t> &'t str: Encode<'t, DB> + Type<DB>,
        for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
        for<'t> &'t [u8]: Encode<'t, DB> + Type<DB>,
        for<'t> Option<&'t [u8]>: Encode<'t, DB> + Type<DB>,
    {
        let mut q = sqlx::query(AssertSqlSafe(self.sql.clone()));
        for a in &self.args {
            q = match a {
                Arg::Int(v) => q.bind(*v),
                Arg::OptInt(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_ref()),
                Arg::OptText(v) => q.bind(v.as_deref()),
                Arg::Bytes(v) => q.bind(*v),
                Arg::OptBytes(v) => q.bind(*v),
            };
        }
        q
    }

    pub(crate) async fn execute<C: Conn>(self, conn: &mut C) -> Result<u64> {
        conn.execute(self).await
    }

    pub(crate) async fn fetch_all<C: Conn>(self, conn: &mut C) -> Result<Vec<C::Row>> {
        conn.fetch_all(self).await
    }

    pub(crate) async fn fetch_optional<C: Conn>(self, conn: &mut C) -> Result<Option<C::Row>> {
        conn.fetch_optional(self).await
    }

    /// The first column of the one row the statement returns.
    pub(crate) async fn scalar<T: Column, C: Conn>(self, conn: &mut C) -> Result<T> {
        match conn.fetch_optional(self).await? {
            Some(row) => row.first(),
            None => Err(Error::internal("a query for one row returned none")),
        }
    }

    /// The first column of the row the statement returns, if any.
    pub(crate) async fn optional_scalar<T: Column, C: Conn>(
        self,
        conn: &mut C,
    ) -> Result<Option<T>> {
        conn.fetch_optional(self)
            .await?
            .map(|row| row.first())
            .transpose()
    }

    /// The first column of every row.
    pub(crate) async fn scalars<T: Column, C: Conn>(self, conn: &mut C) -> Result<Vec<T>> {
        conn.fetch_all(self)
            .await?
            .iter()
            .map(|row| row.first())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    /// The shared SQL relies on sqlx's SQLite driver reading `$N` as the N-th bound value,
    /// whatever the order and however often it appears, as PostgreSQL does.
    #[tokio::test]
    async fn sqlite_reads_numbered_placeholders_as_postgresql_does() {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        let got: String = stmt("SELECT $2 || '-' || $1 || '-' || $2 || '-' || $3")
            .bind("one")
            .bind("two")
            .bind(3i64)
            .scalar(&mut conn)
            .await
            .unwrap();
        assert_eq!(got, "two-one-two-3");

        let mut args = Args::default();
        let sql = format!("SELECT {} + {} * 10", args.push(1i64), args.push(2i64));
        let got: i64 = built(sql, args).scalar(&mut conn).await.unwrap();
        assert_eq!(got, 21);
    }

    #[tokio::test]
    async fn a_taken_unique_key_answers_the_statements_own_error() {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        stmt("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .unwrap();
        let insert = || {
            stmt("INSERT INTO t (k) VALUES ($1)")
                .bind("a")
                .taken(Error::exists("taken"))
        };
        insert().execute(&mut conn).await.unwrap();
        let e = insert().execute(&mut conn).await.unwrap_err();
        assert_eq!(e.message, "taken");
        // Other failures keep the backend's mapping.
        let e = stmt("INSERT INTO missing (k) VALUES ($1)")
            .bind("a")
            .taken(Error::exists("taken"))
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert_ne!(e.message, "taken");
    }
}
