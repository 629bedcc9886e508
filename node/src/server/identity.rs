//! A server's Raft identity, and recovery from corrupted storage by taking a new one.
//!
//! A server whose Raft log, vote or snapshot fails its checksum cannot trust anything it
//! promised: it may have acknowledged entries or cast votes it no longer remembers, and rejoining
//! under its old Raft id could let it vote a committed entry away ("Protocol-Aware Recovery for
//! Consensus-Based Storage", Alagappan et al., FAST '18). So it never reuses that id: it moves the
//! corrupt files aside (kept for forensics, never read again), bumps its identity generation, and
//! joins the cluster as a new server that replaces its old id (see `bootstrap`). The corrupt
//! data is never applied; the state comes back from its peers.
//!
//! The generation lives in `node-identity` (one checksummed frame); generation 0 is the plain
//! node name, so a server that never lost its storage keeps the id `node_id_for(name)`.
//!
//! Separately, Consul's `NodeID` ([`load_or_create_node_uuid`]): a random UUID made once and kept
//! in `node-id` in the data dir, as Consul does. It names the agent in the API; the Raft id stays
//! derived from the node name.

use serde::{Deserialize, Serialize};

use crate::codec::{frame, unframe};
use crate::io::{replace_durably, Disk};
use crate::raft::log_store::{LOG_FILE, VOTE_FILE};
use crate::raft::snapshot_file::SNAPSHOT_FILE;
use crate::raft::{node_id_for, NodeId};

const IDENTITY_FILE: &str = "node-identity";
/// Consul's file name for the agent's NodeID (plain text, one UUID).
pub const NODE_ID_FILE: &str = "node-id";
const NODE_ID_TMP_FILE: &str = "node-id.tmp";
/// ChaCha stream the NodeID is drawn from, apart from the agent's main RNG stream (so drawing it
/// does not shift any other random choice of a seeded run). ASCII "nodeid".
const NODE_ID_RNG_STREAM: u64 = 0x6e6f_6465_6964;
const IDENTITY_TMP_FILE: &str = "node-identity.tmp";

/// How many times this server has had to abandon corrupted storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub generation: u64,
}

impl Identity {
    /// The Raft node id for `name` at this generation.
    pub fn node_id(&self, name: &str) -> NodeId {
        id_for(name, self.generation)
    }
    /// The id this identity replaced, if any.
    pub fn replaces(&self, name: &str) -> Option<NodeId> {
        self.generation.checked_sub(1).map(|g| id_for(name, g))
    }
}

fn id_for(name: &str, generation: u64) -> NodeId {
    if generation == 0 {
        node_id_for(name)
    } else {
        node_id_for(&format!("{name}#{generation}"))
    }
}

/// Loads the identity (generation 0 if the file is absent). Errors: unreadable or corrupt file.
pub async fn load(disk: &dyn Disk) -> Result<Identity, String> {
    let Some(bytes) = disk.read(IDENTITY_FILE).await.map_err(|e| format!("identity unreadable: {e}"))? else {
        return Ok(Identity::default());
    };
    let (payload, _) = unframe(&bytes, 0).map_err(|e| format!("identity corrupted: {e}"))?;
    serde_json::from_slice(payload).map_err(|e| format!("identity unreadable: {e}"))
}

/// Moves the Raft files aside (`<file>.corrupt-<generation>`) and durably records the next
/// generation, returning it. Errors: any I/O failure (the caller refuses to start).
pub async fn abandon_storage(disk: &dyn Disk, current: Identity) -> Result<Identity, String> {
    let next = Identity { generation: current.generation + 1 };
    for file in [LOG_FILE, VOTE_FILE, SNAPSHOT_FILE] {
        if disk.read(file).await.map_err(|e| e.to_string())?.is_some() {
            let aside = format!("{file}.corrupt-{}", current.generation);
            disk.rename(file, &aside).await.map_err(|e| format!("moving {file} aside: {e}"))?;
        }
    }
    let payload = serde_json::to_vec(&next).map_err(|e| e.to_string())?;
    // One directory sync makes the moves aside and the new identity durable together: a crash
    // before it leaves the old generation with its files in place, and recovery runs again.
    replace_durably(disk, IDENTITY_TMP_FILE, IDENTITY_FILE, &frame(&payload)).await.map_err(|e| e.to_string())?;
    Ok(next)
}

