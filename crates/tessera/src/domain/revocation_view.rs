//! Each instance's in-memory view of what was revoked, so that IntrospectToken answers without
//! a query per call. The instance that revokes applies the change at once; every other
//! instance reads it from the revocation log within a poll interval.
use std::{
    collections::HashMap,
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use parking_lot::RwLock;

use super::{
    DomainError,
    clock::{SharedClock, ms},
    repository::{RevocationKind, SharedRepository},
    token::AccessClaims,
};

/// How often the log is read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Events are read again for this long after they are first seen, so that one committed a
/// little after a later one (or stamped by a slightly slower clock) is not missed.
const LOOKBACK_MS: i64 = 10_000;
/// Past this without a successful read, the view may be missing revocations made elsewhere:
/// introspection then answers UNAVAILABLE rather than risk calling a revoked token active.
/// With the poll interval, every call that relies on the view fails within two seconds of the
/// database going away.
const STALE_AFTER_MS: i64 = 1_500;

/// How long the log must keep an event for views that read back `keep` (the longest an
/// access token lives, plus the leeway): that, plus the look-back of every read.
pub fn retention(keep: Duration) -> Duration {
    keep.saturating_add(Duration::from_millis(LOOKBACK_MS.unsigned_abs()))
}

#[derive(Default)]
struct Revoked {
    sessions: HashMap<String, i64>,
    tokens: HashMap<String, i64>,
    /// Disabled clients (the time is not used: disabling is for good).
    clients: HashMap<String, i64>,
}

/// What this instance knows was revoked.
pub struct RevocationView {
    repo: SharedRepository,
    clock: SharedClock,
    revoked: RwLock<Revoked>,
    /// How long an event matters: the longest an access token lives, plus the leeway.
    keep_ms: i64,
    last_read: AtomicI64,
}

impl std::fmt::Debug for RevocationView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationView").finish_non_exhaustive()
    }
}

impl RevocationView {
    /// Loads every event that can still matter, and every disabled client.
    pub async fn load(
        repo: SharedRepository,
        keep: Duration,
        clock: SharedClock,
    ) -> Result<Self, DomainError> {
        let view = Self {
            repo,
            clock,
            revoked: RwLock::new(Revoked::default()),
            keep_ms: ms(retention(keep)),
            last_read: AtomicI64::new(0),
        };
        view.read_disabled_clients().await?;
        let now = view.clock.now_ms();
        view.read_since(now - view.keep_ms, now).await?;
        Ok(view)
    }

    /// Disabled clients come from the clients table: the log has no events for them.
    async fn read_disabled_clients(&self) -> Result<(), DomainError> {
        let disabled = self.repo.disabled_client_ids().await?;
        let mut revoked = self.revoked.write();
        for client_id in disabled {
            revoked.clients.entry(client_id).or_insert(0);
        }
        Ok(())
    }

    /// Records a revocation made by this instance, effective from the next call on.
    pub fn apply(&self, kind: RevocationKind, subject: &str, at: i64) {
        let mut revoked = self.revoked.write();
        let map = match kind {
            RevocationKind::Session => &mut revoked.sessions,
            RevocationKind::Token => &mut revoked.tokens,
        };
        let entry = map.entry(subject.to_owned()).or_insert(at);
        *entry = (*entry).max(at);
    }

    /// Reads what other instances (and the CLI) revoked since the last read, and forgets
    /// what can no longer matter.
    pub async fn refresh(&self) -> Result<(), DomainError> {
        let now = self.clock.now_ms();
        let since = self.last_read.load(Ordering::Relaxed).min(now) - LOOKBACK_MS;
        // Disabled clients are read from the clients table itself on every poll (a small
        // query): instances trust this view to stop issuing to a disabled client, so its
        // disable must not depend on an event being seen within the look-back (a long
        // transaction, a CLI host with a slow clock) or surviving the clean-up.
        self.read_disabled_clients().await?;
        self.read_since(since, now).await?;
        self.forget_before(now - self.keep_ms);
        Ok(())
    }

    async fn read_since(&self, since: i64, now: i64) -> Result<(), DomainError> {
        for event in self.repo.revocation_events_since(since).await? {
            self.apply(event.kind, &event.subject, event.at);
        }
        self.last_read.store(now, Ordering::Relaxed);
        Ok(())
    }

    fn forget_before(&self, cutoff: i64) {
        let mut revoked = self.revoked.write();
        // Disabled clients stay: disabling is for good.
        revoked.sessions.retain(|_, at| *at >= cutoff);
        revoked.tokens.retain(|_, at| *at >= cutoff);
    }

    /// Whether the view is too old to vouch for a token.
    pub fn is_stale(&self, now: i64) -> bool {
        now - self.last_read.load(Ordering::Relaxed) > STALE_AFTER_MS
    }

    /// Whether this client was disabled, as far as the view knows.
    pub fn is_client_disabled(&self, client_id: &str) -> bool {
        let revoked = self.revoked.read();
        revoked.clients.contains_key(client_id)
    }

    /// Whether anything revoked covers a token with these (verified) claims.
    pub fn covers(&self, claims: &AccessClaims) -> bool {
        let revoked = self.revoked.read();
        revoked.clients.contains_key(&claims.client_id)
            || revoked.tokens.contains_key(&claims.jti)
            || claims
                .sid
                .as_ref()
                .is_some_and(|sid| revoked.sessions.contains_key(sid))
    }
}
