//! The two database drivers behind one small query interface.
//!
//! * SQLite runs in-process through rusqlite, called inline: a query on a page-cached database
//!   takes microseconds, less than handing it to another thread and back (which is what an
//!   async SQLite driver does for every statement, and what dominated signHash's cost). One
//!   writer connection (SQLite admits one writer at a time) and a few readers, in WAL mode.
//! * PostgreSQL runs through sqlx's native async driver.
//!
//! SQL is written once, with `$n` placeholders; for SQLite they become `?n`.

use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::types::{ToSqlOutput, ValueRef};
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{Column as _, PgPool, Row as _, TypeInfo as _};
use tokio::sync::{Mutex, MutexGuard};

use crate::{Result, StoreError};

/// A bound parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum P<'a> {
    I(i64),
    S(&'a str),
    OS(Option<&'a str>),
}

impl rusqlite::ToSql for P<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            P::I(i) => ToSqlOutput::from(*i),
            P::S(s) => ToSqlOutput::from(*s),
            P::OS(Some(s)) => ToSqlOutput::from(*s),
            P::OS(None) => ToSqlOutput::from(rusqlite::types::Null),
        })
    }
}

/// A column value (the schema only has BIGINT and TEXT).
#[derive(Debug, Clone)]
pub(crate) enum V {
    Null,
    Int(i64),
    Text(String),
}

/// A result row.
#[derive(Debug, Clone)]
pub(crate) struct Row(Vec<(String, V)>);

impl Row {
    fn get(&self, col: &str) -> Result<&V> {
        self.0.iter().find(|(n, _)| n == col).map(|(_, v)| v).ok_or_else(|| StoreError::Db(format!("no column {col}")))
    }
    pub(crate) fn i64(&self, col: &str) -> Result<i64> {
        match self.get(col)? {
            V::Int(i) => Ok(*i),
            other => Err(StoreError::Db(format!("column {col}: expected an integer, found {other:?}"))),
        }
    }
    pub(crate) fn opt_i64(&self, col: &str) -> Result<Option<i64>> {
        match self.get(col)? {
            V::Int(i) => Ok(Some(*i)),
            V::Null => Ok(None),
            V::Text(_) => Err(StoreError::Db(format!("column {col}: expected an integer"))),
        }
    }
    pub(crate) fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.i64(col)? != 0)
    }
    pub(crate) fn str(&self, col: &str) -> Result<String> {
        self.opt_str(col)?.ok_or_else(|| StoreError::Db(format!("column {col} is NULL")))
    }
    pub(crate) fn opt_str(&self, col: &str) -> Result<Option<String>> {
        match self.get(col)? {
            V::Text(s) => Ok(Some(s.clone())),
            V::Null => Ok(None),
            V::Int(_) => Err(StoreError::Db(format!("column {col}: expected text"))),
        }
    }
}

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY {
            return StoreError::Conflict;
        }
        if f.code == rusqlite::ErrorCode::DatabaseBusy || f.code == rusqlite::ErrorCode::DatabaseLocked {
            return StoreError::Unavailable(e.to_string());
        }
    }
    StoreError::Db(e.to_string())
}

fn pg_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => StoreError::Conflict,
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Db(e.to_string()),
    }
}

/// The database.
pub(crate) enum Db {
    Sqlite { writer: Mutex<rusqlite::Connection>, readers: Vec<Mutex<rusqlite::Connection>>, next: AtomicUsize },
    Pg(PgPool),
}

