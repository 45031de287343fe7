//! The signing keys every instance shares: loaded from the database, the secret half opened
//! with the master key, the first one made on first start.
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use pasetors::{
    keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey, Generate},
    paserk::{FormatAsPaserk, Id},
    version4::V4,
};

use super::{
    clock::SharedClock,
    master_key::{MasterKey, MasterKeyError},
    repository::{KeyRepository, RepositoryError, SharedRepository, SigningKeyRecord},
    token::{self, AccessClaims, Unverified},
};

/// Why the key ring could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error("TESSERA_MASTER_KEY {0}")]
    MasterKey(#[from] MasterKeyError),
    #[error("signing key {kid} in the database is damaged")]
    Damaged { kid: String },
    #[error("could not make a signing key: {0}")]
    Crypto(String),
}

/// A public key as GetKeySet and `keys list` show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PublishedKey {
    pub kid: String,
    pub paserk: String,
    pub created_at: i64,
    pub retire_at: Option<i64>,
    pub signing: bool,
}

struct SigningKey {
    kid: String,
    generation: i64,
    secret: AsymmetricSecretKey<V4>,
}

struct VerifyingKey {
    public: AsymmetricPublicKey<V4>,
    retire_at: Option<i64>,
}

struct Keys {
    signing: SigningKey,
    verifying: HashMap<String, VerifyingKey>,
}

/// What checking a token's signature found.
pub enum Verification {
    /// Signed by one of our live keys; times not yet checked.
    Signed(AccessClaims),
    /// The footer names a key we do not know (yet: another instance may have made it).
    UnknownKey,
    /// Not a token of ours.
    Invalid,
}

/// Minimum time between two reloads caused by unknown key ids, so that forged kids cannot
/// turn into a database flood.
const RELOAD_INTERVAL_MS: i64 = 1_000;

/// The key ring of one instance.
pub struct KeyRing {
    repo: SharedRepository,
    clock: SharedClock,
    master: MasterKey,
    /// The keys in use, swapped whole on a reload; readers never wait.
    keys: ArcSwap<Keys>,
    last_reload: AtomicI64,
    verify_window_ms: i64,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Loads the keys, making the first one if the database has none.
    /// `verify_window` is how long this instance needs a key that stopped signing to keep
    /// verifying: its longest token lifetime plus its clock leeway (and the time it takes
    /// instances to follow a rotation).
    pub async fn open(
        repo: SharedRepository,
        master: MasterKey,
        verify_window: Duration,
        clock: SharedClock,
    ) -> Result<Self, KeyRingError> {
        let verify_window_ms = super::clock::ms(verify_window);
        let now = clock.now_ms();
        let keys = load_or_create(&*repo, &master, verify_window_ms, now).await?;
        Ok(Self {
            repo,
            master,
            keys: ArcSwap::from_pointee(keys),
            last_reload: AtomicI64::new(now),
            verify_window_ms,
            clock,
        })
    }

    fn snapshot(&self) -> Arc<Keys> {
        self.keys.load_full()
    }

