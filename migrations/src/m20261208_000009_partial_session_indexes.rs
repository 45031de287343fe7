//! Two indexes on sessions hold only the rows they are searched for: a user's sessions (not
//! those of integration clients, which have no user) and ended sessions (not the live ones).
//! An index entry of a row no query looks for is only a page to write at every session start:
//! with both, an integration session wrote two more index pages than it needed.
//!
//! `user_id = ?` and `ended_at <= ?` imply `IS NOT NULL`, so SQLite and PostgreSQL use the
//! partial indexes for the queries the full ones served.
use sea_orm_migration::{prelude::*, sea_orm::ConnectionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (full index it replaces, partial index, column).
const INDEXES: [(&str, &str, &str); 2] = [
    ("idx_sessions_user_id", "idx_sessions_of_users", "user_id"),
    ("idx_sessions_ended_at", "idx_sessions_ended", "ended_at"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (full, partial, column) in INDEXES {
            db.execute_unprepared(&format!(
                "CREATE INDEX {partial} ON sessions ({column}) WHERE {column} IS NOT NULL"
            ))
            .await?;
            db.execute_unprepared(&format!("DROP INDEX {full}")).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (full, partial, column) in INDEXES {
            db.execute_unprepared(&format!("CREATE INDEX {full} ON sessions ({column})"))
                .await?;
            db.execute_unprepared(&format!("DROP INDEX {partial}"))
                .await?;
        }
        Ok(())
    }
}
