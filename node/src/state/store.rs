//! The store: every replicated table, Consul's `index` table, and the apply entry point.
//!
//! Source: Consul `agent/consul/state/state_store.go` and `memdb.go`. Each table keeps per-row
//! CreateIndex/ModifyIndex; the `index` table keeps, per table, the Raft index of its newest
//! change, and [`Store::max_index`] is the newest across tables. All mutation goes through a
//! [`WriteTxn`], which applies several changes atomically or rolls them all back.
//!
//! Invariants (asserted on every apply, so the simulator trips on them): table indexes only move
//! forward, and never past the index being applied.

use std::collections::BTreeMap;

use super::graveyard::Graveyard;
use super::txn::WriteTxn;
use super::watch::{Change, Table};
use super::txn::NodeRowKey;
use crate::structs::{CommandResult, DirEntry, HealthCheck, Node, NodeService, Request, Session};

/// Every replicated table. Cloned only to take a snapshot; compared in tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    /// KV entries by key (ordered, for prefix scans).
    pub(super) kvs: super::kv_table::KvTable,
    /// KV delete tombstones.
    pub(super) graveyard: Graveyard,
    /// Consul's `index` table: the newest Raft index that changed each table.
    pub(super) indexes: BTreeMap<Table, u64>,
    /// Catalog nodes by name.
    pub(super) nodes: BTreeMap<String, Node>,
    /// Service instances by (node, service id). Written only through [`Store::put_service_row`],
    /// which keeps [`Store::service_index`] in step.
    pub(super) services: BTreeMap<NodeRowKey, NodeService>,
    /// Derived: the instance keys of each service name, so a lookup by name (every health query,
    /// every DNS answer) visits only that service's rows. Rebuilt, never snapshotted.
    pub(super) service_index: BTreeMap<String, std::collections::BTreeSet<NodeRowKey>>,
    /// Health checks by (node, check id).
    pub(super) checks: BTreeMap<NodeRowKey, HealthCheck>,
    /// Fine-grained indexes: `(Nodes, node)` moves on any change to a node, its services or
    /// checks; `(Services, name)` on any change to an instance of that service or its health
    /// (Consul keeps `service.<name>` entries in its index table; here also per node).
    pub(super) scope_indexes: BTreeMap<(Table, String), u64>,
    /// Sessions by id.
    pub(super) sessions: BTreeMap<String, Session>,
    /// Derived: the keys each session holds locked, so invalidating a session visits only its
    /// keys. Kept in step by [`Store::put_kv_row`]; rebuilt, never snapshotted.
    pub(super) session_locks: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Node coordinates by node name ([`super::coordinate`]).
    pub(super) coordinates: BTreeMap<String, crate::structs::CoordinateEntry>,
}

