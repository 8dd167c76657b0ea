//! The master key: 32 random bytes that encrypt signing keys (and later other sensitive fields) at
//! rest as JWE `dir` + `A256GCM`. The JWE header carries the row's id, and decryption checks it, so an
//! encrypted value copied onto another row is refused.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use josekit::jwe::{self, Dir, JweHeader};
use rand::RngCore;
use secrecy::ExposeSecret;

use super::CryptoError as KeyError;
use crate::crypto::secret::SecretRef;

const CONTENT_ENCRYPTION: &str = "A256GCM";

pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// How the master key was obtained, so the caller can say so in the log.
#[derive(Debug)]
pub enum MasterKeyOrigin {
    Loaded,
    CreatedFile(PathBuf),
}

impl MasterKey {
    /// Reads the key the reference names. With `create_missing_file` (development only) a `file:`
    /// reference to a file that does not exist yet gets a fresh random key written there.
    pub fn load(reference: &SecretRef, create_missing_file: bool) -> Result<(MasterKey, MasterKeyOrigin), KeyError> {
        if let SecretRef::File(path) = reference {
            if create_missing_file && !path.exists() {
                let key = Self::create_file(path)?;
                return Ok((key, MasterKeyOrigin::CreatedFile(path.clone())));
            }
        }
        let secret = reference.resolve().map_err(KeyError::MasterKey)?;
        Ok((Self::parse(secret.expose_secret())?, MasterKeyOrigin::Loaded))
    }

    /// Accepts base64url (as pforte writes it) or standard base64 of exactly 32 bytes.
    pub fn parse(encoded: &str) -> Result<MasterKey, KeyError> {
        let encoded = encoded.trim();
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(encoded))
            .map_err(|_| KeyError::MasterKey("the master key is not base64".to_owned()))?;
        let key: [u8; 32] =
            bytes.try_into().map_err(|_| KeyError::MasterKey("the master key must be exactly 32 bytes".to_owned()))?;
        Ok(MasterKey(key))
    }

    pub fn generate() -> MasterKey {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        MasterKey(key)
    }

    /// The key as pforte writes it: base64url without padding.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    fn create_file(path: &Path) -> Result<MasterKey, KeyError> {
        let key = Self::generate();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| KeyError::MasterKey(format!("cannot create {}: {e}", parent.display())))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file =
            options.open(path).map_err(|e| KeyError::MasterKey(format!("cannot create {}: {e}", path.display())))?;
        writeln!(file, "{}", key.encode())
            .map_err(|e| KeyError::MasterKey(format!("cannot write {}: {e}", path.display())))?;
        Ok(key)
    }

    /// A key for another purpose, derived so that knowing it reveals nothing about the master key.
    pub fn derive(&self, purpose: &str) -> Result<[u8; 32], KeyError> {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.0).map_err(|e| KeyError::Material(e.to_string()))?;
        mac.update(b"pforte derived key: ");
        mac.update(purpose.as_bytes());
        Ok(mac.finalize().into_bytes().into())
    }

    /// Encrypts `plaintext` for the record named `record_id`.
    pub fn seal(&self, record_id: &str, plaintext: &[u8]) -> Result<String, KeyError> {
        let mut header = JweHeader::new();
        header.set_content_encryption(CONTENT_ENCRYPTION);
        header.set_key_id(record_id);
        let encrypter = Dir.encrypter_from_bytes(self.0).map_err(crypto)?;
        jwe::serialize_compact(plaintext, &header, &encrypter).map_err(crypto)
    }

    /// Decrypts a value sealed for `record_id`; a value sealed for another record is refused.
    pub fn open(&self, record_id: &str, sealed: &str) -> Result<Vec<u8>, KeyError> {
        let decrypter = Dir.decrypter_from_bytes(self.0).map_err(crypto)?;
        let (plaintext, header) = jwe::deserialize_compact(sealed, &decrypter)
            .map_err(|_| KeyError::Material("cannot decrypt: wrong master key or damaged value".to_owned()))?;
        if header.key_id() != Some(record_id) {
            return Err(KeyError::Material(format!("the encrypted value does not belong to {record_id}")));
        }
        Ok(plaintext)
    }
}

fn crypto(e: josekit::JoseError) -> KeyError {
    KeyError::Material(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_only_for_its_record_and_key() -> Result<(), KeyError> {
        let key = MasterKey::generate();
        let sealed = key.seal("k1", b"private")?;
        assert_eq!(key.open("k1", &sealed)?, b"private");
        assert!(key.open("k2", &sealed).is_err());
        assert!(MasterKey::generate().open("k1", &sealed).is_err());
        Ok(())
    }

    #[test]
    fn master_key_must_be_32_bytes_of_base64() {
        assert!(MasterKey::parse(&MasterKey::generate().encode()).is_ok());
        assert!(MasterKey::parse(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(MasterKey::parse(&URL_SAFE_NO_PAD.encode([7u8; 16])).is_err());
        assert!(MasterKey::parse("not base64 !!").is_err());
    }

    #[test]
    fn development_key_file_is_created_once_and_read_back() -> Result<(), KeyError> {
        let dir = tempfile::tempdir().map_err(|e| KeyError::MasterKey(e.to_string()))?;
        let reference = SecretRef::File(dir.path().join("sub/master.key"));
        let (first, origin) = MasterKey::load(&reference, true)?;
        assert!(matches!(origin, MasterKeyOrigin::CreatedFile(_)));
        let (second, origin) = MasterKey::load(&reference, true)?;
        assert!(matches!(origin, MasterKeyOrigin::Loaded));
        assert_eq!(first.encode(), second.encode());
        Ok(())
    }

    #[test]
    fn missing_key_file_is_an_error_outside_development() {
        let reference = SecretRef::File(PathBuf::from("/nonexistent/master.key"));
        assert!(MasterKey::load(&reference, false).is_err());
    }
}
