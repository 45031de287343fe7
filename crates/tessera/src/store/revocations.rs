//! The revocation log: written in the same transaction as each revocation, read by every
//! instance's in-memory view.
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    EntityTrait, QueryFilter, QueryOrder,
};

use super::entity::{clients, revocation_events};
use super::{Store, StoreError};

/// What a revocation event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationKind {
    /// A session ended: every token carrying its sid.
    Session,
    /// One access token (by jti), revoked alone.
    Token,
}

impl RevocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Token => "token",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "session" => Some(Self::Session),
            "token" => Some(Self::Token),
            _ => None,
        }
    }
}

/// Appends an event to the log, inside the caller's transaction.
pub(super) async fn record(
    conn: &impl ConnectionTrait,
    kind: RevocationKind,
    subject: &str,
    at: i64,
) -> Result<(), StoreError> {
    revocation_events::ActiveModel {
        id: NotSet,
        kind: Set(kind.as_str().to_owned()),
        subject: Set(subject.to_owned()),
        at: Set(at),
    }
    .insert(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Events stamped at or after `since`, oldest first.
    pub async fn revocation_events_since(
        &self,
        since: i64,
    ) -> Result<Vec<revocation_events::Model>, StoreError> {
        Ok(revocation_events::Entity::find()
            .filter(revocation_events::Column::At.gte(since))
            .order_by_asc(revocation_events::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// The ids of every disabled client.
    pub async fn disabled_client_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(clients::Entity::find()
            .filter(clients::Column::DisabledAt.is_not_null())
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| c.client_id)
            .collect())
    }
}
