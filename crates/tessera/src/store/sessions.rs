//! Queries on sessions, refresh tokens and revocations.
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait,
    sea_query::{Expr, Query},
};

use super::entity::{refresh_tokens, revocation_log, sessions, users};
use super::records::kind_text;
use super::revocations;
use super::{Store, StoreError};
use crate::domain::repository::{
    IssuedAccess, NewSession, RefreshTokenRecord, Reissue, RepositoryError, RevocationKind,
    SessionRecord, SessionRepository,
};
use async_trait::async_trait;

/// Sessions in one transaction at most: 8 columns each stays far below SQLite's limit of
/// bound parameters per statement.
pub(super) const MAX_SESSION_BATCH: usize = 256;

/// Refresh-token rotations in one transaction at most.
pub(super) const MAX_ROTATION_BATCH: usize = 256;

/// One refresh: spend `old_hash` and store `successor`, if the old token may still be spent.
#[derive(Debug)]
pub(super) struct Rotation {
    old_hash: String,
    successor: RefreshTokenRecord,
    now: i64,
}

#[async_trait]
impl SessionRepository for Store {
    /// Starts a session and stores its first refresh token, atomically.
    /// Returns false, and stores nothing, when the user guard no longer holds.
    ///
    /// Sessions started at the same moment share one transaction (group commit).
    async fn start_session(&self, new: NewSession) -> Result<bool, RepositoryError> {
        let store = self.clone();
        Ok(self
            .session_queue
            .submit(new, move |batch| async move {
                let _write = store.write_guard().await;
                store.insert_sessions(batch).await
            })
            .await?)
    }

    /// The session with this id, ended or not.
    #[tracing::instrument(level = "debug", name = "db.find_session", skip_all)]
    async fn find_session(&self, sid: &str) -> Result<Option<SessionRecord>, RepositoryError> {
        Ok(sessions::Entity::find_by_id(sid.to_owned())
            .one(&self.db)
            .await?
            .map(Into::into))
    }

    /// The refresh token with this hash, spent or not.
    #[tracing::instrument(level = "debug", name = "db.find_refresh_token", skip_all)]
    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, RepositoryError> {
        Ok(refresh_tokens::Entity::find_by_id(token_hash.to_owned())
            .one(&self.db)
            .await?
            .map(Into::into))
    }

    /// Ends a session (once: a session already ended keeps its first end, and logs nothing).
    #[tracing::instrument(level = "debug", name = "db.end_session", skip_all)]
    async fn end_session(
        &self,
        sid: &str,
        now: i64,
        reason: &str,
        expires_at: i64,
    ) -> Result<Option<u64>, RepositoryError> {
        let _write = self.write_guard().await;
        let txn = self.db.begin().await?;
        let ended = ending_sessions(sessions::Column::Sid.eq(sid), now, reason)
            .exec(&txn)
            .await?;
        if ended.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        let sequence =
            revocations::record(&txn, RevocationKind::Session, sid, now, expires_at).await?;
        txn.commit().await?;
        Ok(Some(sequence))
    }

    /// Records an access token as revoked, in the revocation log. Revoking it again writes
    /// nothing.
    #[tracing::instrument(level = "debug", name = "db.revoke_token", skip_all)]
    async fn revoke_token(
        &self,
        jti: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Option<u64>, RepositoryError> {
        Ok(self
            .record_once(RevocationKind::Token, jti, now, expires_at)
            .await?)
    }

    /// Spends refresh token `old_hash` and stores its successor, atomically: only if the old
    /// token is unspent and unexpired and its session is live. Of any number of concurrent
    /// calls for one token, exactly one returns true.
    ///
    /// On SQLite, which writes one transaction at a time, refreshes made at the same moment
    /// share one (group commit).
    #[tracing::instrument(level = "debug", name = "db.rotate_refresh_token", skip_all)]
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        successor: RefreshTokenRecord,
        now: i64,
    ) -> Result<bool, RepositoryError> {
        let rotation = Rotation {
            old_hash: old_hash.to_owned(),
            successor,
            now,
        };
        if self.sqlite_writer.is_none() {
            // PostgreSQL takes concurrent writers: a rotation in a transaction of its own holds
            // its one row lock for one round trip, where a batch would hold every lock until
            // its last UPDATE (and a refresh of the same token on another instance would wait
            // for all of them).
            let rotated = self.rotate_refresh_tokens(vec![rotation]).await?;
            return Ok(rotated.first().copied().unwrap_or(false));
        }
        let store = self.clone();
        Ok(self
            .rotation_queue
            .submit(rotation, move |batch| async move {
                let _write = store.write_guard().await;
                store.rotate_refresh_tokens(batch).await
            })
            .await?)
    }

