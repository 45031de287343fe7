//! Queries on signing keys.
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait, sea_query::Expr,
};

use async_trait::async_trait;

use super::entity::signing_keys;
use super::{Store, StoreError};
use crate::domain::repository::{KeyRepository, KeyUpdate, RepositoryError, SigningKeyRecord};

#[async_trait]
impl KeyRepository for Store {
    /// Every signing key, newest generation first.
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, RepositoryError> {
        Ok(signing_keys::Entity::find()
            .order_by_desc(signing_keys::Column::Generation)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Inserts a key. `Conflict` when another instance installed a key of the same generation
    /// first.
    async fn insert_signing_key(&self, key: SigningKeyRecord) -> Result<(), RepositoryError> {
        let _write = self.write_guard().await;
        signing_keys::ActiveModel::from(signing_keys::Model::from(key))
            .insert(&self.db)
            .await?;
        Ok(())
    }

    /// The generation of the newest key, if any: a cheap check for a rotation elsewhere.
    async fn newest_key_generation(&self) -> Result<Option<i64>, RepositoryError> {
        Ok(signing_keys::Entity::find()
            .select_only()
            .column(signing_keys::Column::Generation)
            .order_by_desc(signing_keys::Column::Generation)
            .limit(1)
            .into_tuple::<i64>()
            .one(&self.db)
            .await?)
    }

    /// Installs `key` as the signing key and applies the older keys' updates, all or nothing.
    async fn rotate_signing_key(
        &self,
        key: SigningKeyRecord,
        older: Vec<KeyUpdate>,
    ) -> Result<(), RepositoryError> {
        let _write = self.write_guard().await;
        let txn = self.db.begin().await?;
        signing_keys::ActiveModel::from(signing_keys::Model::from(key))
            .insert(&txn)
            .await?;
        for update in older {
            let kid = update.key.kid.clone();
            if !apply(&txn, update).await? {
                txn.rollback().await?;
                return Err(RepositoryError::Conflict(anyhow::anyhow!(
                    "signing key {kid} changed during the rotation"
                )));
            }
        }
        txn.commit().await?;
        Ok(())
    }

    async fn update_signing_key(&self, update: KeyUpdate) -> Result<bool, RepositoryError> {
        let _write = self.write_guard().await;
        Ok(apply(&self.db, update).await?)
    }
}

/// Writes a row's mutable columns if the row still carries the expected MAC.
async fn apply(conn: &impl ConnectionTrait, update: KeyUpdate) -> Result<bool, StoreError> {
    let key = update.key;
    let unchanged = match update.expected_mac {
        Some(mac) => signing_keys::Column::RowMac.eq(mac),
        None => signing_keys::Column::RowMac.is_null(),
    };
    let written = signing_keys::Entity::update_many()
        .col_expr(
            signing_keys::Column::SealedSecretKey,
            Expr::value(key.sealed_secret_key),
        )
        .col_expr(
            signing_keys::Column::SupersededAt,
            Expr::value(key.superseded_at),
        )
        .col_expr(signing_keys::Column::RetireAt, Expr::value(key.retire_at))
        .col_expr(signing_keys::Column::RowMac, Expr::value(key.row_mac))
        .filter(signing_keys::Column::Kid.eq(key.kid))
        .filter(unchanged)
        .exec(conn)
        .await?;
    Ok(written.rows_affected == 1)
}
