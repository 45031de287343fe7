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
        // Both new indexes first, both drops last: on PostgreSQL a DROP INDEX locks the table
        // until the migration's transaction commits, which must not wait for an index build.
        // IF [NOT] EXISTS: SQLite runs this outside a transaction, and a start cut short
        // half-way must be able to run it again.
        for (_, partial, column) in INDEXES {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {partial} ON sessions ({column}) \
                 WHERE {column} IS NOT NULL"
            ))
            .await?;
        }
        for (full, _, _) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {full}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (full, _, column) in INDEXES {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {full} ON sessions ({column})"
            ))
            .await?;
        }
        for (_, partial, _) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {partial}"))
                .await?;
        }
        Ok(())
    }
}
