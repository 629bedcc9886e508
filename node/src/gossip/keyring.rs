//! Gossip encryption keys and packet sealing (Consul `-encrypt`, memberlist `keyring.go` and
//! `security.go`).
//!
//! Owns: the keyring (AES keys of 16, 24 or 32 bytes; the first is the primary), how one gossip
//! datagram is sealed with the primary key and opened with any installed key, and the keyring
//! file's format. Layout of a sealed datagram, as memberlist's encryption version 1 (no padding,
//! no label): `[1][12-byte nonce][ciphertext][16-byte GCM tag]`. Never does: draw randomness (the
//! caller hands the nonce in, from the agent's seeded RNG, so a simulation replays), or parse a
//! datagram that failed authentication.

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use base64::Engine;

/// memberlist's `encryptionVersion` 1: AES-GCM without padding.
pub const ENCRYPTION_VERSION: u8 = 1;
/// AES-GCM nonce length, bytes (memberlist `nonceSize`).
pub const NONCE_BYTES: usize = 12;
/// GCM tag length, bytes.
pub const TAG_BYTES: usize = 16;
/// What sealing adds to a datagram, bytes: version, nonce, tag.
pub const SEAL_OVERHEAD_BYTES: usize = 1 + NONCE_BYTES + TAG_BYTES;
/// The key sizes AES accepts, bytes (AES-128, AES-192, AES-256).
pub const KEY_SIZES: [usize; 3] = [16, 24, 32];
/// The size `concord keygen` makes, bytes (Consul: AES-256).
pub const GENERATED_KEY_BYTES: usize = 32;

type Aes192Gcm = AesGcm<aes_gcm::aes::Aes192, aes_gcm::aead::consts::U12>;

/// Why a key was refused (memberlist's and Consul's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("Error decoding key: {0}")]
    Base64(String),
    #[error("key size must be 16, 24 or 32 bytes")]
    Size,
    #[error("Requested key is not in the keyring")]
    NotInstalled,
    #[error("Removing the primary key is not allowed")]
    RemovePrimary,
}

/// Why a datagram did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("datagram too short to be encrypted ({0} bytes)")]
    TooShort(usize),
    #[error("unsupported encryption version {0}")]
    Version(u8),
    #[error("no installed key authenticates the datagram")]
    Unauthenticated,
}

/// One AES key. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct GossipKey(Vec<u8>);

impl std::fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GossipKey({} bytes)", self.0.len())
    }
}

impl GossipKey {
    /// Decodes a base64 key (standard alphabet, as `consul keygen` prints). Errors: not base64,
    /// or not 16, 24 or 32 bytes.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|e| KeyError::Base64(e.to_string()))?;
        Self::from_bytes(bytes)
    }

    /// A key from raw bytes. Errors: not 16, 24 or 32 bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, KeyError> {
        if !KEY_SIZES.contains(&bytes.len()) {
            return Err(KeyError::Size);
        }
        Ok(Self(bytes))
    }

    /// The key in base64, as the API and the keyring file show it.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }
}

/// An AES-GCM instance for one key size.
#[derive(Clone)]
enum Cipher {
    A128(Aes128Gcm),
    A192(Aes192Gcm),
    A256(Aes256Gcm),
}

impl Cipher {
    fn new(key: &GossipKey) -> Self {
        let k = key.0.as_slice();
        match k.len() {
            16 => Self::A128(Aes128Gcm::new(GenericArray::from_slice(k))),
            24 => Self::A192(Aes192Gcm::new(GenericArray::from_slice(k))),
            _ => Self::A256(Aes256Gcm::new(GenericArray::from_slice(k))),
        }
    }

    fn encrypt(&self, nonce: &[u8; NONCE_BYTES], plain: &[u8]) -> Vec<u8> {
        let n = GenericArray::from_slice(nonce);
        let out = match self {
            Self::A128(c) => c.encrypt(n, plain),
            Self::A192(c) => c.encrypt(n, plain),
            Self::A256(c) => c.encrypt(n, plain),
        };
        // AES-GCM encryption fails only past 64 GiB of plaintext; a datagram is ≤ 1400 bytes.
        out.unwrap_or_default()
    }

