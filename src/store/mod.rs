//! The repository layer: every SQL query Tessera makes, over sea-orm, for SQLite and PostgreSQL.
//! Errors leave as [`StoreError`], never as a gRPC status.
pub mod entity;

mod clients;
mod connect;
mod error;
mod keys;
mod sessions;

pub use connect::{Backend, connect, migrate};
pub use error::StoreError;
pub use sessions::NewSession;

use sea_orm::DatabaseConnection;

/// The database behind Tessera. Cheap to clone: it is a connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    /// Wraps an open, migrated connection pool.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The pool, for migrations and health checks.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(StoreError::from)
    }
}
