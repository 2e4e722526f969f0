//! Secrets kept encrypted at rest: AES-256-GCM under a key ring (`TOKEN_ENCRYPTION_KEYS`).
//!
//! The ring is `kid:base64(32 bytes)`, comma-separated: the first key seals, every key opens.
//! Each sealed value names the key id it was sealed with, so adding a key in front and keeping
//! the old one behind rotates keys without breaking what was sealed before; an old key is
//! removed only once nothing sealed under it is still needed.
//!
//! Invariants: the nonce comes in as an argument (12 random bytes from the glue; this crate
//! has no randomness of its own), never reused with one key; the associated data binds a value
//! to where it is stored, so a ciphertext copied elsewhere does not open; key bytes never reach
//! `Debug` output, errors or logs.

use aes_gcm::aead::{self, AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Key};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The setting holding the key ring.
pub const KEYS_SETTING: &str = "TOKEN_ENCRYPTION_KEYS";

const TAG_BYTES: usize = 16;

/// Standard base64, with or without padding (`openssl rand -base64 32` pads).
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A value sealed with one key of the ring, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The id of the key it was sealed with.
    pub kid: String,
    /// The 12-byte nonce, base64url without padding.
    pub nonce: String,
    /// Ciphertext followed by the 16-byte tag, base64url without padding.
    pub ciphertext: String,
}

/// Why a key ring was refused. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRingError {
    Empty,
    /// Entry `index` (0-based) is not `kid:base64(32 bytes)`; `reason` says what is wrong.
    Entry {
        index: usize,
        reason: &'static str,
    },
    DuplicateKid(String),
}

impl std::fmt::Display for KeyRingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRingError::Empty => write!(f, "{KEYS_SETTING} has no key"),
            KeyRingError::Entry { index, reason } => write!(
                f,
                "{KEYS_SETTING} entry {} is not kid:base64(32 bytes): {reason}",
                index + 1
            ),
            KeyRingError::DuplicateKid(kid) => {
                write!(f, "{KEYS_SETTING} names key id {kid:?} twice")
            }
        }
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The ring has no key with this id (it was removed too early, or never configured here).
    UnknownKid(String),
    /// Not base64, wrong nonce length, or the tag does not verify (wrong key, altered or moved
    /// ciphertext).
    Invalid,
}

/// The configured keys, the sealing one first.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("KeyRing").field("kids", &kids).finish()
    }
}

fn valid_kid(kid: &str) -> bool {
    (1..=32).contains(&kid.len())
        && kid
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
}

