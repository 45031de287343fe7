//! An in-memory [`Repository`] for the domain's unit tests: the same rules as the sea-orm
//! store (one step at a time, guarded session starts, compare-and-spend rotations, the
//! revocation log), with no database and no socket.
use std::collections::BTreeMap;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::repository::{
    CleanupRepository, ClientRecord, ClientRepository, Cutoffs, Deleted, IssuedAccess,
    KeyRepository, KeyUpdate, LiveRevocations, LogPage, NewSession, RefreshTokenRecord, Reissue,
    RepositoryError, RevocationEvent, RevocationKind, RevocationLog, SessionRecord,
    SessionRepository, SigningKeyRecord, ThrottleCount, ThrottleRepository, UserRecord,
    UserRepository,
};

type Result<T> = std::result::Result<T, RepositoryError>;

#[derive(Debug, Default)]
struct Tables {
    users: BTreeMap<String, UserRecord>,
    clients: BTreeMap<String, ClientRecord>,
    sessions: BTreeMap<String, SessionRecord>,
    refresh_tokens: BTreeMap<String, RefreshTokenRecord>,
    keys: BTreeMap<i64, SigningKeyRecord>,
    events: Vec<RevocationEvent>,
    /// The last sequence given out (the store's one-row counter).
    last_sequence: u64,
    throttles: BTreeMap<String, (ThrottleCount, i64)>,
    /// When set, every call fails as if the database were away.
    unavailable: bool,
    /// A change to this user to commit just before the next session starts (what a password
    /// change or a disable landing between a login's password check and its session looks
    /// like).
    change_before_session_start: Option<(String, UserChange)>,
    throttle_writes: u64,
    throttle_reads: u64,
}

/// A change to a user, made behind a login's back.
#[derive(Clone, Copy, Debug)]
pub enum UserChange {
    PasswordChanged,
    Disabled,
}

/// The domain's repository, in memory.
#[derive(Debug, Default)]
pub struct MemoryRepository {
    tables: Mutex<Tables>,
    /// When set, password re-hashes wait here until it is notified.
    upgrade_gate: Mutex<Option<std::sync::Arc<tokio::sync::Notify>>>,
}

impl MemoryRepository {
    /// Makes every following call fail with `Unavailable` (or work again).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.tables.lock().unavailable = unavailable;
    }

    /// Queries made of throttle counters so far: writes (counts, locks, resets, take-backs)
    /// and reads.
    pub fn throttle_queries(&self) -> u64 {
        let tables = self.tables.lock();
        tables.throttle_writes + tables.throttle_reads
    }

    /// Loses every revocation after `sequence`, as a database restored from a backup would.
    pub fn roll_back_log(&self, sequence: u64) {
        let mut tables = self.tables.lock();
        tables.events.retain(|e| e.sequence <= sequence);
        tables.last_sequence = sequence;
    }

    /// Holds every password re-hash until the returned gate is notified.
    pub fn hold_password_upgrades(&self) -> std::sync::Arc<tokio::sync::Notify> {
        let gate = std::sync::Arc::new(tokio::sync::Notify::new());
        *self.upgrade_gate.lock() = Some(gate.clone());
        gate
    }

    /// Commits `change` to `user_id` just before the next session starts.
    pub fn change_before_next_session_start(&self, user_id: &str, change: UserChange) {
        self.tables.lock().change_before_session_start = Some((user_id.to_owned(), change));
    }

    fn with<T>(&self, f: impl FnOnce(&mut Tables) -> Result<T>) -> Result<T> {
        let mut tables = self.tables.lock();
        if tables.unavailable {
            return Err(RepositoryError::Unavailable(anyhow::anyhow!(
                "the in-memory database is switched off"
            )));
        }
        f(&mut tables)
    }
}

fn conflict(what: &str) -> RepositoryError {
    RepositoryError::Conflict(anyhow::anyhow!("{what} exists"))
}

