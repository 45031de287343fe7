//! What a refresh within the reuse grace needs (SPEC §2, issue 15 point 4): a spent refresh
//! token points at the refresh token its spending issued (`successor_hash`), and each refresh
//! token knows the access token issued beside it (`access_jti`, `access_expires_at`), so that a
//! retried refresh can replace that pair and revoke its access token. A refresh token replaced
//! that way is marked (`replaced_at`): only someone other than the client can present it later.
//!
//! Nullable columns, added in place: instances of the previous release keep working beside
//! this schema (they leave the columns empty, and a token without them is simply not reissued).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    SuccessorHash,
    AccessJti,
    AccessExpiresAt,
    ReplacedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One change per statement: SQLite alters one thing at a time.
        for column in [
            string_len_null(RefreshTokens::SuccessorHash, 64),
            string_len_null(RefreshTokens::AccessJti, 36),
            big_integer_null(RefreshTokens::AccessExpiresAt),
            big_integer_null(RefreshTokens::ReplacedAt),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(RefreshTokens::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            RefreshTokens::ReplacedAt,
            RefreshTokens::AccessExpiresAt,
            RefreshTokens::AccessJti,
            RefreshTokens::SuccessorHash,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(RefreshTokens::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
