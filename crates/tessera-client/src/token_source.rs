//! Access tokens for an integration client (a back-end job): client_credentials, then a refresh
//! before expiry with the rotated refresh token, a new login when the session is gone. One
//! renewal at a time: N callers that find the token due cause one refresh and share its result.
use std::{
    fmt,
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwapOption;
use parking_lot::RwLock;
use secrecy::{ExposeSecret, SecretString};
use tessera_proto::pb::{self, issue_token_request::Grant};
use tonic::{
    Code, Status,
    metadata::{Ascii, MetadataValue},
};
use tonic_types::StatusExt;

use crate::{
    interceptor::BearerInterceptor,
    transport::{Transport, auth_client},
};

/// By default a token is renewed this long before it expires (at most half its lifetime).
const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(60);
/// How long the background renewal waits after a failure before trying again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Why no access token could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenSourceError {
    /// Tessera refused the client's credentials (`invalid_client`): the client was disabled or
    /// its secret rotated. Nothing works again until [`TokenSource::set_client_secret`] is
    /// given the new secret (or the client is replaced).
    #[error(
        "Tessera refused the credentials of client {client_id} (invalid_client): the client is disabled or its secret was rotated; give the TokenSource the new secret"
    )]
    ClientRejected {
        /// The client whose credentials were refused.
        client_id: String,
    },
    /// Tessera refused the grant for another reason (such as a scope the client may not have).
    #[error("Tessera refused the token request: {code:?} {reason}")]
    Refused {
        /// The status code.
        code: Code,
        /// The OAuth error code from the status's ErrorInfo.
        reason: String,
    },
    /// Tessera could not be reached, or did not answer.
    #[error("Tessera is unavailable: {0}")]
    Unavailable(Status),
    /// Tessera answered a token that cannot be sent as a header.
    #[error("Tessera answered an access token that is not a valid header value")]
    UnusableToken,
}

/// An access token and when to renew it.
struct Issued {
    authorization: MetadataValue<Ascii>,
    refresh_token: Option<SecretString>,
    expires_at: Instant,
    renew_at: Instant,
}

/// An access token from a [`TokenSource`]. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct AccessToken(Arc<Issued>);

impl AccessToken {
    /// The `authorization` metadata value: `Bearer <token>`, marked sensitive.
    pub fn authorization(&self) -> MetadataValue<Ascii> {
        self.0.authorization.clone()
    }

    /// The token itself.
    pub fn secret(&self) -> &str {
        // The value was made from `Bearer ` and an ASCII token.
        self.0
            .authorization
            .to_str()
            .map_or("", |v| v.trim_start_matches("Bearer "))
    }

    /// When it expires, by this machine's monotonic clock.
    pub fn expires_at(&self) -> Instant {
        self.0.expires_at
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken").finish_non_exhaustive()
    }
}

/// Access tokens for an integration client, renewed before they expire. Cheap to clone: clones
/// share the token.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tessera = tessera_testkit::TestApp::spawn().await;
/// # let (client_id, client_secret) = tessera.integration_client().await;
/// # let channel = tessera.channel();
/// use tessera_client::TokenSource;
///
/// let tokens = TokenSource::builder(channel, client_id, client_secret).build();
/// let token = tokens.token().await?; // a login now; later calls reuse it until it is due
/// assert!(token.secret().starts_with("v4.public."));
/// // Outgoing tonic calls carry it: `SomeClient::with_interceptor(channel, tokens.interceptor())`.
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

struct Inner {
    transport: Transport,
    client_id: String,
    client_secret: RwLock<SecretString>,
    scope: String,
    refresh_before: Duration,
    current: ArcSwapOption<Issued>,
    /// Counts the tokens stored, so that a caller that waited for a renewal can tell that one
    /// happened meanwhile.
    generation: AtomicU64,
    /// Held by the one renewal in flight.
    renewing: tokio::sync::Mutex<()>,
    /// Whether the background renewal runs (it keeps the interceptor's token fresh).
    keeper: std::sync::Once,
}

/// Settings of a [`TokenSource`].
pub struct TokenSourceBuilder {
    transport: Transport,
    client_id: String,
    client_secret: SecretString,
    scope: String,
    refresh_before: Duration,
    refresh_token: Option<SecretString>,
}

