//! The KV table: entries by key (ordered, for prefix scans) and delete tombstones.
//!
//! Index rules (Consul `agent/consul/state/kvs.go`): an entry's CreateIndex/ModifyIndex are the Raft
//! indexes of the writes that created/last changed it; a prefix's index is the newest ModifyIndex or
//! tombstone under it, so a blocking query on a prefix sees deletes. Tombstones are kept for the
//! life of the store (Consul reaps them after a grace period; noted as future work).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::{Command, CommandResult};

/// One stored KV entry (Consul's `DirEntry` minus the key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    /// Raft index that created the key.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
    /// How many times a session acquired the lock on this key.
    pub lock_index: u64,
    /// Opaque client flags.
    pub flags: u64,
    #[serde(with = "crate::codec::b64")]
    pub value: Vec<u8>,
    /// Session holding the lock, if any.
    pub session: Option<String>,
}

/// The KV table plus tombstones. Cloned only for snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvStore {
    entries: BTreeMap<String, KvEntry>,
    /// Deleted key -> Raft index of the delete.
    tombstones: BTreeMap<String, u64>,
    /// Newest Raft index that changed the table (writes and deletes).
    table_index: u64,
}

/// Iterates the keys of `map` that start with `prefix`.
fn prefixed<'a, V>(map: &'a BTreeMap<String, V>, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a V)> + 'a {
    map.range(prefix.to_string()..).take_while(move |(k, _)| k.starts_with(prefix))
}

