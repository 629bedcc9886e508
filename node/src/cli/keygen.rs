//! `concord keygen`: prints a new gossip encryption key, 32 random bytes in base64, as
//! `consul keygen` does (for `-encrypt` and `concord keyring -install`).
//!
//! A CLI command, not agent code: it draws from the operating system's generator.

use rand::RngCore;

use super::common::{line, Outcome};
use crate::gossip::keyring::{GossipKey, GENERATED_KEY_BYTES};

/// Prints the key.
pub(super) fn keygen() -> Outcome {
    let mut bytes = vec![0u8; GENERATED_KEY_BYTES];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).map_err(|e| format!("Error reading random data: {e}"))?;
    let key = GossipKey::from_bytes(bytes).map_err(|e| e.to_string())?;
    Ok(line(key.to_base64()))
}
