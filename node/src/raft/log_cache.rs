//! The Raft log's in-memory index and bounded entry cache (issue 12 item 5: memory).
//!
//! The log file (`raft-log`, see [`super::log_store`]) holds every live entry. Memory holds, per
//! live entry, only where its frame lies in the file and how many command bytes it carries
//! ([`Slot`]); decoded entries are kept only for the newest ones, up to [`LOG_CACHE_BYTES`] of
//! command, and always the last entry (which `get_log_state` reports). Older entries are read
//! back from the file on demand ([`read_entries`]) and must pass their frame checksum and decode
//! to the entry asked for: a bad frame is a storage error, never a wrong entry. Consul puts
//! `raft.LogCache` (the last 512 entries) in front of its BoltDB log store for the same reason;
//! this cache is bounded in bytes because one group-committed entry may carry hundreds of writes.
//!
//! Readers run beside the store (openraft's replication tasks hold a `LogReader`). Appends,
//! truncations and purges only add bytes to the file, so a frame's offset stays valid until the
//! store rewrites the file (compaction). The rename of the rewritten file and the install of the
//! new offsets happen under [`LogShared::file`]'s write guard, and a read-back holds its read
//! guard and takes its offsets under it, so a reader never pairs old offsets with the new file.
//!
//! Never: holds every entry decoded; panics on bytes read from disk.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Mutex;

use openraft::{ErrorSubject, ErrorVerb};

use super::log_store::{LogRecord, LOG_FILE};
use super::{storage_io_error, Entry, LogId, StorageError};
use crate::codec::{decode, encode, frame_into, unframe};
use crate::io::Disk;

/// Bytes of command kept decoded in memory, newest entries first (the last entry is kept
/// whatever its size). 1 MiB, the same as the trailing log kept behind a snapshot
/// (`state_machine::TRAILING_LOG_BYTES`): followers that keep up, and the state machine, read
/// entries this recent; the simulator's logs stay within it, so it never reads an entry back.
pub const LOG_CACHE_BYTES: u64 = 1 << 20;

/// Where one frame lies in the log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FramePos {
    /// Byte offset of the frame's header.
    pub offset: u64,
    /// Frame length in bytes, header included.
    pub len: u32,
}

