//! Client authentication: secrets checked against their stored digest (no argon2 for any
//! caller to trigger), and a cache of enabled clients so that an anonymous token costs no
//! query.
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::Semaphore;

use quick_cache::sync::Cache;
use secrecy::{ExposeSecret, SecretString};

use super::{
    DomainError,
    client_secret::{self, StoredSecret, digest_matches},
    clients::ClientKind,
    clock::SharedClock,
    hashing::HashingPool,
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

/// Entries kept at most in the cache of enabled clients.
const MAX_ENTRIES: usize = 10_000;

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
    enabled: EnabledClients,
    /// Legacy (argon2id) secret checks run one at a time and never queue: a flood of wrong
    /// secrets for a client not yet moved to a digest takes one hashing thread at most, never
    /// the logins' pool.
    legacy_checks: Arc<Semaphore>,
    /// Per client: the reads of its row, one at a time (see `fresh_client`).
    reads: Cache<String, Arc<ClientReads>>,
}

/// The reads of one client's row: how many have started, and the last one's ticket and
/// result.
#[derive(Debug, Default)]
struct ClientReads {
    started: AtomicU64,
    last: tokio::sync::Mutex<Option<(u64, Option<ClientRecord>)>>,
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
            enabled: EnabledClients::default(),
            legacy_checks: Arc::new(Semaphore::new(1)),
            reads: Cache::new(MAX_ENTRIES),
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
            .fresh_client(client_id)
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
    /// The client as the database holds it, read after this call began (so that a rotated
    /// secret or a disable made before it counts), with at most one read per client in flight:
    /// concurrent callers share the next read that starts after they arrived. A flood of
    /// guesses at one client's secret costs the database one read at a time, not one each.
    async fn fresh_client(&self, client_id: &str) -> Result<Option<ClientRecord>, DomainError> {
        let reads = self
            .reads
            .get_or_insert_with(client_id, || {
                Ok::<_, std::convert::Infallible>(Arc::new(ClientReads::default()))
            })
            .unwrap_or_else(|never| match never {});
        let arrived_after = reads.started.load(Ordering::Acquire);
        let mut last = reads.last.lock().await;
        if let Some((ticket, record)) = &*last
            && *ticket > arrived_after
        {
            return Ok(record.clone());
        }
        // Reads start only under the lock: this one starts after every waiter arrived.
        let ticket = reads.started.fetch_add(1, Ordering::AcqRel) + 1;
        let record = self.repo.find_client(client_id).await?;
        *last = Some((ticket, record.clone()));
        Ok(record)
    }

    fn known_enabled(&self, client_id: &str) -> Option<ClientKind> {
        let kind = self.enabled.get(client_id)?;
        let view_vouches = !self.revoked.is_stale(self.clock.now_ms())
            && !self.revoked.is_client_disabled(client_id);
        view_vouches.then_some(kind)
    }

    /// Checks a presented secret against the stored one: a digest compared in constant time,
    /// or (stored by an earlier release) an argon2id hash, verified once and then replaced by
    /// its digest.
    async fn check_secret(
        &self,
        client: &ClientRecord,
        secret: &SecretString,
    ) -> Result<(), DomainError> {
        let Some(stored) = client.secret_hash.as_deref() else {
            return Err(DomainError::InvalidClient);
        };
        let right = match StoredSecret::parse(stored) {
            StoredSecret::Digest(hex) => digest_matches(hex, secret.expose_secret()),
            StoredSecret::LegacyArgon2(phc) => {
                let _one_at_a_time =
                    self.legacy_checks
                        .try_acquire()
                        .map_err(|_| DomainError::SlowDown {
                            retry_after: std::time::Duration::from_secs(1),
                        })?;
                let right = self.hasher.verify(secret.clone(), phc.to_owned()).await?;
                if right {
                    self.replace_legacy_hash(client, phc, secret).await;
                }
                right
            }
        };
        if right {
            Ok(())
        } else {
            Err(DomainError::InvalidClient)
        }
    }

    /// Stores the digest of a secret that verified against a legacy argon2id hash (unless the
    /// secret was rotated meanwhile). Best effort: the call has succeeded whatever happens.
    async fn replace_legacy_hash(&self, client: &ClientRecord, phc: &str, secret: &SecretString) {
        let digest = client_secret::digest(secret.expose_secret());
        if let Err(e) = self
            .repo
            .replace_client_secret_hash(&client.client_id, phc, digest)
            .await
        {
            tracing::warn!(error = %e, "could not replace a legacy client secret hash; will retry");
        }
    }
}