impl KvStore {
    /// Applies a command at Raft index `index`; returns the result and the keys it changed (for
    /// waking watchers). A failed CAS changes nothing and reports no keys.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> (CommandResult, Vec<String>) {
        debug_assert!(index > self.table_index || matches!(cmd, Command::Noop), "apply must move forward");
        let (ok, changed) = match cmd {
            Command::KvSet { key, value, flags, cas } => self.set(index, key, value, *flags, *cas),
            Command::KvDelete { key, recurse, cas } => self.delete(index, key, *recurse, *cas),
            Command::Noop => (true, Vec::new()),
        };
        if !changed.is_empty() {
            self.table_index = index;
        }
        (CommandResult { ok, index }, changed)
    }

    fn set(&mut self, index: u64, key: &str, value: &[u8], flags: u64, cas: Option<u64>) -> (bool, Vec<String>) {
        let existing = self.entries.get(key);
        match (cas, existing) {
            (Some(0), Some(_)) => return (false, Vec::new()),
            (Some(c), Some(e)) if c != 0 && e.modify_index != c => return (false, Vec::new()),
            (Some(c), None) if c != 0 => return (false, Vec::new()),
            _ => {}
        }
        let entry = match self.entries.get(key) {
            Some(e) => KvEntry { modify_index: index, flags, value: value.to_vec(), ..e.clone() },
            None => KvEntry {
                create_index: index,
                modify_index: index,
                lock_index: 0,
                flags,
                value: value.to_vec(),
                session: None,
            },
        };
        self.entries.insert(key.to_string(), entry);
        self.tombstones.remove(key);
        (true, vec![key.to_string()])
    }

    fn delete(&mut self, index: u64, key: &str, recurse: bool, cas: Option<u64>) -> (bool, Vec<String>) {
        if recurse {
            let doomed: Vec<String> = prefixed(&self.entries, key).map(|(k, _)| k.clone()).collect();
            for k in &doomed {
                self.entries.remove(k);
                self.tombstones.insert(k.clone(), index);
            }
            return (true, doomed);
        }
        match (cas, self.entries.get(key)) {
            (Some(c), Some(e)) if e.modify_index != c => return (false, Vec::new()),
            (Some(_), None) => return (false, Vec::new()),
            (_, None) => return (true, Vec::new()),
            _ => {}
        }
        self.entries.remove(key);
        self.tombstones.insert(key.to_string(), index);
        (true, vec![key.to_string()])
    }

    /// The entry at `key` and the index a blocking query on it should report: its ModifyIndex, or
    /// the table index if absent (never 0 after clamping at the HTTP edge).
    pub fn get(&self, key: &str) -> (Option<&KvEntry>, u64) {
        match self.entries.get(key) {
            Some(e) => (Some(e), e.modify_index),
            None => (None, self.tombstones.get(key).copied().unwrap_or(self.table_index)),
        }
    }

    /// Entries under `prefix` in key order, and the prefix's index: the newest ModifyIndex or
    /// tombstone under it, or the table index when nothing was ever under it.
    pub fn list<'a>(&'a self, prefix: &'a str) -> (Vec<(&'a String, &'a KvEntry)>, u64) {
        let entries: Vec<_> = prefixed(&self.entries, prefix).collect();
        (entries, self.prefix_index(prefix))
    }

    /// Consul's `?keys[&separator=]`: key names under `prefix`, truncated after the first
    /// `separator` past the prefix (folders), deduplicated, in order.
    pub fn keys(&self, prefix: &str, separator: Option<&str>) -> (Vec<String>, u64) {
        let mut out: Vec<String> = Vec::new();
        for (k, _) in prefixed(&self.entries, prefix) {
            let name = match separator.filter(|s| !s.is_empty()) {
                Some(sep) => match k[prefix.len()..].find(sep) {
                    Some(pos) => k[..prefix.len() + pos + sep.len()].to_string(),
                    None => k.clone(),
                },
                None => k.clone(),
            };
            if out.last() != Some(&name) {
                out.push(name);
            }
        }
        (out, self.prefix_index(prefix))
    }

    fn prefix_index(&self, prefix: &str) -> u64 {
        let live = prefixed(&self.entries, prefix).map(|(_, e)| e.modify_index).max();
        let dead = prefixed(&self.tombstones, prefix).map(|(_, i)| *i).max();
        match live.max(dead) {
            Some(i) => i,
            None => self.table_index,
        }
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no keys are live.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Newest Raft index that changed the table.
    pub fn table_index(&self) -> u64 {
        self.table_index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, v: &str, cas: Option<u64>) -> Command {
        Command::KvSet { key: key.into(), value: v.as_bytes().to_vec(), flags: 0, cas }
    }

    #[test]
    fn cas_zero_fails_when_key_exists() {
        let mut kv = KvStore::default();
        assert!(kv.apply(1, &set("a", "1", Some(0))).0.ok);
        assert!(!kv.apply(2, &set("a", "2", Some(0))).0.ok);
        assert_eq!(kv.get("a").0.map(|e| e.value.clone()), Some(b"1".to_vec()));
    }

    #[test]
    fn cas_succeeds_only_at_current_modify_index() {
        let mut kv = KvStore::default();
        kv.apply(5, &set("a", "1", None));
        assert!(!kv.apply(6, &set("a", "2", Some(4))).0.ok);
        assert!(kv.apply(7, &set("a", "3", Some(5))).0.ok);
        let (e, idx) = kv.get("a");
        assert_eq!((e.map(|e| (e.create_index, e.modify_index)), idx), (Some((5, 7)), 7));
    }

    #[test]
    fn prefix_index_counts_delete_tombstones() {
        let mut kv = KvStore::default();
        kv.apply(1, &set("p/a", "1", None));
        kv.apply(2, &set("p/b", "1", None));
        kv.apply(3, &set("q", "1", None));
        kv.apply(4, &Command::KvDelete { key: "p/b".into(), recurse: false, cas: None });
        assert_eq!(kv.list("p/").1, 4);
        assert_eq!(kv.list("p/").0.len(), 1);
        kv.apply(5, &set("q", "2", None));
        assert_eq!(kv.list("p/").1, 4, "writes outside the prefix do not move its index");
    }

    #[test]
    fn keys_with_separator_groups_folders() {
        let mut kv = KvStore::default();
        for (i, k) in ["web/a", "web/sub/x", "web/sub/y", "web/z"].iter().enumerate() {
            kv.apply(i as u64 + 1, &set(k, "v", None));
        }
        let (keys, _) = kv.keys("web/", Some("/"));
        assert_eq!(keys, vec!["web/a", "web/sub/", "web/z"]);
    }

    #[test]
    fn recursive_delete_removes_only_the_prefix() {
        let mut kv = KvStore::default();
        kv.apply(1, &set("a/1", "v", None));
        kv.apply(2, &set("a/2", "v", None));
        kv.apply(3, &set("b", "v", None));
        let (res, changed) = kv.apply(4, &Command::KvDelete { key: "a/".into(), recurse: true, cas: None });
        assert!(res.ok);
        assert_eq!(changed.len(), 2);
        assert_eq!(kv.len(), 1);
    }

    #[test]
    fn delete_cas_mismatch_keeps_the_key() {
        let mut kv = KvStore::default();
        kv.apply(1, &set("a", "v", None));
        assert!(!kv.apply(2, &Command::KvDelete { key: "a".into(), recurse: false, cas: Some(9) }).0.ok);
        assert!(kv.apply(3, &Command::KvDelete { key: "a".into(), recurse: false, cas: Some(1) }).0.ok);
        assert!(kv.get("a").0.is_none());
    }
}
