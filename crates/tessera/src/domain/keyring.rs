//! The signing keys every instance shares: loaded from the database, the secret half opened
//! with the master key, the first one made on first start. A row counts only if the master
//! key's MAC vouches for it (kid, generation, public key, lifetimes) and its secret half is
//! sealed bound to its kid: write access to the database alone can neither add a key nor
//! bring a retired one back.
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
    repository::{KeyRepository, KeyUpdate, RepositoryError, SharedRepository, SigningKeyRecord},
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
    secret: AsymmetricSecretKey<V4>,
}

struct VerifyingKey {
    public: AsymmetricPublicKey<V4>,
    retire_at: Option<i64>,
}

struct Keys {
    signing: SigningKey,
    verifying: HashMap<String, VerifyingKey>,
    /// What GetKeySet serves, newest first (retired keys filtered out when asked).
    published: Vec<PublishedKey>,
    /// The newest generation in the database when these were loaded, trusted or not: a
    /// rotation elsewhere shows as a newer one.
    newest_generation: i64,
    /// The signing key's generation: a reload never goes back below it.
    signing_generation: i64,
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
        if newest.is_none_or(|newest| newest <= self.snapshot().newest_generation) {
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
        let signing = self.snapshot().signing_generation;
        if keys.signing_generation < signing {
            // The rows of newer keys disappeared (deleted, or an old backup restored): going
            // back to an older key could revive one that leaked. Keep signing with ours.
            tracing::error!(
                loaded = keys.signing_generation,
                signing,
                "the database's newest trusted signing key is older than the one signing \
                 here: keeping the keys this instance holds"
            );
            return Ok(());
        }
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// The keys that verify tokens at `now`, newest first: the ones this instance holds (and
    /// trusts), from memory.
    pub fn published(&self, now: i64) -> Vec<PublishedKey> {
        self.snapshot()
            .published
            .iter()
            .filter(|key| key.retire_at.is_none_or(|at| at > now))
            .cloned()
            .collect()
    }
}

/// The keys that still verify tokens, newest first, as the database holds them: for
/// operators (`tessera keys list`), without the master key, so rows are not checked here.
pub async fn published(
    repo: &dyn KeyRepository,
    now: i64,
) -> Result<Vec<PublishedKey>, KeyRingError> {
    let rows = repo.list_signing_keys().await?;
    published_rows(&rows, now)
}

fn published_rows(rows: &[SigningKeyRecord], now: i64) -> Result<Vec<PublishedKey>, KeyRingError> {
    let signing_generation = rows.first().map(|r| r.generation);
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if row.retire_at.is_some_and(|at| at <= now) {
            continue;
        }
        let public = public_key(row)?;
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
        let (mut rows, newest_generation) = trusted_rows(repo, master).await?;
        clamp_to_successors(&mut rows, verify_window_ms);
        extend_retirements(repo, master, &mut rows, verify_window_ms, now).await?;
        let generation = match rows.first() {
            Some(newest) if newest.superseded_at.is_none() => {
                let mut keys = keys_from_rows(&rows, newest, master)?;
                keys.newest_generation = newest_generation.unwrap_or(newest.generation);
                return Ok(keys);
            }
            Some(newest) => {
                // The newest key we trust says it was superseded: the rows after it are gone
                // (deleted, or a database restored from an old backup). Never sign with a key
                // that stopped signing; make a new one.
                tracing::error!(
                    kid = %newest.kid,
                    "the newest trusted signing key was superseded and nothing newer is \
                     trusted: making a new signing key"
                );
                next_generation(newest_generation)?
            }
            // Keys, none of them ours: the master key changed, or every row was forged.
            None if newest_generation.is_some() => return Err(MasterKeyError::WrongKey.into()),
            None => 1,
        };
        match repo
            .insert_signing_key(new_key_row(master, generation, now)?)
            .await
        {
            Ok(()) | Err(RepositoryError::Conflict(_)) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(KeyRingError::Crypto(
        "no signing key after three attempts".into(),
    ))
}

/// The rows the master key vouches for, newest first, and the newest generation of all rows
/// (so that a new key is numbered past any row, trusted or not). Rows that do not verify are
/// left out, loudly. Rows of releases before row MACs are adopted first, once: only while no
/// row carries a MAC yet, and only those whose secret half opens with the master key and
/// matches their public key (which only a holder of the master key could have made).
async fn trusted_rows(
    repo: &dyn KeyRepository,
    master: &MasterKey,
) -> Result<(Vec<SigningKeyRecord>, Option<i64>), KeyRingError> {
    let mut rows = repo.list_signing_keys().await?;
    if !rows.is_empty() && rows.iter().all(|row| row.row_mac.is_none()) {
        // A row sealed bound to its kid was made by this release: if such a row lost its MAC,
        // the MACs were stripped, and adopting rows now would trust whatever the stripper
        // wrote. (Only asked here: rows with MACs cost no decryption on a reload.)
        let stripped = rows.iter().any(|row| {
            master
                .open(&row.sealed_secret_key, row.kid.as_bytes())
                .is_ok()
        });
        if stripped {
            tracing::error!(
                "every signing-key row lost its MAC, though some were made by this release: \
                 nothing is adopted (restore the rows from a backup, or delete them all to \
                 start over with a new key)"
            );
        } else {
            let mut adopted = 0;
            for row in &rows {
                if let Some(update) = adoption(master, row)? {
                    adopted += usize::from(repo.update_signing_key(update).await?);
                }
            }
            tracing::warn!(
                adopted,
                "signing keys of an earlier release were given their MAC under the master key"
            );
            rows = repo.list_signing_keys().await?;
        }
    }
    let newest_generation = rows.first().map(|row| row.generation);
    let trusted = rows
        .into_iter()
        .filter(|row| {
            let vouched = row
                .row_mac
                .as_deref()
                .is_some_and(|mac| master.verify_mac(&row_message(row), mac));
            if !vouched {
                tracing::error!(
                    kid = %row.kid,
                    generation = row.generation,
                    "a signing-key row does not verify under the master key: it is not used \
                     (a forged or altered row, or a master key that changed)"
                );
            }
            vouched
        })
        .collect();
    Ok((trusted, newest_generation))
}

/// The generation after `newest` (of any row, trusted or not); an error rather than a wrap.
fn next_generation(newest: Option<i64>) -> Result<i64, KeyRingError> {
    newest.map_or(Some(1), |g| g.checked_add(1)).ok_or_else(|| {
        KeyRingError::Crypto(
            "the signing-key generations are exhausted (a forged row holds the largest \
             number?): delete the rows that do not verify"
                .into(),
        )
    })
}

/// A key stopped signing when the next trusted generation was made, whatever its own row
/// says, and retires at most `verify_window_ms` after that: an old copy of a row (from a time
/// when it still signed) cannot make a retired key live again.
fn clamp_to_successors(rows: &mut [SigningKeyRecord], verify_window_ms: i64) {
    for i in 1..rows.len() {
        let successor_made = rows[i - 1].created_at;
        let row = &mut rows[i];
        let superseded = row
            .superseded_at
            .map_or(successor_made, |at| at.min(successor_made));
        let latest_retirement = superseded.saturating_add(verify_window_ms);
        row.superseded_at = Some(superseded);
        row.retire_at = Some(
            row.retire_at
                .map_or(latest_retirement, |at| at.min(latest_retirement)),
        );
    }
}

/// A row of an earlier release, sealed bound to its kid and given its MAC, if the master key
/// opens it and it is the key pair it claims to be.
fn adoption(master: &MasterKey, row: &SigningKeyRecord) -> Result<Option<KeyUpdate>, KeyRingError> {
    let Ok(opened) = master.open_unbound(&row.sealed_secret_key) else {
        return Ok(None);
    };
    let Ok(secret) = AsymmetricSecretKey::<V4>::from(&opened) else {
        return Ok(None);
    };
    let matches = AsymmetricPublicKey::<V4>::try_from(&secret)
        .is_ok_and(|derived| derived.as_bytes() == row.public_key.as_slice());
    if !matches || public_key(row).is_err() {
        return Ok(None);
    }
    let mut key = row.clone();
    key.sealed_secret_key = master
        .seal(&opened, row.kid.as_bytes())
        .map_err(|e| KeyRingError::Crypto(e.to_string()))?;
    vouch(master, &mut key)?;
    Ok(Some(KeyUpdate {
        key,
        expected_mac: None,
    }))
}

/// What a row's MAC covers: everything that decides what the key may do and when.
fn row_message(row: &SigningKeyRecord) -> Vec<u8> {
    let mut message = b"tessera signing-key row v1".to_vec();
    let mut field = |bytes: &[u8]| {
        message.extend_from_slice(&u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
        message.extend_from_slice(bytes);
    };
    field(row.kid.as_bytes());
    field(&row.generation.to_be_bytes());
    field(&row.public_key);
    field(&row.created_at.to_be_bytes());
    for time in [row.superseded_at, row.retire_at] {
        match time {
            Some(at) => field(&at.to_be_bytes()),
            None => field(&[]),
        }
    }
    message
}

/// Sets the row's MAC for what it holds now.
fn vouch(master: &MasterKey, row: &mut SigningKeyRecord) -> Result<(), KeyRingError> {
    row.row_mac = Some(
        master
            .mac(&row_message(row))
            .map_err(|e| KeyRingError::Crypto(e.to_string()))?,
    );
    Ok(())
}

/// `row` changed and vouched for again, as an update that applies only over `row` as read.
fn changed(
    master: &MasterKey,
    row: &SigningKeyRecord,
    change: impl FnOnce(&mut SigningKeyRecord),
) -> Result<KeyUpdate, KeyRingError> {
    let mut key = row.clone();
    change(&mut key);
    vouch(master, &mut key)?;
    Ok(KeyUpdate {
        key,
        expected_mac: row.row_mac.clone(),
    })
}

/// Keys that stopped signing keep verifying for at least this instance's window after that
/// moment, whatever window the rotation assumed (`keys rotate` runs with its own settings).
/// A key already retired stays retired.
async fn extend_retirements(
    repo: &dyn KeyRepository,
    master: &MasterKey,
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
            let update = changed(master, row, |key| key.retire_at = Some(needed))?;
            let key = update.key.clone();
            // Another instance may have moved it meanwhile: the next load reads theirs.
            if repo.update_signing_key(update).await? {
                *row = key;
            }
        }
    }
    Ok(())
}

fn keys_from_rows(
    rows: &[SigningKeyRecord],
    newest: &SigningKeyRecord,
    master: &MasterKey,
) -> Result<Keys, KeyRingError> {
    let opened = master.open(&newest.sealed_secret_key, newest.kid.as_bytes())?;
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
    // Retired keys stay listed here; `KeyRing::published` filters by the time it is asked at.
    let published = published_rows(rows, i64::MIN)?;
    Ok(Keys {
        signing: SigningKey {
            kid: newest.kid.clone(),
            secret,
        },
        verifying,
        published,
        newest_generation: newest.generation,
        signing_generation: newest.generation,
    })
}

/// A fresh key pair as a row, its secret half sealed under the master key bound to its kid,
/// the row vouched for.
pub fn new_key_row(
    master: &MasterKey,
    generation: i64,
    now: i64,
) -> Result<SigningKeyRecord, KeyRingError> {
    let pair =
        AsymmetricKeyPair::<V4>::generate().map_err(|e| KeyRingError::Crypto(e.to_string()))?;
    let kid = paserk_pid(&pair.public);
    let sealed = master
        .seal(pair.secret.as_bytes(), kid.as_bytes())
        .map_err(|e| KeyRingError::Crypto(e.to_string()))?;
    let mut row = SigningKeyRecord {
        kid,
        generation,
        public_key: pair.public.as_bytes().to_vec(),
        sealed_secret_key: sealed,
        created_at: now,
        superseded_at: None,
        retire_at: None,
        row_mac: None,
    };
    vouch(master, &mut row)?;
    Ok(row)
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
    let (rows, newest_generation) = trusted_rows(repo, master).await?;
    match rows.first() {
        Some(current) => {
            keys_from_rows(&rows, current, master)?;
        }
        None if newest_generation.is_some() => return Err(MasterKeyError::WrongKey.into()),
        None => {}
    }
    let generation = next_generation(newest_generation)?;
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
    let mut older = Vec::new();
    for old in &rows {
        let superseded = old.superseded_at.unwrap_or(now);
        let retires = old.retire_at.map_or(retire_at, |at| at.min(retire_at));
        if old.superseded_at == Some(superseded) && old.retire_at == Some(retires) {
            continue;
        }
        older.push(changed(master, old, |key| {
            key.superseded_at = Some(superseded);
            key.retire_at = Some(retires);
        })?);
    }
    repo.rotate_signing_key(row, older).await?;
    Ok(published)
}