impl Tables {
    /// Ends the live sessions `which` picks, logging each; the sequence of the last event.
    fn end_sessions(
        &mut self,
        which: impl Fn(&SessionRecord) -> bool,
        now: i64,
        reason: &str,
        expires_at: i64,
    ) -> Option<u64> {
        let mut ended = Vec::new();
        for session in self.sessions.values_mut() {
            if session.ended_at.is_none() && which(session) {
                session.ended_at = Some(now);
                session.end_reason = Some(reason.to_owned());
                ended.push(session.sid.clone());
            }
        }
        let mut last = None;
        for sid in ended {
            last = Some(self.log(RevocationKind::Session, &sid, now, expires_at));
        }
        last
    }

    /// Appends to the log (one event per kind and subject); the event's sequence.
    fn log(&mut self, kind: RevocationKind, subject: &str, now: i64, expires_at: i64) -> u64 {
        self.last_sequence += 1;
        self.events.push(RevocationEvent {
            sequence: self.last_sequence,
            kind,
            subject: subject.to_owned(),
            revoked_at: now,
            expires_at,
        });
        self.last_sequence
    }
}

#[async_trait]
impl UserRepository for MemoryRepository {
    async fn insert_user(&self, user: UserRecord) -> Result<()> {
        self.with(|t| {
            if t.users.values().any(|u| u.username == user.username) {
                return Err(conflict("username"));
            }
            t.users.insert(user.user_id.clone(), user);
            Ok(())
        })
    }

    async fn find_user_by_username(&self, username: &str) -> Result<Option<UserRecord>> {
        self.with(|t| Ok(t.users.values().find(|u| u.username == username).cloned()))
    }

    async fn upgrade_password_hash(
        &self,
        user_id: &str,
        old_hash: &str,
        new_hash: String,
        now: i64,
    ) -> Result<()> {
        let gate = self.upgrade_gate.lock().clone();
        if let Some(gate) = gate {
            gate.notified().await;
        }
        self.with(|t| {
            if let Some(user) = t.users.get_mut(user_id)
                && user.password_hash == old_hash
            {
                user.password_hash = new_hash;
                user.updated_at = now;
            }
            Ok(())
        })
    }

    async fn change_password(
        &self,
        user_id: &str,
        new_hash: String,
        now: i64,
        revocations_expire_at: i64,
    ) -> Result<bool> {
        let ending = (now, "password_changed", revocations_expire_at);
        self.change_user(user_id, ending, |user| user.password_hash = new_hash)
    }

    async fn disable_user(
        &self,
        user_id: &str,
        now: i64,
        revocations_expire_at: i64,
    ) -> Result<bool> {
        let ending = (now, "user_disabled", revocations_expire_at);
        self.change_user(user_id, ending, |user| user.disabled_at = Some(now))
    }
}

impl MemoryRepository {
    /// Applies `change` to a user, moves its version and ends its sessions (`ending`: when,
    /// why, and until when their revocations are kept), as the store does in one transaction.
    fn change_user(
        &self,
        user_id: &str,
        (now, reason, expires_at): (i64, &str, i64),
        change: impl FnOnce(&mut UserRecord),
    ) -> Result<bool> {
        self.with(|t| {
            let Some(user) = t.users.get_mut(user_id) else {
                return Ok(false);
            };
            change(user);
            user.version += 1;
            user.updated_at = now;
            t.end_sessions(
                |s| s.user_id.as_deref() == Some(user_id),
                now,
                reason,
                expires_at,
            );
            Ok(true)
        })
    }
}

#[async_trait]
impl ClientRepository for MemoryRepository {
    async fn insert_client(&self, client: ClientRecord) -> Result<()> {
        self.with(|t| {
            if t.clients.contains_key(&client.client_id) {
                return Err(conflict("client"));
            }
            t.clients.insert(client.client_id.clone(), client);
            Ok(())
        })
    }

    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        self.with(|t| Ok(t.clients.get(client_id).cloned()))
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>> {
        self.with(|t| Ok(t.clients.values().cloned().collect()))
    }

