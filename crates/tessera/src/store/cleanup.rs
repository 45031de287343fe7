//! Deleting rows that can no longer matter, so that tables stay bounded. Every delete is
//! idempotent and takes at most a batch of rows per statement: on SQLite each batch is a short
//! write of its own (other writers get their turn in between), and on PostgreSQL the rows a
//! concurrent clean-up (another instance) holds are skipped rather than waited for.
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, ExprTrait,
    sea_query::{
        Alias, Condition, DeleteStatement, Expr, IntoColumnRef, LockBehavior, LockType, Query,
    },
};

use async_trait::async_trait;

use super::entity::{login_throttles, refresh_tokens, revocation_log, sessions};
use super::{Store, StoreError};
use crate::domain::repository::{CleanupRepository, Cutoffs, Deleted, RepositoryError};

/// Row counts of the tables the clean-up keeps bounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableSizes {
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub revocation_events: u64,
    pub login_throttles: u64,
}

#[async_trait]
impl CleanupRepository for Store {
    /// Deletes every row past its cut-off, `batch` rows per statement, until none is left.
    /// Safe to run on any number of instances at once.
    async fn delete_expired(
        &self,
        cutoffs: &Cutoffs,
        batch: u64,
    ) -> Result<Deleted, RepositoryError> {
        let batch = std::cmp::Ord::max(batch, 1);
        let mut refresh_tokens = self
            .delete_in_batches(
                refresh_tokens::Entity,
                refresh_tokens::Column::TokenHash,
                Condition::all()
                    .add(refresh_tokens::Column::ExpiresAt.lte(cutoffs.refresh_tokens_expired)),
                batch,
            )
            .await?;
        // A session that is over needs its refresh tokens no more: they can only be refused.
        refresh_tokens += self
            .delete_in_batches(
                refresh_tokens::Entity,
                refresh_tokens::Column::TokenHash,
                Condition::all().add(
                    refresh_tokens::Column::Sid.in_subquery(over_sessions(cutoffs.sessions_over)),
                ),
                batch,
            )
            .await?;
        // Only sessions without refresh tokens: the foreign key would otherwise delete tokens
        // in the same statement, unbounded by the batch.
        let tokens_of_session = Query::select()
            .expr(Expr::val(1))
            .from(refresh_tokens::Entity)
            .and_where(
                Expr::col((refresh_tokens::Entity, refresh_tokens::Column::Sid))
                    .equals((sessions::Entity, sessions::Column::Sid)),
            )
            .to_owned();
        let sessions = self
            .delete_in_batches(
                sessions::Entity,
                sessions::Column::Sid,
                Condition::all()
                    .add(over_condition(cutoffs.sessions_over))
                    .add(Expr::exists(tokens_of_session).not()),
                batch,
            )
            .await?;

        // A revocation goes once it has expired by this instance's clock and by the
        // database's: an instance whose clock runs fast cannot make the log forget early.
        let database_now_ms = match self.db.get_database_backend() {
            DbBackend::Postgres => "(EXTRACT(EPOCH FROM CLOCK_TIMESTAMP()) * 1000)::BIGINT",
            _ => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        };
        let revocation_events = self
            .delete_in_batches(
                revocation_log::Entity,
                revocation_log::Column::Sequence,
                Condition::all()
                    .add(revocation_log::Column::ExpiresAt.lt(cutoffs.revocations_expired))
                    .add(revocation_log::Column::RevokedAt.lt(cutoffs.revocations_made_before))
                    .add(
                        Expr::col(revocation_log::Column::ExpiresAt)
                            .lt(Expr::cust(database_now_ms)),
                    ),
                batch,
            )
            .await?;
        use login_throttles::Column as T;
        let login_throttles = self
            .delete_in_batches(
                login_throttles::Entity,
                T::ThrottleKey,
                Condition::all()
                    .add(T::UpdatedAt.lte(cutoffs.throttles_idle_since))
                    .add(T::WindowStartedAt.lte(cutoffs.throttle_windows_started))
                    .add(
                        Condition::any()
                            .add(T::LockedUntil.is_null())
                            .add(T::LockedUntil.lte(cutoffs.throttle_locks_ended)),
                    ),
                batch,
            )
            .await?;
        Ok(Deleted {
            refresh_tokens,
            sessions,
            revocation_events,
            login_throttles,
        })
    }
}

