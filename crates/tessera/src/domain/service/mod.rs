//! `TokenService`: the grants, introspection and revocation of SPEC §2–§4, over the repository.
//! This module holds the service, what it answers with and what the grants share (claims,
//! signing, sessions); each grant, introspection and revocation has a module of its own.
mod grants;
mod introspection;
mod revocation;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use secrecy::{ExposeSecret, SecretString};

use super::{
    DomainError,
    client_auth::ClientAuthenticator,
    clock::{SharedClock, ms},
    hashing::HashingPool,
    keyring::{KeyRing, PublishedKey},
    policy::TokenPolicy,
    random::{new_refresh_token, refresh_token_key},
    repository::{
        NewSession, RefreshTokenRecord, RevocationEvent, RevocationKind, SessionRecord,
        SharedRepository, UserRecord,
    },
    revocation_view::{RevocationView, Subscription},
    throttle::LoginThrottle,
    token::AccessClaims,
    verified_tokens::VerifiedTokens,
};

/// What the client asked for in IssueToken, validated for shape by the gRPC layer.
#[derive(Debug)]
pub struct IssueRequest {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub scope: String,
    pub grant: Grant,
    /// The end user's address, when the calling service forwards it (`x-forwarded-for`).
    pub end_user_address: Option<String>,
}

/// The grant of an IssueToken request.
#[derive(Debug)]
pub enum Grant {
    ClientCredentials,
    Password {
        username: String,
        password: SecretString,
    },
    TokenExchange {
        subject_token: SecretString,
        subject_token_type: String,
    },
    RefreshToken {
        refresh_token: SecretString,
    },
}

impl Grant {
    /// The grant's name, as metrics label it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::Password { .. } => "password",
            Self::TokenExchange { .. } => "token_exchange",
            Self::RefreshToken { .. } => "refresh_token",
        }
    }
}

/// A freshly issued token. Its Debug shows no token.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in_secs: i64,
    pub refresh_token: Option<String>,
    pub scope: String,
    pub issued_token_type: Option<String>,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"[REDACTED]")
            .field("expires_in_secs", &self.expires_in_secs)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("scope", &self.scope)
            .field("issued_token_type", &self.issued_token_type)
            .finish()
    }
}

/// The longest a call may take: past it, the caller gets UNAVAILABLE rather than a hang (a
/// database that stopped answering mid-query, say). A refresh token presented again within
/// this time of its first use counts as concurrent with that use, not as its retry.
pub const CALL_DEADLINE: std::time::Duration = std::time::Duration::from_millis(1500);

/// RFC 8693's URN for an access token: the only subject and issued token type.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Which kind of token an introspected one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// What an active token says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveToken {
    pub kind: TokenKind,
    pub scope: String,
    pub client_id: String,
    pub sub: String,
    pub sid: Option<String>,
    pub jti: Option<String>,
    pub iss: String,
    pub expires_at: i64,
    pub issued_at: i64,
}

/// Issues, checks and revokes tokens.
#[derive(Debug)]
pub struct TokenService {
    repo: SharedRepository,
    clock: SharedClock,
    keys: KeyRing,
    clients: ClientAuthenticator,
    throttle: LoginThrottle,
    revoked: Arc<RevocationView>,
    verified: VerifiedTokens,
    policy: TokenPolicy,
    /// Cleared while the health probe finds the database unusable: every call then answers
    /// UNAVAILABLE at once, so that clients retry elsewhere instead of waiting on timeouts or
    /// getting answers this instance can no longer vouch for.
    database_usable: AtomicBool,
}

impl TokenService {
    pub fn new(
        repo: SharedRepository,
        keys: KeyRing,
        hasher: HashingPool,
        policy: TokenPolicy,
        revoked: RevocationView,
        clock: SharedClock,
    ) -> Self {
        let revoked = Arc::new(revoked);
        let clients =
            ClientAuthenticator::new(repo.clone(), hasher, revoked.clone(), clock.clone());
        let throttle = LoginThrottle::new(repo.clone(), clock.clone());
        Self {
            repo,
            clock,
            keys,
            clients,
            throttle,
            revoked,
            verified: VerifiedTokens::default(),
            policy,
            database_usable: AtomicBool::new(true),
        }
    }

    /// Records what the health probe found.
    pub fn set_database_usable(&self, usable: bool) {
        self.database_usable.store(usable, Ordering::Relaxed);
    }

    /// Whether the health probe last found the database usable (HTTP `/readyz`).
    pub fn database_usable(&self) -> bool {
        self.database_usable.load(Ordering::Relaxed)
    }

