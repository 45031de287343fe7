//! `TokenService`: the grants, introspection and revocation of SPEC §2–§4, over the store.
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use secrecy::{ExposeSecret, SecretString};

use super::{
    DomainError,
    client_auth::{AuthenticatedClient, ClientAuthenticator},
    clients::ClientKind,
    clock::{SharedClock, ms},
    hashing::{HashingPool, Reservation},
    keyring::{KeyRing, PublishedKey, Verification},
    policy::TokenPolicy,
    random::{looks_like_secret, new_secret, sha256_hex},
    repository::{
        NewSession, RefreshTokenRecord, RevocationKind, SessionRecord, SharedRepository, UserRecord,
    },
    revocation_view::RevocationView,
    scope,
    throttle::LoginThrottle,
    token::{ACCESS_TOKEN_PREFIX, AccessClaims, Unverified},
    users::normalize_username,
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

/// A freshly issued token.
#[derive(Debug)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in_secs: i64,
    pub refresh_token: Option<String>,
    pub scope: String,
    pub issued_token_type: Option<String>,
}

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

    /// The password grant: a marketplace client logs an end user in. Unknown user, wrong
    /// password and disabled user cost the same argon2 verification and give the same error.
    async fn password(
        &self,
        client: &AuthenticatedClient,
        requested_scope: &str,
        username: &str,
        password: SecretString,
        address: Option<&str>,
    ) -> Result<IssuedToken, DomainError> {
        if client.kind != ClientKind::Marketplace {
            return Err(DomainError::UnauthorizedClient);
        }
        let scope = scope::narrow(requested_scope, scope::USER)?;
        let username = normalize_username(username);
        // A place in the hashing pool first: a login turned away for lack of capacity must
        // cost nothing, not even a throttle write.
        let reservation = self.hasher().reserve().await?;
        let attempt = self.throttle.begin(&username, address).await?;
        let checked = self
            .check_password(&username, &password, &reservation)
            .await;
        drop(reservation);
        let (user, verified) = match checked {
            Ok(checked) => checked,
            Err(e) => {
                // No verdict on the password (hashing capacity full, database away): the
                // attempt must not count as a failure, or busy users would lock themselves out.
                if let Err(release) = self.throttle.release(attempt).await {
                    tracing::warn!(
                        reason = release.reason(),
                        "could not release a login attempt"
                    );
                }
                return Err(e);
            }
        };
        let user = match user {
            Some(user) if verified && user.disabled_at.is_none() => user,
            _ => return Err(DomainError::InvalidGrant),
        };
        let now = self.clock.now_ms();
        let (sid, refresh_token) = self
            .start_session(&client.client_id, Some(&user), &scope, now)
            .await?;
        self.throttle.succeeded(attempt).await?;
        self.upgrade_weak_hash(&user, password).await;
        let claims = self.access_claims(
            &client.client_id,
            &user.user_id,
            scope,
            Some(sid),
            now,
            self.policy.access_token_ttl,
        );
        self.issued(claims, Some(refresh_token))
    }

    /// Looks the user up and verifies the password: against the stored hash, or the dummy
    /// hash for an unknown user, so that both cost the same.
    async fn check_password(
        &self,
        username: &str,
        password: &SecretString,
        reservation: &Reservation,
    ) -> Result<(Option<UserRecord>, bool), DomainError> {
        let user = self.repo.find_user_by_username(username).await?;
        let stored_hash = match &user {
            Some(user) => user.password_hash.clone(),
            None => self.hasher().dummy_hash().await?,
        };
        let verified = self
            .hasher()
            .verify_reserved(reservation, password.clone(), stored_hash)
            .await?;
        if user
            .as_ref()
            .is_some_and(|u| self.hasher().needs_rehash(&u.password_hash))
        {
            // A hash weaker than the configured cost verifies faster than the dummy hash of
            // an unknown user; pay the full cost too, so that the account does not show.
            let dummy = self.hasher().dummy_hash().await?;
            self.hasher()
                .verify_reserved(reservation, password.clone(), dummy)
                .await?;
        }
        Ok((user, verified))
    }

    /// Token exchange (RFC 8693): a marketplace client that holds a secret, and presents it,
    /// trades an active `user` access token of its own for a `trusted:user` one of the same
    /// subject and session, living no longer than the token it came from.
    async fn token_exchange(
        &self,
        client: &AuthenticatedClient,
        requested_scope: &str,
        subject_token: &str,
    ) -> Result<IssuedToken, DomainError> {
        if client.kind != ClientKind::Marketplace {
            return Err(DomainError::UnauthorizedClient);
        }
        if !client.presented_secret {
            return Err(DomainError::InvalidClient);
        }
        let scope = scope::narrow(requested_scope, scope::TRUSTED_USER)?;
        let subject = self.introspect_access(subject_token).await?;
        // Anonymous, trusted, refresh, expired, revoked, foreign or garbage: one answer.
        let subject = subject
            .filter(|s| {
                s.scope == scope::USER && s.client_id == client.client_id && s.sid.is_some()
            })
            .ok_or(DomainError::InvalidGrant)?;
        let now = self.clock.now_ms();
        let mut claims = self.access_claims(
            &client.client_id,
            &subject.sub,
            scope,
            subject.sid,
            now,
            self.policy.trusted_token_ttl,
        );
        claims.expires_at = claims.expires_at.min(subject.expires_at);
        if claims.expires_at <= now {
            return Err(DomainError::InvalidGrant);
        }
        let mut issued = self.issued(claims, None)?;
        issued.issued_token_type = Some(ACCESS_TOKEN_TYPE.to_owned());
        Ok(issued)
    }

    /// Re-hashes a password whose stored hash is weaker than the configured cost. Best effort:
    /// the login has succeeded whatever happens here.
    async fn upgrade_weak_hash(&self, user: &UserRecord, password: SecretString) {
        if !self.hasher().needs_rehash(&user.password_hash) {
            return;
        }
        let result = match self.hasher().hash(password).await {
            Ok(new_hash) => self
                .repo
                .upgrade_password_hash(
                    &user.user_id,
                    &user.password_hash,
                    new_hash,
                    self.clock.now_ms(),
                )
                .await
                .map_err(DomainError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(
                reason = e.reason(),
                "could not upgrade a weak password hash; will retry at the next login"
            );
        }
    }

    /// The refresh grant: spends the presented refresh token and issues its successor, with
    /// an access token of the session's scope (or a narrower one).
    async fn refresh(
        &self,
        client: &AuthenticatedClient,
        requested_scope: &str,
        presented: &str,
    ) -> Result<IssuedToken, DomainError> {
        let now = self.clock.now_ms();
        let hash = sha256_hex(presented);
        let row = self
            .repo
            .find_refresh_token(&hash)
            .await?
            .ok_or(DomainError::InvalidGrant)?;
        if row.client_id != client.client_id {
            return Err(DomainError::InvalidGrant);
        }
        if let Some(spent_at) = row.spent_at {
            // RFC 9700 §4.14.2: a spent token presented again after the grace window means
            // it leaked; end the session so that neither party keeps using it.
            if now - spent_at > ms(self.policy.refresh_reuse_grace) {
                self.end_session(&row.sid, now, "refresh_token_reused")
                    .await?;
                tracing::warn!(sid = %row.sid, "spent refresh token presented again: session ended");
            }
            return Err(DomainError::InvalidGrant);
        }
        let session = self
            .repo
            .find_session(&row.sid)
            .await?
            .ok_or(DomainError::InvalidGrant)?;
        if row.expires_at <= now || session.ended_at.is_some() || session.expires_at <= now {
            return Err(DomainError::InvalidGrant);
        }
        let scope = scope::narrow(requested_scope, &session.scope)?;
        let successor = new_secret();
        let successor_row = RefreshTokenRecord {
            token_hash: sha256_hex(&successor),
            sid: session.sid.clone(),
            client_id: client.client_id.clone(),
            created_at: now,
            expires_at: now
                .saturating_add(ms(self.policy.refresh_token_ttl))
                .min(session.expires_at),
            spent_at: None,
        };
        if !self
            .repo
            .rotate_refresh_token(&hash, successor_row, now)
            .await?
        {
            // Another request spent it first, or the session ended meanwhile.
            return Err(DomainError::InvalidGrant);
        }
        let sub = session
            .user_id
            .clone()
            .unwrap_or_else(|| client.client_id.clone());
        let claims = self.access_claims(
            &client.client_id,
            &sub,
            scope,
            Some(session.sid),
            now,
            self.policy.access_token_ttl,
        );
        // Access tokens never outlive their session, so introspection need not look it up.
        let mut claims = claims;
        claims.expires_at = claims.expires_at.min(session.expires_at);
        self.issued(claims, Some(successor))
    }

    async fn client_credentials(
        &self,
        client: &AuthenticatedClient,
        requested_scope: &str,
    ) -> Result<IssuedToken, DomainError> {
        match client.kind {
            ClientKind::Marketplace => {
                let scope = scope::narrow(requested_scope, scope::PUBLIC_READ)?;
                let now = self.clock.now_ms();
                let claims = self.access_claims(
                    &client.client_id,
                    &client.client_id,
                    scope,
                    None,
                    now,
                    self.policy.access_token_ttl,
                );
                self.issued(claims, None)
            }
            ClientKind::Integration => {
                let scope = scope::narrow(requested_scope, scope::INTEG)?;
                let now = self.clock.now_ms();
                let (sid, refresh_token) = self
                    .start_session(&client.client_id, None, &scope, now)
                    .await?;
                let claims = self.access_claims(
                    &client.client_id,
                    &client.client_id,
                    scope,
                    Some(sid),
                    now,
                    self.policy.access_token_ttl,
                );
                self.issued(claims, Some(refresh_token))
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
        let sid = uuid::Uuid::new_v4().to_string();
        let session_expires = now.saturating_add(ms(self.policy.session_max_ttl));
        let refresh_token = new_secret();
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
                    token_hash: sha256_hex(&refresh_token),
                    sid: sid.clone(),
                    client_id: client_id.to_owned(),
                    created_at: now,
                    expires_at: now
                        .saturating_add(ms(self.policy.refresh_token_ttl))
                        .min(session_expires),
                    spent_at: None,
                },
                user_version: user.map(|u| u.version),
            })
            .await?;
        if !started {
            return Err(DomainError::InvalidGrant);
        }
        Ok((sid, refresh_token))
    }

    /// Ends a session, in the database and (at once) in this instance's view.
    async fn end_session(&self, sid: &str, now: i64, reason: &str) -> Result<(), DomainError> {
        self.repo.end_session(sid, now, reason).await?;
        self.revoked.apply(RevocationKind::Session, sid, now);
        Ok(())
    }

    /// The revocations this instance knows of.
    pub fn revocations(&self) -> &RevocationView {
        &self.revoked
    }

    /// IntrospectToken: the token's facts when it is active, `None` for anything else.
    pub async fn introspect(&self, token: &str) -> Result<Option<ActiveToken>, DomainError> {
        self.ensure_database_usable()?;
        if token.starts_with(ACCESS_TOKEN_PREFIX) {
            return self.introspect_access(token).await;
        }
        if looks_like_secret(token) {
            return self.introspect_refresh(token).await;
        }
        Ok(None)
    }

    async fn introspect_access(&self, token: &str) -> Result<Option<ActiveToken>, DomainError> {
        let now = self.clock.now_ms();
        let Some(claims) = self.signed_claims(token, now).await? else {
            return Ok(None);
        };
        if !claims.is_valid_at(now, ms(self.policy.clock_leeway)) {
            return Ok(None);
        }
        if self.revoked.is_stale(now) {
            // Revocations made elsewhere may be missing: better no answer than a wrong one.
            return Err(DomainError::Unavailable);
        }
        if self.revoked.covers(&claims) {
            return Ok(None);
        }
        let claims = Arc::unwrap_or_clone(claims);
        Ok(Some(ActiveToken {
            kind: TokenKind::Access,
            scope: claims.scope,
            client_id: claims.client_id,
            sub: claims.sub,
            sid: claims.sid,
            jti: Some(claims.jti),
            iss: claims.iss,
            expires_at: claims.expires_at,
            issued_at: claims.issued_at,
        }))
    }

    /// Signature and issuer only: a token of ours (signed by a live key), valid or not at
    /// this moment. Cached per token text.
    async fn signed_claims(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<Arc<AccessClaims>>, DomainError> {
        if let Some((claims, kid)) = self.verified.get(token) {
            return Ok(self.keys.is_live(&kid, now).then_some(claims));
        }
        let Some(parsed) = Unverified::parse(token) else {
            return Ok(None);
        };
        let mut verification = self.keys.verify(&parsed, now);
        if matches!(verification, Verification::UnknownKey) {
            // Another instance may have made or rotated a key since we loaded ours.
            if self
                .keys
                .reload_if_stale()
                .await
                .map_err(DomainError::from)?
            {
                verification = self.keys.verify(&parsed, now);
            }
        }
        let Verification::Signed(claims) = verification else {
            return Ok(None);
        };
        if claims.iss != self.policy.issuer {
            return Ok(None);
        }
        let claims = Arc::new(claims);
        self.verified.insert(token, claims.clone(), parsed.kid());
        Ok(Some(claims))
    }

    async fn introspect_refresh(&self, token: &str) -> Result<Option<ActiveToken>, DomainError> {
        let now = self.clock.now_ms();
        let Some(row) = self.repo.find_refresh_token(&sha256_hex(token)).await? else {
            return Ok(None);
        };
        if row.spent_at.is_some() || row.expires_at <= now {
            return Ok(None);
        }
        let Some(session) = self.repo.find_session(&row.sid).await? else {
            return Ok(None);
        };
        if session.ended_at.is_some() || session.expires_at <= now {
            return Ok(None);
        }
        let Some(client) = self.repo.find_client(&row.client_id).await? else {
            return Ok(None);
        };
        if client.disabled_at.is_some() {
            return Ok(None);
        }
        Ok(Some(ActiveToken {
            kind: TokenKind::Refresh,
            scope: session.scope,
            sub: session.user_id.unwrap_or_else(|| row.client_id.clone()),
            client_id: row.client_id,
            sid: Some(row.sid),
            jti: None,
            iss: self.policy.issuer.clone(),
            expires_at: row.expires_at,
            issued_at: row.created_at,
        }))
    }

    /// Checks the bearer token of an IntrospectToken caller: it must be an active `integ`
    /// access token. Returns the caller's client_id.
    pub async fn authorize_introspection(
        &self,
        bearer: Option<&str>,
    ) -> Result<String, DomainError> {
        self.ensure_database_usable()?;
        let token = bearer.ok_or(DomainError::MissingCallerToken)?;
        if !token.starts_with(ACCESS_TOKEN_PREFIX) {
            return Err(DomainError::CallerNotAllowed);
        }
        match self.introspect_access(token).await? {
            Some(active) if scope::has(&active.scope, scope::INTEG) => Ok(active.client_id),
            _ => Err(DomainError::CallerNotAllowed),
        }
    }

    /// RevokeToken (RFC 7009): a token of a session ends the session; an anonymous token is
    /// revoked alone; unknown or invalid tokens are accepted silently; another client's token
    /// is refused and left alone.
    pub async fn revoke(
        &self,
        client_id: &str,
        secret: Option<&SecretString>,
        token: &str,
    ) -> Result<(), DomainError> {
        self.ensure_database_usable()?;
        let client = self.clients.authenticate(client_id, secret).await?;
        let now = self.clock.now_ms();
        if token.starts_with(ACCESS_TOKEN_PREFIX) {
            // Expired tokens still name a session that may be alive: ending it is what a
            // logout with a stale access token means.
            let Some(claims) = self.signed_claims(token, now).await? else {
                return Ok(());
            };
            if claims.client_id != client.client_id {
                return Err(DomainError::ForeignToken);
            }
            match &claims.sid {
                Some(sid) => self.end_session(sid, now, "revoked").await?,
                None if claims.expires_at > now - ms(self.policy.clock_leeway) => {
                    self.repo.revoke_token(&claims.jti, now).await?;
                    self.revoked.apply(RevocationKind::Token, &claims.jti, now);
                }
                None => {}
            }
            return Ok(());
        }
        if looks_like_secret(token) {
            let Some(row) = self.repo.find_refresh_token(&sha256_hex(token)).await? else {
                return Ok(());
            };
            if row.client_id != client.client_id {
                return Err(DomainError::ForeignToken);
            }
            self.end_session(&row.sid, now, "revoked").await?;
        }
        Ok(())
    }

    /// GetKeySet: the public keys that verify tokens now.
    pub async fn key_set(&self) -> Result<Vec<PublishedKey>, DomainError> {
        self.ensure_database_usable()?;
        self.keys
            .published(self.clock.now_ms())
            .await
            .map_err(DomainError::from)
    }
}
