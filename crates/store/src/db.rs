//! The two database drivers behind one small query interface.
//!
//! * SQLite runs in-process through rusqlite, called inline: a query on a page-cached database
//!   takes microseconds, less than handing it to another thread and back (which is what an
//!   async SQLite driver does for every statement, and what dominated signHash's cost). One
//!   writer connection (SQLite admits one writer at a time) and a few readers, in WAL mode.
//! * PostgreSQL runs through sqlx's native async driver.
//!
//! SQL is written once, with `$n` placeholders; for SQLite they become `?n`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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
    /// PostgreSQL arrays (`unnest($n::text[])`), for statements that carry a whole batch.
    IA(&'a [i64]),
    SA(&'a [String]),
    OSA(&'a [Option<String>]),
}

impl rusqlite::ToSql for P<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            P::I(i) => ToSqlOutput::from(*i),
            P::S(s) => ToSqlOutput::from(*s),
            P::OS(Some(s)) => ToSqlOutput::from(*s),
            P::OS(None) => ToSqlOutput::from(rusqlite::types::Null),
            P::IA(_) | P::SA(_) | P::OSA(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure("arrays are bound on PostgreSQL only".into()));
            }
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
        // Busy, and faults of the file or the disk under it: the database, not the request, is at
        // fault (503, never 500).
        use rusqlite::ErrorCode as C;
        if matches!(
            f.code,
            C::DatabaseBusy
                | C::DatabaseLocked
                | C::SystemIoFailure
                | C::DiskFull
                | C::CannotOpen
                | C::ReadOnly
                | C::FileLockingProtocolFailed
        ) {
            return StoreError::Unavailable(e.to_string());
        }
    }
    StoreError::Db(e.to_string())
}

/// The message prefix of a PostgreSQL failure that a transaction may simply run again: a
/// serialization failure or a deadlock (SQLSTATE 40001, 40P01; PostgreSQL manual, "Serialization
/// Failure Handling").
const RETRYABLE: &str = "transaction conflict: ";

/// Whether `e` is a transaction conflict that running the transaction again may resolve.
pub(crate) fn is_retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(m) if m.starts_with(RETRYABLE))
}

/// SQLSTATEs that say the database, not the request, is at fault (PostgreSQL manual, appendix A):
/// class 08 connection exception, 53 insufficient resources, 57 operator intervention (57P01
/// `admin_shutdown` is what `pg_terminate_backend` and `DROP DATABASE ... WITH (FORCE)` send),
/// 58 system error, 28 authorization (a role or password changed under the running service),
/// 3D000 the database does not exist (dropped), 55000 it does not accept connections, 55P03 a
/// lock not available, 57014 a statement cancelled, and a schema that has gone (42P01, 3F000:
/// a database recreated empty). Each is answered `503 temporarily_unavailable`, never 500.
fn pg_unavailable(code: &str) -> bool {
    ["08", "53", "57", "58", "28"].iter().any(|class| code.starts_with(class))
        || ["3D000", "55000", "55P03", "42P01", "3F000"].contains(&code)
}

fn pg_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some("23505") => StoreError::Conflict,
            Some("40001" | "40P01") => StoreError::Unavailable(format!("{RETRYABLE}{e}")),
            Some(code) if pg_unavailable(code) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Db(e.to_string()),
        },
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Db(e.to_string()),
    }
}

/// A PostgreSQL operation, bounded by the store timeout: a database that stops answering (a
/// network partition, a host gone) holds a request no longer than that, then it is answered
/// 503. sqlx closes a connection whose operation was abandoned when it returns to the pool
/// (its release ping fails or finds it mid-protocol), so the pool recovers by itself.
async fn pg_bounded<T>(timeout: Duration, f: impl Future<Output = std::result::Result<T, sqlx::Error>>) -> Result<T> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r.map_err(pg_err),
        Err(_) => Err(StoreError::Unavailable(format!("no answer from the database within {} ms", timeout.as_millis()))),
    }
}

