//! How a call runs on either edge: within [`RPC_DEADLINE`], its work carried to completion,
//! and its outcome recorded on its span and logged once.
use std::future::Future;

use tracing::Instrument;

use crate::domain::DomainError;

/// The longest a call may take: past it, the caller gets UNAVAILABLE (gRPC) or 503 (HTTP)
/// rather than a hang (a database that stopped answering mid-query, say). Session starts
/// commit on a task of their own, so a cut-off call never leaves a half-written session.
pub const RPC_DEADLINE: std::time::Duration = crate::domain::service::CALL_DEADLINE;

/// An error an edge answers with: its OAuth error code is the outcome its span records.
pub trait Outcome: From<DomainError> {
    /// The OAuth error code, such as `invalid_grant`.
    fn outcome(&self) -> &'static str;
}

impl Outcome for DomainError {
    fn outcome(&self) -> &'static str {
        self.reason()
    }
}

/// Runs `work` within [`RPC_DEADLINE`]; past it, the answer is `Unavailable`.
pub async fn within_deadline<T, E: From<DomainError>>(
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    tokio::time::timeout(RPC_DEADLINE, work)
        .await
        .unwrap_or_else(|_| Err(E::from(DomainError::Unavailable)))
}

/// Records how a call ended on the current span (its `outcome` field) and logs
/// `"<kind> finished"` once. The caller opens the span.
pub fn record_outcome<T, E: Outcome>(kind: &'static str, result: &Result<T, E>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    };
    tracing::Span::current().record("outcome", outcome);
    tracing::info!(outcome, "{kind} finished");
}

/// Runs a call's work on a task of its own, to its end, even when the caller stops waiting
/// (its deadline, a cancelled call, a closed connection): a login that has counted its attempt
/// must also record its outcome, and a refresh that has begun its rotation must finish it
/// rather than leave it to chance. The caller still gets its answer (unavailable) at the
/// deadline.
///
/// Such tasks are bounded ([`MAX_DETACHED_CALLS`] at once, callers gone or not): past it, a
/// new call is refused at once with `slow_down`, so that callers that hang up and call again
/// cannot pile up work without end.
pub fn to_completion<T: Send + 'static>(
    work: impl Future<Output = Result<T, DomainError>> + Send + 'static,
) -> impl Future<Output = Result<T, DomainError>> {
    let place = detached_calls().clone().try_acquire_owned();
    let task = place.map(|place| {
        tokio::spawn(
            async move {
                let _place = place;
                work.await
            }
            .in_current_span(),
        )
    });
    async move {
        let Ok(task) = task else {
            return Err(DomainError::SlowDown {
                retry_after: std::time::Duration::from_secs(1),
            });
        };
        task.await.unwrap_or_else(|e| {
            Err(DomainError::Internal(anyhow::anyhow!(
                "call task failed: {e}"
            )))
        })
    }
}

/// Calls carried to completion on tasks of their own, at most, in this process.
pub const MAX_DETACHED_CALLS: usize = 4_096;

fn detached_calls() -> &'static std::sync::Arc<tokio::sync::Semaphore> {
    static PLACES: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::OnceLock::new();
    PLACES.get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_DETACHED_CALLS)))
}
