//! The Raft state machine: decodes committed [`Command`]s, applies them to the [`Store`], wakes
//! watchers, and builds, persists and installs snapshots.
//!
//! The store lives in [`SharedState`], which reads borrow briefly; the state machine is its only
//! writer. Applying asserts that entries arrive in strictly increasing index order. A command this server cannot decode
//! (an unknown type without the ignore flag, a newer body version) stops the state machine with
//! an error that says to upgrade, as Consul's FSM halts; an ignorable one is skipped.
//!
//! Snapshots ([`super::snapshot_file`]) are encoded under the lock straight from the store (no
//! second copy of it: the copy cost as much memory as the rows' keys and fields; the values are
//! shared bytes either way), and written with the lock released, so applies continue while a
//! large snapshot is written. An installed snapshot is decoded into a fresh store, persisted,
//! then swapped in.
//!
//! Besides openraft's entry-count policy, a snapshot is asked for once the commands applied since
//! the last one exceed [`SNAPSHOT_LOG_BYTES`]: with group commit an entry holds many writes, so
//! the count alone let the in-memory log grow to a second copy of the whole store.
//!
//! Traced (the checkers' `apply_once` judges these): `state restored at N` when it opens from its
//! durable snapshot (`empty` without one), every applied entry including blank ones, snapshots
//! built and installed.

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, StoredMembership};

use super::snapshot_file::{self, SnapshotWriter};
use super::{storage_io_error, Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::io::trace::{AppliedEntry, Event};
use crate::io::{Disk, TraceSink};
use crate::state::snapshot::{decode_sections, encode_sections};
use crate::state::{Store, WatchSet};
use crate::structs::{Command, CommandResult};


/// Command bytes applied since the last snapshot past which one is asked for (8 MiB): the Raft
/// log holds them in memory until a snapshot lets it purge them. Not lower: a snapshot encodes
/// the store under its lock, and at 4 MiB `kv-bench` (3 servers, 64 writers, 10 s) measured the
/// write p99 at 28-39 ms against 19 ms at 8 MiB, for 3-5 MB less RSS holding 100k keys. Far above
/// what a simulation writes, so simulated runs snapshot by entry count only, as before.
pub const SNAPSHOT_LOG_BYTES: u64 = 8 << 20;

/// Command bytes kept in the log behind a snapshot for followers that lag (1 MiB), besides
/// openraft's entry-count bound (Consul `raft_trailing_logs`): with group commit 1024 entries
/// could hold a quarter of a million writes. A follower further behind is sent the snapshot.
pub const TRAILING_LOG_BYTES: u64 = 1 << 20;

/// The store plus the Raft position it reflects.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub store: Store,
    pub last_applied: Option<LogId>,
    pub last_membership: StoredMembership<NodeId, openraft::BasicNode>,
}

/// The store shared between the state machine (writer) and reads, with the watch set.
#[derive(Default)]
pub struct SharedState {
    applied: Mutex<Applied>,
    /// Wakes blocking queries when what they read changes.
    pub watches: WatchSet,
    /// Keys a session invalidation freed, blocked for the session's lock-delay (not replicated).
    pub lock_delays: crate::state::lock_delay::LockDelays,
    /// Command bytes applied since the last snapshot was built or installed.
    log_bytes_since_snapshot: AtomicU64,
    /// A snapshot was asked for since the last one.
    snapshot_requested: AtomicBool,
    /// A snapshot was asked for and the server has not triggered it yet
    /// ([`SharedState::take_snapshot_request`]).
    snapshot_pending: AtomicBool,
}

impl SharedState {
    /// Locks the store for a short read. A poisoned lock means a panic mid-apply, which is a bug:
    /// the state cannot be trusted, so we surface it rather than read half-applied data.
    pub fn read(&self) -> Result<MutexGuard<'_, Applied>, StateLockPoisoned> {
        self.applied.lock().map_err(|_| StateLockPoisoned)
    }

    /// Whether the state machine asked for a size-triggered snapshot (see
    /// [`SNAPSHOT_LOG_BYTES`]) since this was last called; the caller triggers it. Polled on
    /// every Raft metrics change by the server's metrics watcher, not by a task of its own: an
    /// extra task would shift tokio's scheduling and so every simulated run.
    pub fn take_snapshot_request(&self) -> bool {
        self.snapshot_pending.swap(false, Ordering::Relaxed)
    }

    /// Counts `bytes` of applied commands; asks for a snapshot once past the threshold.
    fn count_applied(&self, bytes: u64) {
        let total = self.log_bytes_since_snapshot.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if total >= SNAPSHOT_LOG_BYTES && !self.snapshot_requested.swap(true, Ordering::Relaxed) {
            self.snapshot_pending.store(true, Ordering::Relaxed);
        }
    }

    /// A snapshot now covers everything applied: the count starts again.
    fn snapshot_taken(&self) {
        self.log_bytes_since_snapshot.store(0, Ordering::Relaxed);
        self.snapshot_requested.store(false, Ordering::Relaxed);
    }
}

