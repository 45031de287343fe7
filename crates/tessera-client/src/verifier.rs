//! The verifier: Tessera's access tokens checked offline with the server's rules (SPEC §3), and
//! revocations from the WatchRevocations feed (SPEC §7).
use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use crate::{
    claims::{Claims, ms, now_ms},
    feed::{Feed, Freshness},
    introspection,
    keys::{KeySet, KeySetError, Lookup},
    paseto::Unverified,
    revocations::RevocationSet,
    token_source::TokenSource,
    transport::Transport,
    verified_cache::{VerifiedTokens, digest},
};

/// The issuer Tessera names by default (`TESSERA_ISSUER`).
pub const DEFAULT_ISSUER: &str = "tessera";
/// The clock leeway Tessera allows by default (`TESSERA_CLOCK_LEEWAY`).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);
/// How often Tessera sends a heartbeat on an idle feed.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Heartbeat intervals without news after which revocations are no longer vouched for.
pub const DEFAULT_MISSED_HEARTBEATS: u32 = 3;
/// The least time between two key set fetches caused by unknown key ids.
pub const DEFAULT_KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Tokens whose signature the verifier remembers, by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 65_536;

/// What the verifier does while its revocation feed is silent (Tessera unreachable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenStale {
    /// Refuse every token (UNAVAILABLE): a revoked token is never let through.
    #[default]
    FailClosed,
    /// Ask Tessera's IntrospectToken about each token: the feed's work done per request,
    /// which fails too if Tessera is gone entirely.
    Introspect,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a v4.public token with a key id: a refresh token, garbage, another format.
    #[error("not a Tessera access token")]
    Malformed,
    /// It names a key that Tessera does not publish (or did not when last asked).
    #[error("the token names an unknown key")]
    UnknownKey,
    /// The signature does not check out, or the key retired.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// Signed by a known key, but for another issuer.
    #[error("the token is from another issuer")]
    WrongIssuer,
    /// Outside its validity period (`iat`, `nbf`, `exp`, with the leeway).
    #[error("the token is expired or not valid yet")]
    Expired,
    /// Revoked: its session ended, it was revoked itself, or its client was disabled.
    #[error("the token was revoked")]
    Revoked,
    /// The revocation feed is silent and the verifier fails closed.
    #[error("revocations cannot be checked: the revocation feed is silent")]
    Stale,
    /// The fallback introspection failed.
    #[error("IntrospectToken failed: {0}")]
    Unavailable(tonic::Status),
}

impl VerifyError {
    /// Whether the token may well be good and the refusal comes from Tessera being out of
    /// reach: answer UNAVAILABLE (503), not UNAUTHENTICATED.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Stale | Self::Unavailable(_))
    }
}

/// Why a verifier could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// No key set: nothing could be verified.
    #[error(transparent)]
    KeySet(#[from] KeySetError),
    /// The revocation feed gave no snapshot within the staleness allowance (is the caller
    /// allowed to watch revocations? Tessera wants an `integ` bearer by default).
    #[error("the revocation feed gave no snapshot within {0:?}")]
    NoSnapshot(Duration),
}

/// Verifies Tessera's access tokens offline. Cheap to clone: clones share keys, revocations
/// and cache; the feed stops when the last clone is dropped.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("fresh", &self.is_fresh())
            .finish_non_exhaustive()
    }
}

struct Inner {
    transport: Transport,
    credentials: Option<TokenSource>,
    issuer: String,
    leeway_ms: i64,
    when_stale: WhenStale,
    keys: KeySet,
    revocations: Arc<RevocationSet>,
    freshness: Arc<Freshness>,
    verified: VerifiedTokens,
    feed: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.feed.abort();
    }
}

/// Settings of a [`Verifier`]; the defaults are Tessera's.
pub struct VerifierBuilder {
    transport: Transport,
    credentials: Option<TokenSource>,
    issuer: String,
    leeway: Duration,
    heartbeat_interval: Duration,
    missed_heartbeats: u32,
    when_stale: WhenStale,
    key_refetch_interval: Duration,
    cache_capacity: usize,
}

impl Verifier {
    /// A verifier of the tokens of the Tessera reached through `transport` (a
    /// [`tonic::transport::Channel`], or any [`crate::transport()`]).
    pub fn builder<S>(transport: S) -> VerifierBuilder
    where
        S: tower_service::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Error: Into<tower::BoxError>,
        S::Future: Send + 'static,
    {
        VerifierBuilder {
            transport: crate::transport::transport(transport),
            credentials: None,
            issuer: DEFAULT_ISSUER.to_owned(),
            leeway: DEFAULT_LEEWAY,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            missed_heartbeats: DEFAULT_MISSED_HEARTBEATS,
            when_stale: WhenStale::FailClosed,
            key_refetch_interval: DEFAULT_KEY_REFETCH_INTERVAL,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
        }
    }

