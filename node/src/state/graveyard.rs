//! KV tombstones: the Raft index at which each deleted key was deleted.
//!
//! Source: Consul `agent/consul/state/graveyard.go`. A tombstone lets a blocking query on a
//! prefix see a delete (the prefix's index moves to the delete's index). Tombstones are reaped
//! once older than the tombstone TTL, by a `TombstoneRequest` the leader commits, so every server
//! forgets the same tombstones at the same log index. After a reap, indexes must not go
//! backwards: [`Graveyard::reaped_max`] remembers the newest reaped delete, and any index derived
//! from tombstones is at least that.

use std::collections::BTreeMap;

use super::txn::WriteTxn;
use super::watch::Table;

/// Tombstones by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graveyard {
    /// Deleted key → Raft index of the delete.
    pub(super) tombstones: BTreeMap<String, u64>,
    /// The newest delete index among reaped tombstones (0 if none reaped).
    pub(super) reaped_max: u64,
}

impl Graveyard {
    /// The tombstone of `key`, if it has one.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.tombstones.get(key).copied()
    }

    /// The newest tombstone held under `prefix` (0 if none; reaped ones are not held: see
    /// [`Self::reaped_max`]).
    pub fn newest_under(&self, prefix: &str) -> u64 {
        super::kv::prefixed(&self.tombstones, prefix).map(|(_, i)| *i).max().unwrap_or(0)
    }

    /// Number of tombstones held.
    pub fn len(&self) -> usize {
        self.tombstones.len()
    }

    /// Whether no tombstone is held.
    pub fn is_empty(&self) -> bool {
        self.tombstones.is_empty()
    }

    /// The newest reaped delete index.
    pub fn reaped_max(&self) -> u64 {
        self.reaped_max
    }
}

impl WriteTxn<'_> {
    /// Forgets tombstones at or below `reap_index`; returns how many.
    pub fn reap_tombstones(&mut self, reap_index: u64) -> u64 {
        let doomed: Vec<(String, u64)> =
            self.store().graveyard.tombstones.iter().filter(|(_, i)| **i <= reap_index).map(|(k, i)| (k.clone(), *i)).collect();
        for (key, index) in &doomed {
            self.set_tombstone(key, None);
            self.raise_reaped_max(*index);
        }
        if !doomed.is_empty() {
            self.bump(Table::Tombstones, "");
        }
        doomed.len() as u64
    }
}

impl super::store::Store {
    /// Whether any tombstone's delete index is ≤ `index` (something for a reap to do).
    pub fn has_tombstones_at_or_below(&self, index: u64) -> bool {
        self.graveyard.tombstones.values().any(|i| *i <= index)
    }
}
