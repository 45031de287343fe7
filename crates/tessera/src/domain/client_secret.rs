//! Client secrets at rest (SPEC §2). They are server-made 256-bit values, so a slow hash adds
//! nothing: they are stored as a SHA-256 digest and compared in constant time, and no caller
//! can make the server run argon2 by sending client secrets. Secrets stored by earlier releases
//! as argon2id hashes keep working, and are replaced by their digest at their first successful
//! use.
use subtle::ConstantTimeEq;

use super::random::sha256_hex;

/// How a digest is marked in `clients.secret_hash`.
const DIGEST_PREFIX: &str = "sha256:";

/// What `clients.secret_hash` holds for `secret`.
pub fn digest(secret: &str) -> String {
    format!("{DIGEST_PREFIX}{}", sha256_hex(secret))
}

/// A stored client secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredSecret<'a> {
    /// The hex SHA-256 of the secret.
    Digest(&'a str),
    /// An argon2id PHC string, as releases before the digest stored.
    LegacyArgon2(&'a str),
}

impl<'a> StoredSecret<'a> {
    pub fn parse(stored: &'a str) -> Self {
        match stored.strip_prefix(DIGEST_PREFIX) {
            Some(hex) => Self::Digest(hex),
            None => Self::LegacyArgon2(stored),
        }
    }
}

/// Whether `secret` is the one whose digest is `hex`, in time that does not depend on where
/// they differ.
pub fn digest_matches(hex: &str, secret: &str) -> bool {
    bool::from(sha256_hex(secret).as_bytes().ct_eq(hex.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_matches_its_secret_only() {
        let stored = digest("the-secret");
        let StoredSecret::Digest(hex) = StoredSecret::parse(&stored) else {
            panic!("a digest");
        };
        assert!(digest_matches(hex, "the-secret"));
        assert!(!digest_matches(hex, "the-secreT"));
        assert!(!digest_matches(hex, ""));
    }

    #[test]
    fn an_argon2_hash_reads_as_a_legacy_secret() {
        let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
        assert_eq!(StoredSecret::parse(phc), StoredSecret::LegacyArgon2(phc));
    }
}
