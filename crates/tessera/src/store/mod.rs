//! The repository layer: every SQL query Tessera makes, over sea-orm, for SQLite and PostgreSQL.
//! [`Store`] implements the domain's repository traits (`domain::repository`); what it adds of
//! its own (health probes, table sizes) leaves as [`StoreError`], never as a gRPC status.
pub mod entity;

mod cleanup;
mod clients;
mod connect;
mod error;
mod keys;
mod records;
mod revocations;
mod sessions;
mod throttle;
mod users;

pub use cleanup::TableSizes;
pub use connect::{Backend, connect, migrate, with_database_name};
pub use error::StoreError;

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbBackend};
use tokio::sync::{Mutex, MutexGuard};

/// The database behind Tessera. Cheap to clone: it is a connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite allows one writer at a time: writes from this process queue here instead of
    /// racing for the file lock (which can fail fast with "database is locked" in WAL mode).
    sqlite_writer: Option<Arc<Mutex<()>>>,
    /// Sessions waiting to be started, committed many to a transaction.
    session_queue: Arc<sessions::SessionQueue>,
}

impl Store {
    /// Wraps an open, migrated connection pool.
    pub fn new(db: DatabaseConnection) -> Self {
        let sqlite_writer =
            (db.get_database_backend() == DbBackend::Sqlite).then(|| Arc::new(Mutex::new(())));
        Self {
            db,
            sqlite_writer,
            session_queue: Arc::default(),
        }
    }

    /// Held for the duration of every write.
    async fn write_guard(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.sqlite_writer {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    /// The pool, for migrations and health checks.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(StoreError::from)
    }

    /// Whether the database takes a write: one row, rewritten by every probe.
    pub async fn probe_write(&self, now: i64) -> Result<(), StoreError> {
        use sea_orm::{
            ConnectionTrait,
            sea_query::{Alias, OnConflict, Query},
        };
        let table = Alias::new("health_probes");
        let (id, probed_at) = (Alias::new("id"), Alias::new("probed_at"));
        let mut upsert = Query::insert();
        upsert
            .into_table(table)
            .columns([id.clone(), probed_at.clone()])
            .values_panic([1.into(), now.into()])
            .on_conflict(OnConflict::column(id).update_column(probed_at).to_owned());
        let _write = self.write_guard().await;
        self.db.execute(&upsert).await?;
        Ok(())
    }

    /// SQLite: copies what the write-ahead log holds into the database file, without waiting
    /// for readers or writers (a passive checkpoint), so that commits seldom pay for one
    /// themselves (see `connect`). PostgreSQL: nothing to do.
    pub async fn checkpoint_wal(&self) -> Result<(), StoreError> {
        use sea_orm::ConnectionTrait;
        if self.sqlite_writer.is_none() {
            return Ok(());
        }
        self.db
            .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await?;
        Ok(())
    }
}
