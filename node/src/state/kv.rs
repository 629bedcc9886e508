//! The KV table: entries by key (ordered, for prefix scans), with delete tombstones in the
//! [`super::graveyard`].
//!
//! Index rules (Consul `agent/consul/state/kvs.go`): an entry's CreateIndex/ModifyIndex are the
//! Raft indexes of the writes that created/last changed it. A read of a missing key reports its
//! tombstone's index, else the newest index of the `kvs` and `tombstones` tables. A prefix's index
//! is the newest ModifyIndex or tombstone under it (so a blocking query on a prefix sees deletes),
//! else the tables' newest index.

use std::collections::BTreeMap;

use super::store::Store;
use super::txn::WriteTxn;
use super::watch::Table;
use smol_str::SmolStr;

use crate::structs::{DirEntry, KvsOp, KvsRequest};

/// Iterates the rows of `map` whose key starts with `prefix`.
pub(super) fn prefixed<'a, V>(map: &'a BTreeMap<String, V>, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a V)> + 'a {
    map.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded)).take_while(move |(k, _)| k.starts_with(prefix))
}

const KV_TABLES: [Table; 2] = [Table::Kvs, Table::Tombstones];

impl Store {
    /// The entry at `key` and the index a blocking query on it reports.
    pub fn kv_get(&self, key: &str) -> (Option<&DirEntry>, u64) {
        match self.kvs.get(key) {
            Some(e) => (Some(e), e.modify_index),
            None => (None, self.graveyard.get(key).unwrap_or_else(|| self.max_index_of(&KV_TABLES))),
        }
    }

    /// Entries under `prefix` in key order, and the prefix's index.
    pub fn kv_list<'a>(&'a self, prefix: &'a str) -> (Vec<&'a DirEntry>, u64) {
        let entries: Vec<&DirEntry> = self.kvs.prefixed(prefix).collect();
        (entries, self.kv_prefix_index(prefix))
    }

    /// Consul's `?keys[&separator=]`: key names under `prefix`, truncated after the first
    /// `separator` past the prefix (folders), deduplicated, in order.
    pub fn kv_keys(&self, prefix: &str, separator: Option<&str>) -> (Vec<String>, u64) {
        let mut out: Vec<String> = Vec::new();
        for k in self.kvs.prefixed(prefix).map(|e| &e.key) {
            let name = match separator.filter(|s| !s.is_empty()) {
                Some(sep) => match k[prefix.len()..].find(sep) {
                    Some(pos) => &k[..prefix.len() + pos + sep.len()],
                    None => k.as_str(),
                },
                None => k.as_str(),
            };
            if out.last().map(String::as_str) != Some(name) {
                out.push(name.to_string());
            }
        }
        (out, self.kv_prefix_index(prefix))
    }

    fn kv_prefix_index(&self, prefix: &str) -> u64 {
        let live = self.kvs.prefixed(prefix).map(|e| e.modify_index).max().unwrap_or(0);
        match live.max(self.graveyard.newest_under(prefix)) {
            // Nothing under the prefix, live or tombstoned: the tables' index (Consul
            // `kvsListTxn`), which is also past every reaped delete. Flooring this case at the
            // newest reaped delete instead sent an empty prefix's index back below the tables'
            // index it had reported before the reap (found by the snapshot-restore scenario).
            0 => self.max_index_of(&KV_TABLES),
            i => i.max(self.graveyard.reaped_max()),
        }
    }

    /// Number of live keys.
    pub fn kv_len(&self) -> usize {
        self.kvs.len()
    }
}

/// The session a lock verb names. Errors: none given (Consul's "missing session").
fn lock_session(e: &DirEntry) -> Result<&str, String> {
    e.session.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| "missing session".to_string())
}