    async fn disable_client(&self, client_id: &str, now: i64, expires_at: i64) -> Result<bool> {
        self.with(|t| {
            let Some(client) = t.clients.get_mut(client_id) else {
                return Ok(false);
            };
            if client.disabled_at.is_some() {
                return Ok(true);
            }
            client.disabled_at = Some(now);
            client.updated_at = now;
            for session in t.sessions.values_mut() {
                if session.client_id == client_id && session.ended_at.is_none() {
                    session.ended_at = Some(now);
                    session.end_reason = Some("client_disabled".to_owned());
                }
            }
            t.log(RevocationKind::Client, client_id, now, expires_at);
            Ok(true)
        })
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: String,
        now: i64,
    ) -> Result<bool> {
        self.with(|t| {
            let Some(client) = t.clients.get_mut(client_id) else {
                return Ok(false);
            };
            client.secret_hash = Some(secret_hash);
            client.secret_rotated_at = Some(now);
            client.updated_at = now;
            Ok(true)
        })
    }

    async fn replace_client_secret_hash(
        &self,
        client_id: &str,
        old_hash: &str,
        new_hash: String,
    ) -> Result<()> {
        self.with(|t| {
            if let Some(client) = t.clients.get_mut(client_id)
                && client.secret_hash.as_deref() == Some(old_hash)
            {
                client.secret_hash = Some(new_hash);
            }
            Ok(())
        })
    }

    async fn disabled_client_ids(&self) -> Result<Vec<String>> {
        self.with(|t| {
            Ok(t.clients
                .values()
                .filter(|c| c.disabled_at.is_some())
                .map(|c| c.client_id.clone())
                .collect())
        })
    }
}

#[async_trait]
impl SessionRepository for MemoryRepository {
    async fn start_session(&self, new: NewSession) -> Result<bool> {
        self.with(|t| {
            if let Some((user_id, change)) = t.change_before_session_start.take()
                && let Some(user) = t.users.get_mut(&user_id)
            {
                user.version += 1;
                if matches!(change, UserChange::Disabled) {
                    user.disabled_at = Some(new.session.created_at);
                }
            }
            if let (Some(user_id), Some(version)) = (&new.session.user_id, new.user_version) {
                let guard_holds = t
                    .users
                    .get(user_id)
                    .is_some_and(|u| u.disabled_at.is_none() && u.version == version);
                if !guard_holds {
                    return Ok(false);
                }
            }
            t.sessions.insert(new.session.sid.clone(), new.session);
            t.refresh_tokens
                .insert(new.refresh_token.token_hash.clone(), new.refresh_token);
            Ok(true)
        })
    }

    async fn find_session(&self, sid: &str) -> Result<Option<SessionRecord>> {
        self.with(|t| Ok(t.sessions.get(sid).cloned()))
    }

    async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<RefreshTokenRecord>> {
        self.with(|t| Ok(t.refresh_tokens.get(token_hash).cloned()))
    }

    async fn end_session(
        &self,
        sid: &str,
        now: i64,
        reason: &str,
        expires_at: i64,
    ) -> Result<Option<u64>> {
        self.with(|t| Ok(t.end_sessions(|s| s.sid == sid, now, reason, expires_at)))
    }

    async fn revoke_token(&self, jti: &str, now: i64, expires_at: i64) -> Result<Option<u64>> {
        self.with(|t| {
            let logged = t
                .events
                .iter()
                .any(|e| e.kind == RevocationKind::Token && e.subject == jti);
            Ok((!logged).then(|| t.log(RevocationKind::Token, jti, now, expires_at)))
        })
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        successor: RefreshTokenRecord,
        now: i64,
    ) -> Result<bool> {
        self.with(|t| {
            let session_live = t
                .sessions
                .get(&successor.sid)
                .is_some_and(|s| s.ended_at.is_none() && s.expires_at > now);
            let Some(old) = t.refresh_tokens.get_mut(old_hash) else {
                return Ok(false);
            };
            if !session_live || old.spent_at.is_some() || old.expires_at <= now {
                return Ok(false);
            }
            old.spent_at = Some(now);
            old.successor_hash = Some(successor.token_hash.clone());
            t.refresh_tokens
                .insert(successor.token_hash.clone(), successor);
            Ok(true)
        })
    }