    fn decrypt(&self, nonce: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let n = GenericArray::from_slice(nonce);
        match self {
            Self::A128(c) => c.decrypt(n, sealed),
            Self::A192(c) => c.decrypt(n, sealed),
            Self::A256(c) => c.decrypt(n, sealed),
        }
        .ok()
    }
}

/// The installed keys, primary first (memberlist keeps the primary at index 0).
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(GossipKey, Cipher)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

impl Keyring {
    /// A keyring holding `primary` only.
    pub fn new(primary: GossipKey) -> Self {
        let cipher = Cipher::new(&primary);
        Self { keys: vec![(primary, cipher)] }
    }

    /// The primary key (seals every outgoing datagram).
    pub fn primary(&self) -> &GossipKey {
        &self.keys[0].0
    }

    /// Every installed key, primary first.
    pub fn keys(&self) -> impl Iterator<Item = &GossipKey> {
        self.keys.iter().map(|(k, _)| k)
    }

    /// Whether `key` is installed.
    pub fn contains(&self, key: &GossipKey) -> bool {
        self.keys().any(|k| k == key)
    }

    /// Adds `key` as a secondary key (memberlist `AddKey`); installing a present key is a no-op.
    /// Returns whether the keyring changed.
    pub fn install(&mut self, key: GossipKey) -> bool {
        if self.contains(&key) {
            return false;
        }
        let cipher = Cipher::new(&key);
        self.keys.push((key, cipher));
        true
    }

    /// Makes an installed key the primary (memberlist `UseKey`). Returns whether the keyring
    /// changed. Errors: the key is not installed.
    pub fn use_key(&mut self, key: &GossipKey) -> Result<bool, KeyError> {
        let at = self.keys.iter().position(|(k, _)| k == key).ok_or(KeyError::NotInstalled)?;
        if at == 0 {
            return Ok(false);
        }
        let entry = self.keys.remove(at);
        self.keys.insert(0, entry);
        Ok(true)
    }

    /// Removes a secondary key (memberlist `RemoveKey`; an absent key is a no-op). Returns
    /// whether the keyring changed. Errors: the key is the primary.
    pub fn remove(&mut self, key: &GossipKey) -> Result<bool, KeyError> {
        if self.primary() == key {
            return Err(KeyError::RemovePrimary);
        }
        let before = self.keys.len();
        self.keys.retain(|(k, _)| k != key);
        Ok(self.keys.len() != before)
    }

