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

use serde::{Deserialize, Serialize};

use crate::codec::{frame, unframe};
use crate::io::Disk;
use crate::raft::log_store::{LOG_FILE, VOTE_FILE};
use crate::raft::snapshot_file::SNAPSHOT_FILE;
use crate::raft::{node_id_for, NodeId};

const IDENTITY_FILE: &str = "node-identity";
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
    disk.write(IDENTITY_TMP_FILE, &frame(&payload)).await.map_err(|e| e.to_string())?;
    disk.sync(IDENTITY_TMP_FILE).await.map_err(|e| e.to_string())?;
    disk.rename(IDENTITY_TMP_FILE, IDENTITY_FILE).await.map_err(|e| e.to_string())?;
    Ok(next)
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
    io.trace.event(
        &config.node_name,
        &format!("storage corrupted ({why}); moved aside, rejoining as generation {}", next.generation),
    );
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
}
