//! The revocation log, in commit order. A revoking transaction appends its event last: it
//! takes the next sequence from the one-row counter `revocation_sequence` (an UPDATE, whose row
//! lock makes every other revoking transaction wait until this one commits or rolls back), so
//! sequences are assigned in commit order and without gaps, on SQLite and PostgreSQL alike.
//! Followers read `sequence > cursor` and can miss nothing, whatever the clocks say and
//! however late a transaction commits.
use async_trait::async_trait;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, TransactionTrait,
};

use super::entity::revocation_log;
use super::records::{event_of, kind_text};
use super::{Store, StoreError};
use crate::domain::repository::{
    LiveRevocations, LogPage, RepositoryError, RevocationKind, RevocationLog,
};

/// Appends an event to the log inside the caller's transaction, as its last write; returns
/// the event's sequence.
pub(super) async fn record(
    conn: &impl ConnectionTrait,
    kind: RevocationKind,
    subject: &str,
    revoked_at: i64,
    expires_at: i64,
) -> Result<u64, StoreError> {
    let backend = conn.get_database_backend();
    let next = conn
        .query_one_raw(Statement::from_string(
            backend,
            "UPDATE revocation_sequence SET last = last + 1 WHERE id = 1 RETURNING last",
        ))
        .await?
        .ok_or_else(|| {
            StoreError::Other(sea_orm::DbErr::RecordNotFound("revocation_sequence".into()))
        })?;
    let sequence: i64 = next.try_get("", "last")?;
    revocation_log::ActiveModel {
        sequence: Set(sequence),
        kind: Set(kind_text(kind).to_owned()),
        subject: Set(subject.to_owned()),
        revoked_at: Set(revoked_at),
        expires_at: Set(expires_at),
    }
    .insert(conn)
    .await?;
    Ok(u64::try_from(sequence).unwrap_or_default())
}

/// The sequence of the last committed event (0 before the first).
async fn head(conn: &impl ConnectionTrait) -> Result<i64, StoreError> {
    Ok(conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT last FROM revocation_sequence WHERE id = 1",
        ))
        .await?
        .map(|row| row.try_get("", "last"))
        .transpose()?
        .unwrap_or_default())
}

impl Store {
    /// Logs a revocation that needs no other write (a token revoked alone), unless the log
    /// holds it already. The event's sequence, or `None` when nothing was written.
    pub(super) async fn record_once(
        &self,
        kind: RevocationKind,
        subject: &str,
        revoked_at: i64,
        expires_at: i64,
    ) -> Result<Option<u64>, StoreError> {
        if self.is_logged(kind, subject).await? {
            return Ok(None);
        }
        let _write = self.write_guard().await;
        let txn = self.db.begin().await?;
        match record(&txn, kind, subject, revoked_at, expires_at).await {
            Ok(sequence) => {
                txn.commit().await?;
                Ok(Some(sequence))
            }
            // A concurrent call logged it first (the unique kind and subject refused ours).
            Err(StoreError::Conflict(_)) => {
                txn.rollback().await?;
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    async fn is_logged(&self, kind: RevocationKind, subject: &str) -> Result<bool, StoreError> {
        Ok(revocation_log::Entity::find()
            .select_only()
            .column(revocation_log::Column::Sequence)
            .filter(revocation_log::Column::Kind.eq(kind_text(kind)))
            .filter(revocation_log::Column::Subject.eq(subject))
            .into_tuple::<i64>()
            .one(&self.db)
            .await?
            .is_some())
    }
}

#[async_trait]
impl RevocationLog for Store {
    async fn revocations_after(&self, after: u64, limit: u64) -> Result<LogPage, RepositoryError> {
        let rows = revocation_log::Entity::find()
            .filter(revocation_log::Column::Sequence.gt(i64::try_from(after).unwrap_or(i64::MAX)))
            .order_by_asc(revocation_log::Column::Sequence)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(LogPage {
            rows: u64::try_from(rows.len()).unwrap_or(u64::MAX),
            last_sequence: rows.last().and_then(|row| u64::try_from(row.sequence).ok()),
            events: rows.into_iter().filter_map(event_of).collect(),
        })
    }

    async fn log_head(&self) -> Result<u64, RepositoryError> {
        Ok(u64::try_from(head(&self.db).await?).unwrap_or_default())
    }

    async fn live_revocations(&self, now: i64) -> Result<LiveRevocations, RepositoryError> {
        // The head first: every event at or below it is committed, so the events read next
        // (up to the head) are all of them.
        let txn = self.db.begin().await?;
        let head = head(&txn).await?;
        let events = revocation_log::Entity::find()
            .filter(revocation_log::Column::ExpiresAt.gt(now))
            .filter(revocation_log::Column::Sequence.lte(head))
            .order_by_asc(revocation_log::Column::Sequence)
            .all(&txn)
            .await?
            .into_iter()
            .filter_map(event_of)
            .collect();
        txn.commit().await?;
        Ok(LiveRevocations {
            events,
            head: u64::try_from(head).unwrap_or_default(),
        })
    }
}
