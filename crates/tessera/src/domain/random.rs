//! Server-made secrets and their digests.
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::{RngCore, rngs::OsRng};
use sha2::{Digest, Sha256};

/// 256 random bits as URL-safe base64 (43 characters): client secrets.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Bytes of a refresh token: a time-ordered id (a UUIDv7, 16 bytes), then 256 random bits.
const REFRESH_TOKEN_BYTES: usize = 48;

/// Characters of a refresh token made by [`new_refresh_token`].
const REFRESH_TOKEN_LEN: usize = 64;

/// A new refresh token: a time-ordered id and 256 random bits, as URL-safe base64
/// (64 characters). The id is not secret; it only makes the key the token is stored under
/// ([`refresh_token_key`]) grow with time, so that storing one writes next to the last one
/// stored instead of at a random place in the index (which cost a page per token).
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; REFRESH_TOKEN_BYTES];
    bytes[..16].copy_from_slice(uuid::Uuid::now_v7().as_bytes());
    OsRng.fill_bytes(&mut bytes[16..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The key a refresh token is stored and looked up under, 64 hex characters: the token's
/// time-ordered id, then the first 128 bits of SHA-256 of the whole token. Finding a token
/// from its key means inverting SHA-256 (the id alone opens nothing). Tokens of the earlier
/// format (43 characters, 256 random bits) are stored under their SHA-256, as before.
pub fn refresh_token_key(token: &str) -> String {
    if token.len() == REFRESH_TOKEN_LEN
        && let Ok(bytes) = URL_SAFE_NO_PAD.decode(token)
        && bytes.len() == REFRESH_TOKEN_BYTES
    {
        let digest = Sha256::digest(token.as_bytes());
        let mut key = hex::encode(&bytes[..16]);
        key.push_str(&hex::encode(&digest[..16]));
        return key;
    }
    sha256_hex(token)
}

/// SHA-256 of a high-entropy secret, hex.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// SHA-256 of a secret, raw.
pub fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether text has the shape of a refresh token: one made by [`new_refresh_token`], or by
/// earlier releases (43 characters, the shape of [`new_secret`]).
pub fn looks_like_refresh_token(text: &str) -> bool {
    (text.len() == 43 || text.len() == REFRESH_TOKEN_LEN)
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_43_url_safe_characters_and_differ() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn refresh_tokens_are_64_url_safe_characters_and_differ() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_eq!(a.len(), 64);
        assert!(looks_like_refresh_token(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn refresh_token_keys_grow_with_time_and_hide_the_token() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        let (key_a, key_b) = (refresh_token_key(&a), refresh_token_key(&b));
        assert_eq!(key_a.len(), 64);
        assert!(key_a[..12] <= key_b[..12], "the millisecond comes first");
        assert!(!key_a.contains(&a[16..]));
        // The id alone does not make the key: the rest of the token is hashed into it.
        let mut forged = a.clone();
        forged.replace_range(60.., if a.ends_with("AAAA") { "BBBB" } else { "AAAA" });
        assert_eq!(refresh_token_key(&forged)[..32], key_a[..32]);
        assert_ne!(refresh_token_key(&forged), key_a);
    }

    #[test]
    fn refresh_tokens_of_earlier_releases_keep_their_key() {
        let earlier = new_secret();
        assert!(looks_like_refresh_token(&earlier));
        assert_eq!(refresh_token_key(&earlier), sha256_hex(&earlier));
        // Anything else is keyed the same way, and so finds nothing.
        assert_eq!(refresh_token_key("garbage"), sha256_hex("garbage"));
    }

    #[test]
    fn sha256_hex_matches_a_known_digest() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