    /// Signs an access token with the current signing key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, anyhow::Error> {
        let keys = self.snapshot();
        token::sign(claims, &keys.signing.kid, &keys.signing.secret)
    }

    /// The id of the key that signs new tokens.
    pub fn signing_kid(&self) -> String {
        self.snapshot().signing.kid.clone()
    }

    /// Whether `kid` names one of our keys that still verifies at `now`.
    pub fn is_live(&self, kid: &str, now: i64) -> bool {
        self.snapshot()
            .verifying
            .get(kid)
            .is_some_and(|key| key.retire_at.is_none_or(|at| at > now))
    }

    /// Checks a token's signature against our live keys.
    pub fn verify(&self, token: &Unverified, now: i64) -> Verification {
        let keys = self.snapshot();
        let Some(key) = keys.verifying.get(token.kid()) else {
            return Verification::UnknownKey;
        };
        if key.retire_at.is_some_and(|at| at <= now) {
            return Verification::Invalid;
        }
        match token.verify(&key.public) {
            Some(claims) => Verification::Signed(claims),
            None => Verification::Invalid,
        }
    }

    /// Reloads the keys from the database unless that was done less than a second ago.
    /// Returns whether it reloaded.
    pub async fn reload_if_stale(&self) -> Result<bool, KeyRingError> {
        let now = self.clock.now_ms();
        let last = self.last_reload.load(Ordering::Relaxed);
        if now - last < RELOAD_INTERVAL_MS
            || self
                .last_reload
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    /// Reloads the keys when the database holds a newer generation than the one signing here
    /// (a rotation on another instance or by the CLI). Returns whether it reloaded.
    pub async fn follow_rotation(&self) -> Result<bool, KeyRingError> {
        let newest = self.repo.newest_key_generation().await?;
        if newest == Some(self.snapshot().signing.generation) {
            return Ok(false);
        }
        self.last_reload
            .store(self.clock.now_ms(), Ordering::Relaxed);
        self.reload().await?;
        Ok(true)
    }

    /// Loads the keys from the database and makes them the ones in use.
    async fn reload(&self) -> Result<(), KeyRingError> {
        let keys = load_or_create(
            &*self.repo,
            &self.master,
            self.verify_window_ms,
            self.clock.now_ms(),
        )
        .await?;
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// The keys that still verify tokens, newest first, as stored in the database.
    pub async fn published(&self, now: i64) -> Result<Vec<PublishedKey>, KeyRingError> {
        published(&*self.repo, now).await
    }
}

/// The keys that still verify tokens, newest first, without opening any secret half.
pub async fn published(
    repo: &dyn KeyRepository,
    now: i64,
) -> Result<Vec<PublishedKey>, KeyRingError> {
    let rows = repo.list_signing_keys().await?;
    let signing_generation = rows.first().map(|r| r.generation);
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if row.retire_at.is_some_and(|at| at <= now) {
            continue;
        }
        let public = public_key(&row)?;
        out.push(PublishedKey {
            kid: row.kid.clone(),
            paserk: paserk_public(&public),
            created_at: row.created_at,
            retire_at: row.retire_at,
            signing: Some(row.generation) == signing_generation,
        });
    }
    Ok(out)
}

/// `k4.public.<base64url>` for a public key.
pub fn paserk_public(key: &AsymmetricPublicKey<V4>) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = key.fmt(&mut out);
    out
}

/// `k4.pid.<...>`: the PASERK id of a public key, used as `kid`.
pub fn paserk_pid(key: &AsymmetricPublicKey<V4>) -> String {
    let mut out = String::new();
    let _ = Id::from(key).fmt(&mut out);
    out
}

fn public_key(row: &SigningKeyRecord) -> Result<AsymmetricPublicKey<V4>, KeyRingError> {
    let public =
        AsymmetricPublicKey::<V4>::from(&row.public_key).map_err(|_| KeyRingError::Damaged {
            kid: row.kid.clone(),
        })?;
    if paserk_pid(&public) != row.kid {
        return Err(KeyRingError::Damaged {
            kid: row.kid.clone(),
        });
    }
    Ok(public)
}

