//! The durable Raft log and vote, written through [`crate::io::Disk`].
//!
//! Layout under the data directory:
//! - `raft/log`: an append-only sequence of checksummed frames ([`crate::codec::frame`]), each a
//!   [`LogRecord`]: `Append` an entry, `Truncate` a conflicting suffix, `Purge` a compacted prefix.
//!   Replaying the records in order rebuilds the log. Every append is synced before openraft is
//!   told it is flushed, so an acknowledged entry survives a crash.
//! - `raft/vote`: the current vote, one frame, replaced atomically and durably
//!   ([`crate::io::replace_durably`]: write tmp, sync, rename, sync the directory).
//!   Traced: `vote saved V` once it is durable (when `save_vote` returns), `vote restored V` on open.
//!
//! The log file is created empty (and its name made durable) on first open, so an append never
//! creates it: a synced append to a file whose name a crash could take back would be lost.
//!
//! Recovery: a frame cut short at the very end of `raft-log` (the file ends inside its header, or
//! inside a payload whose checksummed length says it is longer) is a torn write of an entry that
//! was never acknowledged; it is cut off (and the cut is synced) and reported. A frame that fails
//! a checksum is corruption of data that may have been acknowledged, wherever it is: it is never
//! applied, and the server abandons its storage (see `server::identity`) rather than drop it.
//!
//! Memory: only the newest entries stay decoded (up to [`LOG_CACHE_BYTES`] of command); the rest
//! are read back from the file when asked for, through the offsets [`super::log_cache`] keeps.
//! A read-back frame that fails its checksum is a storage error, as at open.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, Vote};
use serde::{Deserialize, Serialize};

use super::log_cache::{log_w, read_entries, read_err, rewrite, FramePos, LogIndex, LogShared, LOG_CACHE_BYTES};
use super::{storage_io_error, Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::codec::{decode, encode, frame, frame_into, unframe, FrameError, FRAME_HEADER_BYTES};
use crate::io::trace::{self, Event};
use crate::io::{replace_durably, Disk, TraceSink};

pub(crate) const LOG_FILE: &str = "raft-log";
const LOG_TMP_FILE: &str = "raft-log.tmp";
pub(crate) const VOTE_FILE: &str = "raft-vote";
const VOTE_TMP_FILE: &str = "raft-vote.tmp";

/// Rewrite the log file once it holds this many more records than live entries.
const COMPACT_SLACK_RECORDS: usize = 4096;

/// One record of the log file.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum LogRecord {
    Append(Entry),
    /// Remove entries with index >= this.
    Truncate(u64),
    /// Remove entries up to and including this log id.
    Purge(LogId),
}

/// Applies one record, whose frame is at `at`, to the in-memory index.
fn replay(index: &mut LogIndex, rec: LogRecord, at: FramePos) {
    match rec {
        LogRecord::Append(e) => index.append(e, at),
        LogRecord::Truncate(since) => index.truncate(since),
        LogRecord::Purge(id) => index.purge(id),
    }
}

/// What recovery found, for logs and the simulator's trace.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records replayed.
    pub records: usize,
    /// Bytes cut from a torn tail (0 if none).
    pub torn_tail_bytes: usize,
}

/// A reader over the log: the newest entries from memory, older ones read back from the file.
#[derive(Clone)]
pub struct LogReader {
    shared: Arc<LogShared>,
    disk: Arc<dyn Disk>,
}

fn vote_w(e: impl std::fmt::Display) -> StorageError {
    storage_io_error(ErrorSubject::Vote, ErrorVerb::Write, e)
}
fn vote_r(e: impl std::fmt::Display) -> StorageError {
    storage_io_error(ErrorSubject::Vote, ErrorVerb::Read, e)
}