    fn ensure_database_usable(&self) -> Result<(), DomainError> {
        if self.database_usable.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(DomainError::Unavailable)
        }
    }

    /// The key ring, for tests and tools that sign their own tokens.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The argon2 pool client secrets are verified on.
    pub fn hasher(&self) -> &HashingPool {
        self.clients.hasher()
    }

    /// The policy in force.
    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// IssueToken.
    pub async fn issue(&self, request: IssueRequest) -> Result<IssuedToken, DomainError> {
        let grant = request.grant.name();
        let issued = self.issue_grant(request).await;
        if grant == "password" {
            let outcome = match &issued {
                Ok(_) => "ok",
                Err(e) => e.reason(),
            };
            metrics::counter!("tessera_logins_total", "outcome" => outcome).increment(1);
        }
        if issued.is_ok() {
            metrics::counter!("tessera_tokens_issued_total", "grant" => grant).increment(1);
        }
        issued
    }

    async fn issue_grant(&self, request: IssueRequest) -> Result<IssuedToken, DomainError> {
        self.ensure_database_usable()?;
        let client = self
            .clients
            .authenticate(&request.client_id, request.client_secret.as_ref())
            .await?;
        match request.grant {
            Grant::ClientCredentials => self.client_credentials(&client, &request.scope).await,
            Grant::Password { username, password } => {
                self.password(
                    &client,
                    &request.scope,
                    &username,
                    password,
                    request.end_user_address.as_deref(),
                )
                .await
            }
            Grant::RefreshToken { refresh_token } => {
                self.refresh(&client, &request.scope, refresh_token.expose_secret())
                    .await
            }
            Grant::TokenExchange { subject_token, .. } => {
                self.token_exchange(&client, &request.scope, subject_token.expose_secret())
                    .await
            }
        }
    }

    fn access_claims(
        &self,
        client_id: &str,
        sub: &str,
        scope: String,
        sid: Option<String>,
        now: i64,
        ttl: std::time::Duration,
    ) -> AccessClaims {
        AccessClaims {
            iss: self.policy.issuer.clone(),
            sub: sub.to_owned(),
            client_id: client_id.to_owned(),
            scope,
            jti: uuid::Uuid::new_v4().to_string(),
            issued_at: now,
            // Whole seconds: verifiers that compare against a truncated "now" (pyseto does)
            // would otherwise see a fresh token as not yet valid for up to a second.
            not_before: now - now.rem_euclid(1000),
            expires_at: now.saturating_add(ms(ttl)),
            sid,
        }
    }

    fn issued(
        &self,
        claims: AccessClaims,
        refresh_token: Option<String>,
    ) -> Result<IssuedToken, DomainError> {
        let access_token = self.keys.sign(&claims).map_err(DomainError::Internal)?;
        Ok(IssuedToken {
            access_token,
            expires_in_secs: (claims.expires_at - claims.issued_at) / 1000,
            refresh_token,
            scope: claims.scope,
            issued_token_type: None,
        })
    }

    /// Starts a session with its first refresh token. Returns the sid and the refresh token.
    /// For a user's session, fails with `invalid_grant` when the user was disabled or changed
    /// password since `user` was read.
    async fn start_session(
        &self,
        client_id: &str,
        user: Option<&UserRecord>,
        scope: &str,
        now: i64,
    ) -> Result<(String, String), DomainError> {
        let sid = uuid::Uuid::now_v7().to_string();
        let session_expires = now.saturating_add(ms(self.policy.session_max_ttl));
        let refresh_token = new_refresh_token();
        let started = self
            .repo
            .start_session(NewSession {
                session: SessionRecord {
                    sid: sid.clone(),
                    client_id: client_id.to_owned(),
                    user_id: user.map(|u| u.user_id.clone()),
                    scope: scope.to_owned(),
                    created_at: now,
                    expires_at: session_expires,
                    ended_at: None,
                    end_reason: None,
                },
                refresh_token: RefreshTokenRecord {
                    token_hash: refresh_token_key(&refresh_token),
                    sid: sid.clone(),
                    client_id: client_id.to_owned(),
                    created_at: now,
                    expires_at: now
                        .saturating_add(ms(self.policy.refresh_token_ttl))
                        .min(session_expires),
                    spent_at: None,
                    successor_hash: None,
                    issued_with: None,
                    replaced_at: None,
                },
                user_version: user.map(|u| u.version),
            })
            .await?;
        if !started {
            return Err(DomainError::InvalidGrant);
        }
        Ok((sid, refresh_token))
    }

    /// Ends a session, in the database and (at once) in this instance's view. A session the
    /// view knows ended costs nothing; one that ended already writes nothing (the view learns
    /// of an end made elsewhere from the log, within a poll).
    async fn end_session(&self, sid: &str, now: i64, reason: &str) -> Result<(), DomainError> {
        if self.revoked.is_session_revoked(sid) {
            return Ok(());
        }
        let expires_at = self.revocation_expiry(now);
        if let Some(sequence) = self.repo.end_session(sid, now, reason, expires_at).await? {
            self.revoked.apply(RevocationEvent {
                sequence,
                kind: RevocationKind::Session,
                subject: sid.to_owned(),
                revoked_at: now,
                expires_at,
            });
        }
        Ok(())
    }

    /// When a revocation made now can be forgotten: once every token issued before it has
    /// expired, with the leeway.
    fn revocation_expiry(&self, now: i64) -> i64 {
        now.saturating_add(ms(self.policy.key_verification_window()))
    }

    /// The revocations this instance knows of.
    pub fn revocations(&self) -> &RevocationView {
        &self.revoked
    }

    /// WatchRevocations (SPEC §7): a stream's start after `after_sequence` and its place on
    /// this instance's feed. Refused while the view may be missing revocations.
    pub fn watch_revocations(&self, after_sequence: u64) -> Result<Subscription, DomainError> {
        self.ensure_database_usable()?;
        if self.revoked.is_stale(self.clock.now_ms()) {
            return Err(DomainError::Unavailable);
        }
        Ok(self.revoked.subscribe(after_sequence))
    }

    /// The time, by the clock this service reads.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// GetKeySet: the public keys that verify tokens now.
    pub async fn key_set(&self) -> Result<Vec<PublishedKey>, DomainError> {
        self.ensure_database_usable()?;
        Ok(self.keys.published(self.clock.now_ms()))
    }
}