/// One connection, for a statement or a transaction.
pub(crate) enum Conn<'a> {
    Sqlite(MutexGuard<'a, rusqlite::Connection>),
    Pg(sqlx::pool::PoolConnection<sqlx::Postgres>),
    /// sqlx rolls an unfinished transaction back when it is dropped, so a request cancelled
    /// mid-transaction (client gone) cannot leave a connection inside it.
    PgTx(sqlx::Transaction<'static, sqlx::Postgres>),
}

fn open_sqlite(path: &str) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    // WAL: readers run beside the writer. NORMAL: durable across application crashes (SQLite
    // "WAL mode" docs). The busy timeout makes the admin CLI and the server wait for each other.
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(64);
    // Query planner stability: one plan per statement whatever the bound values. Without it a
    // STAT4-enabled SQLite re-prepares a cached statement whenever a new value is bound.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

impl Db {
    pub(crate) async fn connect(url: &str) -> Result<Db> {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(std::time::Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(pg_err)?;
            return Ok(Db::Pg(pool));
        }
        let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        let path = rest.split('?').next().unwrap_or(rest).to_string();
        let writer = open_sqlite(&path).map_err(sqlite_err)?;
        // Checkpoints copy the WAL back into the database file and fsync it. Run inline (SQLite's
        // default, every 1000 pages) that stalls whichever request's commit crosses the mark;
        // a background thread does it instead, once a second, on its own connection.
        writer.pragma_update(None, "wal_autocheckpoint", 0).map_err(sqlite_err)?;
        let checkpointer = open_sqlite(&path).map_err(sqlite_err)?;
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    if let Err(e) = checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            })
            .map_err(|e| StoreError::Db(e.to_string()))?;
        let readers = (0..4).map(|_| open_sqlite(&path).map(Mutex::new)).collect::<rusqlite::Result<Vec<_>>>().map_err(sqlite_err)?;
        Ok(Db::Sqlite { writer: Mutex::new(writer), readers, next: AtomicUsize::new(0) })
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Db::Pg(_))
    }

    /// A connection for reading.
    pub(crate) async fn read(&self) -> Result<Conn<'_>> {
        match self {
            Db::Sqlite { readers, next, .. } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % readers.len();
                Ok(Conn::Sqlite(readers[i].lock().await))
            }
            Db::Pg(pool) => Ok(Conn::Pg(pool.acquire().await.map_err(pg_err)?)),
        }
    }

    /// A connection for writing (on SQLite: the one writer, queued in-process).
    pub(crate) async fn write(&self) -> Result<Conn<'_>> {
        match self {
            Db::Sqlite { writer, .. } => Ok(Conn::Sqlite(writer.lock().await)),
            Db::Pg(pool) => Ok(Conn::Pg(pool.acquire().await.map_err(pg_err)?)),
        }
    }

    /// A connection inside a new transaction. On SQLite a transaction left open by a cancelled
    /// request is rolled back first, for the same guarantee.
    pub(crate) async fn transaction(&self) -> Result<Conn<'_>> {
        match self {
            Db::Sqlite { writer, .. } => {
                let mut conn = Conn::Sqlite(writer.lock().await);
                conn.begin().await?;
                Ok(conn)
            }
            Db::Pg(pool) => Ok(Conn::PgTx(pool.begin().await.map_err(pg_err)?)),
        }
    }

    pub(crate) async fn close(&self) {
        if let Db::Pg(pool) = self {
            pool.close().await;
        }
    }
}

fn pg_query<'q>(sql: &str, params: &[P<'q>]) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for p in params {
        q = match *p {
            P::I(i) => q.bind(i),
            P::S(s) => q.bind(s),
            P::OS(s) => q.bind(s),
        };
    }
    q
}

fn pg_row(r: &PgRow) -> Result<Row> {
    let mut cols = Vec::with_capacity(r.columns().len());
    for (i, c) in r.columns().iter().enumerate() {
        let v = match c.type_info().name() {
            "INT8" => r.try_get::<Option<i64>, _>(i).map_err(pg_err)?.map_or(V::Null, V::Int),
            "INT4" => r.try_get::<Option<i32>, _>(i).map_err(pg_err)?.map_or(V::Null, |n| V::Int(i64::from(n))),
            "INT2" => r.try_get::<Option<i16>, _>(i).map_err(pg_err)?.map_or(V::Null, |n| V::Int(i64::from(n))),
            "VOID" => V::Null,
            _ => r.try_get::<Option<String>, _>(i).map_err(pg_err)?.map_or(V::Null, V::Text),
        };
        cols.push((c.name().to_string(), v));
    }
    Ok(Row(cols))
}

/// Run a statement without parameters or rows (transaction control) from the statement cache.
fn sqlite_step(c: &rusqlite::Connection, sql: &str) -> Result<()> {
    c.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ()).map_err(sqlite_err)
}

fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