impl LogReader {
    /// Where to purge so that at most `budget_bytes` of command stay in the log behind a
    /// snapshot at `snapshot_index` (for `Raft::trigger().purge_log`): openraft's own bound,
    /// `max_in_snapshot_log_to_keep`, counts entries, and with group commit one entry may carry
    /// hundreds of writes. `None`: within the budget (or the log cannot be read).
    pub fn trailing_purge_target(&self, snapshot_index: u64, budget_bytes: u64) -> Option<u64> {
        self.shared.index.lock().ok()?.trailing_purge_target(snapshot_index, budget_bytes)
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        read_entries(&self.shared, self.disk.as_ref(), range).await
    }
}

/// The Raft log storage (openraft storage-v2 `RaftLogStorage`).
pub struct LogStore {
    disk: Arc<dyn Disk>,
    shared: Arc<LogShared>,
    vote: Option<Vote<NodeId>>,
    /// Records in the log file since the last rewrite.
    records_in_file: usize,
    /// Where the next frame goes: the file's length. `None` after a failed append, which may
    /// have left part of its bytes: later frames' offsets are then unknown, so writes refuse.
    file_len: Option<u64>,
    /// Test-only: acknowledge appends without fsync (the simulator must catch the lost writes).
    skip_fsync: bool,
    /// Test-only: keep the vote in memory and acknowledge it without writing it (the simulator
    /// must catch a restarted server that forgot its vote).
    vote_in_memory: bool,
    /// Where vote events go ([`Event::VoteSaved`], [`Event::VoteRestored`]), and as whom.
    trace: Arc<dyn TraceSink>,
    node_name: String,
    /// Metrics hooks (fsync time).
    telemetry: Arc<crate::telemetry::Telemetry>,
}

/// Where a frame with `payload_len` bytes of payload at `offset` lies.
fn frame_pos(offset: usize, payload_len: usize) -> Result<FramePos, StorageError> {
    let len = u32::try_from(FRAME_HEADER_BYTES + payload_len).map_err(read_err)?;
    Ok(FramePos { offset: offset as u64, len })
}

impl LogStore {
    /// Opens the log and vote from `disk`, cutting a torn tail, and traces the vote it restored
    /// as `node_name`. Keeps [`LOG_CACHE_BYTES`] of the newest entries decoded. Errors:
    /// unreadable files, or a frame that fails a checksum (corruption; see the module docs).
    pub async fn open(
        disk: Arc<dyn Disk>,
        trace: Arc<dyn TraceSink>,
        node_name: String,
    ) -> Result<(Self, RecoveryReport), StorageError> {
        Self::open_with_cache(disk, trace, node_name, LOG_CACHE_BYTES).await
    }

    /// [`LogStore::open`], keeping `cache_bytes` of command decoded (tests force a tiny cache).
    pub(crate) async fn open_with_cache(
        disk: Arc<dyn Disk>,
        trace: Arc<dyn TraceSink>,
        node_name: String,
        cache_bytes: u64,
    ) -> Result<(Self, RecoveryReport), StorageError> {
        let vote = read_vote(disk.as_ref()).await?;
        let existing = disk.read(LOG_FILE).await.map_err(read_err)?;
        let bytes = match existing {
            Some(bytes) => bytes,
            None => {
                // Create the log durably now: appends sync the file's bytes, never its name.
                replace_durably(disk.as_ref(), LOG_TMP_FILE, LOG_FILE, &[]).await.map_err(log_w)?;
                Vec::new()
            }
        };
        let (frames, end) =
            split_frames(&bytes).map_err(|e| read_err(format!("raft log corrupted ({e}); refusing to start")))?;
        // Replaying evicts as it goes, so only the tail stays decoded however long the log.
        let mut index = LogIndex::new(cache_bytes);
        let mut report = RecoveryReport { records: frames.len(), ..RecoveryReport::default() };
        for (offset, payload) in frames {
            let rec: LogRecord = decode(payload).map_err(read_err)?;
            replay(&mut index, rec, frame_pos(offset, payload.len())?);
        }
        if end < bytes.len() {
            report.torn_tail_bytes = bytes.len() - end;
            tracing::warn!(cut = report.torn_tail_bytes, "raft log: cutting torn tail");
            disk.truncate(LOG_FILE, end as u64).await.map_err(log_w)?;
            disk.sync(LOG_FILE).await.map_err(log_w)?;
        }
        drop(bytes);
        trace.event(&node_name, Event::VoteRestored(vote.as_ref().map(traced_vote)));
        let mut store = Self {
            disk,
            shared: Arc::new(LogShared::new(index)),
            vote,
            records_in_file: report.records,
            file_len: Some(end as u64),
            skip_fsync: false,
            vote_in_memory: false,
            trace,
            node_name,
            telemetry: Arc::default(),
        };
        // A truncation late in the file may have left the last entry evicted.
        store.recache_last().await?;
        Ok((store, report))
    }