impl KeyRing {
    /// Parses `kid:base64(32 bytes)[,kid:base64(32 bytes)...]`; whitespace around entries is
    /// ignored.
    pub fn parse(text: &str) -> Result<KeyRing, KeyRingError> {
        let mut keys: Vec<(String, [u8; 32])> = Vec::new();
        for (index, entry) in text.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let bad = |reason| KeyRingError::Entry { index, reason };
            let (kid, b64) = entry
                .split_once(':')
                .ok_or(bad("no ':' after the key id"))?;
            let kid = kid.trim();
            if !valid_kid(kid) {
                return Err(bad("the key id must be 1-32 of A-Z a-z 0-9 - _ ."));
            }
            let bytes = KEY_BASE64
                .decode(b64.trim())
                .map_err(|_| bad("the key is not base64"))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| bad("the key is not 32 bytes"))?;
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(KeyRingError::DuplicateKid(kid.to_string()));
            }
            keys.push((kid.to_string(), key));
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        Ok(KeyRing { keys })
    }

    /// The id of the key that seals.
    pub fn sealing_kid(&self) -> &str {
        &self.keys[0].0
    }

    fn cipher(&self, kid: &str) -> Option<Aes256Gcm> {
        self.keys
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, key)| Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)))
    }

    /// Seals `plaintext` with the first key; `aad` is authenticated, not stored.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8], nonce: &[u8; 12]) -> Sealed {
        let (kid, key) = &self.keys[0];
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
        let mut buffer = plaintext.to_vec();
        // Only fails for messages beyond GCM's 64 GiB limit; ours are a few dozen bytes.
        let tag = cipher
            .encrypt_inout_detached(
                &aead::Nonce::<Aes256Gcm>::from(*nonce),
                aad,
                buffer.as_mut_slice().into(),
            )
            .unwrap_or_else(|_| unreachable!());
        buffer.extend_from_slice(tag.as_slice());
        Sealed {
            kid: kid.clone(),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            ciphertext: URL_SAFE_NO_PAD.encode(&buffer),
        }
    }

    /// Opens a value sealed with any key of the ring, checking `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        let cipher = self
            .cipher(&sealed.kid)
            .ok_or_else(|| OpenError::UnknownKid(sealed.kid.clone()))?;
        let nonce: [u8; 12] = URL_SAFE_NO_PAD
            .decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(OpenError::Invalid)?;
        let mut buffer = URL_SAFE_NO_PAD
            .decode(&sealed.ciphertext)
            .map_err(|_| OpenError::Invalid)?;
        if buffer.len() < TAG_BYTES {
            return Err(OpenError::Invalid);
        }
        let tag = aead::Tag::<Aes256Gcm>::try_from(&buffer[buffer.len() - TAG_BYTES..])
            .map_err(|_| OpenError::Invalid)?;
        buffer.truncate(buffer.len() - TAG_BYTES);
        cipher
            .decrypt_inout_detached(
                &aead::Nonce::<Aes256Gcm>::from(nonce),
                aad,
                buffer.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| OpenError::Invalid)?;
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(key: &[u8; 32]) -> String {
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    #[test]
    fn matches_a_published_aes_256_gcm_vector() {
        // NIST GCM test vector (gcmEncryptExtIV256.rsp, Count = 0 with 128-bit plaintext):
        // key, IV, plaintext, no AAD -> ciphertext and tag.
        let key: [u8; 32] = crate::crypto::unhex(
            "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22",
        )
        .unwrap();
        let nonce: [u8; 12] = crate::crypto::unhex("0d18e06c7c725ac9e362e1ce").unwrap();
        let pt: [u8; 16] = crate::crypto::unhex("2db5168e932556f8089a0622981d017d").unwrap();
        let ring = KeyRing::parse(&format!("k:{}", b64(&key))).unwrap();
        let sealed = ring.seal(&pt, b"", &nonce);
        let bytes = URL_SAFE_NO_PAD.decode(&sealed.ciphertext).unwrap();
        assert_eq!(
            crate::crypto::hex(&bytes),
            "fa4362189661d163fcd6a56d8bf0405ad636ac1bbedd5cc3ee727dc2ab4a9489"
        );
        assert_eq!(ring.open(&sealed, b"").unwrap(), pt);
    }

    #[test]
    fn seals_with_the_first_key_and_opens_with_any() {
        let old = KeyRing::parse(&format!("k1:{}", b64(&[1; 32]))).unwrap();
        let sealed_old = old.seal(b"secret", b"ctx", &[7; 12]);
        assert_eq!(sealed_old.kid, "k1");
        assert_eq!(old.open(&sealed_old, b"ctx").unwrap(), b"secret");

        // Rotation: a new key in front, the old one kept to open what it sealed.
        let ring =
            KeyRing::parse(&format!(" k2:{} , k1:{}", b64(&[2; 32]), b64(&[1; 32]))).unwrap();
        assert_eq!(ring.sealing_kid(), "k2");
        assert_eq!(ring.open(&sealed_old, b"ctx").unwrap(), b"secret");
        let sealed_new = ring.seal(b"secret", b"ctx", &[8; 12]);
        assert_eq!(sealed_new.kid, "k2");
        assert_ne!(sealed_new.ciphertext, sealed_old.ciphertext);
        assert_eq!(
            old.open(&sealed_new, b"ctx"),
            Err(OpenError::UnknownKid("k2".into()))
        );
    }

    #[test]
    fn refuses_moved_altered_or_foreign_ciphertexts() {
        let ring = KeyRing::parse(&format!("k1:{}", b64(&[1; 32]))).unwrap();
        let sealed = ring.seal(b"secret", b"res_1|1", &[7; 12]);
        assert_eq!(ring.open(&sealed, b"res_2|1"), Err(OpenError::Invalid));
        let mut altered = sealed.clone();
        altered.ciphertext.replace_range(0..1, "A");
        assert_ne!(altered, sealed);
        assert_eq!(ring.open(&altered, b"res_1|1"), Err(OpenError::Invalid));
        let mut short = sealed.clone();
        short.ciphertext = "AAAA".into();
        assert_eq!(ring.open(&short, b"res_1|1"), Err(OpenError::Invalid));
        let mut bad_nonce = sealed.clone();
        bad_nonce.nonce = "AAAA".into();
        assert_eq!(ring.open(&bad_nonce, b"res_1|1"), Err(OpenError::Invalid));
        // Same id, other key bytes (a key replaced instead of rotated).
        let other = KeyRing::parse(&format!("k1:{}", b64(&[9; 32]))).unwrap();
        assert_eq!(other.open(&sealed, b"res_1|1"), Err(OpenError::Invalid));
    }

    #[test]
    fn parse_names_what_is_wrong_and_never_the_key() {
        let key = b64(&[5; 32]);
        assert_eq!(KeyRing::parse("").unwrap_err(), KeyRingError::Empty);
        assert_eq!(KeyRing::parse(" , ").unwrap_err(), KeyRingError::Empty);
        let entry = |text: &str| match KeyRing::parse(text) {
            Err(KeyRingError::Entry { index, reason }) => (index, reason),
            other => panic!("{other:?}"),
        };
        assert_eq!(entry(&key).1, "no ':' after the key id");
        assert_eq!(entry(&format!(":{key}")).0, 0);
        assert_eq!(entry(&format!("k1:{key},k 2:{key}")).0, 1);
        assert_eq!(entry("k1:not base64!").1, "the key is not base64");
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        assert_eq!(entry(&format!("k1:{short}")).1, "the key is not 32 bytes");
        assert_eq!(
            KeyRing::parse(&format!("k1:{key},k1:{key}")).unwrap_err(),
            KeyRingError::DuplicateKid("k1".into())
        );
        // Unpadded base64 is accepted too.
        let ring = KeyRing::parse(&format!("k1:{}", key.trim_end_matches('='))).unwrap();
        let shown = format!("{ring:?}");
        assert!(
            shown.contains("k1") && !shown.contains(&key[..10]),
            "{shown}"
        );
        let err = KeyRing::parse(&format!("k1:{key}x"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(&key[..10]), "{err}");
    }
}