    /// Seals `plain` with the primary key under `nonce` (fresh per datagram: the caller draws it
    /// from the agent's seeded RNG). The result is [`SEAL_OVERHEAD_BYTES`] longer.
    pub fn seal(&self, nonce: [u8; NONCE_BYTES], plain: &[u8]) -> Vec<u8> {
        let sealed = self.keys[0].1.encrypt(&nonce, plain);
        let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        out.push(ENCRYPTION_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        debug_assert_eq!(out.len(), plain.len() + SEAL_OVERHEAD_BYTES);
        out
    }

    /// Opens a sealed datagram with the first installed key that authenticates it, primary
    /// first (memberlist `decryptPayload`). Errors: too short, another version, no key fits.
    pub fn open(&self, datagram: &[u8]) -> Result<Vec<u8>, OpenError> {
        if datagram.len() < SEAL_OVERHEAD_BYTES {
            return Err(OpenError::TooShort(datagram.len()));
        }
        if datagram[0] != ENCRYPTION_VERSION {
            return Err(OpenError::Version(datagram[0]));
        }
        let (nonce, sealed) = datagram[1..].split_at(NONCE_BYTES);
        self.keys.iter().find_map(|(_, c)| c.decrypt(nonce, sealed)).ok_or(OpenError::Unauthenticated)
    }

    /// The keyring file's contents: a JSON array of base64 keys, primary first (Consul's
    /// `serf/local.keyring`).
    pub fn to_file(&self) -> Vec<u8> {
        let keys: Vec<String> = self.keys().map(GossipKey::to_base64).collect();
        serde_json::to_vec(&keys).unwrap_or_default()
    }

    /// Reads a keyring file ([`Self::to_file`]). Errors: not a JSON array of strings, empty, or
    /// a bad key (named by position).
    pub fn from_file(bytes: &[u8]) -> Result<Self, String> {
        let keys: Vec<String> = serde_json::from_slice(bytes).map_err(|e| format!("not a JSON array of keys: {e}"))?;
        let mut parsed = keys.iter().enumerate().map(|(i, k)| GossipKey::parse(k).map_err(|e| format!("key {i}: {e}")));
        let mut ring = Keyring::new(parsed.next().ok_or("no keys")??);
        for key in parsed {
            ring.install(key?);
        }
        Ok(ring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fill: u8, len: usize) -> GossipKey {
        GossipKey::from_bytes(vec![fill; len]).unwrap()
    }

    #[test]
    fn seal_then_open_round_trips_for_every_key_size() {
        for len in KEY_SIZES {
            let ring = Keyring::new(key(7, len));
            let sealed = ring.seal([3; NONCE_BYTES], b"ping");
            assert_eq!(sealed.len(), 4 + SEAL_OVERHEAD_BYTES);
            assert_eq!(sealed[0], ENCRYPTION_VERSION);
            assert_eq!(&sealed[1..1 + NONCE_BYTES], &[3; NONCE_BYTES], "the nonce travels in the clear");
            assert_eq!(ring.open(&sealed).unwrap(), b"ping");
        }
    }

    #[test]
    fn a_tampered_datagram_is_rejected() {
        let ring = Keyring::new(key(7, 32));
        let sealed = ring.seal([1; NONCE_BYTES], b"alive s1");
        for at in [1, NONCE_BYTES + 2, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x40;
            assert_eq!(ring.open(&bad), Err(OpenError::Unauthenticated), "byte {at} flipped");
        }
        assert_eq!(ring.open(b"plaintext"), Err(OpenError::TooShort(9)));
        let mut v0 = sealed.clone();
        v0[0] = 0;
        assert_eq!(ring.open(&v0), Err(OpenError::Version(0)));
    }

    #[test]
    fn every_installed_key_opens_but_only_the_primary_seals() {
        let (old, new) = (key(1, 32), key(2, 16));
        let mut ring = Keyring::new(old.clone());
        let by_old = ring.seal([0; NONCE_BYTES], b"x");
        assert!(ring.install(new.clone()));
        assert!(!ring.install(new.clone()), "installing twice is a no-op");
        assert!(ring.use_key(&new).unwrap());
        let by_new = ring.seal([0; NONCE_BYTES], b"y");
        assert!(Keyring::new(new.clone()).open(&by_new).is_ok(), "sealed with the new primary");
        assert_eq!(ring.open(&by_old).unwrap(), b"x", "the old key still opens");
        assert_eq!(ring.remove(&new), Err(KeyError::RemovePrimary));
        assert!(ring.remove(&old).unwrap());
        assert_eq!(ring.open(&by_old), Err(OpenError::Unauthenticated), "a removed key no longer opens");
        assert_eq!(ring.use_key(&old), Err(KeyError::NotInstalled));
    }

    #[test]
    fn keys_parse_from_base64_and_the_file_keeps_the_primary_first() {
        assert_eq!(GossipKey::parse("AAAA").unwrap_err(), KeyError::Size);
        assert!(matches!(GossipKey::parse("not base64!"), Err(KeyError::Base64(_))));
        let k = key(9, 24);
        assert_eq!(GossipKey::parse(&k.to_base64()).unwrap(), k);
        let mut ring = Keyring::new(key(1, 32));
        ring.install(k.clone());
        ring.use_key(&k).unwrap();
        let back = Keyring::from_file(&ring.to_file()).unwrap();
        assert_eq!(back.keys().cloned().collect::<Vec<_>>(), vec![k, key(1, 32)]);
        assert!(Keyring::from_file(b"[]").is_err());
        assert!(format!("{:?}", key(1, 32)).contains("32 bytes"), "Debug never prints the key");
    }
}
