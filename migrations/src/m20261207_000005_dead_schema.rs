//! Drops what was written and never read (issue 10): the `revoked_tokens` table (the
//! revocation log covers revoked tokens), `clients.tokens_valid_after` and `client` revocation
//! events (instances reread disabled clients from the clients table on every poll). Renames
//! `users.tokens_valid_after` to `version`: it is the optimistic lock a login's session start
//! checks, not a time anything is compared with.
//!
//! Instances of the previous release write the dropped table and columns: stop them before
//! this runs.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    DisabledAt,
    TokensValidAfter,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    TokensValidAfter,
    Version,
}

#[derive(DeriveIden)]
enum RevokedTokens {
    Table,
    Jti,
    ClientId,
    RevokedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum RevocationEvents {
    Table,
    Kind,
}

const REVOKED_TOKENS_EXPIRES_AT: &str = "idx_revoked_tokens_expires_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// All or nothing on SQLite too (sea-orm-migration wraps only PostgreSQL's by default):
    /// a crash part-way must not leave a schema no later start can migrate.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::delete()
                    .from_table(RevocationEvents::Table)
                    .and_where(Expr::col(RevocationEvents::Kind).eq("client"))
                    .to_owned(),
            )
            .await?;
        // Its index goes with it.
        manager
            .drop_table(Table::drop().table(RevokedTokens::Table).to_owned())
            .await?;
        // One change per statement: SQLite alters one thing at a time. Neither column is
        // indexed or constrained, so SQLite (3.35 and later) drops it in place.
        manager
            .alter_table(
                Table::alter()
                    .table(Clients::Table)
                    .drop_column(Clients::TokensValidAfter)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .rename_column(Users::TokensValidAfter, Users::Version)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The deleted `client` events are not restored: there is nothing to restore, as the
        // previous release, too, rereads disabled clients from the clients table.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .rename_column(Users::Version, Users::TokensValidAfter)
                    .to_owned(),
            )
            .await?;
        // SQLite adds a NOT NULL column only with a default (which stays: every insert sets
        // the column anyway). Disabling a client set both
        // columns to the same time, and a client never disabled had 0: that restores every row.
        manager
            .alter_table(
                Table::alter()
                    .table(Clients::Table)
                    .add_column(big_integer(Clients::TokensValidAfter).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Clients::Table)
                    .value(Clients::TokensValidAfter, Expr::col(Clients::DisabledAt))
                    .and_where(Expr::col(Clients::DisabledAt).is_not_null())
                    .to_owned(),
            )
            .await?;
        // The table comes back empty: the revocation log does not hold a token's client or
        // expiry. Nothing read it, so the previous release works the same without its rows.
        manager
            .create_table(
                Table::create()
                    .table(RevokedTokens::Table)
                    .col(string_len(RevokedTokens::Jti, 64).primary_key())
                    .col(string_len(RevokedTokens::ClientId, 36))
                    .col(big_integer(RevokedTokens::RevokedAt))
                    .col(big_integer(RevokedTokens::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(REVOKED_TOKENS_EXPIRES_AT)
                    .table(RevokedTokens::Table)
                    .col(RevokedTokens::ExpiresAt)
                    .to_owned(),
            )
            .await
    }
}
