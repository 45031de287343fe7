//! One row each instance's health probe writes, so that a database that still answers reads
//! but refuses writes (read-only file, read-only replica after a fail-over) shows as unhealthy.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum HealthProbes {
    Table,
    Id,
    ProbedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(HealthProbes::Table)
                    .col(integer(HealthProbes::Id).primary_key())
                    .col(big_integer(HealthProbes::ProbedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(HealthProbes::Table).to_owned())
            .await
    }
}
