//! RevokeToken (RFC 7009, SPEC §4), and the HTTP logout that proves its session with a bearer
//! access token instead of client credentials (SPEC §8).
use secrecy::SecretString;

use super::TokenService;
use crate::domain::{
    DomainError,
    clock::ms,
    random::{looks_like_refresh_token, refresh_token_key},
    repository::{RevocationEvent, RevocationKind},
    token::{ACCESS_TOKEN_PREFIX, AccessClaims},
};

/// Which tokens a caller may revoke.
enum Reach<'a> {
    /// Any token of the client (the caller authenticated as the client).
    Client,
    /// Tokens of this session only (the caller showed an access token of it).
    Session(&'a str),
    /// This anonymous access token only, by jti (the caller showed it).
    Token(&'a str),
}

impl TokenService {
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
        self.revoke_within(&client.client_id, Reach::Client, token)
            .await
    }

    /// RevokeToken for a caller that proves a session with one of its active access tokens
    /// (`bearer`) instead of client credentials: what the Sharetribe SDK's logout sends. The
    /// token must be of the bearer's session (or, for an anonymous bearer, the bearer itself);
    /// any other token of ours is refused and left alone; unknown tokens are accepted silently.
    pub async fn revoke_with_bearer(&self, bearer: &str, token: &str) -> Result<(), DomainError> {
        self.ensure_database_usable()?;
        if !bearer.starts_with(ACCESS_TOKEN_PREFIX) {
            return Err(DomainError::InvalidBearer);
        }
        let caller = self
            .introspect_access(bearer)
            .await?
            .ok_or(DomainError::InvalidBearer)?;
        // Integration clients are confidential: their revocations carry the secret (SPEC §2),
        // never just a token that may have been passed on to a resource server.
        if caller
            .scope
            .split(' ')
            .any(|s| s == crate::domain::scope::INTEG)
        {
            return Err(DomainError::InvalidClient);
        }
        let reach = match (&caller.sid, &caller.jti) {
            (Some(sid), _) => Reach::Session(sid),
            (None, Some(jti)) => Reach::Token(jti),
            (None, None) => return Err(DomainError::InvalidBearer),
        };
        self.revoke_within(&caller.client_id, reach, token).await
    }

    async fn revoke_within(
        &self,
        client_id: &str,
        reach: Reach<'_>,
        token: &str,
    ) -> Result<(), DomainError> {
        let now = self.clock.now_ms();
        if token.starts_with(ACCESS_TOKEN_PREFIX) {
            // Expired tokens still name a session that may be alive: ending it is what a
            // logout with a stale access token means.
            let Some(claims) = self.signed_claims(token, now).await? else {
                return Ok(());
            };
            let reachable = claims.client_id == client_id
                && match reach {
                    Reach::Client => true,
                    Reach::Session(sid) => claims.sid.as_deref() == Some(sid),
                    Reach::Token(jti) => claims.sid.is_none() && claims.jti == jti,
                };
            if !reachable {
                return Err(DomainError::ForeignToken);
            }
            match &claims.sid {
                Some(sid) => self.end_session(sid, now, "revoked").await?,
                None if claims.expires_at > now - ms(self.policy.clock_leeway) => {
                    self.revoke_alone(&claims, now).await?;
                }
                None => {}
            }
            return Ok(());
        }
        if looks_like_refresh_token(token) {
            let Some(row) = self
                .repo
                .find_refresh_token(&refresh_token_key(token))
                .await?
            else {
                return Ok(());
            };
            let reachable = row.client_id == client_id
                && match reach {
                    Reach::Client => true,
                    Reach::Session(sid) => row.sid == sid,
                    Reach::Token(_) => false,
                };
            if !reachable {
                return Err(DomainError::ForeignToken);
            }
            self.end_session(&row.sid, now, "revoked").await?;
        }
        Ok(())
    }

    /// Revokes an anonymous access token on its own. Revoking it again writes nothing: a
    /// token the view knows revoked costs no query at all.
    async fn revoke_alone(&self, claims: &AccessClaims, now: i64) -> Result<(), DomainError> {
        if self.revoked.is_token_revoked(&claims.jti) {
            return Ok(());
        }
        let expires_at = claims
            .expires_at
            .saturating_add(ms(self.policy.clock_leeway));
        if let Some(sequence) = self.repo.revoke_token(&claims.jti, now, expires_at).await? {
            self.revoked.apply(RevocationEvent {
                sequence,
                kind: RevocationKind::Token,
                subject: claims.jti.clone(),
                revoked_at: now,
                expires_at,
            });
        }
        Ok(())
    }
}
