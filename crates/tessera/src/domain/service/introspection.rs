//! IntrospectToken (SPEC §3): what an active token says about itself; `None` for anything
//! else. Access tokens are checked in memory (signature, times, the revocation view); refresh
//! tokens in the database.
use std::sync::Arc;

use super::{ActiveToken, TokenKind, TokenService};
use crate::domain::{
    DomainError,
    clock::ms,
    keyring::Verification,
    random::{looks_like_refresh_token, refresh_token_key},
    scope,
    token::{ACCESS_TOKEN_PREFIX, AccessClaims, Unverified},
};

impl TokenService {
    /// IntrospectToken: the token's facts when it is active, `None` for anything else.
    pub async fn introspect(&self, token: &str) -> Result<Option<ActiveToken>, DomainError> {
        self.ensure_database_usable()?;
        if token.starts_with(ACCESS_TOKEN_PREFIX) {
            return self.introspect_access(token).await;
        }
        if looks_like_refresh_token(token) {
            return self.introspect_refresh(token).await;
        }
        Ok(None)
    }

    pub(in crate::domain::service) async fn introspect_access(
        &self,
        token: &str,
    ) -> Result<Option<ActiveToken>, DomainError> {
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
    pub(in crate::domain::service) async fn signed_claims(
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

    pub(in crate::domain::service) async fn introspect_refresh(
        &self,
        token: &str,
    ) -> Result<Option<ActiveToken>, DomainError> {
        let now = self.clock.now_ms();
        let Some(row) = self
            .repo
            .find_refresh_token(&refresh_token_key(token))
            .await?
        else {
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
}