    async fn reissue_refresh_token(
        &self,
        presented_hash: &str,
        replaced_hash: &str,
        replacement: RefreshTokenRecord,
        now: i64,
        revoke: Option<&IssuedAccess>,
    ) -> Result<Reissue> {
        self.with(|t| {
            let session_live = t
                .sessions
                .get(&replacement.sid)
                .is_some_and(|s| s.ended_at.is_none() && s.expires_at > now);
            let replaceable = t
                .refresh_tokens
                .get(replaced_hash)
                .is_some_and(|r| r.spent_at.is_none());
            let points_at_it = t
                .refresh_tokens
                .get(presented_hash)
                .is_some_and(|p| p.successor_hash.as_deref() == Some(replaced_hash));
            if !(session_live && replaceable && points_at_it) {
                return Ok(Reissue::Refused);
            }
            if let Some(replaced) = t.refresh_tokens.get_mut(replaced_hash) {
                replaced.spent_at = Some(now);
                replaced.replaced_at = Some(now);
            }
            if let Some(presented) = t.refresh_tokens.get_mut(presented_hash) {
                presented.successor_hash = Some(replacement.token_hash.clone());
            }
            t.refresh_tokens
                .insert(replacement.token_hash.clone(), replacement);
            let revocation = revoke.and_then(|access| {
                let logged = t
                    .events
                    .iter()
                    .any(|e| e.kind == RevocationKind::Token && e.subject == access.jti);
                (!logged).then(|| t.log(RevocationKind::Token, &access.jti, now, access.expires_at))
            });
            Ok(Reissue::Replaced { revocation })
        })
    }
}

#[async_trait]
impl KeyRepository for MemoryRepository {
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        self.with(|t| Ok(t.keys.values().rev().cloned().collect()))
    }

    async fn insert_signing_key(&self, key: SigningKeyRecord) -> Result<()> {
        self.with(|t| {
            if t.keys.contains_key(&key.generation) {
                return Err(conflict("key generation"));
            }
            t.keys.insert(key.generation, key);
            Ok(())
        })
    }

    async fn newest_key_generation(&self) -> Result<Option<i64>> {
        self.with(|t| Ok(t.keys.keys().next_back().copied()))
    }

    async fn rotate_signing_key(&self, key: SigningKeyRecord, older: Vec<KeyUpdate>) -> Result<()> {
        self.with(|t| {
            if t.keys.contains_key(&key.generation) {
                return Err(conflict("key generation"));
            }
            if !older.iter().all(|update| applicable(&t.keys, update)) {
                return Err(conflict("a signing key changed during the rotation"));
            }
            t.keys.insert(key.generation, key);
            for update in older {
                apply(&mut t.keys, update);
            }
            Ok(())
        })
    }

    async fn update_signing_key(&self, update: KeyUpdate) -> Result<bool> {
        self.with(|t| {
            if !applicable(&t.keys, &update) {
                return Ok(false);
            }
            apply(&mut t.keys, update);
            Ok(true)
        })
    }
}

/// Whether the row `update` is for still carries the MAC it expects.
fn applicable(keys: &BTreeMap<i64, SigningKeyRecord>, update: &KeyUpdate) -> bool {
    keys.values()
        .any(|k| k.kid == update.key.kid && k.row_mac == update.expected_mac)
}

fn apply(keys: &mut BTreeMap<i64, SigningKeyRecord>, update: KeyUpdate) {
    if let Some(row) = keys.values_mut().find(|k| k.kid == update.key.kid) {
        row.sealed_secret_key = update.key.sealed_secret_key;
        row.superseded_at = update.key.superseded_at;
        row.retire_at = update.key.retire_at;
        row.row_mac = update.key.row_mac;
    }
}

#[async_trait]
impl RevocationLog for MemoryRepository {
    async fn revocations_after(&self, after: u64, limit: u64) -> Result<LogPage> {
        self.with(|t| {
            let events: Vec<RevocationEvent> = t
                .events
                .iter()
                .filter(|e| e.sequence > after)
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .cloned()
                .collect();
            Ok(LogPage {
                rows: u64::try_from(events.len()).unwrap_or(u64::MAX),
                last_sequence: events.last().map(|e| e.sequence),
                events,
            })
        })
    }

    async fn log_head(&self) -> Result<u64> {
        self.with(|t| Ok(t.last_sequence))
    }

