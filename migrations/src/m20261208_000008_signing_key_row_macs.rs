//! A MAC on every signing-key row (issue 15 point 6): whoever can write to the database but
//! does not hold TESSERA_MASTER_KEY can no longer add a key, bring a retired one back or move a
//! key's lifetimes. The first instance of this release to start gives the rows of earlier
//! releases their MAC (and seals their secret halves bound to their kid), once.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    RowMac,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SigningKeys::Table)
                    .add_column(blob_null(SigningKeys::RowMac))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SigningKeys::Table)
                    .drop_column(SigningKeys::RowMac)
                    .to_owned(),
            )
            .await
    }
}
