//! TESSERA_MASTER_KEY: the symmetric key that seals signing keys at rest (XChaCha20-Poly1305)
//! and vouches for the rows that hold them (a keyed BLAKE2b MAC with a key derived from it).
use base64::{Engine, engine::general_purpose::STANDARD};
use orion::hazardous::{
    aead::xchacha20poly1305::XChaCha20Poly1305,
    stream::xchacha20::{Nonce, SecretKey as XChaCha20Key, XCHACHA_NONCESIZE},
};
use orion::{aead, auth};
use zeroize::Zeroizing;

/// What the MAC key is derived for: a MAC key is never the sealing key itself.
const ROW_MAC_KEY_CONTEXT: &[u8] = b"tessera/signing-key-rows/mac-key/v1";
/// Poly1305's tag.
const TAG_LEN: usize = 16;

/// 32 bytes that seal and open the secret halves of signing keys, and the MAC key derived
/// from them.
pub struct MasterKey {
    sealing: aead::SecretKey,
    row_mac: auth::SecretKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Why a master key was refused.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("must be 32 bytes in standard base64 (openssl rand -base64 32)")]
    Malformed,
    #[error("does not open the signing keys in this database (was it changed?)")]
    WrongKey,
}

impl MasterKey {
    /// Parses the base64 form of TESSERA_MASTER_KEY.
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| MasterKeyError::Malformed)?;
        if bytes.len() != 32 {
            return Err(MasterKeyError::Malformed);
        }
        Self::from_bytes(&bytes).ok_or(MasterKeyError::Malformed)
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let sealing = aead::SecretKey::try_from(bytes).ok()?;
        // BLAKE2b keyed with the master key is a PRF: its output on a fixed context is a key
        // of its own, independent of the sealing key.
        let derivation = auth::SecretKey::try_from(bytes).ok()?;
        let derived = auth::authenticate(&derivation, ROW_MAC_KEY_CONTEXT).ok()?;
        let row_mac = auth::SecretKey::try_from(derived.unprotected_as_ref()).ok()?;
        Some(Self { sealing, row_mac })
    }

    /// A fresh random key and its base64 form.
    #[allow(clippy::expect_used)]
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let text = STANDARD.encode(bytes);
        let key = Self::from_bytes(&bytes).expect("32 bytes make a key");
        (key, text)
    }

    /// Encrypts and authenticates `plaintext`, bound to `context` (associated data that opening
    /// needs again): nonce, then ciphertext and tag.
    pub fn seal(
        &self,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, orion::errors::UnknownCryptoError> {
        let mut nonce = [0u8; XCHACHA_NONCESIZE];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let mut sealed = vec![0u8; XCHACHA_NONCESIZE + plaintext.len() + TAG_LEN];
        sealed[..XCHACHA_NONCESIZE].copy_from_slice(&nonce);
        XChaCha20Poly1305::seal(
            &self.xchacha_key()?,
            &Nonce::try_from(&nonce[..])?,
            plaintext,
            Some(context),
            &mut sealed[XCHACHA_NONCESIZE..],
        )?;
        Ok(sealed)
    }

    /// Decrypts what [`MasterKey::seal`] made with the same key and context. The plaintext is
    /// wiped from memory when dropped.
    pub fn open(
        &self,
        sealed: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, MasterKeyError> {
        if sealed.len() <= XCHACHA_NONCESIZE + TAG_LEN {
            return Err(MasterKeyError::WrongKey);
        }
        let (nonce, rest) = sealed.split_at(XCHACHA_NONCESIZE);
        let mut plaintext = Zeroizing::new(vec![0u8; rest.len() - TAG_LEN]);
        let key = self.xchacha_key().map_err(|_| MasterKeyError::WrongKey)?;
        let nonce = Nonce::try_from(nonce).map_err(|_| MasterKeyError::WrongKey)?;
        XChaCha20Poly1305::open(&key, &nonce, rest, Some(context), &mut plaintext)
            .map_err(|_| MasterKeyError::WrongKey)?;
        Ok(plaintext)
    }

    /// Seals as earlier releases did, with no context (for tests of their rows' adoption).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn seal_unbound(
        &self,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, orion::errors::UnknownCryptoError> {
        aead::seal(&self.sealing, plaintext)
    }

    /// Decrypts what an earlier release sealed, with no context.
    pub fn open_unbound(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, MasterKeyError> {
        aead::open(&self.sealing, sealed)
            .map(Zeroizing::new)
            .map_err(|_| MasterKeyError::WrongKey)
    }

    /// The MAC that vouches for `message`, which only a holder of this key can make.
    pub fn mac(&self, message: &[u8]) -> Result<Vec<u8>, orion::errors::UnknownCryptoError> {
        Ok(auth::authenticate(&self.row_mac, message)?
            .unprotected_as_ref()
            .to_vec())
    }

    /// Whether `tag` is this key's MAC of `message` (compared in constant time).
    pub fn verify_mac(&self, message: &[u8], tag: &[u8]) -> bool {
        auth::Tag::try_from(tag)
            .is_ok_and(|tag| auth::authenticate_verify(&tag, &self.row_mac, message).is_ok())
    }

    fn xchacha_key(&self) -> Result<XChaCha20Key, orion::errors::UnknownCryptoError> {
        XChaCha20Key::try_from(self.sealing.unprotected_as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_with_the_same_key_only() {
        let (key, text) = MasterKey::generate();
        let sealed = key.seal(b"secret", b"kid-1").expect("seal");
        assert_eq!(
            MasterKey::from_base64(&text)
                .expect("parse")
                .open(&sealed, b"kid-1")
                .expect("open")
                .as_slice(),
            b"secret"
        );
        let (other, _) = MasterKey::generate();
        assert!(matches!(
            other.open(&sealed, b"kid-1"),
            Err(MasterKeyError::WrongKey)
        ));
    }

    #[test]
    fn sealed_bytes_open_only_in_the_context_they_were_sealed_for() {
        let (key, _) = MasterKey::generate();
        let sealed = key.seal(b"secret", b"kid-1").expect("seal");
        assert!(key.open(&sealed, b"kid-2").is_err());
        assert!(key.open_unbound(&sealed).is_err());
    }

    #[test]
    fn a_mac_verifies_under_its_key_and_message_only() {
        let (key, _) = MasterKey::generate();
        let tag = key.mac(b"row").expect("mac");
        assert!(key.verify_mac(b"row", &tag));
        assert!(!key.verify_mac(b"row!", &tag));
        assert!(!MasterKey::generate().0.verify_mac(b"row", &tag));
        assert!(!key.verify_mac(b"row", &tag[..16]));
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }
}
