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
                sqlx::Error::Database(db) => is_unavailable_code(db.code().as_deref()),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Driver codes that mean "not now" rather than "never": SQLite busy/locked/read-only/IO
/// errors, PostgreSQL connection and shutdown classes.
fn is_unavailable_code(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    // SQLite primary result codes (the low byte of extended codes).
    if let Ok(n) = code.parse::<i32>() {
        return matches!(n & 0xff, 5 | 6 | 8 | 10 | 13 | 14);
    }
    // PostgreSQL SQLSTATE classes 08 (connection), 53 (resources), 57P (operator intervention).
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
}
