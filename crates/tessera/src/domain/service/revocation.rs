//! RevokeToken (RFC 7009, SPEC §4).
use secrecy::SecretString;

use super::TokenService;
use crate::domain::{
    DomainError,
    clock::ms,
    random::{looks_like_secret, sha256_hex},
    repository::{RevocationEvent, RevocationKind},
    token::{ACCESS_TOKEN_PREFIX, AccessClaims},
};

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
                    self.revoke_alone(&claims, now).await?;
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