/// What applying one command did: its result, the rows it changed (for waking watchers), and the
/// keys whose lock a session invalidation freed, each with that session's lock-delay in ms
/// (recorded by the server, on its own clock, as Consul's in-memory `lockDelay`).
#[derive(Debug, Default)]
pub struct ApplyOutcome {
    pub result: CommandResult,
    pub changes: Vec<Change>,
    pub lock_delays: Vec<(String, u64)>,
    /// The store was replaced whole by a snapshot restore: every watcher must wake.
    pub restored: bool,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a write transaction at Raft index `index`. Dropping it without
    /// [`WriteTxn::commit`] rolls every change back.
    pub fn txn(&mut self, index: u64) -> WriteTxn<'_> {
        assert!(
            index >= self.max_index(),
            "apply must move forward: index {index} is behind the store's newest index {}",
            self.max_index()
        );
        WriteTxn::new(self, index)
    }

    /// Applies one decoded command at Raft index `index`, atomically. Returns the result and the
    /// rows it changed (for waking watchers). A write whose precondition fails (a CAS) changes
    /// nothing and reports no rows.
    pub fn apply(&mut self, index: u64, req: &Request) -> (CommandResult, Vec<Change>) {
        let out = self.apply_full(index, req);
        (out.result, out.changes)
    }

    /// [`Store::apply`], also reporting the lock-delays a session invalidation started.
    pub fn apply_full(&mut self, index: u64, req: &Request) -> ApplyOutcome {
        if let Request::Batch(b) = req {
            let applied = self.apply_batch(index, &b.commands, |store, cmd| Ok(store.apply_full(index, &cmd.decode()?)));
            return applied.unwrap_or_else(|e| ApplyOutcome {
                result: CommandResult::Refused { error: e.to_string(), index },
                ..ApplyOutcome::default()
            });
        }
        let mut txn = self.txn(index);
        let refused = |error: String| CommandResult::Refused { error, index };
        let result = match req {
            Request::Kvs(r) => txn.kvs_apply(r).map_or_else(refused, |ok| CommandResult::Kvs { ok, index }),
            Request::Session(r) => txn.session_apply(r).map_or_else(refused, |id| CommandResult::Session { id, index }),
            Request::Register(r) => CommandResult::Catalog { error: txn.ensure_registration(r).err(), index },
            Request::Deregister(r) => CommandResult::Catalog { error: txn.deregister(r).err(), index },
            Request::TombstoneReap(r) => CommandResult::TombstoneReap { reaped: txn.reap_tombstones(r.reap_index), index },
            Request::Txn(r) => {
                let (results, errors) = txn.txn_apply(&r.ops, false);
                CommandResult::Txn { results, errors, index }
            }
            Request::CoordinateBatchUpdate(r) => {
                txn.coordinate_batch_update(r);
                CommandResult::None { index }
            }
            Request::Ignored(_) => CommandResult::None { index },
            Request::Restore(r) => {
                drop(txn);
                return self.restore(index, r);
            }
            Request::Batch(_) => unreachable!("handled above"),
        };
        let (changes, lock_delays) = if result.ok() { txn.commit_full() } else { Default::default() };
        ApplyOutcome { result, changes, lock_delays, restored: false }
    }

    /// Applies a group-committed entry ([`crate::structs::BatchRequest`]): each command in order
    /// at `index` through `apply_one`, each atomic on its own with its own result, as if each had
    /// its own entry at that index. Readers see the entry whole (the state machine holds the
    /// store's lock across it). Errors: `apply_one`'s first error (a command this build cannot
    /// decode), which stops the state machine as for an entry of its own.
    pub fn apply_batch(
        &mut self,
        index: u64,
        commands: &[crate::structs::Command],
        mut apply_one: impl FnMut(&mut Store, &crate::structs::Command) -> Result<ApplyOutcome, crate::structs::CommandError>,
    ) -> Result<ApplyOutcome, crate::structs::CommandError> {
        let mut all = ApplyOutcome::default();
        let mut results = Vec::with_capacity(commands.len());
        for cmd in commands {
            let one = apply_one(self, cmd)?;
            results.push(one.result);
            all.changes.extend(one.changes);
            all.lock_delays.extend(one.lock_delays);
            all.restored |= one.restored;
        }
        all.result = CommandResult::Batch { results, index };
        Ok(all)
    }

    /// Replaces the whole store with a snapshot's (see [`Store::restored_at`]). A snapshot that
    /// does not decode is refused and changes nothing (the leader verified it before proposing,
    /// so this is only a defence).
    fn restore(&mut self, index: u64, req: &crate::structs::RestoreRequest) -> ApplyOutcome {
        match super::snapshot::decode_sections(&req.sections) {
            Ok(restored) => {
                *self = Store::restored_at(restored, index);
                ApplyOutcome { result: CommandResult::None { index }, restored: true, ..ApplyOutcome::default() }
            }
            Err(e) => ApplyOutcome { result: CommandResult::Refused { error: e.to_string(), index }, ..ApplyOutcome::default() },
        }
    }

    /// Rebuilds the KV table's B-tree with full nodes ([`super::kv_table::KvTable::compact`]);
    /// changes no row. O(KV rows): called after a snapshot has encoded them.
    pub fn compact(&mut self) {
        self.kvs.compact();
    }

    /// Inserts (`Some`) or removes (`None`) the KV row at `key`, keeping [`Store::session_locks`]
    /// in step; returns the previous row.
    pub(super) fn put_kv_row(&mut self, key: &str, row: Option<DirEntry>) -> Option<DirEntry> {
        if let Some(session) = row.as_ref().and_then(|r| r.session.clone()) {
            self.session_locks.entry(session).or_default().insert(key.to_string());
        }
        let now_held_by = row.as_ref().and_then(|r| r.session.clone());
        let prev = match row {
            Some(r) => {
                debug_assert_eq!(r.key, key, "a KV row is put at its own key");
                self.kvs.insert(r)
            }
            None => self.kvs.remove(key),
        };
        if let Some(old) = prev.as_ref().and_then(|p| p.session.as_ref()) {
            if now_held_by.as_ref() != Some(old) {
                if let Some(keys) = self.session_locks.get_mut(old) {
                    keys.remove(key);
                    if keys.is_empty() {
                        self.session_locks.remove(old);
                    }
                }
            }
        }
        prev
    }

    /// Inserts (`Some`) or removes (`None`) the service row at `key`, keeping the by-name index in
    /// step; returns the previous row.
    pub(super) fn put_service_row(&mut self, key: &NodeRowKey, row: Option<NodeService>) -> Option<NodeService> {
        if let Some(r) = &row {
            self.service_index.entry(r.service.clone()).or_default().insert(key.clone());
        }
        let prev = match row {
            Some(r) => self.services.insert(key.clone(), r),
            None => self.services.remove(key),
        };
        if let Some(p) = &prev {
            let still_named = self.services.get(key).is_some_and(|now| now.service == p.service);
            if !still_named {
                if let Some(keys) = self.service_index.get_mut(&p.service) {
                    keys.remove(key);
                    if keys.is_empty() {
                        self.service_index.remove(&p.service);
                    }
                }
            }
        }
        prev
    }

    /// The Raft index of the newest change to `table` (0 if never changed).
    pub fn table_index(&self, table: Table) -> u64 {
        self.indexes.get(&table).copied().unwrap_or(0)
    }

    /// The newest index across tables.
    pub fn max_index(&self) -> u64 {
        self.indexes.values().copied().max().unwrap_or(0)
    }

    /// The newest index of several tables (Consul's `maxIndexTxn`).
    pub fn max_index_of(&self, tables: &[Table]) -> u64 {
        tables.iter().map(|t| self.table_index(*t)).max().unwrap_or(0)
    }

    /// Table names with their row counts, for snapshots and `inspect`.
    pub fn table_sizes(&self) -> Vec<(Table, usize)> {
        vec![
            (Table::Kvs, self.kvs.len()),
            (Table::Tombstones, self.graveyard.len()),
            (Table::Nodes, self.nodes.len()),
            (Table::Services, self.services.len()),
            (Table::Checks, self.checks.len()),
            (Table::Sessions, self.sessions.len()),
            (Table::Coordinates, self.coordinates.len()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{BatchRequest, Command, DirEntry, KvsOp, KvsRequest};

    fn kv(op: KvsOp, key: &str, v: &str, cas: u64) -> Command {
        Command::kvs(&KvsRequest { op, dir_ent: DirEntry { modify_index: cas, ..DirEntry::new(key, v.as_bytes().to_vec()) } }).unwrap()
    }

    /// A batch applies each write on its own at the entry's index: a failed CAS changes nothing
    /// and fails alone, later writes see earlier ones, and all share the ModifyIndex.
    #[test]
    fn a_batch_applies_each_write_on_its_own_at_one_index() {
        let mut s = Store::new();
        s.apply(3, &Command::kvs(&KvsRequest { op: KvsOp::Set, dir_ent: DirEntry::new("a", b"0".to_vec()) }).unwrap().decode().unwrap());
        let batch = BatchRequest {
            commands: vec![
                kv(KvsOp::Cas, "a", "stale", 1),
                kv(KvsOp::Set, "b", "1", 0),
                kv(KvsOp::Cas, "a", "fresh", 3),
                kv(KvsOp::Cas, "b", "2", 7),
            ],
        };
        let cmd = Command::batch(&batch).unwrap();
        assert_eq!(cmd.to_string(), "batch[set a len=5 cas=Some(1); set b len=1 cas=None; set a len=5 cas=Some(3); set b len=1 cas=Some(7)]");
        let (result, changes) = s.apply(7, &cmd.decode().unwrap());
        let CommandResult::Batch { results, index: 7 } = result else { panic!("{result:?}") };
        let oks: Vec<bool> = results.iter().map(CommandResult::ok).collect();
        assert_eq!(oks, [false, true, true, true], "the stale CAS fails alone; the CAS on b sees b's set at index 7");
        assert!(results.iter().all(|r| r.index() == 7));
        assert_eq!(s.kv_get("a").0.map(|e| (&e.value[..], e.modify_index)), Some((&b"fresh"[..], 7)));
        assert_eq!(s.kv_get("b").0.map(|e| &e.value[..]), Some(&b"2"[..]));
        assert!(!changes.is_empty());
    }
}