/// The store's lock was poisoned by a panic during apply.
#[derive(Debug, thiserror::Error)]
#[error("state store lock poisoned")]
pub struct StateLockPoisoned;

/// The openraft state machine.
pub struct StateMachine {
    shared: Arc<SharedState>,
    disk: Arc<dyn Disk>,
    trace: Arc<dyn TraceSink>,
    node_name: String,
    snapshots: Arc<SnapshotWriter>,
    snapshot_seq: u64,
    /// Metrics hooks (apply time, KV applies by verb).
    telemetry: Arc<crate::telemetry::Telemetry>,
    /// Deliberate bug `check_status_ignored` (see `BugSwitches`).
    check_status_ignored: bool,
    /// Deliberate bug `release_keeps_lock` (see `BugSwitches`).
    release_keeps_lock: bool,
    /// Deliberate bug `txn_partial_apply` (see `BugSwitches`).
    txn_partial_apply: bool,
    /// Deliberate bug `restore_keeps_old_keys` (see `BugSwitches`).
    restore_keeps_old_keys: bool,
    /// This host's clock, for lock-delays (none in storage tests: delays are then not recorded).
    clock: Option<Arc<dyn crate::io::Clock>>,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    storage_io_error(ErrorSubject::StateMachine, verb, e)
}

fn sm_w(e: impl std::fmt::Display) -> StorageError {
    sm_err(ErrorVerb::Write, e)
}

fn sm_r(e: impl std::fmt::Display) -> StorageError {
    sm_err(ErrorVerb::Read, e)
}

impl StateMachine {
    /// Opens the state machine, restoring the last durable snapshot if there is one. Errors: the
    /// snapshot file is unreadable, fails its checksum or has an unknown format (never applied
    /// half-read).
    pub async fn open(
        shared: Arc<SharedState>,
        disk: Arc<dyn Disk>,
        trace: Arc<dyn TraceSink>,
        node_name: String,
    ) -> Result<Self, StorageError> {
        let snap = snapshot_file::read(disk.as_ref()).await.map_err(sm_r)?;
        let persisted = snap.as_ref().map(|(h, _)| h.last_index);
        if let Some((header, sections)) = snap {
            let store = decode_sections(&sections).map_err(sm_r)?;
            let applied = Applied {
                store,
                last_applied: header.meta.last_log_id,
                last_membership: header.meta.last_membership.clone(),
            };
            *shared.applied.lock().map_err(sm_r)? = applied;
        }
        let restored = shared.applied.lock().map_err(sm_r)?.last_applied.map(|l| l.index);
        trace.event(&node_name, Event::StateRestored { index: restored });
        Ok(Self {
            shared,
            disk,
            trace,
            node_name,
            snapshots: SnapshotWriter::new(persisted),
            snapshot_seq: 0,
            telemetry: Arc::default(),
            check_status_ignored: false,
            release_keeps_lock: false,
            txn_partial_apply: false,
            restore_keeps_old_keys: false,
            clock: None,
        })
    }

    /// Test-only switch (`check_status_ignored`): status-only changes of catalog checks are
    /// dropped at apply time.
    pub fn ignoring_check_status(mut self, on: bool) -> Self {
        self.check_status_ignored = on;
        self
    }

    /// Test-only switch (`release_keeps_lock`): a lock release answers `true` and sets the value
    /// but leaves the session holding the lock.
    pub fn releasing_nothing(mut self, on: bool) -> Self {
        self.release_keeps_lock = on;
        self
    }

    /// Test-only switch (`txn_partial_apply`): a failing transaction keeps the operations before
    /// the failing one.
    pub fn partially_applying_txns(mut self, on: bool) -> Self {
        self.txn_partial_apply = on;
        self
    }

    /// Test-only switch (`restore_keeps_old_keys`): a snapshot restore keeps the KV rows the
    /// archive does not hold.
    pub fn merging_restores(mut self, on: bool) -> Self {
        self.restore_keeps_old_keys = on;
        self
    }

