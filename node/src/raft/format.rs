//! The on-disk format version of a server's data dir.
//!
//! Format 1 (Concord ≤ 0.1 before the platform rework) stored the Raft log, vote and snapshots as
//! JSON, with no marker. Format 2 stores them in the binary encoding ([`crate::codec::encode`])
//! and writes `raft-format`. A data dir with Raft files but no marker is format 1: it is refused
//! at start with a message that says what to do, rather than misread.

use crate::io::{replace_durably, Disk};
use crate::raft::log_store::{LOG_FILE, VOTE_FILE};
use crate::raft::snapshot_file::SNAPSHOT_FILE;

/// The format this build writes and reads.
pub const DATA_FORMAT_VERSION: u32 = 2;
const FORMAT_FILE: &str = "raft-format";
const FORMAT_TMP_FILE: &str = "raft-format.tmp";

/// Checks the data dir's format, marking a fresh one with [`DATA_FORMAT_VERSION`]. Errors (a
/// one-line message for the operator): a format-1 or newer-format data dir, or I/O failure.
pub async fn ensure_format(disk: &dyn Disk) -> Result<(), String> {
    let io = |e: std::io::Error| format!("data dir: {e}");
    match disk.read(FORMAT_FILE).await.map_err(io)? {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            match text.trim().parse::<u32>() {
                Ok(DATA_FORMAT_VERSION) => Ok(()),
                Ok(v) if v > DATA_FORMAT_VERSION => Err(format!(
                    "data dir has format {v}, newer than {DATA_FORMAT_VERSION} this concord reads: run a newer concord"
                )),
                _ => Err(format!("data dir format marker {FORMAT_FILE} is unreadable ({:?})", text.trim())),
            }
        }
        None => {
            for f in [LOG_FILE, VOTE_FILE, SNAPSHOT_FILE] {
                if disk.read(f).await.map_err(io)?.is_some() {
                    return Err(format!(
                        "data dir was written by an older concord (format 1, JSON Raft log) that this version cannot \
                         read: move the data dir aside and start this server with an empty one; it rejoins the \
                         cluster and recovers its state from its peers (a single server: `concord kv export` with \
                         the old binary first, then `concord kv import`)"
                    ));
                }
            }
            let marker = format!("{DATA_FORMAT_VERSION}\n");
            replace_durably(disk, FORMAT_TMP_FILE, FORMAT_FILE, marker.as_bytes()).await.map_err(io)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemDisk;

    #[tokio::test]
    async fn fresh_dir_is_marked_and_an_unmarked_old_dir_is_refused() {
        let fresh = MemDisk::new();
        ensure_format(&fresh).await.unwrap();
        ensure_format(&fresh).await.unwrap();
        let old = MemDisk::new();
        old.write(LOG_FILE, b"{\"Append\":{}}").await.unwrap();
        let err = ensure_format(&old).await.unwrap_err();
        assert!(err.contains("older concord"), "{err}");
    }
}
