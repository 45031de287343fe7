//! The public keys that verify Tessera's tokens: fetched with GetKeySet at start, fetched again
//! when a token names a key not known yet (a rotation), at most once per interval and one
//! fetch at a time, so that forged key ids cannot turn into a flood. A failed fetch keeps the
//! keys already known.
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use pasetors::{keys::AsymmetricPublicKey, paserk::Id, version4::V4};
use tessera_proto::pb;

use crate::{
    claims::now_ms,
    transport::{Transport, auth_client},
};

/// Why the key set could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    /// GetKeySet failed.
    #[error("GetKeySet failed: {0}")]
    Unavailable(#[from] tonic::Status),
    /// The answer held no key this crate can use.
    #[error("GetKeySet answered no usable key")]
    NoUsableKey,
}

/// One verifying key.
pub(crate) struct PublicKey {
    pub(crate) key: AsymmetricPublicKey<V4>,
    /// Unix ms after which it verifies nothing; `None`: no planned end.
    retire_at: Option<i64>,
}

impl PublicKey {
    fn is_live(&self, now: i64) -> bool {
        self.retire_at.is_none_or(|at| at > now)
    }
}

/// What a lookup of a key id found.
pub(crate) enum Lookup {
    Live(Arc<PublicKey>),
    /// Known, but retired: its tokens are no longer valid.
    Retired,
    Unknown,
}

/// The keys in use, by kid, swapped whole on each fetch.
pub(crate) struct KeySet {
    transport: Transport,
    keys: ArcSwap<HashMap<String, Arc<PublicKey>>>,
    /// When the last fetch caused by an unknown key id began.
    last_unknown_fetch: Mutex<Option<Instant>>,
    /// Held by the one fetch in flight; others wait for it, then use what it got.
    fetching: tokio::sync::Mutex<()>,
    refetch_interval: Duration,
}

impl KeySet {
    /// Fetches the key set once: a verifier cannot start without keys.
    pub(crate) async fn fetch_first(
        transport: Transport,
        refetch_interval: Duration,
    ) -> Result<Self, KeySetError> {
        let keys = fetch(&transport).await?;
        Ok(Self {
            transport,
            keys: ArcSwap::from_pointee(keys),
            last_unknown_fetch: Mutex::new(Some(Instant::now())),
            fetching: tokio::sync::Mutex::new(()),
            refetch_interval,
        })
    }

    pub(crate) fn lookup(&self, kid: &str, now: i64) -> Lookup {
        match self.keys.load().get(kid) {
            Some(key) if key.is_live(now) => Lookup::Live(key.clone()),
            Some(_) => Lookup::Retired,
            None => Lookup::Unknown,
        }
    }

    /// Whether `kid` names a key that still verifies at `now`.
    pub(crate) fn is_live(&self, kid: &str, now: i64) -> bool {
        matches!(self.lookup(kid, now), Lookup::Live(_))
    }

    /// A token named a key not known: fetches the key set again, unless that was done less
    /// than the interval ago. Callers arriving while a fetch is in flight wait for it; then
    /// they look the key up again.
    pub(crate) async fn refetch_for_unknown_kid(&self) {
        let _one_at_a_time = self.fetching.lock().await;
        {
            let mut last = self.last_unknown_fetch.lock();
            if last.is_some_and(|at| at.elapsed() < self.refetch_interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        match fetch(&self.transport).await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "key set fetched again (unknown kid)");
                self.keys.store(Arc::new(keys));
            }
            Err(error) => {
                tracing::warn!(%error, "key set fetch failed: the keys already known stay");
            }
        }
    }
}

/// GetKeySet, each key checked: its PASERK parses and its kid is that key's PASERK id.
async fn fetch(transport: &Transport) -> Result<HashMap<String, Arc<PublicKey>>, KeySetError> {
    let answer = auth_client(transport)
        .get_key_set(pb::GetKeySetRequest {})
        .await?
        .into_inner();
    let now = now_ms();
    let mut keys = HashMap::with_capacity(answer.keys.len());
    for published in answer.keys {
        match usable_key(&published) {
            Some(key) if key.is_live(now) => {
                keys.insert(published.kid, Arc::new(key));
            }
            Some(_) => {}
            None => {
                tracing::warn!(kid = %published.kid, "GetKeySet sent a key that does not check out: ignored")
            }
        }
    }
    if keys.is_empty() {
        return Err(KeySetError::NoUsableKey);
    }
    Ok(keys)
}

fn usable_key(published: &pb::PublicKey) -> Option<PublicKey> {
    let key = AsymmetricPublicKey::<V4>::try_from(published.paserk.as_str()).ok()?;
    let mut pid = String::new();
    pasetors::paserk::FormatAsPaserk::fmt(&Id::from(&key), &mut pid).ok()?;
    if pid != published.kid {
        return None;
    }
    let retire_at = published
        .retire_time
        .as_ref()
        .map(|t| t.seconds.saturating_mul(1_000) + i64::from(t.nanos / 1_000_000));
    Some(PublicKey { key, retire_at })
}

#[cfg(test)]
mod tests {
    use pasetors::{
        keys::{AsymmetricKeyPair, Generate},
        paserk::FormatAsPaserk,
    };

    use super::*;

    fn published(pair: &AsymmetricKeyPair<V4>) -> pb::PublicKey {
        let (mut paserk, mut kid) = (String::new(), String::new());
        pair.public.fmt(&mut paserk).expect("paserk");
        Id::from(&pair.public).fmt(&mut kid).expect("pid");
        pb::PublicKey {
            kid,
            paserk,
            ..Default::default()
        }
    }

    #[test]
    fn a_key_whose_kid_is_not_its_own_id_is_not_used() {
        let pair = AsymmetricKeyPair::<V4>::generate().expect("keypair");
        let other = AsymmetricKeyPair::<V4>::generate().expect("keypair");
        assert!(usable_key(&published(&pair)).is_some());
        let mut lying = published(&pair);
        lying.kid = published(&other).kid;
        assert!(usable_key(&lying).is_none());
        let mut garbage = published(&pair);
        garbage.paserk = "k4.public.nope".into();
        assert!(usable_key(&garbage).is_none());
    }

    #[test]
    fn a_retired_key_is_not_live() {
        let pair = AsymmetricKeyPair::<V4>::generate().expect("keypair");
        let mut retiring = published(&pair);
        retiring.retire_time = Some(prost_types::Timestamp {
            seconds: 1_000,
            nanos: 0,
        });
        let key = usable_key(&retiring).expect("usable");
        assert!(key.is_live(999_999));
        assert!(!key.is_live(1_000_000));
    }
}
