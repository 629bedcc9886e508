//! The Raft state machine: applies committed [`Command`]s to the [`KvStore`], wakes watchers, and
//! builds, persists and installs snapshots.
//!
//! The store lives in [`SharedState`], which HTTP reads borrow briefly; the state machine is its
//! only writer. Snapshots are one checksummed frame in `raft-snapshot` (replaced atomically), so a
//! restarted server resumes from its last snapshot and openraft replays the log after it.

use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, StoredMembership};
use serde::{Deserialize, Serialize};

use super::{storage_io_error, Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::codec::{frame, unframe};
use crate::io::{Disk, TraceSink};
use crate::state::{Command, CommandResult, KvStore, WatchSet};

pub(crate) const SNAPSHOT_FILE: &str = "raft-snapshot";
const SNAPSHOT_TMP_FILE: &str = "raft-snapshot.tmp";

/// Everything the log has built: the tables plus the Raft position they reflect.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Store {
    pub kv: KvStore,
    pub last_applied: Option<LogId>,
    pub last_membership: StoredMembership<NodeId, openraft::BasicNode>,
}

/// The store shared between the state machine (writer) and HTTP reads, with the watch set.
#[derive(Default)]
pub struct SharedState {
    store: Mutex<Store>,
    /// Wakes blocking queries when what they read changes.
    pub watches: WatchSet,
}

impl SharedState {
    /// Locks the store for a short read. A poisoned lock means a panic mid-apply, which is a bug:
    /// the state cannot be trusted, so we surface it rather than read half-applied data.
    pub fn read(&self) -> Result<MutexGuard<'_, Store>, StateLockPoisoned> {
        self.store.lock().map_err(|_| StateLockPoisoned)
    }
}

/// The store's lock was poisoned by a panic during apply.
#[derive(Debug, thiserror::Error)]
#[error("state store lock poisoned")]
pub struct StateLockPoisoned;

/// A snapshot as persisted on disk.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    #[serde(with = "crate::codec::b64")]
    data: Vec<u8>,
}

/// Checks the snapshot file's checksum: `Ok(Some(description))` if corrupted, `Err` on I/O errors.
pub async fn check_integrity(disk: &dyn Disk) -> std::io::Result<Option<String>> {
    if let Some(bytes) = disk.read(SNAPSHOT_FILE).await? {
        if let Err(e) = unframe(&bytes, 0) {
            return Ok(Some(format!("raft snapshot corrupted: {e}")));
        }
    }
    Ok(None)
}

/// The openraft state machine.
pub struct StateMachine {
    shared: Arc<SharedState>,
    disk: Arc<dyn Disk>,
    trace: Arc<dyn TraceSink>,
    node_name: String,
    snapshot_seq: u64,
    /// Metrics hooks (apply time, KV applies by verb).
    telemetry: Arc<crate::telemetry::Telemetry>,
}

fn sm_w(e: impl std::fmt::Display) -> StorageError {
    sm_err(ErrorVerb::Write, e)
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    storage_io_error(ErrorSubject::StateMachine, verb, e)
}

impl StateMachine {
    /// Opens the state machine, restoring the last durable snapshot if there is one. Errors: the
    /// snapshot file is unreadable or fails its checksum (never applied half-read).
    pub async fn open(
        shared: Arc<SharedState>,
        disk: Arc<dyn Disk>,
        trace: Arc<dyn TraceSink>,
        node_name: String,
    ) -> Result<Self, StorageError> {
        let sm = Self { shared, disk, trace, node_name, snapshot_seq: 0, telemetry: Arc::default() };
        if let Some(snap) = sm.read_snapshot().await? {
            let store: Store = serde_json::from_slice(&snap.data).map_err(|e| sm_err(ErrorVerb::Read, e))?;
            *sm.shared.store.lock().map_err(|e| sm_err(ErrorVerb::Read, e))? = store;
        }
        Ok(sm)
    }

    /// Reports apply times and KV applies to this agent's metrics.
    pub fn set_telemetry(&mut self, telemetry: Arc<crate::telemetry::Telemetry>) {
        self.telemetry = telemetry;
    }