    /// Test-only switch: acknowledge appends before they are durable.
    pub fn set_skip_fsync(&mut self, skip: bool) {
        self.skip_fsync = skip;
    }

    /// Test-only switch: acknowledge votes without writing them.
    pub fn set_vote_in_memory(&mut self, in_memory: bool) {
        self.vote_in_memory = in_memory;
    }

    /// Reports fsync times to this agent's metrics.
    pub fn set_telemetry(&mut self, telemetry: Arc<crate::telemetry::Telemetry>) {
        self.telemetry = telemetry;
    }

    /// Appends `recs` as frames and syncs them; returns where each frame went.
    async fn write_records(&mut self, recs: &[LogRecord]) -> Result<Vec<FramePos>, StorageError> {
        let start = self.file_len.ok_or_else(|| log_w("raft log: an earlier append failed part-way; reopen the log"))?;
        let mut buf = Vec::new();
        let mut at = Vec::with_capacity(recs.len());
        for rec in recs {
            let payload = encode(rec).map_err(log_w)?;
            let offset = buf.len();
            frame_into(&mut buf, &payload);
            let mut pos = frame_pos(offset, payload.len())?;
            pos.offset += start;
            at.push(pos);
        }
        self.file_len = None;
        self.disk.append(LOG_FILE, &buf).await.map_err(log_w)?;
        self.file_len = Some(start + buf.len() as u64);
        if !self.skip_fsync {
            let _fsync_timer = self.telemetry.metrics.fsync_timer();
            self.disk.sync(LOG_FILE).await.map_err(log_w)?;
        }
        self.records_in_file += recs.len();
        Ok(at)
    }

    /// Writes `recs` and applies them to the index.
    async fn write_and_replay(&mut self, recs: Vec<LogRecord>) -> Result<(), StorageError> {
        let at = self.write_records(&recs).await?;
        let mut index = self.shared.index.lock().map_err(read_err)?;
        for (rec, at) in recs.into_iter().zip(at) {
            replay(&mut index, rec, at);
        }
        Ok(())
    }

    /// Reads the last entry back into memory if a truncation left it evicted (`get_log_state`
    /// reports its log id).
    async fn recache_last(&mut self) -> Result<(), StorageError> {
        let Some(last) = self.shared.index.lock().map_err(read_err)?.uncached_last() else { return Ok(()) };
        let entry = read_entries(&self.shared, self.disk.as_ref(), last..=last).await?;
        let mut index = self.shared.index.lock().map_err(read_err)?;
        for e in entry {
            index.recache_last(e);
        }
        Ok(())
    }

    /// Rewrites the log file with only the live entries once dead records dominate it, and moves
    /// the index's offsets to the new file.
    async fn maybe_compact(&mut self) -> Result<(), StorageError> {
        let (plan, purged) = {
            let index = self.shared.index.lock().map_err(read_err)?;
            // Decide before copying: most purges do not compact.
            if self.records_in_file < index.len() + COMPACT_SLACK_RECORDS {
                return Ok(());
            }
            (index.plan_all(), index.last_purged)
        };
        let new = rewrite(self.disk.as_ref(), plan, purged).await?;
        // `replace_durably`'s steps, with the rename and the new offsets under the file guard so
        // no reader pairs old offsets with the new file. Uncontended (always, in the simulator),
        // `try_write` takes it without an await.
        let disk = self.disk.as_ref();
        disk.write(LOG_TMP_FILE, &new.bytes).await.map_err(log_w)?;
        disk.sync(LOG_TMP_FILE).await.map_err(log_w)?;
        {
            let _file = match self.shared.file.try_write() {
                Ok(guard) => guard,
                Err(_) => self.shared.file.write().await,
            };
            disk.rename(LOG_TMP_FILE, LOG_FILE).await.map_err(log_w)?;
            self.file_len = Some(new.bytes.len() as u64);
            self.records_in_file = new.records;
            self.shared.index.lock().map_err(read_err)?.relocate(&new.moved)?;
        }
        disk.sync_dir().await.map_err(log_w)
    }
}