/// How the store reaches its database.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// The longest a request waits for the database (a PostgreSQL connection from the pool, a
    /// PostgreSQL statement's answer, SQLite's lock held by another process) before it is
    /// answered `503 temporarily_unavailable`.
    pub timeout: Duration,
    /// PostgreSQL: connections in the pool.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(2), max_connections: 16 }
    }
}

/// The database.
pub(crate) enum Db {
    Sqlite { writer: Arc<Mutex<rusqlite::Connection>>, readers: Vec<Mutex<rusqlite::Connection>>, next: AtomicUsize },
    Pg(PgPool, Duration),
}

/// One connection, for a statement or a transaction. The PostgreSQL ones carry the store
/// timeout that bounds each of their statements.
pub(crate) enum Conn<'a> {
    Sqlite(MutexGuard<'a, rusqlite::Connection>),
    Pg(sqlx::pool::PoolConnection<sqlx::Postgres>, Duration),
    /// sqlx rolls an unfinished transaction back when it is dropped, so a request cancelled
    /// mid-transaction (client gone) cannot leave a connection inside it.
    PgTx(sqlx::Transaction<'static, sqlx::Postgres>, Duration),
}

/// SQLite's WAL is copied back and reset (`wal_checkpoint(TRUNCATE)`) once it holds this many
/// pages (16 MiB at the default 4 KiB page): see [`checkpoint_loop`].
const WAL_LIMIT_PAGES: i64 = 4096;

/// The database file, its WAL and its shared-memory index hold argon2 hashes of PINs and
/// passwords and the sealed keys: owner only (0600). A new database is created 0600 before
/// SQLite opens it, and SQLite gives the `-wal` and `-shm` files the database file's mode
/// (`robust_open` in os_unix.c); an existing one readable by others is tightened, with a
/// warning.
fn secure_sqlite_files(path: &str) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        if path.is_empty() || path == ":memory:" {
            return Ok(());
        }
        let unavailable = |what: &str, e: std::io::Error| StoreError::Unavailable(format!("{what} {path}: {e}"));
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(unavailable("cannot create the database", e)),
        }
        for file in [path.to_string(), format!("{path}-wal"), format!("{path}-shm")] {
            let Ok(meta) = std::fs::metadata(&file) else { continue };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| unavailable(&format!("{file} is readable by others (mode {mode:o}) and cannot be restricted:"), e))?;
                tracing::warn!(file = %file, was = format!("{mode:o}"), "database file was readable by others; now 0600");
            }
        }
    }
    Ok(())
}

fn open_sqlite(path: &str, timeout: Duration) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    // WAL: readers run beside the writer. NORMAL: durable across application crashes (SQLite
    // "WAL mode" docs). The busy timeout makes the admin CLI and the server wait for each other,
    // up to the store timeout.
    conn.busy_timeout(timeout)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(64);
    // Query planner stability: one plan per statement whatever the bound values. Without it a
    // STAT4-enabled SQLite re-prepares a cached statement whenever a new value is bound.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

