//! Write transactions: several changes at one Raft index, applied atomically or rolled back whole.
//!
//! `/v1/txn` needs this, and so does a session invalidation that releases its locks in the same
//! Raft entry. Every mutation records how to undo itself; [`WriteTxn::commit`] forgets the undo
//! log and returns the changed rows, while dropping an uncommitted transaction replays the undo
//! log backwards, leaving the store exactly as it was.

use super::store::Store;
use super::watch::{Change, Table};
use crate::structs::{DirEntry, HealthCheck, Node, NodeService, Session};

/// A catalog row's key: (node name, service or check id).
pub(super) type NodeRowKey = (String, String);

/// How to put one mutated thing back.
enum Undo {
    KvRow { key: smol_str::SmolStr, prev: Option<DirEntry> },
    Node { key: String, prev: Option<Node> },
    Service { key: NodeRowKey, prev: Option<NodeService> },
    Check { key: NodeRowKey, prev: Option<HealthCheck> },
    Session { key: String, prev: Option<Session> },
    Coordinate { key: String, prev: Option<crate::structs::CoordinateEntry> },
    ScopeIndex { key: (Table, String), prev: Option<u64> },
    Tombstone { key: String, prev: Option<u64> },
    ReapedMax { prev: u64 },
    TableIndex { table: Table, prev: Option<u64> },
}

/// An open write transaction at one Raft index.
pub struct WriteTxn<'a> {
    pub(super) store: &'a mut Store,
    index: u64,
    undo: Vec<Undo>,
    changes: Vec<Change>,
    /// Keys freed by a session invalidation, with the session's lock-delay in ms.
    lock_delays: Vec<(String, u64)>,
}

impl<'a> WriteTxn<'a> {
    pub(super) fn new(store: &'a mut Store, index: u64) -> Self {
        Self { store, index, undo: Vec::new(), changes: Vec::new(), lock_delays: Vec::new() }
    }

    /// The Raft index this transaction writes at.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Read access to the store as this transaction has changed it so far.
    pub fn store(&self) -> &Store {
        self.store
    }

    /// Keeps every change; returns the rows changed, for waking watchers.
    pub fn commit(self) -> Vec<Change> {
        self.commit_full().0
    }

    /// Keeps every change; returns the rows changed and the lock-delays started (see
    /// [`super::ApplyOutcome`]).
    pub fn commit_full(mut self) -> (Vec<Change>, Vec<(String, u64)>) {
        self.undo.clear();
        (std::mem::take(&mut self.changes), std::mem::take(&mut self.lock_delays))
    }

    /// Records that `key`'s lock was freed by an invalidated session with this lock-delay.
    pub(super) fn start_lock_delay(&mut self, key: &str, delay_ms: u64) {
        if delay_ms > 0 {
            self.lock_delays.push((key.to_string(), delay_ms));
        }
    }

    /// Records that `table` changed at this index (Consul's `indexUpdateMaxTxn`).
    pub(super) fn bump(&mut self, table: Table, key: &str) {
        let prev = self.store.indexes.get(&table).copied();
        assert!(prev.unwrap_or(0) <= self.index, "{} index would go backwards: {prev:?} -> {}", table.name(), self.index);
        if prev != Some(self.index) {
            self.undo.push(Undo::TableIndex { table, prev });
            self.store.indexes.insert(table, self.index);
        }
        self.changes.push(Change::row(table, key));
    }

    /// Records that row `key` of `table` changed in scope only (see [`Change::wakes_table`]),
    /// without moving the table's index.
    pub(super) fn touch(&mut self, table: Table, key: &str) {
        self.changes.push(Change { table, key: key.to_string(), wakes_table: false });
    }

    /// Inserts or replaces a KV row.
    pub(super) fn put_kv(&mut self, entry: DirEntry) {
        let key = entry.key.clone();
        let prev = self.store.put_kv_row(&key, Some(entry));
        self.undo.push(Undo::KvRow { key, prev });
    }

