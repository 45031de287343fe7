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
        // A lock this instance knows of refuses the attempt before it takes a place in the
        // hashing queue: a flood against a locked username or address never delays real logins.
        self.throttle.refuse_if_known_locked(&username, address)?;
        // A place in the hashing pool next: a login turned away for lack of capacity must
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
        self.upgrade_hash_in_background(&user, password);
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
        let verify_stored =
            self.hasher()
                .verify_reserved(reservation, password.clone(), stored_hash);
        let verified = if user
            .as_ref()
            .is_some_and(|u| self.hasher().needs_rehash(&u.password_hash))
        {
            // A hash weaker than the configured cost verifies faster than the dummy hash of an
            // unknown user: the dummy runs beside it, so that the attempt takes as long as any
            // other (the longer of the two), and the account does not show.
            let dummy = self.hasher().dummy_hash().await?;
            let verify_dummy = self
                .hasher()
                .verify_reserved(reservation, password.clone(), dummy);
            let (verified, dummy) = tokio::join!(verify_stored, verify_dummy);
            dummy?;
            verified?
        } else {
            verify_stored.await?
        };
        Ok((user, verified))
    }

    /// Re-hashes a password whose stored hash is not at the configured cost, on a task of its
    /// own: the caller's answer does not wait for it (nor shows, by its timing, that it ran).
    /// Best effort: the login has succeeded whatever happens here.
    pub(in crate::domain::service) fn upgrade_hash_in_background(
        &self,
        user: &UserRecord,
        password: SecretString,
    ) {
        if !self.hasher().needs_rehash(&user.password_hash) {
            return;
        }
        let (repo, hasher, clock) = (self.repo.clone(), self.hasher().clone(), self.clock.clone());
        let (user_id, old_hash) = (user.user_id.clone(), user.password_hash.clone());
        tokio::spawn(async move {
            let result = match hasher.hash(password).await {
                Ok(new_hash) => repo
                    .upgrade_password_hash(&user_id, &old_hash, new_hash, clock.now_ms())
                    .await
                    .map_err(DomainError::from),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(
                    reason = e.reason(),
                    "could not re-hash a password; will retry at the next login"
                );
            }
        });
    }
}
