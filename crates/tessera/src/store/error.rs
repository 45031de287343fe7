//! What can go wrong in the store, in terms a caller can act on.
use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx};

/// A failed query.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, or is too busy to answer in time.
    #[error("database unavailable")]
    Unavailable(#[source] DbErr),
    /// A unique constraint refused the write.
    #[error("conflicting row")]
    Conflict(#[source] DbErr),
    /// Anything else: a bug or a broken schema.
    #[error("database error")]
    Other(#[source] DbErr),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
            return Self::Conflict(err);
        }
        if is_unavailable(&err) {
            return Self::Unavailable(err);
        }
        Self::Other(err)
    }
}

impl StoreError {
    /// The same failure, for another caller that shared the failed statement (a batch).
    pub(super) fn for_another_caller(&self) -> Self {
        let copy = |e: &DbErr| DbErr::Custom(format!("in a shared batch: {e}"));
        match self {
            Self::Unavailable(e) => Self::Unavailable(copy(e)),
            Self::Conflict(e) => Self::Conflict(copy(e)),
            Self::Other(e) => Self::Other(copy(e)),
        }
    }
}

fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => {
                    let code = db.code();
                    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                        code.and_then(|c| c.parse::<i32>().ok())
                            .is_some_and(is_unavailable_sqlite)
                    } else {
                        code.as_deref().is_some_and(is_unavailable_sqlstate)
                    }
                }
                _ => false,
            }
        }
        _ => false,
    }
}

/// SQLite result codes (the low byte of extended codes) that mean "not now": BUSY, LOCKED,
/// NOMEM, READONLY, FULL, CANTOPEN; and IOERR (10).
fn is_unavailable_sqlite(code: i32) -> bool {
    if code & 0xff == SQLITE_READONLY {
        super::connect::note_read_only_error();
    }
    matches!(code & 0xff, 5 | 6 | 7 | SQLITE_READONLY | 10 | 13 | 14)
}

const SQLITE_READONLY: i32 = 8;

/// PostgreSQL SQLSTATEs that mean "not now": class 08 (connection), 53 (insufficient
/// resources), 57P (operator intervention: shutdown, cannot connect now), 25006 (read-only
/// transaction: a replica, or a primary demoted by a fail-over) and 40001/40P01
/// (serialization failure, deadlock: retrying succeeds).
fn is_unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || matches!(code, "25006" | "40001" | "40P01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_busy_and_readonly_are_unavailable_but_constraint_errors_are_not() {
        assert!(is_unavailable_sqlite(5));
        assert!(is_unavailable_sqlite(517)); // SQLITE_BUSY_SNAPSHOT
        assert!(is_unavailable_sqlite(8));
        assert!(!is_unavailable_sqlite(19)); // CONSTRAINT
    }

    #[test]
    fn postgres_codes_are_read_as_sqlstate_classes() {
        assert!(is_unavailable_sqlstate("08006"));
        assert!(is_unavailable_sqlstate("53100"));
        assert!(is_unavailable_sqlstate("57P01"));
        assert!(is_unavailable_sqlstate("25006"));
        assert!(!is_unavailable_sqlstate("42501"));
        assert!(!is_unavailable_sqlstate("22021"));
    }
}