impl FramePos {
    fn end(self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// One live entry: its frame, and the command bytes it carries (for the trailing purge).
#[derive(Clone, Copy, Debug)]
struct Slot {
    at: FramePos,
    payload_bytes: u32,
}

/// Bytes of command an entry carries (its encoded body; a batch's body holds its commands).
pub(super) fn payload_bytes(e: &Entry) -> u64 {
    match &e.payload {
        openraft::EntryPayload::Normal(cmd) => cmd.body.len() as u64,
        openraft::EntryPayload::Blank | openraft::EntryPayload::Membership(_) => 0,
    }
}

/// One entry of a read: decoded in memory, or a frame to read back from the file.
#[derive(Debug)]
pub(super) enum Part {
    Cached(Entry),
    OnDisk(u64, FramePos),
}

/// The in-memory view of the log: every live entry's slot, the newest entries decoded, and the
/// last purged log id.
#[derive(Debug)]
pub(super) struct LogIndex {
    slots: BTreeMap<u64, Slot>,
    /// A suffix of `slots` (by index): the newest entries whose payload fits `budget_bytes`, or
    /// at least the last one.
    cached: BTreeMap<u64, Entry>,
    /// Payload bytes of `cached`.
    cached_bytes: u64,
    budget_bytes: u64,
    pub last_purged: Option<LogId>,
}

impl LogIndex {
    /// An empty log keeping up to `budget_bytes` of command decoded.
    pub fn new(budget_bytes: u64) -> Self {
        Self { slots: BTreeMap::new(), cached: BTreeMap::new(), cached_bytes: 0, budget_bytes, last_purged: None }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Records an entry appended in the frame at `at`; it replaces any entries from its index on.
    pub fn append(&mut self, entry: Entry, at: FramePos) {
        let index = entry.log_id.index;
        self.truncate(index);
        let payload = payload_bytes(&entry);
        self.slots.insert(index, Slot { at, payload_bytes: u32::try_from(payload).unwrap_or(u32::MAX) });
        self.cached_bytes += payload;
        self.cached.insert(index, entry);
        self.evict();
    }

    /// Removes entries with index >= `since`.
    pub fn truncate(&mut self, since: u64) {
        self.slots.split_off(&since);
        let gone = self.cached.split_off(&since);
        self.cached_bytes -= gone.values().map(payload_bytes).sum::<u64>();
    }

    /// Removes entries up to and including `id`.
    pub fn purge(&mut self, id: LogId) {
        let from = id.index.saturating_add(1);
        self.slots = self.slots.split_off(&from);
        let kept = self.cached.split_off(&from);
        let gone = std::mem::replace(&mut self.cached, kept);
        self.cached_bytes -= gone.values().map(payload_bytes).sum::<u64>();
        self.last_purged = Some(id);
    }

    /// Drops the oldest decoded entries until the rest fit the budget, keeping the last.
    fn evict(&mut self) {
        while self.cached_bytes > self.budget_bytes && self.cached.len() > 1 {
            let Some((_, e)) = self.cached.pop_first() else { break };
            self.cached_bytes -= payload_bytes(&e);
        }
        if let (Some((first, _)), Some((last, _))) = (self.cached.first_key_value(), self.cached.last_key_value()) {
            let newest = self.slots.last_key_value().map(|(i, _)| i);
            debug_assert!(self.slots.contains_key(first) && newest == Some(last), "decoded entries are the newest live ones");
        }
    }

    /// Entries held decoded.
    #[cfg(test)]
    pub fn cached_len(&self) -> usize {
        self.cached.len()
    }

    /// The last live entry's log id, else the last purged one. Errors: the last entry is not in
    /// memory (a truncation's read-back of it failed).
    pub fn last_log_id(&self) -> Result<Option<LogId>, StorageError> {
        match self.slots.last_key_value() {
            None => Ok(self.last_purged),
            Some((index, _)) => match self.cached.get(index) {
                Some(e) => Ok(Some(e.log_id)),
                None => Err(read_err(format!("raft log entry {index}, the last, is not in memory"))),
            },
        }
    }

    /// The last live entry's index, if a truncation left it evicted (it must be read back).
    pub fn uncached_last(&self) -> Option<u64> {
        let (&index, _) = self.slots.last_key_value()?;
        (!self.cached.contains_key(&index)).then_some(index)
    }

    /// Keeps a read-back `entry` decoded if it is still the last live entry.
    pub fn recache_last(&mut self, entry: Entry) {
        let index = entry.log_id.index;
        if self.uncached_last() == Some(index) && self.cached.is_empty() {
            self.cached_bytes += payload_bytes(&entry);
            self.cached.insert(index, entry);
        }
    }

    /// What a read of `first..=last` finds, in index order.
    pub fn plan(&self, first: u64, last: u64) -> Vec<Part> {
        self.slots
            .range(first..=last)
            .map(|(&index, slot)| match self.cached.get(&index) {
                Some(e) => Part::Cached(e.clone()),
                None => Part::OnDisk(index, slot.at),
            })
            .collect()
    }

    /// Every live entry, as [`LogIndex::plan`] gives it.
    pub fn plan_all(&self) -> Vec<Part> {
        self.plan(0, u64::MAX)
    }

    /// Installs the frames' new positions after the file was rewritten. Every live entry must
    /// have one; a missing one is a bug in the rewrite, reported rather than left pointing into
    /// the old file.
    pub fn relocate(&mut self, moved: &BTreeMap<u64, FramePos>) -> Result<(), StorageError> {
        for (index, slot) in self.slots.iter_mut() {
            slot.at = *moved.get(index).ok_or_else(|| log_w(format!("rewritten raft log lacks entry {index}")))?;
        }
        Ok(())
    }

    /// The trailing-log purge that keeps at most `budget_bytes` of command behind a snapshot at
    /// `snapshot_index`: the highest index to purge up to (inclusive), or `None` if the entries
    /// behind it are within the budget. Walks back from the snapshot only as far as the budget.
    pub fn trailing_purge_target(&self, snapshot_index: u64, budget_bytes: u64) -> Option<u64> {
        let mut kept = 0u64;
        for (&index, slot) in self.slots.range(..=snapshot_index).rev() {
            kept += u64::from(slot.payload_bytes);
            if kept > budget_bytes {
                return Some(index);
            }
        }
        None
    }
}

/// The index, shared by the store and its readers, and the guard that keeps the file steady
/// under a read-back.
#[derive(Debug)]
pub(super) struct LogShared {
    pub index: Mutex<LogIndex>,
    /// Read-held while frames are read back from the file; write-held by the store while it
    /// renames a rewritten file into place and installs the new offsets.
    pub file: tokio::sync::RwLock<()>,
}

impl LogShared {
    pub fn new(index: LogIndex) -> Self {
        Self { index: Mutex::new(index), file: tokio::sync::RwLock::new(()) }
    }
}

pub(super) fn read_err(e: impl std::fmt::Display) -> StorageError {
    storage_io_error(ErrorSubject::Logs, ErrorVerb::Read, e)
}
pub(super) fn log_w(e: impl std::fmt::Display) -> StorageError {
    storage_io_error(ErrorSubject::Logs, ErrorVerb::Write, e)
}

/// `range` as inclusive bounds, `None` if empty. Errors: an inverted range (start past end),
/// which openraft asks for only when its log and state machine disagree (e.g. acknowledged
/// entries lost to a skipped fsync): reported as a storage error, so Raft stops and the host
/// restarts it, instead of `BTreeMap::range`'s panic taking the process down.
pub(super) fn bounds<RB: RangeBounds<u64> + Debug>(range: RB) -> Result<Option<(u64, u64)>, StorageError> {
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
        (Some(s), Some(e)) if s <= e => Ok(Some((s, e))),
        // Empty but well-formed (`n..n`, `..0`): nothing to read.
        (Some(s), Some(e)) if s == e + 1 => Ok(None),
        (_, None) => Ok(None),
        _ => Err(read_err(format!("log read of an inverted range {range:?}: the log and state machine disagree"))),
    }
}

/// The live entries in `range`, from memory or read back from the log file on `disk`.
pub(super) async fn read_entries<RB: RangeBounds<u64> + Debug>(
    shared: &LogShared,
    disk: &dyn Disk,
    range: RB,
) -> Result<Vec<Entry>, StorageError> {
    let Some((first, last)) = bounds(range)? else { return Ok(Vec::new()) };
    let plan = shared.index.lock().map_err(read_err)?.plan(first, last);
    if plan.iter().all(|p| matches!(p, Part::Cached(_))) {
        return Ok(plan.into_iter().filter_map(|p| if let Part::Cached(e) = p { Some(e) } else { None }).collect());
    }
    // Some entries were evicted: hold the file steady, and take the offsets again under the
    // guard, since a rewrite may have moved the frames while this waited for it.
    let _file = shared.file.read().await;
    let plan = shared.index.lock().map_err(read_err)?.plan(first, last);
    let mut entries = Vec::with_capacity(plan.len());
    let mut run: Vec<(u64, FramePos)> = Vec::new();
    for part in plan {
        match part {
            Part::OnDisk(index, at) => {
                // Adjacent frames (appended together) come back in one read.
                if run.last().is_some_and(|(_, prev)| prev.end() != at.offset) {
                    read_run(disk, &std::mem::take(&mut run), &mut entries).await?;
                }
                run.push((index, at));
            }
            Part::Cached(e) => {
                read_run(disk, &std::mem::take(&mut run), &mut entries).await?;
                entries.push(e);
            }
        }
    }
    read_run(disk, &run, &mut entries).await?;
    Ok(entries)
}

/// Reads back a run of adjacent frames with one read, checking each frame's checksum and that it
/// holds the entry the index says, and appends the entries to `out`.
async fn read_run(disk: &dyn Disk, run: &[(u64, FramePos)], out: &mut Vec<Entry>) -> Result<(), StorageError> {
    let (Some((_, first)), Some((_, last))) = (run.first(), run.last()) else { return Ok(()) };
    let len = usize::try_from(last.end() - first.offset).map_err(read_err)?;
    tracing::debug!(entries = run.len(), bytes = len, "raft log: reading evicted entries back");
    let bytes = disk.read_at(LOG_FILE, first.offset, len).await.map_err(read_err)?;
    for &(index, at) in run {
        let start = usize::try_from(at.offset - first.offset).map_err(read_err)?;
        let bad = |why: String| read_err(format!("raft log entry {index}: frame at byte {} of {LOG_FILE}: {why}", at.offset));
        let (payload, next) = unframe(&bytes, start).map_err(|e| bad(e.to_string()))?;
        if next - start != at.len as usize {
            return Err(bad(format!("{} bytes, expected {}", next - start, at.len)));
        }
        match decode::<LogRecord>(payload).map_err(|e| bad(e.to_string()))? {
            LogRecord::Append(e) if e.log_id.index == index => out.push(e),
            other => return Err(bad(format!("holds {other:?}, not an append of this entry"))),
        }
    }
    Ok(())
}

/// A rewrite of the log file holding only the live entries: its bytes, its record count and each
/// entry's frame in it.
pub(super) struct Rewrite {
    pub bytes: Vec<u8>,
    pub records: usize,
    pub moved: BTreeMap<u64, FramePos>,
}

/// Builds the rewritten log file: a `Purge` record for `purged`, then each live entry of `plan`,
/// encoded from memory or copied as its checksummed frame from the current file on `disk`.
/// Errors: the frames cannot be read back or fail their checksum (corruption is not copied).
pub(super) async fn rewrite(disk: &dyn Disk, plan: Vec<Part>, purged: Option<LogId>) -> Result<Rewrite, StorageError> {
    let on_disk = || plan.iter().filter_map(|p| if let Part::OnDisk(_, at) = p { Some(*at) } else { None });
    // Evicted entries are copied from one read spanning them (dead records between them too; a
    // file is rewritten when it holds little else).
    let span = match (on_disk().map(|at| at.offset).min(), on_disk().map(FramePos::end).max()) {
        (Some(start), Some(end)) => {
            let len = usize::try_from(end - start).map_err(read_err)?;
            tracing::debug!(bytes = len, "raft log rewrite: reading evicted entries back");
            Some((start, disk.read_at(LOG_FILE, start, len).await.map_err(read_err)?))
        }
        _ => None,
    };
    let mut out = Rewrite { bytes: Vec::new(), records: 0, moved: BTreeMap::new() };
    if let Some(p) = purged {
        frame_into(&mut out.bytes, &encode(&LogRecord::Purge(p)).map_err(log_w)?);
        out.records += 1;
    }
    for part in plan {
        let offset = out.bytes.len() as u64;
        let index = match part {
            Part::Cached(e) => {
                let index = e.log_id.index;
                frame_into(&mut out.bytes, &encode(&LogRecord::Append(e)).map_err(log_w)?);
                index
            }
            Part::OnDisk(index, at) => {
                let Some((start, bytes)) = &span else { return Err(log_w("raft log rewrite lost its read")) };
                let from = usize::try_from(at.offset - start).map_err(read_err)?;
                let frame = bytes.get(from..from + at.len as usize).ok_or_else(|| read_err("raft log rewrite: short read"))?;
                unframe(frame, 0).map_err(|e| read_err(format!("raft log entry {index} at byte {}: {e}", at.offset)))?;
                out.bytes.extend_from_slice(frame);
                index
            }
        };
        let len = u32::try_from(out.bytes.len() as u64 - offset).map_err(log_w)?;
        out.moved.insert(index, FramePos { offset, len });
        out.records += 1;
    }
    Ok(out)
}