impl TokenSourceBuilder {
    /// Asks for a narrower scope than the grant gives (space-separated); default: all of it.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// How long before expiry a token is renewed (default 60 s; at most half its lifetime).
    pub fn refresh_before(mut self, before: Duration) -> Self {
        self.refresh_before = before;
        self
    }

    /// Starts from a session this client already holds: the first token comes from this
    /// refresh token instead of a new login.
    pub fn refresh_token(mut self, refresh_token: impl Into<String>) -> Self {
        self.refresh_token = Some(SecretString::from(refresh_token.into()));
        self
    }

    /// The token source. Nothing is fetched until a token is asked for.
    pub fn build(self) -> TokenSource {
        let source = TokenSource {
            inner: Arc::new(Inner {
                transport: self.transport,
                client_id: self.client_id,
                client_secret: RwLock::new(self.client_secret),
                scope: self.scope,
                refresh_before: self.refresh_before,
                current: ArcSwapOption::empty(),
                generation: AtomicU64::new(0),
                renewing: tokio::sync::Mutex::new(()),
                keeper: std::sync::Once::new(),
            }),
        };
        if let Some(refresh_token) = self.refresh_token {
            // An expired placeholder: the first call renews it with the refresh token.
            let now = Instant::now();
            source.inner.current.store(Some(Arc::new(Issued {
                authorization: MetadataValue::from_static(""),
                refresh_token: Some(refresh_token),
                expires_at: now,
                renew_at: now,
            })));
        }
        source
    }
}

impl TokenSource {
    /// A token source for the integration client `client_id` on `transport` (a
    /// [`tonic::transport::Channel`] to Tessera, or any [`crate::transport()`]).
    pub fn builder<S>(
        transport: S,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> TokenSourceBuilder
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
        TokenSourceBuilder {
            transport: crate::transport::transport(transport),
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
            scope: String::new(),
            refresh_before: DEFAULT_REFRESH_BEFORE,
            refresh_token: None,
        }
    }

    /// The client these tokens are for.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// A valid access token: the current one, or a renewed one when it is due. Concurrent
    /// callers that find it due wait for one renewal and share it.
    pub async fn token(&self) -> Result<AccessToken, TokenSourceError> {
        let seen = self.inner.generation.load(Ordering::Acquire);
        let now = Instant::now();
        if let Some(current) = self.inner.current.load_full()
            && current.renew_at > now
        {
            return Ok(AccessToken(current));
        }
        let _one_renewal = self.inner.renewing.lock().await;
        let current = self.inner.current.load_full();
        if self.inner.generation.load(Ordering::Acquire) != seen
            && let Some(renewed) = &current
            && renewed.expires_at > Instant::now()
        {
            return Ok(AccessToken(renewed.clone()));
        }
        let issued = self.inner.renew(current).await?;
        self.start_keeper();
        Ok(AccessToken(issued))
    }

    /// Replaces the client secret (after `tessera client rotate-secret`): the next renewal
    /// uses it.
    pub fn set_client_secret(&self, client_secret: impl Into<String>) {
        *self.inner.client_secret.write() = SecretString::from(client_secret.into());
    }

    /// A tonic interceptor that adds `authorization: Bearer <token>` to every outgoing call.
    /// It never waits: it sends the current token, which a background task renews before it
    /// expires once [`TokenSource::token`] has succeeded once.
    pub fn interceptor(&self) -> BearerInterceptor {
        BearerInterceptor::new(self.clone())
    }

    /// The current token's header, while the token is valid.
    pub(crate) fn current_authorization(&self) -> Option<MetadataValue<Ascii>> {
        self.inner
            .current
            .load()
            .as_ref()
            .filter(|issued| issued.expires_at > Instant::now())
            .map(|issued| issued.authorization.clone())
    }

    /// Keeps the token renewed in the background, for the interceptor, while any clone of
    /// this source lives.
    fn start_keeper(&self) {
        let weak = Arc::downgrade(&self.inner);
        self.inner.keeper.call_once(|| {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(keep_renewed(weak));
            }
        });
    }
}