    /// Replaces the pair a spending issued (SPEC §2's reuse grace), atomically: the replaced
    /// refresh token is spent only if it was unspent and its session is live, which also makes
    /// concurrent reissues of one pair end with one winner.
    #[tracing::instrument(level = "debug", name = "db.reissue_refresh_token", skip_all)]
    async fn reissue_refresh_token(
        &self,
        presented_hash: &str,
        replaced_hash: &str,
        replacement: RefreshTokenRecord,
        now: i64,
        revoke: Option<&IssuedAccess>,
    ) -> Result<Reissue, RepositoryError> {
        let _write = self.write_guard().await;
        let txn = self.db.begin().await?;
        let replaced = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::SpentAt, Expr::value(now))
            .col_expr(refresh_tokens::Column::ReplacedAt, Expr::value(now))
            .filter(refresh_tokens::Column::TokenHash.eq(replaced_hash))
            .filter(refresh_tokens::Column::SpentAt.is_null())
            .filter(refresh_tokens::Column::Sid.in_subquery(live_session(&replacement.sid, now)))
            .exec(&txn)
            .await?;
        let repointed = refresh_tokens::Entity::update_many()
            .col_expr(
                refresh_tokens::Column::SuccessorHash,
                Expr::value(replacement.token_hash.clone()),
            )
            .filter(refresh_tokens::Column::TokenHash.eq(presented_hash))
            .filter(refresh_tokens::Column::SuccessorHash.eq(replaced_hash))
            .exec(&txn)
            .await?;
        if replaced.rows_affected != 1 || repointed.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(Reissue::Refused);
        }
        refresh_tokens::ActiveModel::from(refresh_tokens::Model::from(replacement))
            .insert(&txn)
            .await?;
        let mut revocation = None;
        if let Some(access) = revoke {
            let logged = revocation_log::Entity::find()
                .filter(revocation_log::Column::Kind.eq(kind_text(RevocationKind::Token)))
                .filter(revocation_log::Column::Subject.eq(access.jti.as_str()))
                .count(&txn)
                .await?
                > 0;
            if !logged {
                // Last: the log's counter row is the lock every revoking transaction queues on.
                revocation = Some(
                    revocations::record(
                        &txn,
                        RevocationKind::Token,
                        &access.jti,
                        now,
                        access.expires_at,
                    )
                    .await?,
                );
            }
        }
        txn.commit().await?;
        Ok(Reissue::Replaced { revocation })
    }
}

/// The sid of a session that is live at `now`, as a subquery.
fn live_session(sid: &str, now: i64) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(sessions::Column::Sid)
        .from(sessions::Entity)
        .and_where(sessions::Column::Sid.eq(sid))
        .and_where(sessions::Column::EndedAt.is_null())
        .and_where(sessions::Column::ExpiresAt.gt(now))
        .to_owned()
}