    /// Removes a KV row; returns it.
    pub(super) fn remove_kv(&mut self, key: &str) -> Option<DirEntry> {
        let prev = self.store.put_kv_row(key, None);
        if prev.is_some() {
            self.undo.push(Undo::KvRow { key: key.into(), prev: prev.clone() });
        }
        prev
    }

    /// Inserts (`Some`) or removes (`None`) a catalog node row; returns the previous row.
    pub(super) fn set_node(&mut self, key: &str, row: Option<Node>) -> Option<Node> {
        let prev = match row {
            Some(r) => self.store.nodes.insert(key.to_string(), r),
            None => self.store.nodes.remove(key),
        };
        self.undo.push(Undo::Node { key: key.to_string(), prev: prev.clone() });
        prev
    }

    /// Inserts (`Some`) or removes (`None`) a session row; returns the previous row.
    pub(super) fn set_session(&mut self, key: &str, row: Option<Session>) -> Option<Session> {
        let prev = match row {
            Some(r) => self.store.sessions.insert(key.to_string(), r),
            None => self.store.sessions.remove(key),
        };
        self.undo.push(Undo::Session { key: key.to_string(), prev: prev.clone() });
        prev
    }

    /// Inserts (`Some`) or removes (`None`) a node's coordinate row.
    pub(super) fn set_coordinate(&mut self, key: &str, row: Option<crate::structs::CoordinateEntry>) {
        let prev = match row {
            Some(r) => self.store.coordinates.insert(key.to_string(), r),
            None => self.store.coordinates.remove(key),
        };
        self.undo.push(Undo::Coordinate { key: key.to_string(), prev });
    }

    /// Inserts (`Some`) or removes (`None`) a service instance row; returns the previous row.
    pub(super) fn set_service(&mut self, key: &NodeRowKey, row: Option<NodeService>) -> Option<NodeService> {
        let prev = self.store.put_service_row(key, row);
        self.undo.push(Undo::Service { key: key.clone(), prev: prev.clone() });
        prev
    }

    /// Inserts (`Some`) or removes (`None`) a check row; returns the previous row.
    pub(super) fn set_check(&mut self, key: &NodeRowKey, row: Option<HealthCheck>) -> Option<HealthCheck> {
        let prev = match row {
            Some(r) => self.store.checks.insert(key.clone(), r),
            None => self.store.checks.remove(key),
        };
        self.undo.push(Undo::Check { key: key.clone(), prev: prev.clone() });
        prev
    }

    /// Moves the fine-grained index of one scope (a node, or a service name) to this
    /// transaction's index, and wakes its watchers (see [`Store::scope_index`]).
    ///
    /// The scope of a node or service name that no longer exists is dropped instead, so deleted
    /// names do not pile up: an absent scope reports the catalog's newest index, which this very
    /// write moved to its own index, so readers see the same index either way and it never goes
    /// backwards.
    pub(super) fn bump_scope(&mut self, table: Table, key: &str) {
        let k = (table, key.to_string());
        let gone = match table {
            Table::Services => !self.store.service_index.contains_key(key),
            Table::Nodes => !self.store.nodes.contains_key(key),
            _ => false,
        };
        let now = (!gone).then_some(self.index);
        let prev = match now {
            Some(i) => self.store.scope_indexes.insert(k.clone(), i),
            None => self.store.scope_indexes.remove(&k),
        };
        if prev != now {
            self.undo.push(Undo::ScopeIndex { key: k, prev });
        }
        self.touch(table, key);
    }

    /// Sets (`Some`) or clears (`None`) the tombstone of `key`.
    pub(super) fn set_tombstone(&mut self, key: &str, index: Option<u64>) {
        let prev = match index {
            Some(i) => self.store.graveyard.tombstones.insert(key.to_string(), i),
            None => self.store.graveyard.tombstones.remove(key),
        };
        if prev != index {
            self.undo.push(Undo::Tombstone { key: key.to_string(), prev });
        }
    }

