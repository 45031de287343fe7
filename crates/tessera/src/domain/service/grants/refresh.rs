//! The refresh_token grant (SPEC §2): spend a refresh token, get its successor.
use super::super::TokenService;
use crate::domain::{
    DomainError,
    client_auth::AuthenticatedClient,
    clock::ms,
    random::{new_secret, sha256_hex},
    repository::RefreshTokenRecord,
    scope,
    service::IssuedToken,
};

impl TokenService {
    /// The refresh grant: spends the presented refresh token and issues its successor, with
    /// an access token of the session's scope (or a narrower one).
    pub(in crate::domain::service) async fn refresh(
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
}