impl Store {
    /// Spends refresh tokens and stores their successors in one transaction; a rotation whose
    /// old token may no longer be spent (spent, expired, its session over, or spent by an
    /// earlier rotation of the same batch) stores nothing. Returns, per rotation, whether it
    /// was made.
    async fn rotate_refresh_tokens(&self, batch: Vec<Rotation>) -> Result<Vec<bool>, StoreError> {
        let txn = self.db.begin().await?;
        // Old tokens in a fixed order, so that two instances' batches cannot deadlock on them.
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by(|&a, &b| batch[a].old_hash.cmp(&batch[b].old_hash));
        let mut rotated = vec![false; batch.len()];
        for i in order {
            let Rotation {
                old_hash,
                successor,
                now,
            } = &batch[i];
            let spent = refresh_tokens::Entity::update_many()
                .col_expr(refresh_tokens::Column::SpentAt, Expr::value(*now))
                .col_expr(
                    refresh_tokens::Column::SuccessorHash,
                    Expr::value(successor.token_hash.clone()),
                )
                .filter(refresh_tokens::Column::TokenHash.eq(old_hash.as_str()))
                .filter(refresh_tokens::Column::SpentAt.is_null())
                .filter(refresh_tokens::Column::ExpiresAt.gt(*now))
                .filter(refresh_tokens::Column::Sid.in_subquery(live_session(&successor.sid, *now)))
                .exec(&txn)
                .await?;
            rotated[i] = spent.rows_affected == 1;
        }
        let successors: Vec<_> = batch
            .into_iter()
            .zip(&rotated)
            .filter(|(_, rotated)| **rotated)
            .map(|(rotation, _)| {
                refresh_tokens::ActiveModel::from(refresh_tokens::Model::from(rotation.successor))
            })
            .collect();
        if !successors.is_empty() {
            refresh_tokens::Entity::insert_many(successors)
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(rotated)
    }

    /// Inserts sessions and their first refresh tokens in one transaction; a session whose
    /// user guard fails is left out. Returns, per session, whether it was started.
    async fn insert_sessions(&self, batch: Vec<NewSession>) -> Result<Vec<bool>, StoreError> {
        let txn = self.db.begin().await?;
        // Users in a fixed order, so that two instances' batches cannot deadlock on them.
        let mut guarded: Vec<(usize, &str, i64)> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, new)| {
                let user_id = new.session.user_id.as_deref()?;
                Some((i, user_id, new.user_version?))
            })
            .collect();
        guarded.sort_by(|a, b| a.1.cmp(b.1));
        let mut started = vec![true; batch.len()];
        for (i, user_id, version) in guarded {
            // Touching the user row also locks it (PostgreSQL), so a concurrent password
            // change or disable either comes first and fails this, or waits and ends this
            // session too.
            let touched = users::Entity::update_many()
                .col_expr(
                    users::Column::UpdatedAt,
                    Expr::col(users::Column::UpdatedAt),
                )
                .filter(users::Column::UserId.eq(user_id))
                .filter(users::Column::DisabledAt.is_null())
                .filter(users::Column::Version.eq(version))
                .exec(&txn)
                .await?;
            started[i] = touched.rows_affected == 1;
        }
        let (sessions, refresh_tokens): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .zip(&started)
            .filter(|(_, started)| **started)
            .map(|(new, _)| {
                (
                    sessions::ActiveModel::from(sessions::Model::from(new.session)),
                    refresh_tokens::ActiveModel::from(refresh_tokens::Model::from(
                        new.refresh_token,
                    )),
                )
            })
            .unzip();
        if !sessions.is_empty() {
            sessions::Entity::insert_many(sessions).exec(&txn).await?;
            refresh_tokens::Entity::insert_many(refresh_tokens)
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(started)
    }
}

/// The UPDATE that ends the live sessions `which` picks (a session already ended keeps its
/// first end), for the caller to run inside its transaction.
pub(super) fn ending_sessions(
    which: sea_orm::sea_query::SimpleExpr,
    now: i64,
    reason: &str,
) -> sea_orm::UpdateMany<sessions::Entity> {
    sessions::Entity::update_many()
        .col_expr(sessions::Column::EndedAt, Expr::value(now))
        .col_expr(sessions::Column::EndReason, Expr::value(reason))
        .filter(which)
        .filter(sessions::Column::EndedAt.is_null())
}
