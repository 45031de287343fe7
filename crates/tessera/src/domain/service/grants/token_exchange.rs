//! Token exchange (RFC 8693, SPEC §2): a trusted context trades a `user` token for a
//! `trusted:user` one.
use super::super::TokenService;
use crate::domain::{
    DomainError,
    client_auth::AuthenticatedClient,
    clients::ClientKind,
    scope,
    service::{ACCESS_TOKEN_TYPE, IssuedToken},
};

impl TokenService {
    /// Token exchange (RFC 8693): a marketplace client that holds a secret, and presents it,
    /// trades an active `user` access token of its own for a `trusted:user` one of the same
    /// subject and session, living no longer than the token it came from.
    pub(in crate::domain::service) async fn token_exchange(
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
}