async fn load_or_create(
    repo: &dyn KeyRepository,
    master: &MasterKey,
    verify_window_ms: i64,
    now: i64,
) -> Result<Keys, KeyRingError> {
    // Two instances starting at once may race to make the first key: the generation is
    // unique, so one insert loses and that instance simply loads the winner's key.
    for _ in 0..3 {
        let mut rows = repo.list_signing_keys().await?;
        extend_retirements(repo, &mut rows, verify_window_ms, now).await?;
        if let Some(newest) = rows.first() {
            return keys_from_rows(&rows, newest, master);
        }
        match repo.insert_signing_key(new_key_row(master, 1, now)?).await {
            Ok(()) | Err(RepositoryError::Conflict(_)) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(KeyRingError::Crypto(
        "no signing key after three attempts".into(),
    ))
}

/// Keys that stopped signing keep verifying for at least this instance's window after that
/// moment, whatever window the rotation assumed (`keys rotate` runs with its own settings).
/// A key already retired stays retired.
async fn extend_retirements(
    repo: &dyn KeyRepository,
    rows: &mut [SigningKeyRecord],
    verify_window_ms: i64,
    now: i64,
) -> Result<(), KeyRingError> {
    for row in rows.iter_mut() {
        let (Some(superseded), Some(retire)) = (row.superseded_at, row.retire_at) else {
            continue;
        };
        let needed = superseded.saturating_add(verify_window_ms);
        if retire > now && retire < needed {
            repo.extend_key_retirement(&row.kid, needed).await?;
            row.retire_at = Some(needed);
        }
    }
    Ok(())
}

fn keys_from_rows(
    rows: &[SigningKeyRecord],
    newest: &SigningKeyRecord,
    master: &MasterKey,
) -> Result<Keys, KeyRingError> {
    let opened = master.open(&newest.sealed_secret_key)?;
    let secret = AsymmetricSecretKey::<V4>::from(&opened).map_err(|_| KeyRingError::Damaged {
        kid: newest.kid.clone(),
    })?;
    let derived =
        AsymmetricPublicKey::<V4>::try_from(&secret).map_err(|_| KeyRingError::Damaged {
            kid: newest.kid.clone(),
        })?;
    if derived.as_bytes() != newest.public_key.as_slice() {
        return Err(KeyRingError::Damaged {
            kid: newest.kid.clone(),
        });
    }
    let mut verifying = HashMap::with_capacity(rows.len());
    for row in rows {
        verifying.insert(
            row.kid.clone(),
            VerifyingKey {
                public: public_key(row)?,
                retire_at: row.retire_at,
            },
        );
    }
    Ok(Keys {
        signing: SigningKey {
            kid: newest.kid.clone(),
            generation: newest.generation,
            secret,
        },
        verifying,
    })
}

/// A fresh key pair as a row, its secret half sealed under the master key.
pub fn new_key_row(
    master: &MasterKey,
    generation: i64,
    now: i64,
) -> Result<SigningKeyRecord, KeyRingError> {
    let pair =
        AsymmetricKeyPair::<V4>::generate().map_err(|e| KeyRingError::Crypto(e.to_string()))?;
    let sealed = master
        .seal(pair.secret.as_bytes())
        .map_err(|e| KeyRingError::Crypto(e.to_string()))?;
    Ok(SigningKeyRecord {
        kid: paserk_pid(&pair.public),
        generation,
        public_key: pair.public.as_bytes().to_vec(),
        sealed_secret_key: sealed,
        created_at: now,
        superseded_at: None,
        retire_at: None,
    })
}

/// Makes a new signing key: it signs from now on (other instances follow within a second);
/// older keys stop signing and keep verifying for `verify_for`, long enough for every token
/// they signed to expire, then retire. The master key must open the current signing key, so
/// that a wrong key can never seal a key nobody can open.
pub async fn rotate(
    repo: &dyn KeyRepository,
    master: &MasterKey,
    verify_for: std::time::Duration,
    now: i64,
) -> Result<PublishedKey, KeyRingError> {
    let rows = repo.list_signing_keys().await?;
    if let Some(current) = rows.first() {
        keys_from_rows(&rows, current, master)?;
    }
    let generation = rows.first().map_or(1, |r| r.generation + 1);
    let row = new_key_row(master, generation, now)?;
    let public = public_key(&row)?;
    let published = PublishedKey {
        kid: row.kid.clone(),
        paserk: paserk_public(&public),
        created_at: now,
        retire_at: None,
        signing: true,
    };
    let retire_at = now.saturating_add(super::clock::ms(verify_for));
    repo.rotate_signing_key(row, now, retire_at).await?;
    Ok(published)
}
