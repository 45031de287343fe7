//! The password grant (SPEC §2): a marketplace client logs an end user in. Unknown user,
//! wrong password and disabled user cost the same argon2 verification and give the same error.
use secrecy::SecretString;

use super::super::TokenService;
use crate::domain::{
    DomainError, client_auth::AuthenticatedClient, clients::ClientKind, hashing::Reservation,
    repository::UserRecord, scope, service::IssuedToken, users::normalize_username,
};

impl TokenService {
    /// The password grant: a marketplace client logs an end user in. Unknown user, wrong
    /// password and disabled user cost the same argon2 verification and give the same error.
    pub(in crate::domain::service) async fn password(
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
    pub(in crate::domain::service) async fn check_password(
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

    /// Re-hashes a password whose stored hash is weaker than the configured cost. Best effort:
    /// the login has succeeded whatever happens here.
    pub(in crate::domain::service) async fn upgrade_weak_hash(
        &self,
        user: &UserRecord,
        password: SecretString,
    ) {
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
}
