//! Queries on clients.
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait, sea_query::Expr,
};

use async_trait::async_trait;

use super::entity::{clients, sessions};
use super::records::client_of;
use super::sessions::ending_sessions;
use super::{Store, revocations};
use crate::domain::repository::{ClientRecord, ClientRepository, RepositoryError, RevocationKind};

#[async_trait]
impl ClientRepository for Store {
    /// Inserts a new client.
    async fn insert_client(&self, client: ClientRecord) -> Result<(), RepositoryError> {
        let _write = self.write_guard().await;
        clients::ActiveModel::from(clients::Model::from(client))
            .insert(&self.db)
            .await?;
        Ok(())
    }

    /// The client with this id, disabled or not.
    #[tracing::instrument(level = "debug", name = "db.find_client", skip_all)]
    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, RepositoryError> {
        Ok(clients::Entity::find_by_id(client_id.to_owned())
            .one(&self.db)
            .await?
            .and_then(client_of))
    }

    /// Every client, oldest first.
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, RepositoryError> {
        Ok(clients::Entity::find()
            .order_by_asc(clients::Column::CreatedAt)
            .order_by_asc(clients::Column::ClientId)
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(client_of)
            .collect())
    }

    /// Disables a client, ends its sessions and logs the client's revocation: every token
    /// issued to it becomes inactive on every instance within a poll. Returns false when there
    /// is no such client; a client disabled already is left as it is.
    async fn disable_client(
        &self,
        client_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, RepositoryError> {
        let _write = self.write_guard().await;
        let txn = self.db.begin().await?;
        let updated = clients::Entity::update_many()
            .col_expr(clients::Column::DisabledAt, Expr::value(now))
            .col_expr(clients::Column::UpdatedAt, Expr::value(now))
            .filter(clients::Column::ClientId.eq(client_id))
            .filter(clients::Column::DisabledAt.is_null())
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            let exists = clients::Entity::find_by_id(client_id.to_owned())
                .one(&txn)
                .await?
                .is_some();
            txn.rollback().await?;
            return Ok(exists);
        }
        ending_sessions(
            sessions::Column::ClientId.eq(client_id),
            now,
            "client_disabled",
        )
        .exec(&txn)
        .await?;
        revocations::record(&txn, RevocationKind::Client, client_id, now, expires_at).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Replaces a client's secret hash. Returns false when there is no such client.
    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: String,
        now: i64,
    ) -> Result<bool, RepositoryError> {
        let _write = self.write_guard().await;
        let updated = clients::Entity::update_many()
            .col_expr(clients::Column::SecretHash, Expr::value(secret_hash))
            .col_expr(clients::Column::SecretRotatedAt, Expr::value(now))
            .col_expr(clients::Column::UpdatedAt, Expr::value(now))
            .filter(clients::Column::ClientId.eq(client_id))
            .exec(&self.db)
            .await?;
        Ok(updated.rows_affected > 0)
    }

    async fn replace_client_secret_hash(
        &self,
        client_id: &str,
        old_hash: &str,
        new_hash: String,
    ) -> Result<(), RepositoryError> {
        let _write = self.write_guard().await;
        clients::Entity::update_many()
            .col_expr(clients::Column::SecretHash, Expr::value(new_hash))
            .filter(clients::Column::ClientId.eq(client_id))
            .filter(clients::Column::SecretHash.eq(old_hash))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The ids of every disabled client.
    async fn disabled_client_ids(&self) -> Result<Vec<String>, RepositoryError> {
        Ok(clients::Entity::find()
            .select_only()
            .column(clients::Column::ClientId)
            .filter(clients::Column::DisabledAt.is_not_null())
            .into_tuple()
            .all(&self.db)
            .await?)
    }
}