impl WriteTxn<'_> {
    /// Applies a KV write (Consul `kvsSetTxn`, `kvsDeleteTxn`, `kvsDeleteTreeTxn`, `kvsLockTxn`,
    /// `kvsUnlockTxn`, the CAS variants). `Ok(false)` when a precondition fails (a CAS, a lock
    /// held by another session, a release by a session that does not hold the lock); nothing
    /// changes then. Errors, which refuse the write: a lock verb without a session, or naming a
    /// session that does not exist (Consul's "invalid session").
    pub fn kvs_apply(&mut self, req: &KvsRequest) -> Result<bool, String> {
        let e = &req.dir_ent;
        Ok(match req.op {
            KvsOp::Set => self.kv_set(e),
            KvsOp::Cas => {
                let current = self.store().kvs.get(&e.key).map(|x| x.modify_index);
                let ok = match (e.modify_index, current) {
                    (0, None) => true,
                    (want, Some(have)) => want != 0 && want == have,
                    (_, None) => false,
                };
                ok && self.kv_set(e)
            }
            KvsOp::Delete => self.kv_delete(&e.key),
            // Consul's `kvsDeleteCASTxn`: a key that is already gone counts as deleted (`true`).
            KvsOp::DeleteCas => match self.store().kvs.get(&e.key) {
                Some(x) if x.modify_index == e.modify_index => self.kv_delete(&e.key),
                Some(_) => false,
                None => true,
            },
            KvsOp::DeleteTree => {
                let doomed: Vec<SmolStr> = self.store().kvs.prefixed(&e.key).map(|r| r.key.clone()).collect();
                for k in &doomed {
                    self.kv_delete(k);
                }
                true
            }
            KvsOp::Lock => self.kv_lock(e)?,
            KvsOp::Unlock => self.kv_unlock(e)?,
        })
    }

    /// Consul `kvsLockTxn`: the session takes the key's lock if it is free (LockIndex + 1), or
    /// keeps it (same LockIndex) if it already holds it; either way the value and flags are set.
    fn kv_lock(&mut self, e: &DirEntry) -> Result<bool, String> {
        let session = lock_session(e)?;
        if !self.store().sessions.contains_key(session) {
            return Err(format!("invalid session {session:?}"));
        }
        let lock = match self.store().kvs.get(&e.key) {
            // The holder again: a value update, not a new acquisition.
            Some(old) if old.session.as_deref() == Some(session) => None,
            Some(old) if old.session.is_some() => return Ok(false),
            Some(old) => Some((old.lock_index + 1, Some(session.to_string()))),
            None => Some((1, Some(session.to_string()))),
        };
        self.write_value(e, lock);
        Ok(true)
    }

    /// Consul `kvsUnlockTxn`: the holder frees the lock (LockIndex stays) and sets the value.
    /// `false` when the key is absent or held by someone else (or no one).
    fn kv_unlock(&mut self, e: &DirEntry) -> Result<bool, String> {
        let session = lock_session(e)?;
        match self.store().kvs.get(&e.key) {
            Some(old) if old.session.as_deref() == Some(session) => {
                let lock_index = old.lock_index;
                self.write_value(e, Some((lock_index, None)));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn kv_set(&mut self, e: &DirEntry) -> bool {
        self.write_value(e, None);
        true
    }

    /// Writes `e`'s value and flags at this index, onto the existing row (keeping its CreateIndex,
    /// LockIndex and Session) or as a new row; `lock`, when given, sets the row's (LockIndex,
    /// Session). Clears the key's tombstone.
    fn write_value(&mut self, e: &DirEntry, lock: Option<(u64, Option<String>)>) {
        let index = self.index();
        // A copy, not a clone: the first clone of a `Bytes` decoded from the command gives it a
        // 24-byte share count (a 32 B malloc chunk) that the row would keep until the next
        // compaction, 32 B/key; a copy of the value costs the same one allocation now and
        // leaves none behind (issue 12 item 5).
        let value = bytes::Bytes::copy_from_slice(&e.value);
        let mut entry = match self.store().kvs.get(&e.key) {
            Some(old) => DirEntry { flags: e.flags, value, modify_index: index, ..old.clone() },
            None => DirEntry { flags: e.flags, create_index: index, modify_index: index, ..DirEntry::new(e.key.clone(), value) },
        };
        if let Some((lock_index, session)) = lock {
            entry.lock_index = lock_index;
            entry.session = session;
        }
        self.put_kv(entry);
        self.set_tombstone(&e.key, None);
        self.bump(Table::Kvs, &e.key);
    }

    /// Deletes one key, leaving a tombstone. Deleting a missing key succeeds and changes nothing.
    pub(super) fn kv_delete(&mut self, key: &str) -> bool {
        if self.remove_kv(key).is_some() {
            let index = self.index();
            self.set_tombstone(key, Some(index));
            self.bump(Table::Kvs, key);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{Request, TombstoneReapRequest};

    fn req(op: KvsOp, key: &str, v: &str, cas: u64) -> Request {
        Request::Kvs(KvsRequest { op, dir_ent: DirEntry { modify_index: cas, ..DirEntry::new(key, v.as_bytes().to_vec()) } })
    }
    fn set(key: &str, v: &str) -> Request {
        req(KvsOp::Set, key, v, 0)
    }

    #[test]
    fn cas_zero_fails_when_key_exists() {
        let mut s = Store::new();
        assert!(s.apply(1, &req(KvsOp::Cas, "a", "1", 0)).0.ok());
        assert!(!s.apply(2, &req(KvsOp::Cas, "a", "2", 0)).0.ok());
        assert_eq!(s.kv_get("a").0.map(|e| e.value.to_vec()), Some(b"1".to_vec()));
    }

    #[test]
    fn cas_succeeds_only_at_current_modify_index() {
        let mut s = Store::new();
        s.apply(5, &set("a", "1"));
        assert!(!s.apply(6, &req(KvsOp::Cas, "a", "2", 4)).0.ok());
        assert!(s.apply(7, &req(KvsOp::Cas, "a", "3", 5)).0.ok());
        let (e, idx) = s.kv_get("a");
        assert_eq!((e.map(|e| (e.create_index, e.modify_index)), idx), (Some((5, 7)), 7));
    }

    #[test]
    fn prefix_index_counts_delete_tombstones() {
        let mut s = Store::new();
        s.apply(1, &set("p/a", "1"));
        s.apply(2, &set("p/b", "1"));
        s.apply(3, &set("q", "1"));
        s.apply(4, &req(KvsOp::Delete, "p/b", "", 0));
        assert_eq!(s.kv_list("p/").1, 4);
        assert_eq!(s.kv_list("p/").0.len(), 1);
        s.apply(5, &set("q", "2"));
        assert_eq!(s.kv_list("p/").1, 4, "writes outside the prefix do not move its index");
    }

    #[test]
    fn keys_with_separator_groups_folders() {
        let mut s = Store::new();
        for (i, k) in ["web/a", "web/sub/x", "web/sub/y", "web/z"].iter().enumerate() {
            s.apply(i as u64 + 1, &set(k, "v"));
        }
        assert_eq!(s.kv_keys("web/", Some("/")).0, vec!["web/a", "web/sub/", "web/z"]);
    }

    #[test]
    fn recursive_delete_removes_only_the_prefix() {
        let mut s = Store::new();
        s.apply(1, &set("a/1", "v"));
        s.apply(2, &set("a/2", "v"));
        s.apply(3, &set("b", "v"));
        let (res, changed) = s.apply(4, &req(KvsOp::DeleteTree, "a/", "", 0));
        assert!(res.ok());
        assert_eq!(changed.len(), 2);
        assert_eq!(s.kv_len(), 1);
    }

    #[test]
    fn delete_cas_mismatch_keeps_the_key() {
        let mut s = Store::new();
        s.apply(1, &set("a", "v"));
        assert!(!s.apply(2, &req(KvsOp::DeleteCas, "a", "", 9)).0.ok());
        assert!(s.apply(3, &req(KvsOp::DeleteCas, "a", "", 1)).0.ok());
        assert!(s.apply(4, &req(KvsOp::DeleteCas, "a", "", 1)).0.ok(), "a missing key counts as deleted, as in Consul");
        assert!(s.kv_get("a").0.is_none());
    }

    #[test]
    fn reaping_tombstones_never_moves_an_index_backwards() {
        let mut s = Store::new();
        s.apply(1, &set("p/a", "v"));
        s.apply(2, &set("p/b", "v"));
        s.apply(3, &req(KvsOp::Delete, "p/b", "", 0));
        let (list_before, get_before) = (s.kv_list("p/").1, s.kv_get("p/b").1);
        assert_eq!((list_before, get_before), (3, 3));
        assert!(!s.graveyard.is_empty());
        let (res, _) = s.apply(4, &Request::TombstoneReap(TombstoneReapRequest { reap_index: 3 }));
        assert_eq!(res, crate::structs::CommandResult::TombstoneReap { reaped: 1, index: 4 });
        assert_eq!(s.graveyard.len(), 0, "the tombstone is gone");
        assert!(s.graveyard.is_empty());
        assert!(s.kv_list("p/").1 >= list_before);
        assert!(s.kv_get("p/b").1 >= get_before);
    }

    #[test]
    fn an_empty_prefix_keeps_the_tables_index_across_a_reap() {
        let mut s = Store::new();
        s.apply(1, &set("a", "v"));
        s.apply(2, &req(KvsOp::Delete, "a", "", 0));
        s.apply(3, &set("b", "v"));
        assert_eq!(s.kv_list("empty/").1, 3);
        s.apply(4, &Request::TombstoneReap(TombstoneReapRequest { reap_index: 2 }));
        assert_eq!(s.kv_list("empty/").1, 4, "the reap moved the tables' index; nothing moves it back to the reaped delete");
    }
}