    async fn live_revocations(&self, now: i64) -> Result<LiveRevocations> {
        self.with(|t| {
            Ok(LiveRevocations {
                events: t
                    .events
                    .iter()
                    .filter(|e| e.expires_at > now)
                    .cloned()
                    .collect(),
                head: t.last_sequence,
            })
        })
    }
}

#[async_trait]
impl ThrottleRepository for MemoryRepository {
    async fn read_counter(&self, key: &str) -> Result<Option<ThrottleCount>> {
        self.with(|t| {
            t.throttle_reads += 1;
            Ok(t.throttles.get(key).map(|(count, _)| *count))
        })
    }

    async fn count_attempt(&self, key: &str, now: i64, window_ms: i64) -> Result<ThrottleCount> {
        self.with(|t| {
            t.throttle_writes += 1;
            let (count, updated_at) = t.throttles.entry(key.to_owned()).or_insert((
                ThrottleCount {
                    failures: 0,
                    locked_until: None,
                    window_started_at: now,
                    lockouts: 0,
                },
                now,
            ));
            let locked = count.locked_until.is_some_and(|until| until > now);
            if *updated_at <= now - super::throttle::QUIET_MS {
                count.lockouts = 0;
            }
            if !locked {
                if count.window_started_at <= now - window_ms {
                    count.failures = 1;
                    count.window_started_at = now;
                } else {
                    count.failures += 1;
                }
            }
            *updated_at = now;
            Ok(*count)
        })
    }

    async fn lock_key(&self, key: &str, now: i64, until: i64) -> Result<()> {
        self.with(|t| {
            t.throttle_writes += 1;
            if let Some((count, updated_at)) = t.throttles.get_mut(key)
                && count.locked_until.is_none_or(|at| at <= now)
            {
                count.locked_until = Some(until);
                count.lockouts += 1;
                *updated_at = now;
            }
            Ok(())
        })
    }

    async fn reset_key(&self, key: &str) -> Result<()> {
        self.with(|t| {
            t.throttle_writes += 1;
            t.throttles.remove(key);
            Ok(())
        })
    }

    async fn uncount_attempt(&self, key: &str, window_started_at: i64, now: i64) -> Result<()> {
        self.with(|t| {
            t.throttle_writes += 1;
            if let Some((count, updated_at)) = t.throttles.get_mut(key)
                && count.failures > 0
                && count.window_started_at == window_started_at
            {
                count.failures -= 1;
                *updated_at = now;
            }
            Ok(())
        })
    }
}

#[async_trait]
impl CleanupRepository for MemoryRepository {
    async fn delete_expired(&self, cutoffs: &Cutoffs, _batch: u64) -> Result<Deleted> {
        self.with(|t| {
            let mut deleted = Deleted::default();
            let over: Vec<String> = t
                .sessions
                .values()
                .filter(|s| {
                    s.ended_at.is_some_and(|at| at <= cutoffs.sessions_over)
                        || s.expires_at <= cutoffs.sessions_over
                })
                .map(|s| s.sid.clone())
                .collect();
            let before = t.refresh_tokens.len();
            t.refresh_tokens.retain(|_, r| {
                r.expires_at > cutoffs.refresh_tokens_expired && !over.contains(&r.sid)
            });
            deleted.refresh_tokens = (before - t.refresh_tokens.len()) as u64;
            for sid in &over {
                t.sessions.remove(sid);
            }
            deleted.sessions = over.len() as u64;
            let before = t.events.len();
            t.events.retain(|e| {
                e.expires_at >= cutoffs.revocations_expired
                    || e.revoked_at >= cutoffs.revocations_made_before
            });
            deleted.revocation_events = (before - t.events.len()) as u64;
            let before = t.throttles.len();
            t.throttles.retain(|_, (count, updated_at)| {
                !(*updated_at <= cutoffs.throttles_idle_since
                    && count.window_started_at <= cutoffs.throttle_windows_started
                    && count
                        .locked_until
                        .is_none_or(|at| at <= cutoffs.throttle_locks_ended))
            });
            deleted.login_throttles = (before - t.throttles.len()) as u64;
            Ok(deleted)
        })
    }
}