/// Checkpoints copy the WAL back into the database file and fsync it. Run inline (SQLite's
/// default, every 1000 pages) that stalls whichever request's commit crosses the mark; this
/// thread does it instead, once a second, on its own connection. A PASSIVE checkpoint never
/// waits, but it cannot reset the WAL while readers keep using it, and under sustained load
/// they always are: the file grew without end (279 MB in a 60 s signHash run, issue 15). So
/// once the WAL holds [`WAL_LIMIT_PAGES`], the thread takes the writer (requests queue behind
/// it in-process, as for any write) and runs a TRUNCATE checkpoint, which waits for the
/// readers' current statements, copies everything back and truncates the file to zero (SQLite
/// "PRAGMA wal_checkpoint"). The WAL stays under the limit plus one second of writes.
fn checkpoint_loop(checkpointer: rusqlite::Connection, writer: std::sync::Weak<Mutex<rusqlite::Connection>>) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        // The store was dropped (a test, the admin CLI done): so is this thread.
        let Some(writer) = writer.upgrade() else { return };
        // (busy, frames in the WAL, frames checkpointed).
        let passive = checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1));
        match passive {
            Ok(frames) if frames >= WAL_LIMIT_PAGES => {
                let _writing = writer.blocking_lock();
                let started = std::time::Instant::now();
                match checkpointer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
                    Ok(0) => tracing::debug!(frames, ms = started.elapsed().as_millis() as u64, "WAL truncated"),
                    Ok(_) => tracing::debug!(frames, "WAL truncate checkpoint busy; retried in a second"),
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

impl Db {
    pub(crate) async fn connect(url: &str, options: StoreOptions) -> Result<Db> {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections.max(2))
                .acquire_timeout(options.timeout)
                // sqlx pings every connection it takes back (`return_to_pool`), so a broken one
                // is dropped there; a second ping before each use was one more round trip per
                // transaction.
                .test_before_acquire(false)
                .connect(url)
                .await
                .map_err(pg_err)?;
            return Ok(Db::Pg(pool, options.timeout));
        }
        let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        let path = rest.split('?').next().unwrap_or(rest).to_string();
        secure_sqlite_files(&path)?;
        let timeout = options.timeout;
        let writer = open_sqlite(&path, timeout).map_err(sqlite_err)?;
        writer.pragma_update(None, "wal_autocheckpoint", 0).map_err(sqlite_err)?;
        // When the WAL is reset, its file is cut back to this size (SQLite "PRAGMA
        // journal_size_limit"), so a burst does not leave a large file behind.
        writer.pragma_update(None, "journal_size_limit", WAL_LIMIT_PAGES * 4096).map_err(sqlite_err)?;
        let writer = Arc::new(Mutex::new(writer));
        let checkpointer = open_sqlite(&path, timeout).map_err(sqlite_err)?;
        let weak = Arc::downgrade(&writer);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, weak))
            .map_err(|e| StoreError::Db(e.to_string()))?;
        let readers =
            (0..4).map(|_| open_sqlite(&path, timeout).map(Mutex::new)).collect::<rusqlite::Result<Vec<_>>>().map_err(sqlite_err)?;
        Ok(Db::Sqlite { writer, readers, next: AtomicUsize::new(0) })
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Db::Pg(..))
    }

    /// A connection for reading.
    pub(crate) async fn read(&self) -> Result<Conn<'_>> {
        match self {
            Db::Sqlite { readers, next, .. } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % readers.len();
                Ok(Conn::Sqlite(readers[i].lock().await))
            }
            Db::Pg(pool, t) => Ok(Conn::Pg(pool.acquire().await.map_err(pg_err)?, *t)),
        }
    }

    /// A connection for writing (on SQLite: the one writer, queued in-process).
    pub(crate) async fn write(&self) -> Result<Conn<'_>> {
        match self {
            Db::Sqlite { writer, .. } => Ok(Conn::Sqlite(writer.lock().await)),
            Db::Pg(pool, t) => Ok(Conn::Pg(pool.acquire().await.map_err(pg_err)?, *t)),
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
            // `begin` acquires (bounded by the pool's acquire timeout) and then sends BEGIN.
            Db::Pg(pool, t) => Ok(Conn::PgTx(pg_bounded(*t, pool.begin()).await?, *t)),
        }
    }

    /// PostgreSQL: a transaction opened by `begin` (several statements without parameters, sent
    /// as one simple query: one round trip), e.g. BEGIN and a row lock.
    pub(crate) async fn transaction_with(&self, begin: &'static str) -> Result<Conn<'_>> {
        match self {
            Db::Pg(pool, t) => Ok(Conn::PgTx(pg_bounded(*t, pool.begin_with(begin)).await?, *t)),
            Db::Sqlite { .. } => Err(StoreError::Db("transaction_with() is for PostgreSQL".into())),
        }
    }

    pub(crate) async fn close(&self) {
        if let Db::Pg(pool, _) = self {
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
            P::IA(a) => q.bind(a),
            P::SA(a) => q.bind(a),
            P::OSA(a) => q.bind(a),
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
            Conn::Pg(c, t) => pg_bounded(*t, pg_query(sql, params).fetch_all(&mut **c)).await?.iter().map(pg_row).collect(),
            Conn::PgTx(c, t) => pg_bounded(*t, pg_query(sql, params).fetch_all(&mut **c)).await?.iter().map(pg_row).collect(),
        }
    }

    /// The first row, if any (also for `UPDATE ... RETURNING`, which must run to completion).
    pub(crate) async fn opt(&mut self, sql: &str, params: &[P<'_>]) -> Result<Option<Row>> {
        match self {
            Conn::Sqlite(c) => Ok(sqlite_rows(c, sql, params, None).map_err(sqlite_err)?.into_iter().next()),
            Conn::Pg(c, t) => pg_bounded(*t, pg_query(sql, params).fetch_optional(&mut **c)).await?.as_ref().map(pg_row).transpose(),
            Conn::PgTx(c, t) => pg_bounded(*t, pg_query(sql, params).fetch_optional(&mut **c)).await?.as_ref().map(pg_row).transpose(),
        }
    }

    /// Run a statement; returns the number of rows changed.
    pub(crate) async fn exec(&mut self, sql: &str, params: &[P<'_>]) -> Result<u64> {
        match self {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(&sqlite_sql(sql)).map_err(sqlite_err)?;
                stmt.execute(rusqlite::params_from_iter(params.iter())).map(|n| n as u64).map_err(sqlite_err)
            }
            Conn::Pg(c, t) => Ok(pg_bounded(*t, pg_query(sql, params).execute(&mut **c)).await?.rows_affected()),
            Conn::PgTx(c, t) => Ok(pg_bounded(*t, pg_query(sql, params).execute(&mut **c)).await?.rows_affected()),
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
            Conn::Pg(..) | Conn::PgTx(..) => Err(StoreError::Db("begin() is for the SQLite writer".into())),
        }
    }

    /// Commit a transaction from [`Db::transaction`].
    pub(crate) async fn commit(mut self) -> Result<()> {
        match self {
            Conn::PgTx(t, timeout) => pg_bounded(timeout, t.commit()).await,
            _ => self.commit_open().await,
        }
    }

    /// Commit the transaction open on this SQLite connection, keeping the connection.
    pub(crate) async fn commit_open(&mut self) -> Result<()> {
        match self {
            Conn::Sqlite(c) => sqlite_step(c, "COMMIT"),
            Conn::PgTx(..) | Conn::Pg(..) => Ok(()),
        }
    }

    /// Roll back; errors are ignored (the transaction is void either way).
    pub(crate) async fn rollback(mut self) {
        match self {
            // Dropped, not awaited: sqlx queues the ROLLBACK and sends it when the connection
            // goes back to the pool. A request whose statement has just timed out is answered
            // now, not after a second wait on the same unresponsive database.
            Conn::PgTx(t, _) => drop(t),
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

/// `Store::holds_ca` on SQLite: the file opened read-only (a missing file stays missing).
pub(crate) fn sqlite_holds_ca(url: &str) -> Result<bool> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    if !std::path::Path::new(path).exists() {
        return Ok(false);
    }
    let c =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(sqlite_err)?;
    let table: bool = c
        .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ca_certs')", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    if !table {
        return Ok(false);
    }
    c.query_row("SELECT EXISTS (SELECT 1 FROM ca_certs WHERE name = 'issuing')", [], |r| r.get(0)).map_err(sqlite_err)
}