    /// Checks `token`: a v4.public token signed by one of Tessera's live keys, of the
    /// configured issuer, within its validity period (with the leeway) and not revoked.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let now = now_ms();
        let claims = self.signed_claims(token, now).await?;
        if self.inner.freshness.is_fresh() {
            if self.inner.revocations.covers(&claims) {
                return Err(VerifyError::Revoked);
            }
            return Ok(claims);
        }
        match self.inner.when_stale {
            WhenStale::FailClosed => Err(VerifyError::Stale),
            WhenStale::Introspect => self.introspect(token).await,
        }
    }

    /// Asks Tessera's IntrospectToken about `token`: what [`WhenStale::Introspect`] does per
    /// request while the feed is silent.
    pub async fn introspect(&self, token: &str) -> Result<Claims, VerifyError> {
        let inner = &self.inner;
        introspection::introspect(&inner.transport, inner.credentials.as_ref(), token)
            .await
            .map_err(VerifyError::Unavailable)?
            .ok_or(VerifyError::Revoked)
    }

    /// Whether the revocation feed vouches for the revocations known: heard from within the
    /// allowed number of heartbeat intervals.
    pub fn is_fresh(&self) -> bool {
        self.inner.freshness.is_fresh()
    }

    /// Signature, key, issuer and times; cached by token once they check out.
    async fn signed_claims(&self, token: &str, now: i64) -> Result<Claims, VerifyError> {
        let inner = &self.inner;
        let digest = digest(token);
        if let Some((claims, kid)) = inner.verified.get(&digest) {
            if !inner.keys.is_live(&kid, now) {
                return Err(VerifyError::BadSignature);
            }
            if !claims.is_valid_at(now, inner.leeway_ms) {
                inner.verified.remove(&digest);
                return Err(VerifyError::Expired);
            }
            return Ok(claims);
        }
        let parsed = Unverified::parse(token).ok_or(VerifyError::Malformed)?;
        let key = match inner.keys.lookup(parsed.kid(), now) {
            Lookup::Live(key) => key,
            Lookup::Retired | Lookup::Unknown => {
                // A rotation this verifier has not seen yet (or a retirement the server put
                // off since), or a forged kid.
                inner.keys.refetch_for_unknown_kid().await;
                match inner.keys.lookup(parsed.kid(), now) {
                    Lookup::Live(key) => key,
                    Lookup::Retired => return Err(VerifyError::BadSignature),
                    Lookup::Unknown => return Err(VerifyError::UnknownKey),
                }
            }
        };
        let claims = parsed.verify(&key.key).ok_or(VerifyError::BadSignature)?;
        if claims.issuer() != inner.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        if !claims.is_valid_at(now, inner.leeway_ms) {
            return Err(VerifyError::Expired);
        }
        inner.verified.insert(digest, claims.clone(), parsed.kid());
        Ok(claims)
    }
}

impl VerifierBuilder {
    /// The integration client the verifier authenticates as for WatchRevocations and
    /// IntrospectToken (Tessera wants an `integ` bearer unless `TESSERA_INTROSPECTION_AUTH`
    /// is `none`).
    pub fn credentials(mut self, credentials: TokenSource) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The `iss` tokens must carry (`TESSERA_ISSUER`; default `tessera`).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The clock leeway on `iat`, `nbf` and `exp` (`TESSERA_CLOCK_LEEWAY`; default 5 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How often the feed is expected to speak (Tessera heartbeats every 5 s while idle).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Heartbeat intervals without news (and no successful reconnect) after which the
    /// verifier stops vouching for revocations (default 3; at least 1).
    pub fn missed_heartbeats(mut self, missed: u32) -> Self {
        self.missed_heartbeats = missed.max(1);
        self
    }

    /// What to do while the feed is silent (default: fail closed).
    pub fn when_stale(mut self, when_stale: WhenStale) -> Self {
        self.when_stale = when_stale;
        self
    }

    /// The least time between two key set fetches caused by unknown key ids (default 10 s).
    pub fn key_refetch_interval(mut self, interval: Duration) -> Self {
        self.key_refetch_interval = interval;
        self
    }

    /// How many verified tokens the signature cache holds (default 65,536).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Fetches the key set, starts following the revocation feed and waits for its first
    /// snapshot (for at most the staleness allowance; with [`WhenStale::Introspect`] it
    /// starts without one).
    pub async fn start(self) -> Result<Verifier, StartError> {
        let keys = KeySet::fetch_first(self.transport.clone(), self.key_refetch_interval).await?;
        let allowed = self.heartbeat_interval * self.missed_heartbeats;
        let revocations = Arc::new(RevocationSet::default());
        let freshness = Arc::new(Freshness::new(allowed));
        let (started, mut snapshot_applied) = watch::channel(false);
        let feed = Feed {
            transport: self.transport.clone(),
            credentials: self.credentials.clone(),
            revocations: revocations.clone(),
            freshness: freshness.clone(),
            heartbeat_interval: self.heartbeat_interval,
            leeway_ms: ms(self.leeway),
            started,
        };
        let verifier = Verifier {
            inner: Arc::new(Inner {
                transport: self.transport,
                credentials: self.credentials,
                issuer: self.issuer,
                leeway_ms: ms(self.leeway),
                when_stale: self.when_stale,
                keys,
                revocations,
                freshness,
                verified: VerifiedTokens::new(self.cache_capacity),
                feed: tokio::spawn(feed.run()),
            }),
        };
        let first = tokio::time::timeout(allowed, snapshot_applied.wait_for(|applied| *applied));
        match (first.await, self.when_stale) {
            (Ok(Ok(_)), _) | (_, WhenStale::Introspect) => Ok(verifier),
            _ => Err(StartError::NoSnapshot(allowed)),
        }
    }
}
