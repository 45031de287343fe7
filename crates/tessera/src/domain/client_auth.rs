//! Client authentication, with a cache of verified secrets so that a busy integration client
//! does not pay an argon2 hash per call, and a cache of enabled clients so that an anonymous
//! token costs no query.
use std::sync::Arc;

use quick_cache::sync::Cache;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::{
    DomainError,
    clients::ClientKind,
    clock::SharedClock,
    hashing::HashingPool,
    random::sha256,
    repository::{ClientRecord, SharedRepository},
    revocation_view::RevocationView,
};

/// A client whose credentials checked out.
#[derive(Clone, Debug)]
pub struct AuthenticatedClient {
    pub client_id: String,
    pub kind: ClientKind,
    /// Whether a secret was presented (and was right).
    pub presented_secret: bool,
}

/// Remembers, per client, the SHA-256 of the last secret that verified against the stored
/// hash. The stored hash is part of the entry, so a rotation (a new hash in the database,
/// which every call reads) invalidates it on every instance at once. Bounded: when full, the
/// least recently useful entry goes (never the whole cache: that would force a burst of
/// argon2 hashes on every busy client at once).
#[derive(Debug)]
pub struct VerifiedSecrets {
    entries: Cache<String, (Arc<str>, [u8; 32])>,
}

/// Entries kept at most, in each cache of this module.
const MAX_ENTRIES: usize = 10_000;

impl Default for VerifiedSecrets {
    fn default() -> Self {
        Self {
            entries: Cache::new(MAX_ENTRIES),
        }
    }
}

impl VerifiedSecrets {
    fn matches(&self, client_id: &str, stored_hash: &str, secret: &str) -> bool {
        self.entries.get(client_id).is_some_and(|(hash, digest)| {
            *hash == *stored_hash && bool::from(digest.ct_eq(&sha256(secret)))
        })
    }

    fn remember(&self, client_id: &str, stored_hash: &str, secret: &str) {
        self.entries
            .insert(client_id.to_owned(), (stored_hash.into(), sha256(secret)));
    }
}

/// The kinds of clients seen enabled in the database. A client's kind never changes and a
/// disabled client never comes back, so an entry stays right for as long as the revocation
/// view (which learns of every disable) does not name the client.
#[derive(Debug)]
struct EnabledClients {
    kinds: Cache<String, ClientKind>,
}

impl Default for EnabledClients {
    fn default() -> Self {
        Self {
            kinds: Cache::new(MAX_ENTRIES),
        }
    }
}

impl EnabledClients {
    fn get(&self, client_id: &str) -> Option<ClientKind> {
        self.kinds.get(client_id)
    }

    fn remember(&self, client_id: &str, kind: ClientKind) {
        self.kinds.insert(client_id.to_owned(), kind);
    }
}

/// Checks client credentials against the database.
#[derive(Debug)]
pub struct ClientAuthenticator {
    repo: SharedRepository,
    clock: SharedClock,
    hasher: HashingPool,
    revoked: Arc<RevocationView>,
    verified: VerifiedSecrets,
    enabled: EnabledClients,
}

impl ClientAuthenticator {
    pub fn new(
        repo: SharedRepository,
        hasher: HashingPool,
        revoked: Arc<RevocationView>,
        clock: SharedClock,
    ) -> Self {
        Self {
            repo,
            clock,
            hasher,
            revoked,
            verified: VerifiedSecrets::default(),
            enabled: EnabledClients::default(),
        }
    }

    /// The pool secrets are verified on.
    pub fn hasher(&self) -> &HashingPool {
        &self.hasher
    }

    /// Authenticates a client: it must exist and be enabled; an integration client must present
    /// its secret; a secret that is presented must be right.
    ///
    /// Without a secret, a client known to be enabled is answered from memory: disabling it
    /// reaches every instance through the revocation view, like any other revocation. With a
    /// secret, the stored hash is read on every call, so that a rotated secret stops working
    /// at once everywhere.
    pub async fn authenticate(
        &self,
        client_id: &str,
        secret: Option<&SecretString>,
    ) -> Result<AuthenticatedClient, DomainError> {
        if secret.is_none()
            && let Some(kind) = self.known_enabled(client_id)
        {
            return match kind {
                ClientKind::Integration => Err(DomainError::InvalidClient),
                ClientKind::Marketplace => Ok(AuthenticatedClient {
                    client_id: client_id.to_owned(),
                    kind,
                    presented_secret: false,
                }),
            };
        }
        let client = self
            .repo
            .find_client(client_id)
            .await?
            .ok_or(DomainError::InvalidClient)?;
        if client.disabled_at.is_some() {
            return Err(DomainError::InvalidClient);
        }
        let kind = client.kind;
        self.enabled.remember(&client.client_id, kind);
        match (kind, secret) {
            (ClientKind::Integration, None) => Err(DomainError::InvalidClient),
            (_, None) => Ok(AuthenticatedClient {
                client_id: client.client_id,
                kind,
                presented_secret: false,
            }),
            (_, Some(secret)) => {
                self.check_secret(&client, secret).await?;
                Ok(AuthenticatedClient {
                    client_id: client.client_id,
                    kind,
                    presented_secret: true,
                })
            }
        }
    }

    /// The kind of a client seen enabled, while the revocation view is fresh and does not
    /// say it was disabled since.
    fn known_enabled(&self, client_id: &str) -> Option<ClientKind> {
        let kind = self.enabled.get(client_id)?;
        let view_vouches = !self.revoked.is_stale(self.clock.now_ms())
            && !self.revoked.is_client_disabled(client_id);
        view_vouches.then_some(kind)
    }

    async fn check_secret(
        &self,
        client: &ClientRecord,
        secret: &SecretString,
    ) -> Result<(), DomainError> {
        let Some(stored) = client.secret_hash.as_deref() else {
            return Err(DomainError::InvalidClient);
        };
        if self
            .verified
            .matches(&client.client_id, stored, secret.expose_secret())
        {
            return Ok(());
        }
        if self
            .hasher
            .verify(secret.clone(), stored.to_owned())
            .await?
        {
            self.verified
                .remember(&client.client_id, stored, secret.expose_secret());
            Ok(())
        } else {
            Err(DomainError::InvalidClient)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_matches_only_the_same_secret_under_the_same_stored_hash() {
        let cache = VerifiedSecrets::default();
        cache.remember("c", "hash-1", "secret");
        assert!(cache.matches("c", "hash-1", "secret"));
        assert!(!cache.matches("c", "hash-1", "other"));
        assert!(!cache.matches("c", "hash-2", "secret"));
        assert!(!cache.matches("d", "hash-1", "secret"));
    }
}
