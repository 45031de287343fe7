//! A bounded cache of access tokens whose signature already checked out, so that a hot token
//! costs one Ed25519 verification per instance, not one per call. Only the signature is
//! cached: expiry, key retirement and revocation are checked on every call.
use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex},
};

use super::token::AccessClaims;

const SHARDS: usize = 16;
/// Entries per shard; a full shard starts over (a bound, not an LRU).
const SHARD_CAPACITY: usize = 4096;

/// Verified claims and the id of the key that signed them.
type Entry = (Arc<AccessClaims>, Arc<str>);
type Shard = Mutex<HashMap<Box<str>, Entry>>;

/// Claims and the key that signed them, by token text.
pub struct VerifiedTokens {
    shards: Vec<Shard>,
    hasher: RandomState,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").finish_non_exhaustive()
    }
}

impl VerifiedTokens {
    fn shard(&self, token: &str) -> &Shard {
        let index = usize::try_from(self.hasher.hash_one(token)).unwrap_or(0) % SHARDS;
        &self.shards[index]
    }

    /// The claims of a token seen before, and the id of the key that signed it.
    pub fn get(&self, token: &str) -> Option<Entry> {
        let shard = match self.shard(token).lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        shard.get(token).cloned()
    }

    /// Remembers a token whose signature checked out.
    pub fn insert(&self, token: &str, claims: Arc<AccessClaims>, kid: &str) {
        let mut shard = match self.shard(token).lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if shard.len() >= SHARD_CAPACITY {
            shard.clear();
        }
        shard.insert(token.into(), (claims, kid.into()));
    }
}
