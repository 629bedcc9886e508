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

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, Vote};
use serde::{Deserialize, Serialize};

use super::{storage_io_error, Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::codec::{decode, encode, frame, unframe, FrameError};
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
enum LogRecord {
    Append(Entry),
    /// Remove entries with index >= this.
    Truncate(u64),
    /// Remove entries up to and including this log id.
    Purge(LogId),
}

/// The in-memory view of the log, shared with readers.
#[derive(Debug, Default)]
struct LogMem {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
}

impl LogMem {
    fn replay(&mut self, rec: LogRecord) {
        match rec {
            LogRecord::Append(e) => {
                let idx = e.log_id.index;
                self.entries.split_off(&idx);
                self.entries.insert(idx, e);
            }
            LogRecord::Truncate(since) => {
                self.entries.split_off(&since);
            }
            LogRecord::Purge(id) => {
                self.entries = self.entries.split_off(&(id.index + 1));
                self.last_purged = Some(id);
            }
        }
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

/// A reader over the shared in-memory log.
#[derive(Clone)]
pub struct LogReader {
    mem: Arc<Mutex<LogMem>>,
}

fn log_w(e: impl std::fmt::Display) -> StorageError {
    storage_io_error(ErrorSubject::Logs, ErrorVerb::Write, e)
}
fn vote_w(e: impl std::fmt::Display) -> StorageError {
    storage_io_error(ErrorSubject::Vote, ErrorVerb::Write, e)
}
fn vote_r(e: impl std::fmt::Display) -> StorageError {
    storage_io_error(ErrorSubject::Vote, ErrorVerb::Read, e)
}

fn lock_err(e: impl std::fmt::Display) -> StorageError {
    storage_io_error(ErrorSubject::Logs, ErrorVerb::Read, e)
}

/// The entries in `range`. Errors: an inverted range (start past end), which openraft asks for
/// only when its log and state machine disagree (e.g. acknowledged entries lost to a skipped
/// fsync): reported as a storage error, so Raft stops and the host restarts it, instead of
/// `BTreeMap::range`'s panic taking the process down.
fn entries_in<RB: RangeBounds<u64> + Debug>(entries: &BTreeMap<u64, Entry>, range: RB) -> Result<Vec<Entry>, StorageError> {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let start = match range.start_bound() {
        Included(&s) => Some(s),
        Excluded(&s) => s.checked_add(1),
        Unbounded => Some(0),
    };
    let end_inclusive = match range.end_bound() {
        Included(&e) => Some(e),
        Excluded(&e) => e.checked_sub(1),
        Unbounded => Some(u64::MAX),
    };
    match (start, end_inclusive) {
        (Some(s), Some(e)) if s <= e => Ok(entries.range(s..=e).map(|(_, e)| e.clone()).collect()),
        // Empty but well-formed (`n..n`, `..0`): nothing to read.
        (Some(s), Some(e)) if s == e + 1 => Ok(Vec::new()),
        (_, None) => Ok(Vec::new()),
        _ => Err(lock_err(format!("log read of an inverted range {range:?}: the log and state machine disagree"))),
    }
}

/// Bytes of command an entry carries (its encoded body; a batch's body holds its commands).
fn payload_bytes(e: &Entry) -> u64 {
    match &e.payload {
        openraft::EntryPayload::Normal(cmd) => cmd.body.len() as u64,
        openraft::EntryPayload::Blank | openraft::EntryPayload::Membership(_) => 0,
    }
}

/// The trailing-log purge that keeps at most `budget_bytes` of command behind a snapshot at
/// `snapshot_index`: the highest index to purge up to (inclusive), or `None` if the entries
/// behind it are within the budget. Walks back from the snapshot only as far as the budget.
fn trailing_purge_target(entries: &BTreeMap<u64, Entry>, snapshot_index: u64, budget_bytes: u64) -> Option<u64> {
    let mut kept = 0u64;
    for (&index, e) in entries.range(..=snapshot_index).rev() {
        kept += payload_bytes(e);
        if kept > budget_bytes {
            return Some(index);
        }
    }
    None
}

impl LogReader {
    /// Where to purge so that at most `budget_bytes` of command stay in the log behind a
    /// snapshot at `snapshot_index` (for `Raft::trigger().purge_log`): openraft's own bound,
    /// `max_in_snapshot_log_to_keep`, counts entries, and with group commit one entry may carry
    /// hundreds of writes. `None`: within the budget (or the log cannot be read).
    pub fn trailing_purge_target(&self, snapshot_index: u64, budget_bytes: u64) -> Option<u64> {
        let mem = self.mem.lock().ok()?;
        trailing_purge_target(&mem.entries, snapshot_index, budget_bytes)
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let mem = self.mem.lock().map_err(lock_err)?;
        entries_in(&mem.entries, range)
    }
}

/// The Raft log storage (openraft storage-v2 `RaftLogStorage`).
pub struct LogStore {
    disk: Arc<dyn Disk>,
    mem: Arc<Mutex<LogMem>>,
    vote: Option<Vote<NodeId>>,
    /// Records in the log file since the last rewrite.
    records_in_file: usize,
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

impl LogStore {
    /// Opens the log and vote from `disk`, cutting a torn tail, and traces the vote it restored
    /// as `node_name`. Errors: unreadable files, or a frame that fails a checksum (corruption; see
    /// the module docs).
    pub async fn open(
        disk: Arc<dyn Disk>,
        trace: Arc<dyn TraceSink>,
        node_name: String,
    ) -> Result<(Self, RecoveryReport), StorageError> {
        let vote = read_vote(disk.as_ref()).await?;
        let existing = disk.read(LOG_FILE).await.map_err(|e| storage_io_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        let bytes = match existing {
            Some(bytes) => bytes,
            None => {
                // Create the log durably now: appends sync the file's bytes, never its name.
                replace_durably(disk.as_ref(), LOG_TMP_FILE, LOG_FILE, &[]).await.map_err(log_w)?;
                Vec::new()
            }
        };
        let (payloads, offset) = split_frames(&bytes).map_err(|e| {
            storage_io_error(ErrorSubject::Logs, ErrorVerb::Read, format!("raft log corrupted ({e}); refusing to start"))
        })?;
        let mut mem = LogMem::default();
        let mut report = RecoveryReport { records: payloads.len(), ..RecoveryReport::default() };
        for payload in payloads {
            let rec: LogRecord =
                decode(payload).map_err(|e| storage_io_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            mem.replay(rec);
        }
        if offset < bytes.len() {
            report.torn_tail_bytes = bytes.len() - offset;
            tracing::warn!(cut = report.torn_tail_bytes, "raft log: cutting torn tail");
            disk.truncate(LOG_FILE, offset as u64)
                .await
                .map_err(|e| storage_io_error(ErrorSubject::Logs, ErrorVerb::Write, e))?;
            disk.sync(LOG_FILE).await.map_err(|e| storage_io_error(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        }
        trace.event(&node_name, Event::VoteRestored(vote.as_ref().map(traced_vote)));
        let store = Self {
            disk,
            mem: Arc::new(Mutex::new(mem)),
            vote,
            records_in_file: report.records,
            skip_fsync: false,
            vote_in_memory: false,
            trace,
            node_name,
            telemetry: Arc::default(),
        };
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

    async fn write_records(&mut self, recs: &[LogRecord]) -> Result<(), StorageError> {
        let mut buf = Vec::new();
        for rec in recs {
            let payload = encode(rec).map_err(log_w)?;
            buf.extend(frame(&payload));
        }
        self.disk.append(LOG_FILE, &buf).await.map_err(log_w)?;
        if !self.skip_fsync {
            let _fsync_timer = self.telemetry.metrics.fsync_timer();
            self.disk.sync(LOG_FILE).await.map_err(log_w)?;
        }
        self.records_in_file += recs.len();
        Ok(())
    }

    /// Rewrites the log file with only the live entries once dead records dominate it.
    async fn maybe_compact(&mut self) -> Result<(), StorageError> {
        let (live, purged) = {
            let mem = self.mem.lock().map_err(lock_err)?;
            // Decide before copying: most purges do not compact.
            if self.records_in_file < mem.entries.len() + COMPACT_SLACK_RECORDS {
                return Ok(());
            }
            (mem.entries.values().cloned().collect::<Vec<_>>(), mem.last_purged)
        };
        let mut buf = Vec::new();
        let mut count = 0;
        if let Some(p) = purged {
            buf.extend(frame(&encode(&LogRecord::Purge(p)).map_err(log_w)?));
            count += 1;
        }
        for e in live {
            buf.extend(frame(&encode(&LogRecord::Append(e)).map_err(log_w)?));
            count += 1;
        }
        replace_durably(self.disk.as_ref(), LOG_TMP_FILE, LOG_FILE, &buf).await.map_err(log_w)?;
        self.records_in_file = count;
        Ok(())
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

/// Splits a log file into its frames' payloads, stopping at a torn tail. Returns the payloads and
/// the offset where the whole frames end (the file length unless the tail is torn). Errors: a
/// frame that fails a checksum.
fn split_frames(bytes: &[u8]) -> Result<(Vec<&[u8]>, usize), FrameError> {
    let mut payloads = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        match unframe(bytes, offset) {
            Ok((payload, next)) => {
                payloads.push(payload);
                offset = next;
            }
            Err(FrameError::Truncated { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    Ok((payloads, offset))
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
        LogReader { mem: self.mem.clone() }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let mem = self.mem.lock().map_err(lock_err)?;
        entries_in(&mem.entries, range)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let mem = self.mem.lock().map_err(lock_err)?;
        let last = mem.entries.values().next_back().map(|e| e.log_id).or(mem.last_purged);
        Ok(LogState { last_purged_log_id: mem.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader { mem: self.mem.clone() }
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
        let result = self.write_records(&recs).await;
        if let Err(e) = &result {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return result;
        }
        {
            let mut mem = self.mem.lock().map_err(lock_err)?;
            for rec in recs {
                mem.replay(rec);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write_records(&[LogRecord::Truncate(log_id.index)]).await?;
        self.mem.lock().map_err(lock_err)?.replay(LogRecord::Truncate(log_id.index));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write_records(&[LogRecord::Purge(log_id)]).await?;
        self.mem.lock().map_err(lock_err)?.replay(LogRecord::Purge(log_id));
        self.maybe_compact().await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::io::mem::MemDisk;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn no_trace() -> Arc<dyn TraceSink> {
        Arc::new(crate::io::NoTrace)
    }

    fn entry(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, 1), index), payload: EntryPayload::Blank }
    }

    pub(crate) async fn append_direct(store: &mut LogStore, entries: Vec<Entry>) {
        let recs: Vec<LogRecord> = entries.into_iter().map(LogRecord::Append).collect();
        store.write_records(&recs).await.unwrap();
        let mut mem = store.mem.lock().unwrap();
        for r in recs {
            mem.replay(r);
        }
    }

    #[tokio::test]
    async fn restart_recovers_synced_log_and_vote() {
        let disk = Arc::new(MemDisk::new());
        let (mut store, _) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
        append_direct(&mut store, vec![entry(1, 1), entry(1, 2), entry(2, 3)]).await;
        store.save_vote(&Vote::new(2, 7)).await.unwrap();
        store.truncate(LogId::new(CommittedLeaderId::new(2, 1), 3)).await.unwrap();
        disk.crash();
        let (mut again, report) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
        assert_eq!(report.torn_tail_bytes, 0);
        // Three appends and a truncation: compaction counts from what the file already holds.
        assert_eq!((report.records, again.records_in_file), (4, 4));
        assert_eq!(again.read_vote().await.unwrap(), Some(Vote::new(2, 7)));
        let st = again.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id.map(|l| l.index), Some(2));
    }

    /// Collects trace events, for asserting what the store reports.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<Event>>);
    impl TraceSink for Recorded {
        fn event(&self, _node: &str, event: Event) {
            self.0.lock().unwrap().push(event);
        }
    }

    #[tokio::test]
    async fn saved_votes_are_traced_and_restored_after_a_crash() {
        let disk = Arc::new(MemDisk::new());
        let sink = Arc::new(Recorded::default());
        let (mut store, _) = LogStore::open(disk.clone(), sink.clone(), "n1".into()).await.unwrap();
        store.save_vote(&Vote::new(2, 7)).await.unwrap();
        disk.crash();
        LogStore::open(disk.clone(), sink.clone(), "n1".into()).await.unwrap();
        let v = trace::Vote { term: 2, voted_for: Some(7), committed: false };
        assert_eq!(*sink.0.lock().unwrap(), vec![Event::VoteRestored(None), Event::VoteSaved(v), Event::VoteRestored(Some(v))]);
    }

    /// The `vote_in_memory` bug switch loses the vote on a crash, which the simulator must catch.
    #[tokio::test]
    async fn a_vote_kept_in_memory_is_lost_on_a_crash() {
        let disk = Arc::new(MemDisk::new());
        let (mut store, _) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
        store.set_vote_in_memory(true);
        store.save_vote(&Vote::new(2, 7)).await.unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 7)));
        disk.crash();
        let (mut again, _) = LogStore::open(disk, no_trace(), "n1".into()).await.unwrap();
        assert_eq!(again.read_vote().await.unwrap(), None);
    }

    #[test]
    fn an_inverted_range_is_an_error_and_an_empty_one_is_not() {
        let entries: BTreeMap<u64, Entry> = (1..=3).map(|i| (i, entry(1, i))).collect();
        let read = |start: u64, end: u64| entries_in(&entries, start..end);
        assert_eq!(read(2, 4).unwrap().len(), 2);
        assert!(read(3, 3).unwrap().is_empty(), "n..n is empty, not inverted");
        assert!(read(3, 2).is_err(), "start past end: the log and state machine disagree");
    }

    #[tokio::test]
    async fn torn_tail_is_cut_not_applied() {
        let disk = Arc::new(MemDisk::new());
        let (mut store, _) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
        append_direct(&mut store, vec![entry(1, 1)]).await;
        store.set_skip_fsync(true);
        append_direct(&mut store, vec![entry(1, 2)]).await;
        disk.tear_on_crash();
        disk.crash();
        let (mut again, report) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
        assert!(report.torn_tail_bytes > 0);
        assert_eq!(again.get_log_state().await.unwrap().last_log_id.map(|l| l.index), Some(1));
        // The cut is durable: a second restart sees a clean log.
        let (_, report2) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
        assert_eq!(report2.torn_tail_bytes, 0);
    }

    #[tokio::test]
    async fn corruption_before_the_tail_refuses_to_start() {
        let disk = Arc::new(MemDisk::new());
        let (mut store, _) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
        append_direct(&mut store, vec![entry(1, 1), entry(1, 2), entry(1, 3)]).await;
        assert!(disk.flip_bit(LOG_FILE, crate::codec::FRAME_HEADER_BYTES + 2, 3));
        assert!(LogStore::open(disk.clone(), no_trace(), "n1".into()).await.is_err());
    }

    /// Regression (sim disk-corruption seed 89): a flipped bit in the last frame's length made it
    /// look like a frame running to the end of the file, i.e. a torn write, and 20 KB of
    /// acknowledged log was cut. The length now has its own checksum.
    #[tokio::test]
    async fn flipped_length_in_a_synced_frame_is_corruption_not_a_torn_tail() {
        let disk = Arc::new(MemDisk::new());
        let (mut store, _) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
        append_direct(&mut store, vec![entry(1, 1), entry(1, 2)]).await;
        let second_frame = disk.len(LOG_FILE) / 2;
        let (_, next) = crate::codec::unframe(&disk.read(LOG_FILE).await.unwrap().unwrap(), 0).unwrap();
        assert!(next <= second_frame + 64);
        assert!(disk.flip_bit(LOG_FILE, next + 1, 4), "flip a bit in the second frame's length");
        assert!(check_integrity(disk.as_ref()).await.unwrap().is_some());
        assert!(LogStore::open(disk.clone(), no_trace(), "n1".into()).await.is_err());
    }

    #[tokio::test]
    async fn purge_then_compaction_keeps_live_entries() {
        let disk = Arc::new(MemDisk::new());
        let (mut store, _) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
        let entries: Vec<Entry> = (1..=5000).map(|i| entry(1, i)).collect();
        append_direct(&mut store, entries).await;
        store.purge(LogId::new(CommittedLeaderId::new(1, 1), 4990)).await.unwrap();
        assert!(store.records_in_file < 20, "compacted to {} records", store.records_in_file);
        disk.crash();
        let (mut again, _) = LogStore::open(disk, no_trace(), "n1".into()).await.unwrap();
        let st = again.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id.map(|l| l.index), Some(4990));
        assert_eq!(st.last_log_id.map(|l| l.index), Some(5000));
    }

    #[test]
    fn the_trailing_purge_keeps_at_most_the_byte_budget_behind_the_snapshot() {
        use crate::structs::command::{MessageType, COMMAND_VERSION};
        let normal = |index: u64, bytes: usize| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(crate::structs::Command { msg_type: MessageType::KVS, version: COMMAND_VERSION, body: vec![0; bytes] }),
        };
        // Indexes 1..=10 of 100 B each, a blank entry at 11, and 12..=14 past the snapshot at 11.
        let mut entries: BTreeMap<u64, Entry> = (1..=10).map(|i| (i, normal(i, 100))).collect();
        entries.insert(11, entry(1, 11));
        entries.extend((12..=14).map(|i| (i, normal(i, 10_000))));
        // 250 B of budget keeps 9 and 10 (and the blank 11); 8 would make it 300 B.
        assert_eq!(trailing_purge_target(&entries, 11, 250), Some(8));
        assert_eq!(trailing_purge_target(&entries, 11, 200), Some(8), "exactly at the budget is kept");
        assert_eq!(trailing_purge_target(&entries, 11, 199), Some(9));
        assert_eq!(trailing_purge_target(&entries, 11, 1_000), None, "everything behind fits");
        assert_eq!(trailing_purge_target(&entries, 11, 0), Some(10), "entries past the snapshot never count");
    }
}
