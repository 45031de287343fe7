//! What the domain needs from a database, in the domain's own terms: the records it reads and
//! writes and one trait per aggregate. The sea-orm store implements them for SQLite and
//! PostgreSQL; the domain's unit tests run on an in-memory implementation.
//!
//! Every method is one atomic step: where a rule spans rows (a session and its first refresh
//! token, a rotation, a session's end and its revocation event), the implementation commits
//! them together or not at all.
use std::sync::Arc;

use async_trait::async_trait;

use super::clients::ClientKind;

/// A failed repository call, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The database cannot be reached, or is too busy to answer in time: try again later.
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A unique constraint refused the write.
    #[error("conflicting row")]
    Conflict(#[source] anyhow::Error),
    /// Anything else: a bug or a broken schema.
    #[error("database error")]
    Other(#[source] anyhow::Error),
}

/// An end user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub user_id: String,
    /// Normalised (see `users::normalize_username`).
    pub username: String,
    /// argon2id, PHC string.
    pub password_hash: String,
    pub disabled_at: Option<i64>,
    /// Moves on every change that must stop a login in flight (password change, disable):
    /// a session starts only if the version read with the password is still current.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A registered client application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    pub name: String,
    pub kind: ClientKind,
    /// The secret's SHA-256 digest (`domain::client_secret`), or an argon2id PHC string stored
    /// by an earlier release; `None` for a marketplace client without a secret.
    pub secret_hash: Option<String>,
    pub secret_rotated_at: Option<i64>,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A session: what a refresh token chain and the access tokens carrying its `sid` belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub sid: String,
    pub client_id: String,
    /// `None` for an integration client's own session.
    pub user_id: Option<String>,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
}

/// A refresh token, by the SHA-256 of its text (the text itself is never stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub token_hash: String,
    pub sid: String,
    pub client_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub spent_at: Option<i64>,
    /// Once spent: the refresh token its spending issued (the latest, after a reissue).
    pub successor_hash: Option<String>,
    /// The access token issued beside this refresh token (by a refresh), which a reissue of
    /// the pair revokes.
    pub issued_with: Option<IssuedAccess>,
    /// When a retried refresh replaced this token (spent, never delivered to the client): a
    /// later presentation can only come from someone else.
    pub replaced_at: Option<i64>,
}

/// An access token, as far as revoking it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedAccess {
    pub jti: String,
    pub expires_at: i64,
}

/// What `SessionRepository::reissue_refresh_token` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reissue {
    /// The pair was replaced; the sequence of the replaced access token's revocation, when one
    /// was logged.
    Replaced { revocation: Option<u64> },
    /// Nothing changed: the pair was replaced or used meanwhile, or the session ended.
    Refused,
}

/// A session to start, with its first refresh token.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub session: SessionRecord,
    pub refresh_token: RefreshTokenRecord,
    /// For a user's session: the user's version as read when the password was checked. The
    /// session starts only if the user is still enabled at that version.
    pub user_version: Option<i64>,
}

/// A signing key pair, its secret half sealed with the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub generation: i64,
    pub public_key: Vec<u8>,
    pub sealed_secret_key: Vec<u8>,
    pub created_at: i64,
    pub superseded_at: Option<i64>,
    pub retire_at: Option<i64>,
    /// The master key's MAC of the row (`None` on rows of releases before it).
    pub row_mac: Option<Vec<u8>>,
}

/// A signing-key row changed (its lifetimes, or its sealing and MAC), applied only if the row
/// still carries `expected_mac`: a compare-and-set, since every change changes the MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUpdate {
    pub key: SigningKeyRecord,
    pub expected_mac: Option<Vec<u8>>,
}

/// What a revocation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    /// A session ended: every token carrying its sid.
    Session,
    /// One access token (by jti), revoked alone.
    Token,
    /// A client disabled: every token issued to it.
    Client,
}

/// An entry of the revocation log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationEvent {
    /// The log's commit order: gapless, assigned when the revoking transaction commits.
    pub sequence: u64,
    pub kind: RevocationKind,
    pub subject: String,
    /// When the revocation was made, by the revoking machine's clock (for people; nothing
    /// orders or forgets by it).
    pub revoked_at: i64,
    /// No token the revocation covers outlives this: it can be forgotten then.
    pub expires_at: i64,
}

/// One read of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogPage {
    /// The events read, in sequence order (events of a kind this version does not know are
    /// left out, but counted below).
    pub events: Vec<RevocationEvent>,
    /// The highest sequence read, known kind or not (the cursor to read on from).
    pub last_sequence: Option<u64>,
    /// Rows read, known kind or not.
    pub rows: u64,
}

