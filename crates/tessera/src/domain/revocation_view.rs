//! Each instance's in-memory view of what was revoked, so that IntrospectToken answers without
//! a query per call, and the feed that `WatchRevocations` streams are served from.
//!
//! The view follows the revocation log by its commit-ordered sequence: it reads
//! `sequence > read_up_to`, and since sequences are assigned in commit order without gaps,
//! everything at or below the highest sequence read is committed and was read (or expired
//! before this view could see it). No look-back window, no machine's clock. The instance that
//! revokes applies its own event at once, with the sequence its transaction got.
//!
//! Streams get events strictly in sequence order: an event applied locally ahead of one still
//! unread waits until the gap is read. An event is forgotten once no token it covers can be
//! active (`expires_at`), so the memory held is bounded by what can still matter.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use parking_lot::RwLock;
use tokio::sync::{broadcast, watch};

use super::{
    DomainError,
    clock::SharedClock,
    repository::{LiveRevocations, RevocationEvent, RevocationKind, SharedRepository},
    token::AccessClaims,
};

/// How often the log is read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Past this without a successful read, the view may be missing revocations made elsewhere:
/// introspection then answers UNAVAILABLE rather than risk calling a revoked token active.
/// With the poll interval, every call that relies on the view fails within two seconds of the
/// database going away.
pub const STALE_AFTER: Duration = Duration::from_millis(1_500);
const STALE_AFTER_MS: i64 = 1_500;
/// Events read per query: well below what the feed holds, so that one read never makes a
/// stream that keeps up fall behind.
const READ_BATCH: u64 = 1_000;
/// Events a stream may fall behind the feed before it is cut off (it reconnects and resumes).
pub const FEED_CAPACITY: usize = 16_384;

struct State {
    /// Where events go, in sequence order, to the streams.
    feed: broadcast::Sender<Arc<RevocationEvent>>,
    /// Every event that can still matter, by sequence.
    held: BTreeMap<u64, Arc<RevocationEvent>>,
    /// Sessions and tokens revoked, to the sequence of their event.
    sessions: HashMap<String, u64>,
    tokens: HashMap<String, u64>,
    /// Disabled clients: for good (a disabled client never comes back), from the clients table
    /// and from the log.
    disabled_clients: HashSet<String>,
    /// Every sequence at or below this was read from the log (or loaded).
    read_up_to: u64,
    /// Every sequence at or below this went to the feed (or was forgotten).
    delivered: u64,
    /// Sequences at or below this may have been forgotten: a stream resuming from before it
    /// gets a snapshot.
    floor: u64,
}

impl State {
    /// The state of a view made from what the log holds now.
    fn loaded(live: LiveRevocations) -> Self {
        let mut state = Self {
            feed: broadcast::channel(FEED_CAPACITY).0,
            held: BTreeMap::new(),
            sessions: HashMap::new(),
            tokens: HashMap::new(),
            disabled_clients: HashSet::new(),
            read_up_to: 0,
            delivered: 0,
            floor: 0,
        };
        for event in live.events {
            state.insert(Arc::new(event));
        }
        // Every sequence up to the head is committed; the ones not held expired (or were
        // cleaned up) before this view was made.
        let mut floor = live.head;
        for sequence in state.held.keys().rev() {
            if *sequence == floor {
                floor -= 1;
            } else if *sequence < floor {
                break;
            }
        }
        state.floor = floor;
        state.read_up_to = live.head;
        state.delivered = live.head;
        state
    }

    /// Holds an event; false when it is known already or was forgotten.
    fn insert(&mut self, event: Arc<RevocationEvent>) -> bool {
        let sequence = event.sequence;
        // At or below `delivered` and not held: read past as a gap, or forgotten.
        if self.held.contains_key(&sequence) || sequence <= self.delivered {
            return false;
        }
        match event.kind {
            RevocationKind::Session => {
                self.sessions.insert(event.subject.clone(), sequence);
            }
            RevocationKind::Token => {
                self.tokens.insert(event.subject.clone(), sequence);
            }
            RevocationKind::Client => {
                self.disabled_clients.insert(event.subject.clone());
            }
        }
        self.held.insert(sequence, event);
        true
    }

    /// Sends every event that is next in sequence to the feed.
    fn deliver(&mut self) {
        loop {
            let next = self.delivered + 1;
            if let Some(event) = self.held.get(&next) {
                // No stream listening is fine: the event stays held for those that come.
                let _ = self.feed.send(event.clone());
            } else if next <= self.read_up_to {
                // Read past, yet not held: it expired before this view saw it, or is of a
                // kind this version does not know. Nothing to send.
                self.floor = self.floor.max(next);
            } else {
                return;
            }
            self.delivered = next;
        }
    }

    /// Whether any held event can be forgotten (see [`State::forget_expired`]).
    fn has_expired(&self, now: i64, keep_ms: i64) -> bool {
        self.held
            .iter()
            .any(|(sequence, event)| Self::expired(*sequence, event, now, keep_ms, self.delivered))
    }

