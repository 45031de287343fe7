//! The refresh_token grant (SPEC §2): spend a refresh token, get its successor; present a spent
//! one again and get, within the reuse grace, a fresh pair in place of the first (an answer lost
//! on the network), or, after it, the end of the session (theft).
use super::super::{CALL_DEADLINE, TokenService};
use crate::domain::{
    DomainError,
    client_auth::AuthenticatedClient,
    clock::ms,
    random::{new_refresh_token, refresh_token_key},
    repository::{
        IssuedAccess, RefreshTokenRecord, Reissue, RevocationEvent, RevocationKind, SessionRecord,
    },
    scope,
    service::IssuedToken,
    token::AccessClaims,
};

/// A pair about to be issued: the access token's claims, the refresh token and its row.
struct NextPair {
    claims: AccessClaims,
    refresh_token: String,
    row: RefreshTokenRecord,
}

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
        let hash = refresh_token_key(presented);
        let row = self.owned_refresh_token(client, &hash).await?;
        if row.spent_at.is_some() {
            return self.refresh_spent(client, requested_scope, &row, now).await;
        }
        let session = self.live_session_of(&row, now).await?;
        if row.expires_at <= now {
            return Err(DomainError::InvalidGrant);
        }
        let next = self.next_pair(client, &session, requested_scope, now)?;
        if !self.repo.rotate_refresh_token(&hash, next.row, now).await? {
            // Another request spent it first, or the session ended meanwhile. A retry that
            // waited on a late first use is a retry all the same.
            let row = self.owned_refresh_token(client, &hash).await?;
            if row.spent_at.is_some() {
                return self.refresh_spent(client, requested_scope, &row, now).await;
            }
            return Err(DomainError::InvalidGrant);
        }
        self.issued(next.claims, Some(next.refresh_token))
    }

    /// A spent refresh token presented again (SPEC §2, RFC 9700 §4.14.2):
    /// - while its first use may still be in flight (within the call deadline of it), the
    ///   request is concurrent with that use, and of concurrent refreshes one wins: refused;
    /// - after that and within the reuse grace, it is the same client retrying an answer it
    ///   never got: a fresh pair replaces the pair of the first use, which stops working,
    ///   provided that pair's refresh token was never used (else the answer did arrive);
    /// - after the grace, or at any time for a token a retry replaced (its client never got
    ///   it), the token leaked: the session ends.
    async fn refresh_spent(
        &self,
        client: &AuthenticatedClient,
        requested_scope: &str,
        row: &RefreshTokenRecord,
        now: i64,
    ) -> Result<IssuedToken, DomainError> {
        let spent_at = row.spent_at.unwrap_or(now);
        // A token a retry replaced never reached the client: whoever presents it stole it.
        if row.replaced_at.is_some() || now - spent_at > ms(self.policy.refresh_reuse_grace) {
            self.end_session(&row.sid, now, "refresh_token_reused")
                .await?;
            tracing::warn!(sid = %row.sid, "spent refresh token presented again: session ended");
            return Err(DomainError::InvalidGrant);
        }
        if now - spent_at < ms(CALL_DEADLINE) {
            return Err(DomainError::InvalidGrant);
        }
        let Some(replaced_hash) = row.successor_hash.as_deref() else {
            return Err(DomainError::InvalidGrant);
        };
        let replaced = self
            .repo
            .find_refresh_token(replaced_hash)
            .await?
            .ok_or(DomainError::InvalidGrant)?;
        if replaced.spent_at.is_some() {
            return Err(DomainError::InvalidGrant);
        }
        let session = self.live_session_of(row, now).await?;
        let next = self.next_pair(client, &session, requested_scope, now)?;
        let leeway = ms(self.policy.clock_leeway);
        let revoke = replaced.issued_with.map(|access| IssuedAccess {
            jti: access.jti,
            expires_at: access.expires_at.saturating_add(leeway),
        });
        let reissued = self
            .repo
            .reissue_refresh_token(
                &row.token_hash,
                replaced_hash,
                next.row,
                now,
                revoke.as_ref(),
            )
            .await?;
        let Reissue::Replaced { revocation } = reissued else {
            return Err(DomainError::InvalidGrant);
        };
        if let (Some(sequence), Some(access)) = (revocation, revoke) {
            self.revoked.apply(RevocationEvent {
                sequence,
                kind: RevocationKind::Token,
                subject: access.jti,
                revoked_at: now,
                expires_at: access.expires_at,
            });
        }
        tracing::info!(sid = %row.sid, "spent refresh token retried within the grace: pair reissued");
        self.issued(next.claims, Some(next.refresh_token))
    }

    /// The refresh token with this hash, if it is `client`'s.
    async fn owned_refresh_token(
        &self,
        client: &AuthenticatedClient,
        hash: &str,
    ) -> Result<RefreshTokenRecord, DomainError> {
        let row = self
            .repo
            .find_refresh_token(hash)
            .await?
            .ok_or(DomainError::InvalidGrant)?;
        if row.client_id != client.client_id {
            return Err(DomainError::InvalidGrant);
        }
        Ok(row)
    }

    /// The refresh token's session, if it is live.
    async fn live_session_of(
        &self,
        row: &RefreshTokenRecord,
        now: i64,
    ) -> Result<SessionRecord, DomainError> {
        let session = self
            .repo
            .find_session(&row.sid)
            .await?
            .ok_or(DomainError::InvalidGrant)?;
        if session.ended_at.is_some() || session.expires_at <= now {
            return Err(DomainError::InvalidGrant);
        }
        Ok(session)
    }

    /// The pair a refresh of `session` issues: an access token of the session's scope (or a
    /// narrower one) and a refresh token, neither outliving the session.
    fn next_pair(
        &self,
        client: &AuthenticatedClient,
        session: &SessionRecord,
        requested_scope: &str,
        now: i64,
    ) -> Result<NextPair, DomainError> {
        let scope = scope::narrow(requested_scope, &session.scope)?;
        let sub = session
            .user_id
            .clone()
            .unwrap_or_else(|| client.client_id.clone());
        let mut claims = self.access_claims(
            &client.client_id,
            &sub,
            scope,
            Some(session.sid.clone()),
            now,
            self.policy.access_token_ttl,
        );
        // Access tokens never outlive their session, so introspection need not look it up.
        claims.expires_at = claims.expires_at.min(session.expires_at);
        let refresh_token = new_refresh_token();
        let row = RefreshTokenRecord {
            token_hash: refresh_token_key(&refresh_token),
            sid: session.sid.clone(),
            client_id: client.client_id.clone(),
            created_at: now,
            expires_at: now
                .saturating_add(ms(self.policy.refresh_token_ttl))
                .min(session.expires_at),
            spent_at: None,
            successor_hash: None,
            replaced_at: None,
            issued_with: Some(IssuedAccess {
                jti: claims.jti.clone(),
                expires_at: claims.expires_at,
            }),
        };
        Ok(NextPair {
            claims,
            refresh_token,
            row,
        })
    }
}
