//! What the background clean-up may delete, and when: each cut-off is as late as a row can
//! still matter to a request, a revocation or another instance's view, plus the clock leeway
//! (instances' clocks may differ by that much).
use std::time::Duration;

use super::{
    DomainError,
    clock::ms,
    policy::TokenPolicy,
    repository::{CleanupRepository, Cutoffs, Deleted},
    throttle::{MAX_LOCK, QUIET_MS, WINDOW},
};

/// How often each instance cleans up, by default (plus a little jitter).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Rows per delete statement: small enough that a SQLite write stays short.
pub const BATCH: u64 = 500;

/// The cut-offs of a clean-up at `now` under `policy`.
///
/// - Refresh tokens stay until they expire, spent ones too (presenting a spent one ends its
///   session).
/// - Sessions that ended or expired stay for a key verification window (the longest an access
///   token lives, plus leeway), so that a token of theirs can still be revoked while it lives;
///   their refresh tokens go first.
/// - A revocation stays in the log until it expires (no token it covers can be active).
/// - A throttle counter goes when deleting it changes nothing: its window is over, its lock
///   (if any) has ended, and it has been idle long enough that its lockouts are forgotten
///   anyway (the next attempt would start it over).
pub fn cutoffs(policy: &TokenPolicy, now: i64) -> Cutoffs {
    let leeway = ms(policy.clock_leeway);
    let window = ms(policy.key_verification_window());
    Cutoffs {
        refresh_tokens_expired: now - leeway,
        sessions_over: now - leeway - window,
        revocations_expired: now - leeway,
        revocations_made_before: now - leeway - window,
        throttles_idle_since: now - leeway - QUIET_MS.max(ms(MAX_LOCK)),
        throttle_windows_started: now - leeway - ms(WINDOW),
        throttle_locks_ended: now - leeway,
    }
}

/// Deletes everything past its cut-off at `now`.
pub async fn delete_expired(
    repo: &dyn CleanupRepository,
    policy: &TokenPolicy,
    now: i64,
) -> Result<Deleted, DomainError> {
    Ok(repo.delete_expired(&cutoffs(policy, now), BATCH).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_goes_while_a_token_it_speaks_for_may_live() {
        let policy = TokenPolicy::default();
        let now = 1_800_000_000_000;
        let c = cutoffs(&policy, now);
        let longest_token = ms(policy.access_token_ttl.max(policy.trusted_token_ttl));
        let leeway = ms(policy.clock_leeway);
        assert!(c.sessions_over <= now - longest_token - 2 * leeway);
        assert!(c.refresh_tokens_expired <= now - leeway);
        assert!(c.revocations_expired <= now - leeway);
        assert!(c.throttles_idle_since <= now - ms(MAX_LOCK));
        assert!(c.throttle_windows_started <= now - ms(WINDOW));
    }
}
