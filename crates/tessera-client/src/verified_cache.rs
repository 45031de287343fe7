//! A bounded cache of tokens whose signature and issuer already checked out, so that a token
//! seen again costs a hash and a lookup instead of an Ed25519 verification. Only the signature
//! is cached: times, the signing key's retirement and revocations are checked on every request.
use std::sync::Arc;

use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};

use crate::claims::Claims;

/// The key of a token in the cache: its SHA-256, so that no two token texts share an entry and
/// the cache holds 32 bytes per token, not the token.
pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Verified claims and the id of the key that signed them, by token digest.
pub(crate) struct VerifiedTokens {
    entries: Cache<TokenDigest, (Claims, Arc<str>)>,
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens; when full, the least useful entry goes.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Cache::new(capacity.max(1)),
        }
    }

    pub(crate) fn get(&self, digest: &TokenDigest) -> Option<(Claims, Arc<str>)> {
        self.entries.get(digest)
    }

    pub(crate) fn insert(&self, digest: TokenDigest, claims: Claims, kid: &str) {
        self.entries.insert(digest, (claims, kid.into()));
    }

    /// Drops a token that expired: it can only be refused from now on.
    pub(crate) fn remove(&self, digest: &TokenDigest) {
        self.entries.remove(digest);
    }
}