    /// Times lock-delays on `clock` (this host's).
    pub fn with_clock(mut self, clock: Arc<dyn crate::io::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Test-only switch (`double_apply`): claim the restored state reflects one entry less than
    /// it does, so openraft hands the state machine that entry again.
    pub fn reporting_one_entry_less(self, on: bool) -> Self {
        if on {
            let mut a = self.shared.applied.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(last) = a.last_applied.filter(|l| l.index > 0) {
                a.last_applied = Some(LogId::new(last.leader_id, last.index - 1));
            }
        }
        self
    }

    /// Reports apply times and KV applies to this server's metrics.
    pub fn set_telemetry(&mut self, telemetry: Arc<crate::telemetry::Telemetry>) {
        self.telemetry = telemetry;
    }

    /// Replaces the membership the state reflects, for outage recovery ([`super::recover`]) only:
    /// Raft must not be running on this state machine. Errors: the state lock is poisoned.
    pub fn set_membership(&mut self, membership: StoredMembership<NodeId, openraft::BasicNode>) -> Result<(), StorageError> {
        self.lock()?.last_membership = membership;
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, Applied>, StorageError> {
        self.shared.applied.lock().map_err(sm_w)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Encoded under the lock, from the store itself (a consistent state, no second copy of
        // it); the disk write happens without the lock.
        let (sections, last, last_membership) = {
            let mut a = self.lock()?;
            self.shared.snapshot_taken();
            let built = (encode_sections(&a.store).map_err(sm_w)?, a.last_applied, a.last_membership.clone());
            // The encode just walked every row; rebuilding the KV table's B-tree full is another
            // O(rows) pass and gives back the slack in-order writes leave in it (kv-bench's
            // 10 s write row put its p99 within run-to-run noise with and without it).
            a.store.compact();
            built
        };
        self.snapshot_seq += 1;
        let snapshot_id = format!("{}-{}", last.map(|l| l.index).unwrap_or(0), self.snapshot_seq);
        let meta = SnapshotMeta { last_log_id: last, last_membership, snapshot_id };
        let header = snapshot_file::header(&meta, &sections).map_err(sm_w)?;
        if self.snapshots.persist(self.disk.as_ref(), &header, &sections).await.map_err(sm_w)? {
            self.trace.event(&self.node_name, Event::SnapshotBuilt { index: header.last_index });
            tracing::info!(node = %self.node_name, index = header.last_index, bytes = sections.len(), "snapshot taken");
        }
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(sections)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, openraft::BasicNode>), StorageError> {
        let a = self.lock()?;
        Ok((a.last_applied, a.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let _apply_timer = self.telemetry.metrics.fsm_apply_timer();
        let mut results = Vec::new();
        let mut changes = Vec::new();
        let mut lock_delays = Vec::new();
        let mut restored = false;
        let mut traced = Vec::new();
        let mut halted = None;
        let mut applied_bytes = 0u64;
        {
            let mut a = self.lock()?;
            for entry in entries {
                let index = entry.log_id.index;
                // Strictly forward. (Not "exactly last + 1": openraft's storage contract, and its
                // conformance suite, let a state machine be handed a later entry after a gap.)
                let last = a.last_applied.map(|l| l.index);
                assert!(last.is_none_or(|l| index > l), "apply must move forward: got {index} after {last:?}");
                let result = match &entry.payload {
                    EntryPayload::Blank => {
                        traced.push(Event::Apply { index, term: entry.log_id.leader_id.term, entry: AppliedEntry::Blank });
                        CommandResult::None { index }
                    }
                    EntryPayload::Normal(cmd) => match apply_command(&mut a.store, index, cmd, &self.telemetry.metrics, self.bugs()) {
                        Ok(out) => {
                            applied_bytes += cmd.body.len() as u64;
                            let applied = AppliedEntry::Command { summary: cmd.to_string(), ok: out.result.ok() };
                            traced.push(Event::Apply { index, term: entry.log_id.leader_id.term, entry: applied });
                            changes.extend(out.changes);
                            lock_delays.extend(out.lock_delays);
                            restored |= out.restored;
                            out.result
                        }
                        Err(e) => {
                            halted = Some(format!("log entry {index}: {e}"));
                            break;
                        }
                    },
                    EntryPayload::Membership(m) => {
                        a.last_membership = StoredMembership::new(Some(entry.log_id), m.clone());
                        let applied = AppliedEntry::Membership { voters: m.voter_ids().collect() };
                        traced.push(Event::Apply { index, term: entry.log_id.leader_id.term, entry: applied });
                        CommandResult::None { index }
                    }
                };
                a.last_applied = Some(entry.log_id);
                results.push(result);
            }
        }
        for event in traced {
            self.trace.event(&self.node_name, event);
        }
        self.shared.count_applied(applied_bytes);
        if let Some(clock) = &self.clock {
            let now = clock.monotonic();
            for (key, delay_ms) in &lock_delays {
                self.shared.lock_delays.start(key, now, *delay_ms);
            }
        }
        self.shared.watches.changed(&changes);
        if restored {
            self.shared.watches.changed_all();
        }
        if let Some(why) = halted {
            tracing::error!(node = %self.node_name, %why, "state machine halted");
            return Err(sm_err(ErrorVerb::Write, why));
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // openraft builds snapshots from a separate builder; ours shares the store and the
        // snapshot writer, so a builder is a cheap handle onto the same state.
        Self {
            shared: self.shared.clone(),
            disk: self.disk.clone(),
            trace: self.trace.clone(),
            node_name: self.node_name.clone(),
            snapshots: self.snapshots.clone(),
            snapshot_seq: self.snapshot_seq + 1000,
            telemetry: self.telemetry.clone(),
            check_status_ignored: self.check_status_ignored,
            release_keeps_lock: self.release_keeps_lock,
            txn_partial_apply: self.txn_partial_apply,
            restore_keeps_old_keys: self.restore_keeps_old_keys,
            clock: self.clock.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let sections = snapshot.into_inner();
        let store = decode_sections(&sections).map_err(sm_r)?;
        // Fault point: a slow snapshot install, racing appends, reads and the snapshot builder.
        crate::buggify_delay!("slow-snapshot-install", 200);
        // Persist first: if we crash after installing in memory, the log may already be purged.
        let header = snapshot_file::header(meta, &sections).map_err(sm_w)?;
        self.snapshots.persist(self.disk.as_ref(), &header, &sections).await.map_err(sm_w)?;
        *self.lock()? = Applied { store, last_applied: meta.last_log_id, last_membership: meta.last_membership.clone() };
        self.shared.snapshot_taken();
        self.trace.event(&self.node_name, Event::SnapshotInstalled { index: header.last_index });
        tracing::info!(node = %self.node_name, index = header.last_index, "snapshot installed from the leader");
        self.shared.watches.changed_all();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let snap = snapshot_file::read(self.disk.as_ref()).await.map_err(sm_r)?;
        Ok(snap.map(|(h, sections)| Snapshot { meta: h.meta, snapshot: Box::new(Cursor::new(sections)) }))
    }
}

/// The deliberate bugs the state machine carries out: (`check_status_ignored`,
/// `release_keeps_lock`, `txn_partial_apply`, `restore_keeps_old_keys`).
type ApplyBugs = (bool, bool, bool, bool);

impl StateMachine {
    fn bugs(&self) -> ApplyBugs {
        (self.check_status_ignored, self.release_keeps_lock, self.txn_partial_apply, self.restore_keeps_old_keys)
    }
}

/// Decodes and applies one command. Errors: the command cannot be decoded by this build.
fn apply_command(
    store: &mut Store,
    index: u64,
    cmd: &Command,
    metrics: &crate::telemetry::Metrics,
    (check_status_ignored, release_keeps_lock, txn_partial_apply, restore_keeps_old_keys): ApplyBugs,
) -> Result<crate::state::ApplyOutcome, crate::structs::CommandError> {
    use crate::structs::{KvsOp, Request};
    let mut req = cmd.decode()?;
    if let Request::Batch(b) = &req {
        let bugs = (check_status_ignored, release_keeps_lock, txn_partial_apply, restore_keeps_old_keys);
        return store.apply_batch(index, &b.commands, |store, one| apply_command(store, index, one, metrics, bugs));
    }
    match &mut req {
        Request::Register(r) if check_status_ignored => store.keep_stored_check_status(r),
        // A release by the holder re-applied as an acquire by the holder: value set, lock kept.
        Request::Kvs(r) if release_keeps_lock && r.op == KvsOp::Unlock => {
            if store.kv_get(&r.dir_ent.key).0.is_some_and(|e| e.session.is_some() && e.session == r.dir_ent.session) {
                r.op = KvsOp::Lock;
            }
        }
        _ => {}
    }
    metrics.kv_apply(&req);
    match &req {
        Request::Txn(r) if txn_partial_apply => return Ok(store.apply_txn_keeping_partial(index, r)),
        Request::Restore(_) if restore_keeps_old_keys => return Ok(store.apply_restore_keeping_old_keys(index, &req)),
        _ => {}
    }
    Ok(store.apply_full(index, &req))
}