/// The part of the log that can still matter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveRevocations {
    /// Every event whose `expires_at` has not passed, in sequence order.
    pub events: Vec<RevocationEvent>,
    /// The sequence of the last committed event (0 when there has been none).
    pub head: u64,
}

/// The counter of one throttle key after an attempt was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleCount {
    /// Attempts in the current window, this one included (counted before the password is
    /// checked, and taken back by a success).
    pub failures: i32,
    /// Until when the key is locked, if it is.
    pub locked_until: Option<i64>,
    /// When the current window started.
    pub window_started_at: i64,
    /// How many times the key was locked since it was last quiet for a day.
    pub lockouts: i32,
}

/// Up to when each kind of row can go: a row is deleted when its time is at or before the
/// cut-off (Unix milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cutoffs {
    /// Refresh tokens, spent or not, that expired by then.
    pub refresh_tokens_expired: i64,
    /// Sessions that ended or expired by then: their refresh tokens first, then the session.
    pub sessions_over: i64,
    /// Revocation events that expired by then...
    pub revocations_expired: i64,
    /// ...and were made by then (kept for the longest a token lives, whatever lifetimes
    /// their writer assumed).
    pub revocations_made_before: i64,
    /// Throttle rows last counted by then...
    pub throttles_idle_since: i64,
    /// ...whose window started by then...
    pub throttle_windows_started: i64,
    /// ...and whose lock, if any, ended by then.
    pub throttle_locks_ended: i64,
}

/// How many rows of each kind one clean-up deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    pub refresh_tokens: u64,
    pub sessions: u64,
    pub revocation_events: u64,
    pub login_throttles: u64,
}

impl Deleted {
    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.refresh_tokens + self.sessions + self.revocation_events + self.login_throttles
    }
}

type Result<T> = std::result::Result<T, RepositoryError>;

#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Fails with `Conflict` when the username is taken.
    async fn insert_user(&self, user: UserRecord) -> Result<()>;
    async fn find_user_by_username(&self, username: &str) -> Result<Option<UserRecord>>;
    /// Replaces `old_hash` with a stronger one, unless the password changed meanwhile.
    async fn upgrade_password_hash(
        &self,
        user_id: &str,
        old_hash: &str,
        new_hash: String,
        now: i64,
    ) -> Result<()>;
    /// Sets a new password hash, moves the version and ends the user's sessions, logging a
    /// `Session` revocation (kept until `revocations_expire_at`) for each. False when there is
    /// no such user.
    async fn change_password(
        &self,
        user_id: &str,
        new_hash: String,
        now: i64,
        revocations_expire_at: i64,
    ) -> Result<bool>;
    /// Disables the user, moves the version and ends the user's sessions, logging them as
    /// [`UserRepository::change_password`] does. False when there is no such user.
    async fn disable_user(
        &self,
        user_id: &str,
        now: i64,
        revocations_expire_at: i64,
    ) -> Result<bool>;
}

#[async_trait]
pub trait ClientRepository: Send + Sync {
    async fn insert_client(&self, client: ClientRecord) -> Result<()>;
    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>>;
    async fn list_clients(&self) -> Result<Vec<ClientRecord>>;
    /// Disables the client, ends its sessions and logs a `Client` revocation (kept until
    /// `expires_at`). False when there is no such client; a client disabled already is left
    /// as it is (and logs nothing).
    async fn disable_client(&self, client_id: &str, now: i64, expires_at: i64) -> Result<bool>;
    /// Sets a new secret hash. False when there is no such client.
    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: String,
        now: i64,
    ) -> Result<bool>;
    /// The ids of every disabled client.
    async fn disabled_client_ids(&self) -> Result<Vec<String>>;
    /// Replaces a client's secret hash with `new_hash` (the same secret, stored better), unless
    /// it is no longer `old_hash` (a rotation came first).
    async fn replace_client_secret_hash(
        &self,
        client_id: &str,
        old_hash: &str,
        new_hash: String,
    ) -> Result<()>;
}

