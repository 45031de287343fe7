//! The client_credentials grant (SPEC §2): an anonymous `public-read` token for a marketplace
//! client; an `integ` token with a session and a refresh token for an integration client.
use super::super::TokenService;
use crate::domain::{
    DomainError, client_auth::AuthenticatedClient, clients::ClientKind, scope, service::IssuedToken,
};

impl TokenService {
    pub(in crate::domain::service) async fn client_credentials(
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
}
