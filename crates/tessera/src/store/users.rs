//! Queries on users.
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, QueryFilter, TransactionTrait,
    sea_query::Expr,
};

use async_trait::async_trait;

use super::entity::{sessions, users};
use super::revocations;
use super::sessions::ending_sessions;
use super::{Store, StoreError};
use crate::domain::repository::{RepositoryError, RevocationKind, UserRecord, UserRepository};

/// How a change to a user ends the user's sessions.
struct SessionsEnding {
    now: i64,
    reason: &'static str,
    /// When the sessions' revocations can be forgotten.
    expires_at: i64,
}

#[async_trait]
impl UserRepository for Store {
    /// Inserts a user. `Conflict` when the username is taken.
    async fn insert_user(&self, user: UserRecord) -> Result<(), RepositoryError> {
        let _write = self.write_guard().await;
        users::ActiveModel::from(users::Model::from(user))
            .insert(&self.db)
            .await?;
        Ok(())
    }

    /// The user with this (normalised) username.
    #[tracing::instrument(level = "debug", name = "db.find_user_by_username", skip_all)]
    async fn find_user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, RepositoryError> {
        Ok(users::Entity::find()
            .filter(users::Column::Username.eq(username))
            .one(&self.db)
            .await?
            .map(Into::into))
    }

    /// Replaces a password hash with a stronger one of the same password (no session ends).
    /// Only if the stored hash is still `old_hash`, so a concurrent password change wins.
    #[tracing::instrument(level = "debug", name = "db.upgrade_password_hash", skip_all)]
    async fn upgrade_password_hash(
        &self,
        user_id: &str,
        old_hash: &str,
        new_hash: String,
        now: i64,
    ) -> Result<(), RepositoryError> {
        let _write = self.write_guard().await;
        users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(new_hash))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::UserId.eq(user_id))
            .filter(users::Column::PasswordHash.eq(old_hash))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Sets a new password: every session of the user ends and every earlier token becomes
    /// inactive. Returns false when there is no such user.
    async fn change_password(
        &self,
        user_id: &str,
        new_hash: String,
        now: i64,
        revocations_expire_at: i64,
    ) -> Result<bool, RepositoryError> {
        let ending = SessionsEnding {
            now,
            reason: "password_changed",
            expires_at: revocations_expire_at,
        };
        self.update_user_and_end_sessions(user_id, ending, |update| {
            update.col_expr(users::Column::PasswordHash, Expr::value(new_hash))
        })
        .await
        .map_err(Into::into)
    }

    /// Disables a user: every session ends and every earlier token becomes inactive.
    /// Returns false when there is no such user.
    async fn disable_user(
        &self,
        user_id: &str,
        now: i64,
        revocations_expire_at: i64,
    ) -> Result<bool, RepositoryError> {
        let ending = SessionsEnding {
            now,
            reason: "user_disabled",
            expires_at: revocations_expire_at,
        };
        self.update_user_and_end_sessions(user_id, ending, |update| {
            update.col_expr(users::Column::DisabledAt, Expr::value(now))
        })
        .await
        .map_err(Into::into)
    }
}

impl Store {
    async fn update_user_and_end_sessions(
        &self,
        user_id: &str,
        SessionsEnding {
            now,
            reason,
            expires_at,
        }: SessionsEnding,
        change: impl FnOnce(sea_orm::UpdateMany<users::Entity>) -> sea_orm::UpdateMany<users::Entity>,
    ) -> Result<bool, StoreError> {
        let _write = self.write_guard().await;
        let txn = self.db.begin().await?;
        // A new version, so that a login that read the user before this starts no session
        // (see `insert_sessions`).
        let update = users::Entity::update_many()
            .col_expr(
                users::Column::Version,
                Expr::col(users::Column::Version).add(1),
            )
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::UserId.eq(user_id));
        if change(update).exec(&txn).await?.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        // The user row is locked by the update above, so no login can add a session meanwhile
        // (its guarded insert waits, then fails). The sessions this update ends are exactly the
        // ones logged: one that a logout ends at the same moment is that logout's to log.
        let ended = ending_sessions(sessions::Column::UserId.eq(user_id), now, reason)
            .exec_with_returning(&txn)
            .await?;
        // One event per ended session: instances match them by sid.
        for session in &ended {
            revocations::record(&txn, RevocationKind::Session, &session.sid, now, expires_at)
                .await?;
        }
        txn.commit().await?;
        Ok(true)
    }
}