/// Checks the log and vote files for corruption a restart cannot repair: a log frame that fails
/// its checksum with data after it, or a vote that fails its checksum. (A torn tail is repairable
/// and not reported.) Returns `Ok(Some(description))` for corruption; `Err` for I/O errors, which
/// may be transient and must not be mistaken for corruption.
pub async fn check_integrity(disk: &dyn Disk) -> std::io::Result<Option<String>> {
    if let Some(bytes) = disk.read(VOTE_FILE).await? {
        if let Err(e) = unframe(&bytes, 0) {
            return Ok(Some(format!("raft vote corrupted: {e}")));
        }
    }
    let bytes = disk.read(LOG_FILE).await?.unwrap_or_default();
    Ok(split_frames(&bytes).err().map(|e| format!("raft log corrupted: {e}")))
}

/// A frame of the log file: its offset and its payload.
type Frame<'a> = (usize, &'a [u8]);

/// Splits a log file into its frames, stopping at a torn tail: each frame's offset and payload,
/// and the offset where the whole frames end (the file length unless the tail is torn). Errors:
/// a frame that fails a checksum.
fn split_frames(bytes: &[u8]) -> Result<(Vec<Frame<'_>>, usize), FrameError> {
    let mut frames = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        match unframe(bytes, offset) {
            Ok((payload, next)) => {
                frames.push((offset, payload));
                offset = next;
            }
            Err(FrameError::Truncated { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    Ok((frames, offset))
}

/// The trace's view of an openraft vote.
fn traced_vote(vote: &Vote<NodeId>) -> trace::Vote {
    trace::Vote { term: vote.leader_id.term, voted_for: vote.leader_id.voted_for, committed: vote.committed }
}

async fn read_vote(disk: &dyn Disk) -> Result<Option<Vote<NodeId>>, StorageError> {
    let Some(bytes) = disk.read(VOTE_FILE).await.map_err(vote_r)? else { return Ok(None) };
    let (payload, _) = unframe(&bytes, 0).map_err(vote_r)?;
    Ok(Some(decode(payload).map_err(vote_r)?))
}

impl LogStore {
    /// A reader over this log, for the server's own use beside openraft's.
    pub fn reader(&self) -> LogReader {
        LogReader { shared: self.shared.clone(), disk: self.disk.clone() }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        read_entries(&self.shared, self.disk.as_ref(), range).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let index = self.shared.index.lock().map_err(read_err)?;
        Ok(LogState { last_purged_log_id: index.last_purged, last_log_id: index.last_log_id()? })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        if !self.vote_in_memory {
            let payload = encode(vote).map_err(vote_w)?;
            replace_durably(self.disk.as_ref(), VOTE_TMP_FILE, VOTE_FILE, &frame(&payload)).await.map_err(vote_w)?;
        }
        self.vote = Some(*vote);
        // Traced when openraft is told the vote is durable, which is what a restart must honour.
        self.trace.event(&self.node_name, Event::VoteSaved(traced_vote(vote)));
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let recs: Vec<LogRecord> = entries.into_iter().map(LogRecord::Append).collect();
        let result = self.write_and_replay(recs).await;
        callback.log_io_completed(result.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string())));
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write_and_replay(vec![LogRecord::Truncate(log_id.index)]).await?;
        self.recache_last().await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write_and_replay(vec![LogRecord::Purge(log_id)]).await?;
        self.maybe_compact().await
    }
}

#[cfg(test)]
#[path = "log_store_tests.rs"]
pub(crate) mod tests;
