//! A log of revocations, so that every instance can keep an in-memory view of what was
//! revoked and answer IntrospectToken without a query per call.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RevocationEvents {
    Table,
    Id,
    Kind,
    Subject,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RevocationEvents::Table)
                    .col(big_pk_auto(RevocationEvents::Id))
                    // "session" (a sid), "token" (a jti), "client" (a client_id: disabled).
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
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RevocationEvents::Table).to_owned())
            .await
    }
}
