//! Opening the database: SQLite with WAL, a busy timeout and foreign keys; or PostgreSQL.
use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, sqlx};
use tessera_migration::{Migrator, MigratorTrait};

/// Which kind of database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of a database URL, or `None` for a scheme Tessera does not speak.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// Opens a connection pool. Queries that cannot get a connection within two seconds fail as
/// unavailable instead of hanging.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(2))
        .acquire_timeout(Duration::from_secs(2))
        .max_connections(16)
        .min_connections(1)
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                // A commit that finds the write-ahead log past this many pages copies it into
                // the database file itself, fsync included. SQLite's default, 1,000 pages
                // (4 MiB), made every few dozen session starts pay for one, and copied the
                // pages that every commit touches (the ends of the indexes) again each time:
                // with 10,000, the background checkpoint (server/jobs.rs) does the copying,
                // each page once a second, and commits seldom wait for it.
                .pragma("wal_autocheckpoint", "10000")
                // A log that grew past this is cut back to it once checkpointed.
                .pragma("journal_size_limit", "67108864")
        });
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if !in_memory {
        // A write that failed half-way (a disk I/O error, a read-only file) can leave a
        // connection inside a transaction it could not roll back, holding SQLite's write lock
        // for as long as it sits in the pool: every other write would then fail "database is
        // locked". The pool pings a connection before handing it out (which also runs any
        // rollback queued by a dropped transaction); one still in a transaction after that is
        // closed instead, which releases the lock.
        //
        // And SQLite opens a connection read-only, for good, when the file is write-protected
        // at that moment: once a write has failed on a read-only file, connections opened
        // before that failure are closed rather than reused, so that the pool heals when the
        // file is writable again.
        //
        // (Not for an in-memory database: its one connection is the database.)
        options.map_sqlx_sqlite_before_acquire(|conn, meta| {
            Box::pin(async move {
                use sqlx::Connection;
                Ok(!conn.is_in_transaction() && !opened_before_a_read_only_error(meta.age))
            })
        });
    }
    clock_origin();
    if in_memory {
        // Every connection to an in-memory database is a database of its own: keep exactly
        // one, for good.
        options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    }
    Database::connect(options).await
}

/// `postgres://u@h:5432/test?x=y` with the database name replaced (for tools and tests that
/// make a database of their own through an administrative URL).
pub fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

/// When a SQLite write last failed on a read-only file: milliseconds since [`clock_origin`],
/// plus one (zero: never).
static READ_ONLY_ERROR_AT: AtomicU64 = AtomicU64::new(0);

fn clock_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Records that a SQLite write failed because the file is read-only.
pub(super) fn note_read_only_error() {
    let now = clock_origin().elapsed().as_millis() as u64;
    READ_ONLY_ERROR_AT.store(now + 1, Ordering::Relaxed);
}

/// Whether a connection of this age was opened before the last read-only error.
fn opened_before_a_read_only_error(age: Duration) -> bool {
    let error_at = READ_ONLY_ERROR_AT.load(Ordering::Relaxed);
    let opened_at = clock_origin().elapsed().saturating_sub(age).as_millis() as u64;
    error_at != 0 && opened_at < error_at
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}
