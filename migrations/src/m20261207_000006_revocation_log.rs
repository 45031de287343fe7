//! The commit-ordered revocation log (issue 11): every revocation gets a sequence number in
//! commit order, from a one-row counter that the revoking transaction updates last (its row
//! lock makes the next revoking transaction wait for this one's commit, so sequences are
//! assigned in commit order and without gaps), and an `expires_at` after which no token it
//! covers can be active. Instances follow the log by `sequence > cursor`: no look-back window,
//! no machine's clock. One row per (kind, subject): a revocation that changes nothing writes
//! nothing.
//!
//! The events of the old time-ordered log are carried over (one per kind and subject, kept a
//! day), so that nothing revoked before the upgrade becomes active again.
use sea_orm_migration::{prelude::*, schema::*, sea_orm::ConnectionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RevocationLog {
    Table,
    Sequence,
    Kind,
    Subject,
    RevokedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum RevocationSequence {
    Table,
    Id,
    Last,
}

#[derive(DeriveIden)]
enum RevocationEvents {
    Table,
    Id,
    Kind,
    Subject,
    At,
}

/// How long an event carried over from the old log is kept: it has no expiry of its own, and
/// no token lives that long.
const CARRIED_OVER_FOR_MS: i64 = 24 * 60 * 60 * 1000;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// All or nothing on SQLite too (sea-orm-migration wraps only PostgreSQL's by default):
    /// a crash part-way must not leave a schema no later start can migrate.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RevocationLog::Table)
                    .col(big_integer(RevocationLog::Sequence).primary_key())
                    // "session" (a sid), "token" (a jti), "client" (a client_id).
                    .col(string_len(RevocationLog::Kind, 16))
                    .col(string_len(RevocationLog::Subject, 64))
                    .col(big_integer(RevocationLog::RevokedAt))
                    .col(big_integer(RevocationLog::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_revocation_log_kind_subject")
                    .table(RevocationLog::Table)
                    .col(RevocationLog::Kind)
                    .col(RevocationLog::Subject)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_revocation_log_expires_at")
                    .table(RevocationLog::Table)
                    .col(RevocationLog::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RevocationSequence::Table)
                    .col(integer(RevocationSequence::Id).primary_key())
                    .col(big_integer(RevocationSequence::Last))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "INSERT INTO revocation_log (sequence, kind, subject, revoked_at, expires_at) \
             SELECT ROW_NUMBER() OVER (ORDER BY MIN(id)), kind, subject, MAX(at), \
                    MAX(at) + {CARRIED_OVER_FOR_MS} \
             FROM revocation_events GROUP BY kind, subject"
        ))
        .await?;
        db.execute_unprepared(
            "INSERT INTO revocation_sequence (id, last) \
             SELECT 1, COALESCE(MAX(sequence), 0) FROM revocation_log",
        )
        .await?;
        manager
            .drop_table(Table::drop().table(RevocationEvents::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RevocationEvents::Table)
                    .col(big_pk_auto(RevocationEvents::Id))
                    .col(string_len(RevocationEvents::Kind, 16))
                    .col(string_len(RevocationEvents::Subject, 64))
                    .col(big_integer(RevocationEvents::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_revocation_events_at")
                    .table(RevocationEvents::Table)
                    .col(RevocationEvents::At)
                    .to_owned(),
            )
            .await?;
        // The old log knows no client events (instances reread disabled clients).
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO revocation_events (kind, subject, at) \
                 SELECT kind, subject, revoked_at FROM revocation_log \
                 WHERE kind <> 'client' ORDER BY sequence",
            )
            .await?;
        manager
            .drop_table(Table::drop().table(RevocationSequence::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RevocationLog::Table).to_owned())
            .await
    }
}
