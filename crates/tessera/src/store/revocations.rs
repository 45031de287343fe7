//! The revocation log: written in the same transaction as each revocation, read by every
//! instance's in-memory view.
use async_trait::async_trait;
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    EntityTrait, QueryFilter, QueryOrder,
};

use super::entity::revocation_events;
use super::records::{event_of, kind_text};
use super::{Store, StoreError};
use crate::domain::repository::{RepositoryError, RevocationEvent, RevocationKind, RevocationLog};

/// Appends an event to the log, inside the caller's transaction.
pub(super) async fn record(
    conn: &impl ConnectionTrait,
    kind: RevocationKind,
    subject: &str,
    at: i64,
) -> Result<(), StoreError> {
    revocation_events::ActiveModel {
        id: NotSet,
        kind: Set(kind_text(kind).to_owned()),
        subject: Set(subject.to_owned()),
        at: Set(at),
    }
    .insert(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl RevocationLog for Store {
    /// Events stamped at or after `since`, oldest first.
    async fn revocation_events_since(
        &self,
        since: i64,
    ) -> Result<Vec<RevocationEvent>, RepositoryError> {
        Ok(revocation_events::Entity::find()
            .filter(revocation_events::Column::At.gte(since))
            .order_by_asc(revocation_events::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(event_of)
            .collect())
    }
}