    fn expired(
        sequence: u64,
        event: &RevocationEvent,
        now: i64,
        keep_ms: i64,
        delivered: u64,
    ) -> bool {
        event
            .expires_at
            .max(event.revoked_at.saturating_add(keep_ms))
            < now
            && sequence <= delivered
    }

    /// Forgets every event that no active token can need any more: past its `expires_at`, and
    /// at least `keep_ms` (this instance's own longest token lifetime plus leeway) after it was
    /// made, whatever lifetimes its writer assumed.
    fn forget_expired(&mut self, now: i64, keep_ms: i64) {
        let expired: Vec<u64> = self
            .held
            .iter()
            .filter(|(sequence, event)| {
                event
                    .expires_at
                    .max(event.revoked_at.saturating_add(keep_ms))
                    < now
                    && **sequence <= self.delivered
            })
            .map(|(sequence, _)| *sequence)
            .collect();
        for sequence in expired {
            let Some(event) = self.held.remove(&sequence) else {
                continue;
            };
            let index = match event.kind {
                RevocationKind::Session => &mut self.sessions,
                RevocationKind::Token => &mut self.tokens,
                // Disabled clients stay: disabling is for good.
                RevocationKind::Client => {
                    self.floor = self.floor.max(sequence);
                    continue;
                }
            };
            if index.get(&event.subject) == Some(&sequence) {
                index.remove(&event.subject);
            }
            self.floor = self.floor.max(sequence);
        }
    }
}

/// How a stream starts.
#[derive(Debug)]
pub enum StreamStart {
    /// Everything that can still matter, as of `sequence`.
    Snapshot {
        sequence: u64,
        events: Vec<Arc<RevocationEvent>>,
    },
    /// The events after the stream's cursor, up to the feed's present.
    Replay(Vec<Arc<RevocationEvent>>),
}

/// A stream's start and its place on the feed: every event after what `start` covers arrives
/// on `feed`, in sequence order (events the start already covered may come again: skip any at
/// or below the last sequence sent).
#[derive(Debug)]
pub struct Subscription {
    pub start: StreamStart,
    pub feed: broadcast::Receiver<Arc<RevocationEvent>>,
    /// Turns true when the server stops: streams end then.
    pub closing: watch::Receiver<bool>,
}

/// What this instance knows was revoked.
pub struct RevocationView {
    repo: SharedRepository,
    clock: SharedClock,
    /// How long this instance's own tokens may need an event: its longest token lifetime,
    /// plus the leeway.
    keep_ms: i64,
    state: RwLock<State>,
    last_read: AtomicI64,
    closing: watch::Sender<bool>,
}

impl std::fmt::Debug for RevocationView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationView").finish_non_exhaustive()
    }
}

impl RevocationView {
    /// Loads every event that can still matter, and every disabled client. `keep` is this
    /// instance's longest token lifetime plus its leeway.
    pub async fn load(
        repo: SharedRepository,
        keep: Duration,
        clock: SharedClock,
    ) -> Result<Self, DomainError> {
        let now = clock.now_ms();
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        // Events past their `expires_at` but within this instance's own window are kept too.
        let live = repo.live_revocations(now.saturating_sub(keep_ms)).await?;
        let state = State::loaded(live);
        let view = Self {
            repo,
            clock,
            keep_ms,
            state: RwLock::new(state),
            last_read: AtomicI64::new(now),
            closing: watch::channel(false).0,
        };
        view.read_disabled_clients().await?;
        Ok(view)
    }

    /// Disabled clients come from the clients table too, so that a disable stays in force
    /// after its log entry expires.
    async fn read_disabled_clients(&self) -> Result<(), DomainError> {
        let disabled = self.repo.disabled_client_ids().await?;
        self.state.write().disabled_clients.extend(disabled);
        Ok(())
    }

    /// Applies a revocation this instance made (its transaction committed it as `event`),
    /// effective from the next call on.
    pub fn apply(&self, event: RevocationEvent) {
        let mut state = self.state.write();
        if state.insert(Arc::new(event)) {
            state.deliver();
        }
    }

