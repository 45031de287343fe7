//! Queries on signing keys.
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait, sea_query::Expr,
};

use async_trait::async_trait;

use super::Store;
use super::entity::signing_keys;
use crate::domain::repository::{KeyRepository, RepositoryError, SigningKeyRecord};

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

    /// Installs `key` as the signing key: every older key stops signing now and retires at
    /// `retire_at` (unless it was set to retire earlier). `Conflict` when a
    /// concurrent rotation installed this generation first.
    async fn rotate_signing_key(
        &self,
        key: SigningKeyRecord,
        now: i64,
        retire_at: i64,
    ) -> Result<(), RepositoryError> {
        let _write = self.write_guard().await;
        let txn = self.db.begin().await?;
        let generation = key.generation;
        signing_keys::ActiveModel::from(signing_keys::Model::from(key))
            .insert(&txn)
            .await?;
        signing_keys::Entity::update_many()
            .col_expr(signing_keys::Column::SupersededAt, Expr::value(now))
            .filter(signing_keys::Column::Generation.lt(generation))
            .filter(signing_keys::Column::SupersededAt.is_null())
            .exec(&txn)
            .await?;
        signing_keys::Entity::update_many()
            .col_expr(signing_keys::Column::RetireAt, Expr::value(retire_at))
            .filter(signing_keys::Column::Generation.lt(generation))
            .filter(
                signing_keys::Column::RetireAt
                    .is_null()
                    .or(signing_keys::Column::RetireAt.gt(retire_at)),
            )
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Moves a key's retirement later, never earlier.
    async fn extend_key_retirement(
        &self,
        kid: &str,
        retire_at: i64,
    ) -> Result<(), RepositoryError> {
        let _write = self.write_guard().await;
        signing_keys::Entity::update_many()
            .col_expr(signing_keys::Column::RetireAt, Expr::value(retire_at))
            .filter(signing_keys::Column::Kid.eq(kid))
            .filter(signing_keys::Column::RetireAt.lt(retire_at))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
