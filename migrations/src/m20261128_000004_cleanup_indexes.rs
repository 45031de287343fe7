//! Indexes for the background clean-up: it looks for sessions that ended or expired, and for
//! throttle counters left idle, every minute on every instance.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    ExpiresAt,
    EndedAt,
}

#[derive(DeriveIden)]
enum LoginThrottles {
    Table,
    UpdatedAt,
}

const INDEXES: [&str; 3] = [
    "idx_sessions_expires_at",
    "idx_sessions_ended_at",
    "idx_login_throttles_updated_at",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEXES[0])
                    .table(Sessions::Table)
                    .col(Sessions::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEXES[1])
                    .table(Sessions::Table)
                    .col(Sessions::EndedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEXES[2])
                    .table(LoginThrottles::Table)
                    .col(LoginThrottles::UpdatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Sessions::Table.into_iden(),
            Sessions::Table.into_iden(),
            LoginThrottles::Table.into_iden(),
        ];
        for (name, table) in INDEXES.into_iter().zip(tables) {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
