//! Tessera's schema, as sea-orm migrations. `tessera migrate` and `tessera serve` apply them.
//!
//! Times are Unix milliseconds in BIGINT columns: one representation that compares and indexes
//! the same way on SQLite and PostgreSQL.
// `MigrationTrait` is an async_trait: its `&SchemaManager` must stay elided to match.
#![allow(elided_lifetimes_in_paths)]
pub use sea_orm_migration::prelude::*;

mod m20261128_000001_create_schema;
mod m20261128_000002_revocation_events;
mod m20261128_000003_health_probes;
mod m20261128_000004_cleanup_indexes;
mod m20261207_000005_dead_schema;
mod m20261207_000006_revocation_log;
mod m20261208_000007_refresh_reissue;
mod m20261208_000008_signing_key_row_macs;
mod m20261208_000009_partial_session_indexes;

/// Every migration of the schema, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_schema::Migration),
            Box::new(m20261128_000002_revocation_events::Migration),
            Box::new(m20261128_000003_health_probes::Migration),
            Box::new(m20261128_000004_cleanup_indexes::Migration),
            Box::new(m20261207_000005_dead_schema::Migration),
            Box::new(m20261207_000006_revocation_log::Migration),
            Box::new(m20261208_000007_refresh_reissue::Migration),
            Box::new(m20261208_000008_signing_key_row_macs::Migration),
            Box::new(m20261208_000009_partial_session_indexes::Migration),
        ]
    }
}