#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Starts a session and stores its first refresh token, atomically. False, and nothing
    /// stored, when the user guard (`user_version`) no longer holds.
    async fn start_session(&self, new: NewSession) -> Result<bool>;
    async fn find_session(&self, sid: &str) -> Result<Option<SessionRecord>>;
    async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<RefreshTokenRecord>>;
    /// Ends a session and logs a `Session` revocation (kept until `expires_at`). The event's
    /// sequence, or `None` when the session had ended already (nothing is written).
    async fn end_session(
        &self,
        sid: &str,
        now: i64,
        reason: &str,
        expires_at: i64,
    ) -> Result<Option<u64>>;
    /// Logs a `Token` revocation of one access token (kept until `expires_at`). The event's
    /// sequence, or `None` when the token was revoked already (nothing is written).
    async fn revoke_token(&self, jti: &str, now: i64, expires_at: i64) -> Result<Option<u64>>;
    /// Spends `old_hash` and stores its successor, atomically. False, and nothing stored, when
    /// it was spent already or its session ended.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        successor: RefreshTokenRecord,
        now: i64,
    ) -> Result<bool>;
    /// Within the reuse grace (SPEC §2): replaces the pair that spending `presented_hash`
    /// issued, whose refresh token `replaced_hash` must still be unspent, with `replacement`,
    /// atomically: the replaced refresh token is spent, `revoke` (the access token issued
    /// beside it, with the time its revocation may be forgotten) is logged as revoked unless
    /// the log holds it already, and the presented token points at the replacement.
    async fn reissue_refresh_token(
        &self,
        presented_hash: &str,
        replaced_hash: &str,
        replacement: RefreshTokenRecord,
        now: i64,
        revoke: Option<&IssuedAccess>,
    ) -> Result<Reissue>;
}

#[async_trait]
pub trait KeyRepository: Send + Sync {
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// Fails with `Conflict` when a key of that generation exists (another instance made it).
    async fn insert_signing_key(&self, key: SigningKeyRecord) -> Result<()>;
    /// The generation of the newest key, if any: a cheap check for a rotation elsewhere.
    async fn newest_key_generation(&self) -> Result<Option<i64>>;
    /// Stores `key` as the new signing key and applies `older` (the older keys superseded and
    /// retiring), in one transaction. Fails with `Conflict`, and changes nothing, when another
    /// rotation won or one of the older rows changed meanwhile.
    async fn rotate_signing_key(&self, key: SigningKeyRecord, older: Vec<KeyUpdate>) -> Result<()>;
    /// Applies one row's update; false (nothing written) when the row changed meanwhile.
    async fn update_signing_key(&self, update: KeyUpdate) -> Result<bool>;
}

#[async_trait]
pub trait RevocationLog: Send + Sync {
    /// Events with a sequence above `after`, in sequence order, `limit` rows at most.
    async fn revocations_after(&self, after: u64, limit: u64) -> Result<LogPage>;
    /// Every event not expired at `now`, and the log's head.
    async fn live_revocations(&self, now: i64) -> Result<LiveRevocations>;
    /// The sequence of the last committed event (0 when there has been none).
    async fn log_head(&self) -> Result<u64>;
}

#[async_trait]
pub trait ThrottleRepository: Send + Sync {
    /// The counter of `key` as stored, without counting anything.
    async fn read_counter(&self, key: &str) -> Result<Option<ThrottleCount>>;
    /// Counts one attempt for `key`: starts a new window when the last one (`window_ms`) is
    /// over, and leaves a locked key's counter alone.
    async fn count_attempt(&self, key: &str, now: i64, window_ms: i64) -> Result<ThrottleCount>;
    /// Locks `key` until `until` and counts a lockout.
    async fn lock_key(&self, key: &str, now: i64, until: i64) -> Result<()>;
    /// Forgets `key`'s failures (a success).
    async fn reset_key(&self, key: &str) -> Result<()>;
    /// Takes back one attempt counted in the window that started at `window_started_at`;
    /// nothing if the key's window has moved on since.
    async fn uncount_attempt(&self, key: &str, window_started_at: i64, now: i64) -> Result<()>;
}

#[async_trait]
pub trait CleanupRepository: Send + Sync {
    /// Deletes every row past its cut-off, `batch` rows per statement.
    async fn delete_expired(&self, cutoffs: &Cutoffs, batch: u64) -> Result<Deleted>;
}

/// Everything the domain needs from a database.
pub trait Repository:
    UserRepository
    + ClientRepository
    + SessionRepository
    + KeyRepository
    + RevocationLog
    + ThrottleRepository
    + CleanupRepository
    + std::fmt::Debug
{
}

impl<T> Repository for T where
    T: UserRepository
        + ClientRepository
        + SessionRepository
        + KeyRepository
        + RevocationLog
        + ThrottleRepository
        + CleanupRepository
        + std::fmt::Debug
{
}

/// The repository every domain component holds.
pub type SharedRepository = Arc<dyn Repository>;
