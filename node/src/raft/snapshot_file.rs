//! The snapshot file: a header frame (format version, Raft index and term, table list with row
//! counts, openraft's snapshot meta) followed by one frame per table ([`crate::state::snapshot`]).
//!
//! The bytes sent to a follower in `InstallSnapshot` are the sections only; the header is rebuilt
//! from openraft's meta on the receiving side. The file is replaced atomically (tmp file, fsync,
//! rename) under a lock shared by the snapshot builder and `install_snapshot`, and never
//! replaced by an older snapshot than the one it holds: the builder can finish after an install
//! that overtook it.

use std::sync::Arc;

use openraft::storage::SnapshotMeta;
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use super::NodeId;
use crate::codec::{decode, encode, frame, unframe, CodecError, FrameError};
use crate::io::{replace_durably, Disk};
use crate::state::snapshot::{list_sections, SnapshotError};

pub(crate) const SNAPSHOT_FILE: &str = "raft-snapshot";
const SNAPSHOT_TMP_FILE: &str = "raft-snapshot.tmp";
/// The snapshot format this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;

/// The first frame of a snapshot file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotHeader {
    pub format_version: u32,
    /// Raft index and term of the last entry the snapshot covers (0, 0 for none).
    pub last_index: u64,
    pub last_term: u64,
    /// Tables and row counts, in section order.
    pub tables: Vec<(String, u64)>,
    pub meta: SnapshotMeta<NodeId, BasicNode>,
}

/// Why a snapshot file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("snapshot file: {0}")]
    Io(#[from] std::io::Error),
    #[error("snapshot file header: {0}")]
    Frame(#[from] FrameError),
    #[error("snapshot file: {0}")]
    Codec(#[from] CodecError),
    #[error("snapshot file: {0}")]
    Sections(#[from] SnapshotError),
    #[error("snapshot file has format {0}; this concord reads {SNAPSHOT_FORMAT_VERSION}")]
    Version(u32),
}

/// Builds the header for `meta` over `sections`. Errors: the sections do not parse.
pub fn header(meta: &SnapshotMeta<NodeId, BasicNode>, sections: &[u8]) -> Result<SnapshotHeader, SnapshotFileError> {
    let tables = list_sections(sections)?.into_iter().map(|s| (s.table, s.rows)).collect();
    let last = meta.last_log_id;
    Ok(SnapshotHeader {
        format_version: SNAPSHOT_FORMAT_VERSION,
        last_index: last.map(|l| l.index).unwrap_or(0),
        last_term: last.map(|l| l.leader_id.term).unwrap_or(0),
        tables,
        meta: meta.clone(),
    })
}

/// Reads the snapshot file: its header and its section bytes. `Ok(None)` when there is none.
pub async fn read(disk: &dyn Disk) -> Result<Option<(SnapshotHeader, Vec<u8>)>, SnapshotFileError> {
    let Some(bytes) = disk.read(SNAPSHOT_FILE).await? else { return Ok(None) };
    let (payload, rest) = unframe(&bytes, 0)?;
    let header: SnapshotHeader = decode(payload)?;
    if header.format_version != SNAPSHOT_FORMAT_VERSION {
        return Err(SnapshotFileError::Version(header.format_version));
    }
    Ok(Some((header, bytes[rest..].to_vec())))
}

/// Checks every frame's checksum: `Ok(Some(description))` if corrupted, `Err` on I/O errors.
pub async fn check_integrity(disk: &dyn Disk) -> std::io::Result<Option<String>> {
    let Some(bytes) = disk.read(SNAPSHOT_FILE).await? else { return Ok(None) };
    let mut offset = 0;
    while offset < bytes.len() {
        match unframe(&bytes, offset) {
            Ok((_, next)) => offset = next,
            Err(e) => return Ok(Some(format!("raft snapshot corrupted: {e}"))),
        }
    }
    Ok(None)
}

/// Serialises writers of the snapshot file and remembers the newest index persisted.
#[derive(Default)]
pub struct SnapshotWriter {
    newest: tokio::sync::Mutex<Option<u64>>,
}

impl SnapshotWriter {
    /// A writer that knows the file on disk already holds a snapshot at `index`.
    pub fn new(index: Option<u64>) -> Arc<Self> {
        Arc::new(Self { newest: tokio::sync::Mutex::new(index) })
    }

    /// Persists `header` + `sections` unless the file already holds a newer snapshot. Returns
    /// whether it wrote. Errors: I/O; the old file is then untouched.
    pub async fn persist(&self, disk: &dyn Disk, header: &SnapshotHeader, sections: &[u8]) -> Result<bool, SnapshotFileError> {
        let mut newest = self.newest.lock().await;
        if newest.is_some_and(|n| n > header.last_index) {
            return Ok(false);
        }
        // One writer at a time (the lock), so one tmp name is safe.
        let tmp = SNAPSHOT_TMP_FILE;
        let mut bytes = frame(&encode(header)?);
        bytes.extend_from_slice(sections);
        replace_durably(disk, tmp, SNAPSHOT_FILE, &bytes).await?;
        *newest = Some(header.last_index);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemDisk;

    fn header_at(index: u64) -> SnapshotHeader {
        SnapshotHeader { format_version: SNAPSHOT_FORMAT_VERSION, last_index: index, last_term: 1, tables: vec![], meta: SnapshotMeta::default() }
    }

    /// Short sweeps rarely build two snapshots before a restart, so this pins the ordering rule
    /// directly: a stale file would leave a gap between it and a log purged past it.
    #[tokio::test]
    async fn a_newer_snapshot_replaces_the_file_and_an_older_one_never_does() {
        let disk = MemDisk::new();
        let writer = SnapshotWriter::new(None);
        assert!(writer.persist(&disk, &header_at(5), &[]).await.unwrap());
        assert!(writer.persist(&disk, &header_at(9), &[]).await.unwrap(), "a newer snapshot replaces the file");
        assert!(!writer.persist(&disk, &header_at(7), &[]).await.unwrap(), "a builder overtaken by an install does not");
        let (on_disk, _) = read(&disk).await.unwrap().expect("a snapshot file");
        assert_eq!(on_disk.last_index, 9);
    }
}
