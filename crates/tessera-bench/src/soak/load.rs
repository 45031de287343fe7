//! The soak's load on the engine: its mix, and slots that hold sessions, cycle them through
//! a login gate, and introspect recently issued tokens while they are fresh.
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;

use crate::{
    args::describe_mix,
    engine::{Driver, Slot, Tally},
    fixture::{Clients, Credentials},
    requests::{Outcome, status_key},
};

/// Fresh anonymous tokens kept for introspection.
const RECENT_TOKENS: usize = 4096;

/// One request kind of the soak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SoakOp {
    IntrospectHot,
    IntrospectRecent,
    IssueAnonymous,
    Refresh,
    RevokeAnonymous,
    IssueIntegration,
}

impl SoakOp {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::IntrospectHot => "introspect-hot",
            Self::IntrospectRecent => "introspect-recent",
            Self::IssueAnonymous => "issue-anonymous",
            Self::Refresh => "refresh",
            Self::RevokeAnonymous => "revoke-anonymous",
            Self::IssueIntegration => "issue-integration",
        }
    }
}

/// The soak's mix, in percent; on top of it every slot logs out and in every 30–60 s.
pub(super) const SOAK_MIX: [(SoakOp, u64); 6] = [
    (SoakOp::IntrospectHot, 30),
    (SoakOp::IntrospectRecent, 30),
    (SoakOp::IssueAnonymous, 20),
    (SoakOp::Refresh, 15),
    (SoakOp::RevokeAnonymous, 4),
    (SoakOp::IssueIntegration, 1),
];

pub(super) fn mix_description() -> String {
    format!(
        "{}, each slot logs out and in every 30-60s",
        describe_mix(&SOAK_MIX, SoakOp::name)
    )
}

/// What every slot shares.
pub(super) struct Shared {
    pub(super) clients: Clients,
    password: String,
    /// The introspection bearer and hot token, renewed well before they expire.
    credentials: RwLock<Arc<Credentials>>,
    /// Recently issued anonymous tokens (never revoked ones), with when they were issued.
    recent: Mutex<VecDeque<(Instant, String)>>,
    /// Past this age a token is not introspected any more (half its lifetime).
    fresh_for: Duration,
    logins: Semaphore,
    pub(super) tally: Tally,
}

impl Shared {
    /// `login_slots` logins in flight at most; recent tokens introspected for `fresh_for`.
    pub(super) fn new(
        clients: Clients,
        password: String,
        credentials: Credentials,
        fresh_for: Duration,
        login_slots: usize,
    ) -> Self {
        Self {
            clients,
            password,
            credentials: RwLock::new(Arc::new(credentials)),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_TOKENS)),
            fresh_for,
            logins: Semaphore::new(login_slots),
            tally: Tally::default(),
        }
    }

    fn credentials(&self) -> Arc<Credentials> {
        match self.credentials.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(super) fn renew(&self, renewed: Credentials) {
        let renewed = Arc::new(renewed);
        match self.credentials.write() {
            Ok(mut guard) => *guard = renewed,
            Err(poisoned) => *poisoned.into_inner() = renewed,
        }
    }

    fn remember(&self, token: String) {
        let mut recent = match self.recent.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if recent.len() >= RECENT_TOKENS {
            recent.pop_front();
        }
        recent.push_back((Instant::now(), token));
    }

    /// A fresh token among the recent ones, if any.
    fn pick_recent(&self, pick: u64) -> Option<String> {
        let recent = match self.recent.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if recent.is_empty() {
            return None;
        }
        let index = usize::try_from(pick).unwrap_or(0) % recent.len();
        let (issued, token) = &recent[index];
        (issued.elapsed() < self.fresh_for).then(|| token.clone())
    }
}

/// One in-flight slot of the soak.
pub(super) struct SoakSlot {
    slot: Slot,
    shared: Arc<Shared>,
    session_started: Instant,
    /// How long this slot keeps a session before logging out and in again.
    cycle: Duration,
}

impl SoakSlot {
    /// A slot whose session was just opened; it cycles it every 30 to 60 seconds.
    pub(super) fn new(slot: Slot, shared: Arc<Shared>) -> Self {
        Self {
            cycle: Duration::from_secs(30 + (slot.index as u64 * 7) % 31),
            slot,
            shared,
            session_started: Instant::now(),
        }
    }

    /// Logs this slot's user in, through the login gate.
    async fn log_in(&mut self) -> Outcome {
        let f = &*self.shared;
        let _permit = f
            .logins
            .acquire()
            .await
            .map_err(|_| "gate-closed".to_owned())?;
        let slot = &mut self.slot;
        let token = slot
            .caller
            .log_in(&f.clients.market_id, &slot.username, &f.password)
            .await
            .map_err(|s| status_key(&s))?;
        slot.refresh_token = Some(token);
        self.session_started = Instant::now();
        Ok(())
    }

    /// Ends this slot's session with its refresh token (a logout).
    async fn log_out(&mut self) -> Outcome {
        let Some(token) = self.slot.refresh_token.take() else {
            return Ok(());
        };
        let market_id = &self.shared.clients.market_id;
        self.slot.caller.revoke(market_id, &token).await
    }
}

impl Driver for SoakSlot {
    type Op = SoakOp;

    /// Logs out and back in when the session is due, as a turn of its own.
    async fn next(&mut self, _counting: bool) -> Option<SoakOp> {
        if self.slot.refresh_token.is_none() || self.session_started.elapsed() >= self.cycle {
            let out = self.log_out().await;
            self.shared.tally.record(Some("logout"), out);
            let out = self.log_in().await;
            if out.is_err() {
                // Do not spin on a failing login.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.shared.tally.record(Some("login"), out);
            return None;
        }
        Some(self.slot.next_of(&SOAK_MIX, SoakOp::IntrospectHot))
    }

    async fn send(&mut self, op: SoakOp) -> Outcome {
        let (f, slot) = (&*self.shared, &mut self.slot);
        let market_id = &f.clients.market_id;
        match op {
            SoakOp::IntrospectHot => {
                let credentials = f.credentials();
                slot.caller
                    .introspect_active(&credentials.bearer, &credentials.hot_token)
                    .await
            }
            SoakOp::IntrospectRecent => {
                let credentials = f.credentials();
                let pick = slot.next_random();
                let token = f
                    .pick_recent(pick)
                    .unwrap_or_else(|| credentials.hot_token.clone());
                slot.caller
                    .introspect_active(&credentials.bearer, &token)
                    .await
            }
            SoakOp::IssueAnonymous => {
                let token = slot.caller.issue_anonymous(market_id).await?;
                f.remember(token);
                Ok(())
            }
            SoakOp::RevokeAnonymous => {
                let token = slot.caller.issue_anonymous(market_id).await?;
                slot.caller.revoke(market_id, &token).await
            }
            SoakOp::IssueIntegration => {
                slot.caller
                    .issue_integration(&f.clients.integ_id, &f.clients.integ_secret)
                    .await
            }
            SoakOp::Refresh => {
                let Some(token) = slot.refresh_token.take() else {
                    return Err("no-session".into());
                };
                slot.refresh_token = Some(slot.caller.rotate(market_id, &token).await?);
                Ok(())
            }
        }
    }

    fn record(&mut self, op: SoakOp, outcome: Outcome, _latency_ns: u64) {
        self.shared.tally.record(Some(op.name()), outcome);
    }
}
