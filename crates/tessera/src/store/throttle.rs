//! Login throttling counters, shared by every instance. Each step is one atomic statement, so
//! concurrent attempts on any number of instances count exactly.
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter,
    sea_query::{Expr, OnConflict, Query},
};

use async_trait::async_trait;

use super::entity::login_throttles::{self, Column};
use super::{Store, StoreError};
use crate::domain::{
    repository::{RepositoryError, ThrottleCount, ThrottleRepository},
    throttle::QUIET_MS,
};

#[async_trait]
impl ThrottleRepository for Store {
    #[tracing::instrument(level = "debug", name = "db.read_counter", skip_all)]
    async fn read_counter(&self, key: &str) -> Result<Option<ThrottleCount>, RepositoryError> {
        Ok(login_throttles::Entity::find_by_id(key.to_owned())
            .one(&self.db)
            .await?
            .map(|row| ThrottleCount {
                failures: row.failures,
                locked_until: row.locked_until,
                window_started_at: row.window_started_at,
                lockouts: row.lockouts,
            }))
    }

    /// Counts one attempt for `key`: starts a new window when the last one is over, and leaves
    /// a locked key's counter alone.
    #[tracing::instrument(level = "debug", name = "db.count_attempt", skip_all)]
    async fn count_attempt(
        &self,
        key: &str,
        now: i64,
        window_ms: i64,
    ) -> Result<ThrottleCount, RepositoryError> {
        let _write = self.write_guard().await;
        let t = "login_throttles";
        let locked = format!("{t}.locked_until IS NOT NULL AND {t}.locked_until > {now}");
        let expired = format!("{t}.window_started_at <= {}", now - window_ms);
        let mut insert = Query::insert();
        insert
            .into_table(login_throttles::Entity)
            .columns([Column::ThrottleKey, Column::Failures, Column::WindowStartedAt, Column::LockedUntil, Column::Lockouts, Column::UpdatedAt])
            .values_panic([key.into(), 1.into(), now.into(), Option::<i64>::None.into(), 0.into(), now.into()])
            .on_conflict(
                OnConflict::column(Column::ThrottleKey)
                    .value(
                        Column::Failures,
                        Expr::cust(format!("CASE WHEN {locked} THEN {t}.failures WHEN {expired} THEN 1 ELSE {t}.failures + 1 END")),
                    )
                    .value(
                        Column::Lockouts,
                        Expr::cust(format!("CASE WHEN {t}.updated_at <= {} THEN 0 ELSE {t}.lockouts END", now - QUIET_MS)),
                    )
                    .value(
                        Column::WindowStartedAt,
                        Expr::cust(format!("CASE WHEN {locked} THEN {t}.window_started_at WHEN {expired} THEN {now} ELSE {t}.window_started_at END")),
                    )
                    .value(Column::UpdatedAt, Expr::value(now))
                    .to_owned(),
            )
            .returning(Query::returning().columns([Column::Failures, Column::LockedUntil, Column::Lockouts, Column::WindowStartedAt]));
        let row = self.db.query_one(&insert).await?.ok_or_else(|| {
            StoreError::Other(sea_orm::DbErr::Custom("upsert returned no row".into()))
        })?;
        Ok(ThrottleCount {
            failures: row.try_get("", "failures")?,
            locked_until: row.try_get("", "locked_until")?,
            lockouts: row.try_get("", "lockouts")?,
            window_started_at: row.try_get("", "window_started_at")?,
        })
    }

    /// Locks `key` until `until`, unless another attempt locked it first.
    #[tracing::instrument(level = "debug", name = "db.lock_key", skip_all)]
    async fn lock_key(&self, key: &str, now: i64, until: i64) -> Result<(), RepositoryError> {
        let _write = self.write_guard().await;
        login_throttles::Entity::update_many()
            .col_expr(Column::LockedUntil, Expr::value(until))
            .col_expr(Column::Lockouts, Expr::col(Column::Lockouts).add(1))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::ThrottleKey.eq(key))
            .filter(
                Column::LockedUntil
                    .is_null()
                    .or(Column::LockedUntil.lte(now)),
            )
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Forgets a key's counter (a successful login).
    #[tracing::instrument(level = "debug", name = "db.reset_key", skip_all)]
    async fn reset_key(&self, key: &str) -> Result<(), RepositoryError> {
        let _write = self.write_guard().await;
        login_throttles::Entity::delete_many()
            .filter(Column::ThrottleKey.eq(key))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Takes one counted attempt back (a success from a shared address), in the window it was
    /// counted in.
    #[tracing::instrument(level = "debug", name = "db.uncount_attempt", skip_all)]
    async fn uncount_attempt(
        &self,
        key: &str,
        window_started_at: i64,
        now: i64,
    ) -> Result<(), RepositoryError> {
        let _write = self.write_guard().await;
        login_throttles::Entity::update_many()
            .col_expr(Column::Failures, Expr::col(Column::Failures).sub(1))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::ThrottleKey.eq(key))
            .filter(Column::WindowStartedAt.eq(window_started_at))
            .filter(Column::Failures.gt(0))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