    /// Reads what other instances (and the CLI) revoked since the last read, and forgets
    /// what can no longer matter.
    pub async fn refresh(&self) -> Result<(), DomainError> {
        let now = self.clock.now_ms();
        self.read_disabled_clients().await?;
        let head = self.repo.log_head().await?;
        if head < self.state.read().read_up_to {
            self.start_over(now).await?;
        }
        loop {
            let after = self.state.read().read_up_to;
            let page = self.repo.revocations_after(after, READ_BATCH).await?;
            let mut state = self.state.write();
            // Every row counts, known kind or not, so that the cursor always moves on.
            if let Some(last) = page.last_sequence {
                state.read_up_to = state.read_up_to.max(last);
            }
            for event in page.events {
                state.insert(Arc::new(event));
            }
            state.deliver();
            if page.rows < READ_BATCH {
                break;
            }
        }
        // Looked for under the read lock: introspection waits on the write lock only when there
        // is something to forget.
        if self.state.read().has_expired(now, self.keep_ms) {
            self.state.write().forget_expired(now, self.keep_ms);
        }
        // Never backwards: a read that began before a later one finished vouches for less.
        self.last_read.fetch_max(now, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the view is too old to vouch for a token.
    /// When this view last read the log (Unix ms).
    pub fn last_read_ms(&self) -> i64 {
        self.last_read.load(Ordering::Relaxed)
    }

    pub fn is_stale(&self, now: i64) -> bool {
        now - self.last_read.load(Ordering::Relaxed) > STALE_AFTER_MS
    }

    /// Whether this client was disabled, as far as the view knows.
    pub fn is_client_disabled(&self, client_id: &str) -> bool {
        self.state.read().disabled_clients.contains(client_id)
    }

    /// Whether the view knows this session ended.
    pub fn is_session_revoked(&self, sid: &str) -> bool {
        self.state.read().sessions.contains_key(sid)
    }

    /// Whether the view knows this access token was revoked on its own.
    pub fn is_token_revoked(&self, jti: &str) -> bool {
        self.state.read().tokens.contains_key(jti)
    }

    /// Whether anything revoked covers a token with these (verified) claims.
    pub fn covers(&self, claims: &AccessClaims) -> bool {
        let state = self.state.read();
        state.disabled_clients.contains(&claims.client_id)
            || state.tokens.contains_key(&claims.jti)
            || claims
                .sid
                .as_ref()
                .is_some_and(|sid| state.sessions.contains_key(sid))
    }

    /// The sequence of the last event sent to the feed.
    pub fn sequence(&self) -> u64 {
        self.state.read().delivered
    }

    /// Events held (what the view's memory is spent on).
    pub fn held(&self) -> usize {
        self.state.read().held.len()
    }

    /// A stream's start after `after_sequence` (0: from nothing) and its place on the feed.
    /// A cursor older than what the view still holds gets a snapshot, as does 0.
    pub fn subscribe(&self, after_sequence: u64) -> Subscription {
        let now = self.clock.now_ms();
        // Under the lock that delivery takes, so that nothing falls between start and feed.
        let state = self.state.read();
        let feed = state.feed.subscribe();
        // A cursor ahead of this view (another instance ran ahead, or the log went back) gets a
        // snapshot too: replaying from it could skip what this view has not read.
        let start = if after_sequence == 0
            || after_sequence < state.floor
            || after_sequence > state.delivered
        {
            StreamStart::Snapshot {
                sequence: state.delivered,
                events: state
                    .held
                    .range(..=state.delivered)
                    .map(|(_, event)| event)
                    .filter(|event| event.expires_at >= now)
                    .cloned()
                    .collect(),
            }
        } else if after_sequence == state.delivered {
            StreamStart::Replay(Vec::new())
        } else {
            StreamStart::Replay(
                state
                    .held
                    .range(after_sequence + 1..=state.delivered)
                    .map(|(_, event)| event.clone())
                    .collect(),
            )
        };
        Subscription {
            start,
            feed,
            closing: self.closing.subscribe(),
        }
    }

    /// Makes the view again from what the log holds: the log's head went back below what this
    /// view read (a database restored from a backup, a fail-over that lost the last commits),
    /// so sequences it read may be given again to other revocations. What it knew stays known
    /// (a revocation, once made, is kept until it expires); every stream ends, and resumes with
    /// a snapshot.
    async fn start_over(&self, now: i64) -> Result<(), DomainError> {
        let live = self
            .repo
            .live_revocations(now.saturating_sub(self.keep_ms))
            .await?;
        let mut fresh = State::loaded(live);
        let mut state = self.state.write();
        tracing::warn!(
            read_up_to = state.read_up_to,
            head = fresh.read_up_to,
            "the revocation log went back: view made again, streams ended"
        );
        fresh.sessions.extend(
            std::mem::take(&mut state.sessions)
                .into_keys()
                .map(|k| (k, 0)),
        );
        fresh.tokens.extend(
            std::mem::take(&mut state.tokens)
                .into_keys()
                .map(|k| (k, 0)),
        );
        fresh
            .disabled_clients
            .extend(std::mem::take(&mut state.disabled_clients));
        // The old feed goes with the old state: its streams see it close.
        *state = fresh;
        Ok(())
    }

    /// Ends every stream on this view's feed (they reconnect and resume): the view cannot read
    /// the log and streams must not go on heartbeating over revocations they are not sent.
    pub fn end_streams(&self) {
        self.state.write().feed = broadcast::channel(FEED_CAPACITY).0;
    }

    /// Ends every stream (the server is stopping).
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }
}