    /// The durable snapshot, if any. The file is the single source of truth (the snapshot
    /// builder and the state machine both write it), so it is read rather than cached.
    async fn read_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        let Some(bytes) = self.disk.read(SNAPSHOT_FILE).await.map_err(|e| sm_err(ErrorVerb::Read, e))? else {
            return Ok(None);
        };
        let (payload, _) = unframe(&bytes, 0).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        Ok(Some(serde_json::from_slice(payload).map_err(|e| sm_err(ErrorVerb::Read, e))?))
    }

    fn lock(&self) -> Result<MutexGuard<'_, Store>, StorageError> {
        self.shared.store.lock().map_err(|e| sm_err(ErrorVerb::Write, e))
    }

    async fn persist(&mut self, snap: &StoredSnapshot) -> Result<(), StorageError> {
        let bytes = frame(&serde_json::to_vec(snap).map_err(sm_w)?);
        self.disk.write(SNAPSHOT_TMP_FILE, &bytes).await.map_err(sm_w)?;
        self.disk.sync(SNAPSHOT_TMP_FILE).await.map_err(sm_w)?;
        self.disk.rename(SNAPSHOT_TMP_FILE, SNAPSHOT_FILE).await.map_err(sm_w)?;
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (data, last_applied, membership) = {
            let store = self.lock()?;
            let data = serde_json::to_vec(&*store).map_err(|e| sm_err(ErrorVerb::Write, e))?;
            (data, store.last_applied, store.last_membership.clone())
        };
        self.snapshot_seq += 1;
        let snapshot_id = format!("{}-{}", last_applied.map(|l| l.index).unwrap_or(0), self.snapshot_seq);
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
        self.persist(&StoredSnapshot { meta: meta.clone(), data: data.clone() }).await?;
        self.trace.event(&self.node_name, &format!("snapshot built at {}", meta.last_log_id.map(|l| l.index).unwrap_or(0)));
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, openraft::BasicNode>), StorageError> {
        let store = self.lock()?;
        Ok((store.last_applied, store.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let _apply_timer = self.telemetry.metrics.fsm_apply_timer();
        let mut results = Vec::new();
        let mut changed_keys = Vec::new();
        let mut trace_lines = Vec::new();
        {
            let mut store = self.lock()?;
            for entry in entries {
                let index = entry.log_id.index;
                store.last_applied = Some(entry.log_id);
                let result = match &entry.payload {
                    EntryPayload::Blank => CommandResult { ok: true, index },
                    EntryPayload::Normal(cmd) => {
                        let (result, changed) = store.kv.apply(index, cmd);
                        self.telemetry.metrics.kv_apply(cmd);
                        if !matches!(cmd, Command::Noop) {
                            trace_lines.push(format!("apply {index} t{} {cmd} ok={}", entry.log_id.leader_id.term, result.ok));
                        }
                        changed_keys.extend(changed);
                        result
                    }
                    EntryPayload::Membership(m) => {
                        store.last_membership = StoredMembership::new(Some(entry.log_id), m.clone());
                        trace_lines.push(format!(
                            "apply {index} t{} membership {:?}",
                            entry.log_id.leader_id.term,
                            m.voter_ids().collect::<Vec<_>>()
                        ));
                        CommandResult { ok: true, index }
                    }
                };
                results.push(result);
            }
        }
        for line in &trace_lines {
            self.trace.event(&self.node_name, line);
        }
        for key in &changed_keys {
            self.shared.watches.changed(key);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // openraft builds snapshots from a separate builder; ours shares the store, so a builder
        // is a cheap handle onto the same state.
        Self {
            shared: self.shared.clone(),
            disk: self.disk.clone(),
            trace: self.trace.clone(),
            node_name: self.node_name.clone(),
            snapshot_seq: self.snapshot_seq + 1000,
            telemetry: self.telemetry.clone(),
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
        let data = snapshot.into_inner();
        let store: Store = serde_json::from_slice(&data).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        // Fault point: a slow snapshot install, racing appends and reads.
        crate::buggify_delay!(200);
        // Persist first: if we crash after installing in memory, the log may already be purged.
        self.persist(&StoredSnapshot { meta: meta.clone(), data }).await?;
        *self.lock()? = store;
        self.trace.event(
            &self.node_name,
            &format!("snapshot installed at {}", meta.last_log_id.map(|l| l.index).unwrap_or(0)),
        );
        self.shared.watches.changed_all();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self
            .read_snapshot()
            .await?
            .map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