fn sqlite_rows(conn: &rusqlite::Connection, sql: &str, params: &[P<'_>], limit: Option<usize>) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(&sqlite_sql(sql))?;
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut cols = Vec::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            let v = match r.get_ref(i)? {
                ValueRef::Null => V::Null,
                ValueRef::Integer(n) => V::Int(n),
                ValueRef::Text(t) => V::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Real(f) => V::Int(f as i64),
                ValueRef::Blob(b) => V::Text(String::from_utf8_lossy(b).into_owned()),
            };
            cols.push((n.clone(), v));
        }
        out.push(Row(cols));
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    Ok(out)
}

impl Conn<'_> {
    /// All rows.
    pub(crate) async fn all(&mut self, sql: &str, params: &[P<'_>]) -> Result<Vec<Row>> {
        match self {
            Conn::Sqlite(c) => sqlite_rows(c, sql, params, None).map_err(sqlite_err),
            Conn::Pg(c) => pg_query(sql, params).fetch_all(&mut **c).await.map_err(pg_err)?.iter().map(pg_row).collect(),
            Conn::PgTx(c) => pg_query(sql, params).fetch_all(&mut **c).await.map_err(pg_err)?.iter().map(pg_row).collect(),
        }
    }

    /// The first row, if any (also for `UPDATE ... RETURNING`, which must run to completion).
    pub(crate) async fn opt(&mut self, sql: &str, params: &[P<'_>]) -> Result<Option<Row>> {
        match self {
            Conn::Sqlite(c) => Ok(sqlite_rows(c, sql, params, None).map_err(sqlite_err)?.into_iter().next()),
            Conn::Pg(c) => pg_query(sql, params).fetch_optional(&mut **c).await.map_err(pg_err)?.as_ref().map(pg_row).transpose(),
            Conn::PgTx(c) => pg_query(sql, params).fetch_optional(&mut **c).await.map_err(pg_err)?.as_ref().map(pg_row).transpose(),
        }
    }

    /// Run a statement; returns the number of rows changed.
    pub(crate) async fn exec(&mut self, sql: &str, params: &[P<'_>]) -> Result<u64> {
        match self {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(&sqlite_sql(sql)).map_err(sqlite_err)?;
                stmt.execute(rusqlite::params_from_iter(params.iter())).map(|n| n as u64).map_err(sqlite_err)
            }
            Conn::Pg(c) => Ok(pg_query(sql, params).execute(&mut **c).await.map_err(pg_err)?.rows_affected()),
            Conn::PgTx(c) => Ok(pg_query(sql, params).execute(&mut **c).await.map_err(pg_err)?.rows_affected()),
        }
    }

    /// Open a write transaction on SQLite's writer (from [`Db::write`]). A transaction left
    /// open by a cancelled request is rolled back first. The transaction statements are
    /// prepared once and cached like any other: parsing them was a measurable share of a
    /// one-hash signHash.
    pub(crate) async fn begin(&mut self) -> Result<()> {
        match self {
            Conn::Sqlite(c) => {
                if !c.is_autocommit() {
                    sqlite_step(c, "ROLLBACK")?;
                }
                sqlite_step(c, "BEGIN IMMEDIATE")
            }
            Conn::Pg(_) | Conn::PgTx(_) => Err(StoreError::Db("begin() is for the SQLite writer".into())),
        }
    }

    /// Commit a transaction from [`Db::transaction`].
    pub(crate) async fn commit(mut self) -> Result<()> {
        match self {
            Conn::PgTx(t) => t.commit().await.map_err(pg_err),
            _ => self.commit_open().await,
        }
    }

    /// Commit the transaction open on this SQLite connection, keeping the connection.
    pub(crate) async fn commit_open(&mut self) -> Result<()> {
        match self {
            Conn::Sqlite(c) => sqlite_step(c, "COMMIT"),
            Conn::PgTx(_) | Conn::Pg(_) => Ok(()),
        }
    }

    /// Roll back; errors are ignored (the transaction is void either way).
    pub(crate) async fn rollback(mut self) {
        match self {
            Conn::PgTx(t) => {
                let _ = t.rollback().await;
            }
            _ => self.rollback_open().await,
        }
    }

    /// Roll back the transaction open on this SQLite connection, keeping the connection.
    pub(crate) async fn rollback_open(&mut self) {
        if let Conn::Sqlite(c) = self
            && !c.is_autocommit()
        {
            let _ = sqlite_step(c, "ROLLBACK");
        }
    }
}
