//! A bounded cache of access tokens whose signature already checked out, so that a hot token
//! costs one Ed25519 verification per instance, not one per call. Only the signature is
//! cached: expiry, key retirement and revocation are checked on every call.
use std::sync::Arc;

use quick_cache::sync::Cache;

use super::token::AccessClaims;

/// Tokens kept at most. When full, the least recently useful entry goes, never the whole
/// cache. Keys are hashed with std's SipHash (quick_cache's `custom-hasher` feature is off), so
/// callers who choose the token text cannot aim at one bucket.
const CAPACITY: usize = 65_536;

/// Verified claims and the id of the key that signed them.
type Entry = (Arc<AccessClaims>, Arc<str>);

/// Claims and the key that signed them, by token text.
pub struct VerifiedTokens {
    entries: Cache<Box<str>, Entry>,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self {
            entries: Cache::new(CAPACITY),
        }
    }
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").finish_non_exhaustive()
    }
}

impl VerifiedTokens {
    /// The claims of a token seen before, and the id of the key that signed it.
    pub fn get(&self, token: &str) -> Option<Entry> {
        self.entries.get(token)
    }

    /// Remembers a token whose signature checked out.
    pub fn insert(&self, token: &str, claims: Arc<AccessClaims>, kid: &str) {
        self.entries.insert(token.into(), (claims, kid.into()));
    }
}