    /// Raises the graveyard's reaped-index floor.
    pub(super) fn raise_reaped_max(&mut self, index: u64) {
        let prev = self.store.graveyard.reaped_max;
        if index > prev {
            self.undo.push(Undo::ReapedMax { prev });
            self.store.graveyard.reaped_max = index;
        }
    }

    fn rollback(&mut self) {
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::KvRow { key, prev } => {
                    self.store.put_kv_row(&key, prev);
                }
                Undo::Session { key, prev } => restore(&mut self.store.sessions, key, prev),
                Undo::Node { key, prev } => restore(&mut self.store.nodes, key, prev),
                Undo::Coordinate { key, prev } => restore(&mut self.store.coordinates, key, prev),
                Undo::Service { key, prev } => {
                    self.store.put_service_row(&key, prev);
                }
                Undo::Check { key, prev } => restore(&mut self.store.checks, key, prev),
                Undo::ScopeIndex { key, prev } => restore(&mut self.store.scope_indexes, key, prev),
                Undo::Tombstone { key, prev: Some(i) } => {
                    self.store.graveyard.tombstones.insert(key, i);
                }
                Undo::Tombstone { key, prev: None } => {
                    self.store.graveyard.tombstones.remove(&key);
                }
                Undo::ReapedMax { prev } => self.store.graveyard.reaped_max = prev,
                Undo::TableIndex { table, prev: Some(i) } => {
                    self.store.indexes.insert(table, i);
                }
                Undo::TableIndex { table, prev: None } => {
                    self.store.indexes.remove(&table);
                }
            }
        }
        self.changes.clear();
    }
}

/// Puts `key` back to `prev` (present or absent) in `map`.
fn restore<K: Ord, V>(map: &mut std::collections::BTreeMap<K, V>, key: K, prev: Option<V>) {
    match prev {
        Some(v) => {
            map.insert(key, v);
        }
        None => {
            map.remove(&key);
        }
    }
}

impl Drop for WriteTxn<'_> {
    fn drop(&mut self) {
        self.rollback();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{KvsOp, KvsRequest};

    fn set(key: &str) -> KvsRequest {
        KvsRequest { op: KvsOp::Set, dir_ent: DirEntry::new(key, b"v".to_vec()) }
    }

    #[test]
    fn dropped_transaction_rolls_every_change_back() {
        let mut store = Store::new();
        {
            let mut txn = store.txn(1);
            txn.kvs_apply(&set("a")).unwrap();
            txn.kvs_apply(&set("b")).unwrap();
            txn.commit();
        }
        let before = store.clone();
        {
            let mut txn = store.txn(2);
            txn.kvs_apply(&set("c")).unwrap();
            txn.kvs_apply(&KvsRequest { op: KvsOp::Delete, dir_ent: DirEntry::new("a", bytes::Bytes::new()) }).unwrap();
            txn.kvs_apply(&KvsRequest { op: KvsOp::DeleteTree, dir_ent: DirEntry::new("", bytes::Bytes::new()) }).unwrap();
            assert!(txn.store().kv_get("b").0.is_none(), "the transaction sees its own writes");
        }
        assert_eq!(store, before);
    }

    #[test]
    fn committed_transaction_changes_several_rows_at_one_index() {
        let mut store = Store::new();
        let mut txn = store.txn(7);
        txn.kvs_apply(&set("x")).unwrap();
        txn.kvs_apply(&set("y")).unwrap();
        let changes = txn.commit();
        assert_eq!(changes.len(), 2);
        assert_eq!(store.kv_get("x").1, 7);
        assert_eq!(store.kv_get("y").0.map(|e| e.create_index), Some(7));
    }

    #[test]
    #[should_panic(expected = "apply must move forward")]
    fn applying_behind_the_newest_index_is_refused() {
        let mut store = Store::new();
        let mut txn = store.txn(5);
        txn.kvs_apply(&set("a")).unwrap();
        txn.commit();
        let _ = store.txn(4);
    }
}
