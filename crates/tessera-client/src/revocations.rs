//! What the WatchRevocations feed has said was revoked (SPEC §7): sessions, single tokens and
//! disabled clients, each kept until no token it covers can still be valid, and the sequence
//! of the last revocation applied, from which the feed resumes.
use std::collections::HashMap;

use parking_lot::RwLock;
use tessera_proto::pb::{self, revocation::Target};

use crate::claims::Claims;

#[derive(Default)]
struct State {
    /// The last sequence applied (a snapshot's, or a revocation's).
    sequence: u64,
    /// Whether a snapshot was applied: before that, nothing can be vouched for.
    started: bool,
    /// Revoked sessions, tokens (by jti) and clients, to when they can be forgotten (Unix ms).
    sessions: HashMap<String, i64>,
    tokens: HashMap<String, i64>,
    clients: HashMap<String, i64>,
}

impl State {
    fn insert(&mut self, revocation: &pb::Revocation) {
        let forget_after = revocation
            .expire_time
            .as_ref()
            .map_or(i64::MAX, timestamp_ms);
        let (index, subject) = match &revocation.target {
            Some(Target::SessionId(sid)) => (&mut self.sessions, sid),
            Some(Target::TokenId(jti)) => (&mut self.tokens, jti),
            Some(Target::ClientId(client)) => (&mut self.clients, client),
            // A kind this version does not know: its sequence still counts.
            None => return,
        };
        let entry = index.entry(subject.clone()).or_insert(forget_after);
        *entry = (*entry).max(forget_after);
    }
}

/// The revocations a verifier knows of.
#[derive(Default)]
pub(crate) struct RevocationSet {
    state: RwLock<State>,
}

impl RevocationSet {
    /// Replaces everything with a snapshot: every revocation that can still matter.
    pub(crate) fn apply_snapshot(&self, snapshot: &pb::RevocationSnapshot) {
        let mut fresh = State {
            sequence: snapshot.sequence,
            started: true,
            ..State::default()
        };
        for revocation in &snapshot.revocations {
            fresh.insert(revocation);
        }
        *self.state.write() = fresh;
    }

    /// Applies one revocation, in sequence order; one at or below what was applied already is
    /// skipped (a replay after a reconnect may repeat it).
    pub(crate) fn apply(&self, revocation: &pb::Revocation) {
        let mut state = self.state.write();
        if revocation.sequence <= state.sequence {
            return;
        }
        state.insert(revocation);
        state.sequence = revocation.sequence;
    }

    /// The sequence to resume after; 0 (a snapshot) before any snapshot.
    pub(crate) fn resume_after(&self) -> u64 {
        let state = self.state.read();
        if state.started { state.sequence } else { 0 }
    }

    pub(crate) fn has_started(&self) -> bool {
        self.state.read().started
    }

    /// Whether a revocation covers a token with these claims. A disabled client's revocation
    /// covers every token of it: a disabled client is never enabled again, and gets no token
    /// after it (the server rules the same way).
    pub(crate) fn covers(&self, claims: &Claims) -> bool {
        let state = self.state.read();
        let fields = claims.fields();
        state.tokens.contains_key(&fields.jti)
            || state.clients.contains_key(&fields.client_id)
            || fields
                .sid
                .as_ref()
                .is_some_and(|sid| state.sessions.contains_key(sid))
    }

    /// Forgets revocations whose tokens have all expired by `now` (Unix ms), clock leeway
    /// included.
    pub(crate) fn forget_expired(&self, now: i64, leeway_ms: i64) {
        let horizon = now.saturating_sub(leeway_ms);
        let has_expired = {
            let state = self.state.read();
            [&state.sessions, &state.tokens, &state.clients]
                .iter()
                .any(|index| index.values().any(|at| *at < horizon))
        };
        if has_expired {
            let mut state = self.state.write();
            state.sessions.retain(|_, at| *at >= horizon);
            state.tokens.retain(|_, at| *at >= horizon);
            state.clients.retain(|_, at| *at >= horizon);
        }
    }

    /// Revocations held.
    #[cfg(test)]
    fn len(&self) -> usize {
        let state = self.state.read();
        state.sessions.len() + state.tokens.len() + state.clients.len()
    }
}

pub(crate) fn timestamp_ms(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1_000)
        .saturating_add(i64::from(t.nanos / 1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::tests::claims;

    fn revocation(sequence: u64, target: Target, expire_s: i64) -> pb::Revocation {
        pb::Revocation {
            sequence,
            target: Some(target),
            revoke_time: None,
            expire_time: Some(prost_types::Timestamp {
                seconds: expire_s,
                nanos: 0,
            }),
        }
    }

    #[test]
    fn a_snapshot_then_events_in_order_cover_sessions_tokens_and_clients() {
        let set = RevocationSet::default();
        assert_eq!(set.resume_after(), 0);
        set.apply_snapshot(&pb::RevocationSnapshot {
            sequence: 4,
            revocations: vec![revocation(3, Target::TokenId("other".into()), 2_000)],
        });
        assert_eq!(set.resume_after(), 4);
        let user = claims("user");
        assert!(!set.covers(&user));
        set.apply(&revocation(5, Target::SessionId("sid".into()), 2_000));
        assert!(set.covers(&user));
        assert_eq!(set.resume_after(), 5);
        let fresh = RevocationSet::default();
        fresh.apply_snapshot(&pb::RevocationSnapshot::default());
        fresh.apply(&revocation(1, Target::ClientId("c".into()), 2_000));
        assert!(fresh.covers(&user));
    }

    #[test]
    fn a_repeated_or_older_event_is_skipped() {
        let set = RevocationSet::default();
        set.apply_snapshot(&pb::RevocationSnapshot {
            sequence: 7,
            revocations: Vec::new(),
        });
        set.apply(&revocation(7, Target::SessionId("sid".into()), 2_000));
        assert!(!set.covers(&claims("user")));
        assert_eq!(set.resume_after(), 7);
    }

    #[test]
    fn revocations_are_forgotten_once_their_tokens_expired_leeway_included() {
        let set = RevocationSet::default();
        set.apply_snapshot(&pb::RevocationSnapshot::default());
        set.apply(&revocation(1, Target::SessionId("a".into()), 1_000));
        set.apply(&revocation(2, Target::SessionId("b".into()), 3_000));
        set.forget_expired(1_004_000, 5_000);
        assert_eq!(set.len(), 2);
        set.forget_expired(1_006_000, 5_000);
        assert_eq!(set.len(), 1);
    }
}
