//! TESSERA_MASTER_KEY: the symmetric key that seals signing keys at rest (XChaCha20-Poly1305).
use base64::{Engine, engine::general_purpose::STANDARD};
use orion::aead;

/// 32 bytes that seal and open the secret halves of signing keys.
pub struct MasterKey(aead::SecretKey);

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
        aead::SecretKey::try_from(bytes.as_slice())
            .map(Self)
            .map_err(|_| MasterKeyError::Malformed)
    }

    /// A fresh random key and its base64 form.
    #[allow(clippy::expect_used)]
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let text = STANDARD.encode(bytes);
        let key = aead::SecretKey::try_from(&bytes).expect("32 bytes make a key");
        (Self(key), text)
    }

    /// Encrypts and authenticates `plaintext` (a random nonce is prepended).
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, orion::errors::UnknownCryptoError> {
        aead::seal(&self.0, plaintext)
    }

    /// Decrypts what [`MasterKey::seal`] made with the same key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        aead::open(&self.0, sealed).map_err(|_| MasterKeyError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_with_the_same_key_only() {
        let (key, text) = MasterKey::generate();
        let sealed = key.seal(b"secret").expect("seal");
        assert_eq!(
            MasterKey::from_base64(&text)
                .expect("parse")
                .open(&sealed)
                .expect("open"),
            b"secret"
        );
        let (other, _) = MasterKey::generate();
        assert!(matches!(other.open(&sealed), Err(MasterKeyError::WrongKey)));
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }
}