/// Formats 16 random bytes as an RFC 4122 version-4 UUID (`8-4-4-4-12` lowercase hex).
pub(crate) fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

pub(crate) fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// The agent's NodeID: read from `node-id`, or drawn from `seed` (the agent's seeded RNG, on its
/// own stream) and durably written on first start. Errors: unreadable file, a file that does not
/// hold a UUID (refusing to silently change the agent's identity), or a failed write.
pub async fn load_or_create_node_uuid(disk: &dyn Disk, seed: u64) -> Result<String, String> {
    use rand::{RngCore, SeedableRng};
    if let Some(bytes) = disk.read(NODE_ID_FILE).await.map_err(|e| format!("{NODE_ID_FILE} unreadable: {e}"))? {
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        if !is_uuid(&text) {
            return Err(format!("{NODE_ID_FILE} does not hold a UUID ({text:?}); fix or remove it"));
        }
        return Ok(text);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(NODE_ID_RNG_STREAM);
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    let id = uuid_v4(bytes);
    let io = |e: std::io::Error| format!("writing {NODE_ID_FILE}: {e}");
    replace_durably(disk, NODE_ID_TMP_FILE, NODE_ID_FILE, id.as_bytes()).await.map_err(io)?;
    Ok(id)
}

/// Loads this server's identity; if its Raft storage fails its checksums, moves it aside and
/// takes the next identity. Errors: unreadable storage (maybe transient: the start fails and is
/// retried) or a failure while moving files.
pub async fn recover(config: &crate::config::AgentConfig, io: &crate::io::Io) -> Result<Identity, super::OpenError> {
    use super::OpenError;
    let disk = io.disk.as_ref();
    let current = load(disk).await.map_err(OpenError::Storage)?;
    let io_err = |e: std::io::Error| OpenError::Storage(e.to_string());
    let corruption = match crate::raft::log_store::check_integrity(disk).await.map_err(io_err)? {
        Some(why) => Some(why),
        None => crate::raft::snapshot_file::check_integrity(disk).await.map_err(io_err)?,
    };
    let Some(why) = corruption else { return Ok(current) };
    let next = abandon_storage(disk, current).await.map_err(OpenError::Storage)?;
    tracing::error!(node = %config.node_name, %why, generation = next.generation,
        "raft storage corrupted: moved aside; rejoining as a new server");
    io.trace.event(&config.node_name, crate::io::trace::Event::StorageAbandoned { why, generation: next.generation });
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemDisk;

    #[tokio::test]
    async fn abandoning_storage_moves_raft_files_aside_and_changes_the_id() {
        let disk = MemDisk::new();
        disk.write(LOG_FILE, b"garbage").await.unwrap();
        disk.sync(LOG_FILE).await.unwrap();
        let gen0 = load(&disk).await.unwrap();
        let gen1 = abandon_storage(&disk, gen0).await.unwrap();
        assert_eq!(gen1.generation, 1);
        assert!(disk.read(LOG_FILE).await.unwrap().is_none());
        assert_eq!(disk.read("raft-log.corrupt-0").await.unwrap().as_deref(), Some(&b"garbage"[..]));
        assert_ne!(gen1.node_id("n1"), gen0.node_id("n1"));
        assert_eq!(gen1.replaces("n1"), Some(gen0.node_id("n1")));
        disk.crash();
        assert_eq!(load(&disk).await.unwrap(), gen1, "the new generation is durable");
    }

    #[tokio::test]
    async fn node_uuid_is_made_once_and_kept() {
        let disk = MemDisk::new();
        let id = load_or_create_node_uuid(&disk, 7).await.unwrap();
        assert!(is_uuid(&id), "{id}");
        assert_eq!(&id[14..15], "4", "version 4");
        disk.crash();
        assert_eq!(load_or_create_node_uuid(&disk, 8).await.unwrap(), id, "persisted, not redrawn");
        let other = load_or_create_node_uuid(&MemDisk::new(), 8).await.unwrap();
        assert_ne!(other, id, "another seed gives another agent its own NodeID");
    }

    #[tokio::test]
    async fn a_node_id_file_without_a_uuid_is_refused() {
        let disk = MemDisk::new();
        disk.write(NODE_ID_FILE, b"not-a-uuid").await.unwrap();
        assert!(load_or_create_node_uuid(&disk, 1).await.unwrap_err().contains("UUID"));
    }
}
