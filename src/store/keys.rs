//! Queries on signing keys.
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder};

use super::entity::signing_keys;
use super::{Store, StoreError};

impl Store {
    /// Every signing key, newest generation first.
    pub async fn list_signing_keys(&self) -> Result<Vec<signing_keys::Model>, StoreError> {
        Ok(signing_keys::Entity::find()
            .order_by_desc(signing_keys::Column::Generation)
            .all(&self.db)
            .await?)
    }

    /// Inserts a key. [`StoreError::Conflict`] when another instance installed a key of the
    /// same generation first.
    pub async fn insert_signing_key(&self, key: signing_keys::Model) -> Result<(), StoreError> {
        let _write = self.write_guard().await;
        signing_keys::ActiveModel::from(key)
            .insert(&self.db)
            .await?;
        Ok(())
    }
}