impl Store {
    /// `DELETE FROM table WHERE pk IN (SELECT pk FROM table WHERE condition LIMIT batch)`,
    /// again and again until a statement deletes fewer than `batch` rows.
    async fn delete_in_batches<E, C>(
        &self,
        table: E,
        pk: C,
        condition: Condition,
        batch: u64,
    ) -> Result<u64, StoreError>
    where
        E: EntityTrait,
        C: ColumnTrait + IntoColumnRef + Copy,
    {
        let statement = batch_delete(self.db.get_database_backend(), table, pk, condition, batch);
        let mut total = 0;
        loop {
            let deleted = {
                let _write = self.write_guard().await;
                self.db.execute(&statement).await?.rows_affected()
            };
            total += deleted;
            if deleted < batch {
                return Ok(total);
            }
        }
    }

    /// Row counts of the tables the clean-up keeps bounded (one `COUNT(*)` each).
    pub async fn table_sizes(&self) -> Result<TableSizes, StoreError> {
        Ok(TableSizes {
            sessions: self.count_rows(sessions::Entity).await?,
            refresh_tokens: self.count_rows(refresh_tokens::Entity).await?,
            revocation_events: self.count_rows(revocation_log::Entity).await?,
            login_throttles: self.count_rows(login_throttles::Entity).await?,
        })
    }

    async fn count_rows(&self, table: impl EntityTrait) -> Result<u64, StoreError> {
        let count = Query::select()
            .expr_as(
                Expr::col(sea_orm::sea_query::Asterisk).count(),
                Alias::new("n"),
            )
            .from(table)
            .to_owned();
        let row = self.db.query_one(&count).await?;
        let n: i64 = match row {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// `DELETE FROM table WHERE pk IN (SELECT pk FROM table WHERE condition LIMIT batch)`.
fn batch_delete<E, C>(
    backend: DbBackend,
    table: E,
    pk: C,
    condition: Condition,
    batch: u64,
) -> DeleteStatement
where
    E: EntityTrait,
    C: ColumnTrait + IntoColumnRef + Copy,
{
    let mut doomed = Query::select();
    doomed
        .column(pk)
        .from(table)
        .cond_where(condition)
        .limit(batch);
    if backend == DbBackend::Postgres {
        // Rows another instance is deleting (or a request is updating) are left for later.
        doomed.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    Query::delete()
        .from_table(table)
        .and_where(Expr::col(pk).in_subquery(doomed))
        .to_owned()
}

/// Sessions that ended, or expired, at or before `cutoff`.
fn over_condition(cutoff: i64) -> Condition {
    Condition::any()
        .add(sessions::Column::EndedAt.lte(cutoff))
        .add(sessions::Column::ExpiresAt.lte(cutoff))
}

fn over_sessions(cutoff: i64) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(sessions::Column::Sid)
        .from(sessions::Entity)
        .cond_where(over_condition(cutoff))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    fn expired_before(backend: DbBackend) -> DeleteStatement {
        batch_delete(
            backend,
            refresh_tokens::Entity,
            refresh_tokens::Column::TokenHash,
            Condition::all().add(refresh_tokens::Column::ExpiresAt.lte(42)),
            500,
        )
    }

    #[test]
    fn postgres_batches_skip_rows_another_instance_holds() {
        let sql = expired_before(DbBackend::Postgres).to_string(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"DELETE FROM "refresh_tokens" WHERE "token_hash" IN (SELECT "token_hash" FROM "refresh_tokens" WHERE "refresh_tokens"."expires_at" <= 42 LIMIT 500 FOR UPDATE SKIP LOCKED)"#
        );
    }

    #[test]
    fn sqlite_batches_are_plain_limited_subqueries() {
        let sql = expired_before(DbBackend::Sqlite).to_string(SqliteQueryBuilder);
        assert_eq!(
            sql,
            r#"DELETE FROM "refresh_tokens" WHERE "token_hash" IN (SELECT "token_hash" FROM "refresh_tokens" WHERE "refresh_tokens"."expires_at" <= 42 LIMIT 500)"#
        );
    }
}