async fn keep_renewed(inner: Weak<Inner>) {
    loop {
        let wake_at = match inner.upgrade() {
            Some(inner) => inner
                .current
                .load()
                .as_ref()
                .map_or_else(Instant::now, |issued| issued.renew_at),
            None => return,
        };
        tokio::time::sleep_until(wake_at.into()).await;
        let Some(inner) = inner.upgrade() else { return };
        if let Err(error) = (TokenSource { inner }).token().await {
            tracing::warn!(%error, "background token renewal failed");
            tokio::time::sleep(RETRY_AFTER_FAILURE).await;
        }
    }
}

impl Inner {
    /// A new token: by refresh when a session is held, by a new login when there is none or
    /// it is gone. A transient failure keeps a token that is still valid.
    async fn renew(&self, current: Option<Arc<Issued>>) -> Result<Arc<Issued>, TokenSourceError> {
        if let Some(refresh_token) = current.as_ref().and_then(|c| c.refresh_token.as_ref()) {
            let grant = Grant::RefreshToken(pb::RefreshTokenGrant {
                refresh_token: refresh_token.expose_secret().to_owned(),
            });
            match self.issue(grant).await {
                Ok(issued) => return Ok(issued),
                Err(TokenSourceError::Refused { reason, .. }) if reason == "invalid_grant" => {
                    tracing::info!(client_id = %self.client_id, "session gone: logging in again");
                }
                Err(TokenSourceError::Unavailable(status)) => {
                    return self.keep_if_valid(current, status);
                }
                Err(other) => return Err(other),
            }
        }
        match self
            .issue(Grant::ClientCredentials(pb::ClientCredentialsGrant {}))
            .await
        {
            Err(TokenSourceError::Unavailable(status)) => self.keep_if_valid(current, status),
            other => other,
        }
    }

    async fn issue(&self, grant: Grant) -> Result<Arc<Issued>, TokenSourceError> {
        let request = pb::IssueTokenRequest {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.read().expose_secret().to_owned(),
            scope: self.scope.clone(),
            grant: Some(grant),
        };
        let asked_at = Instant::now();
        let answer = auth_client(&self.transport)
            .issue_token(request)
            .await
            .map_err(|status| self.refusal(status))?
            .into_inner();
        let authorization: MetadataValue<Ascii> = format!("Bearer {}", answer.access_token)
            .parse()
            .map_err(|_| TokenSourceError::UnusableToken)?;
        let mut authorization = authorization;
        authorization.set_sensitive(true);
        let lifetime = Duration::from_secs(u64::try_from(answer.expires_in).unwrap_or(0));
        let expires_at = asked_at + lifetime;
        let issued = Arc::new(Issued {
            authorization,
            refresh_token: Some(answer.refresh_token)
                .filter(|t| !t.is_empty())
                .map(SecretString::from),
            expires_at,
            renew_at: expires_at - self.refresh_before.min(lifetime / 2),
        });
        self.current.store(Some(issued.clone()));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(issued)
    }

    /// A renewal failed for a passing reason: the current token serves while it is valid, and
    /// the next renewal is tried a little later, not on every call.
    fn keep_if_valid(
        &self,
        current: Option<Arc<Issued>>,
        status: Status,
    ) -> Result<Arc<Issued>, TokenSourceError> {
        match current {
            Some(current) if current.expires_at > Instant::now() => {
                tracing::warn!(code = ?status.code(), "token renewal failed: the current token serves until it expires");
                let postponed = Arc::new(Issued {
                    authorization: current.authorization.clone(),
                    refresh_token: current.refresh_token.clone(),
                    expires_at: current.expires_at,
                    renew_at: (Instant::now() + RETRY_AFTER_FAILURE).min(current.expires_at),
                });
                self.current.store(Some(postponed.clone()));
                Ok(postponed)
            }
            _ => Err(TokenSourceError::Unavailable(status)),
        }
    }

    fn refusal(&self, status: Status) -> TokenSourceError {
        let reason = status
            .get_details_error_info()
            .map(|info| info.reason)
            .unwrap_or_default();
        match (status.code(), reason.as_str()) {
            (_, "invalid_client") => TokenSourceError::ClientRejected {
                client_id: self.client_id.clone(),
            },
            (Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Internal, _)
            | (Code::ResourceExhausted, _) => TokenSourceError::Unavailable(status),
            (code, _) => TokenSourceError::Refused { code, reason },
        }
    }
}
