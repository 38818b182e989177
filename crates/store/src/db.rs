//! The database handle: one SQLite or PostgreSQL pool chosen from a URL, and the embedded migrations.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migrate, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::Error;

/// Migrations are compiled into the binary so a deployment never needs the source tree. One folder per
/// database because the dialects differ in types and later in indexes and functions.
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long an SQLite connection waits for another writer before giving up with "database is locked".
/// Writes here are single short statements, so a few seconds covers any honest contention.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite serialises writers anyway; a few connections let readers proceed in WAL mode.
const SQLITE_MAX_CONNECTIONS: u32 = 4;
const POSTGRES_MAX_CONNECTIONS: u32 = 10;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same query-building expression against whichever pool `$db` (a [`Db`]) has. For
/// repositories whose SQL is the same in both dialects. The two arms are
/// textually identical; only the types differ, which is why this is a macro and not a function.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A connection pool over SQLite or PostgreSQL. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct Db {
    pub(crate) pool: Pool,
    /// SQLite files only: one connection of its own for the callback inbox's writes (the group commit,
    /// the dispatch worker's claims and settles). SQLite has one write lock per file; writers that meet
    /// on it wait in SQLite's busy handler, which sleeps 1, 2, 5, 10... ms between tries, so an
    /// acknowledgement could wait out a sleep long after the lock was free. Through one connection the
    /// inbox's writers queue in the pool instead, in order, and each gets the lock the moment the one
    /// before it commits.
    pub(crate) inbox_writer: Option<SqlitePool>,
}

// Written by hand: the pools' own Debug prints their connect options, which include the password.
impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// One migration applied by [`Db::migrate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: i64,
    pub description: String,
}

/// What [`Db::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub backend: Backend,
    /// Migrations applied by this call, oldest first. Empty when the schema was already current.
    pub applied: Vec<AppliedMigration>,
    /// How many embedded migrations the database now has in total.
    pub total: usize,
}

impl Db {
    /// Open a pool from a URL: `sqlite://PATH` (file and parent directory are created if missing),
    /// `sqlite::memory:` (one private in-memory database), or `postgres://...` / `postgresql://...`.
    pub async fn connect(url: &str) -> Result<Db, Error> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Self::connect_sqlite(url).await,
            "postgres" | "postgresql" => Self::connect_postgres(url).await,
            other => Err(Error::UnsupportedUrl {
                scheme: other.to_owned(),
            }),
        }
    }

    async fn connect_sqlite(url: &str) -> Result<Db, Error> {
        let backend = Backend::Sqlite;
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::InvalidUrl {
                backend,
                reason: e.to_string(),
            })?
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        if is_sqlite_memory(url) {
            // An in-memory database lives only as long as a connection to it, and each connection made
            // from these options could see its own copy: keep exactly one connection, forever (so the
            // inbox has no writer connection of its own either).
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(|source| Error::Connect { backend, source })?;
            return Ok(Db {
                pool: Pool::Sqlite(pool),
                inbox_writer: None,
            });
        }
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            create_dir(dir)?;
        }
        // WAL lets readers run beside the single writer; NORMAL sync is durable across application
        // crashes and is the usual pairing with WAL.
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        // No ping before handing out a connection: a file connection cannot have been dropped by a
        // peer, and sqlx's ping is a round trip to the connection's thread on every acquire, which
        // doubled the cost of each short statement of the inbox and its worker.
        let file_pool = |max| {
            SqlitePoolOptions::new()
                .max_connections(max)
                .test_before_acquire(false)
                .acquire_timeout(ACQUIRE_TIMEOUT)
        };
        let pool = file_pool(SQLITE_MAX_CONNECTIONS)
            .connect_with(options.clone())
            .await
            .map_err(|source| Error::Connect { backend, source })?;
        Ok(Db {
            pool: Pool::Sqlite(pool),
            inbox_writer: Some(file_pool(1).connect_lazy_with(options)),
        })
    }

    async fn connect_postgres(url: &str) -> Result<Db, Error> {
        let backend = Backend::Postgres;
        let options = PgConnectOptions::from_str(url).map_err(|e| Error::InvalidUrl {
            backend,
            reason: e.to_string(),
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(POSTGRES_MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| Error::Connect { backend, source })?;
        Ok(Db {
            pool: Pool::Postgres(pool),
            inbox_writer: None,
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite pool, for repositories whose SQL differs by dialect.
    pub fn sqlite(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(p) => Some(p),
            Pool::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, for repositories whose SQL differs by dialect.
    pub fn postgres(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }

    /// Apply every embedded migration not yet applied, and say which ones ran. Safe to call on every
    /// start and from several replicas at once (sqlx takes an advisory lock on PostgreSQL; SQLite
    /// serialises writers).
    pub async fn migrate(&self) -> Result<MigrationReport, Error> {
        match &self.pool {
            Pool::Sqlite(pool) => run_migrator(&SQLITE_MIGRATOR, pool, Backend::Sqlite).await,
            Pool::Postgres(pool) => run_migrator(&POSTGRES_MIGRATOR, pool, Backend::Postgres).await,
        }
    }

    /// Close every connection. Waits for connections in use to be returned.
    pub async fn close(&self) {
        if let Some(w) = &self.inbox_writer {
            w.close().await;
        }
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

async fn run_migrator<DB>(
    migrator: &Migrator,
    pool: &sqlx::Pool<DB>,
    backend: Backend,
) -> Result<MigrationReport, Error>
where
    DB: sqlx::Database,
    DB::Connection: Migrate,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let migrate_err = |source| Error::Migrate { backend, source };
    // One connection holds the migration lock (an advisory lock on PostgreSQL, re-entrant per session;
    // a no-op on SQLite) across reading what is already applied, creating the bookkeeping table and
    // running the migrator, so replicas or test processes migrating one database at the same moment
    // cannot race on `CREATE TABLE _sqlx_migrations` and the report names exactly what this call added.
    let mut conn = pool
        .acquire()
        .await
        .map_err(|source| Error::Connect { backend, source })?;
    conn.lock().await.map_err(migrate_err)?;
    let result = async {
        conn.ensure_migrations_table().await?;
        let before: Vec<i64> = conn
            .list_applied_migrations()
            .await?
            .into_iter()
            .map(|m| m.version)
            .collect();
        migrator.run_direct(&mut *conn).await?;
        Ok::<_, sqlx::migrate::MigrateError>(before)
    }
    .await;
    let unlocked = conn.unlock().await;
    let before = result.map_err(migrate_err)?;
    unlocked.map_err(migrate_err)?;
    let applied = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !before.contains(&m.version))
        .map(|m| AppliedMigration {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect();
    let total = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .count();
    Ok(MigrationReport {
        backend,
        applied,
        total,
    })
}

/// `sqlite::memory:`, `sqlite://:memory:` and `?mode=memory` all mean a database with no file.
fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::CreateDir)
}
