//! The KV table's rows: [`DirEntry`]s ordered by their own key, each key held once.
//!
//! A `BTreeMap<String, DirEntry>` held every key twice (the map's key and the row's `Key`, each
//! its own allocation) and gave every B-tree slot 24 more bytes. Here the row is its own key
//! ([`Row`] orders and borrows as its `key`), so a lookup by `&str` needs no allocation and a
//! prefix scan starts at the prefix itself. Issue 12 item 5 (a server holding 100k keys of 256 B
//! stays under 2x data plus a fixed base); `node/tests/store_memory.rs` counts the bytes.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;

use crate::structs::DirEntry;

/// A KV row, ordered and looked up by its key alone.
#[derive(Clone, Debug)]
struct Row(DirEntry);

impl PartialEq for Row {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}
impl Eq for Row {}
impl PartialOrd for Row {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Row {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.key.cmp(&other.0.key)
    }
}
impl Borrow<str> for Row {
    fn borrow(&self) -> &str {
        self.0.key.as_str()
    }
}

/// Live KV entries in key order. Equality compares whole rows (the store's tests compare stores).
#[derive(Clone, Debug, Default)]
pub struct KvTable {
    rows: BTreeSet<Row>,
}

impl PartialEq for KvTable {
    fn eq(&self, other: &Self) -> bool {
        self.rows.len() == other.rows.len() && self.values().eq(other.values())
    }
}
impl Eq for KvTable {}

impl KvTable {
    /// The row at `key`.
    pub fn get(&self, key: &str) -> Option<&DirEntry> {
        self.rows.get(key).map(|r| &r.0)
    }

    /// Whether a row is at `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.rows.contains(key)
    }

    /// Puts `row` at its key; returns the row it replaced.
    pub fn insert(&mut self, row: DirEntry) -> Option<DirEntry> {
        self.rows.replace(Row(row)).map(|r| r.0)
    }

    /// Removes and returns the row at `key`.
    pub fn remove(&mut self, key: &str) -> Option<DirEntry> {
        self.rows.take(key).map(|r| r.0)
    }

    /// Every row, in key order.
    pub fn values(&self) -> impl Iterator<Item = &DirEntry> {
        self.rows.iter().map(|r| &r.0)
    }

    /// The rows whose key starts with `prefix`, in key order.
    pub fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a DirEntry> + 'a {
        self.rows
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|r| &r.0)
            .take_while(move |e| e.key.starts_with(prefix))
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rebuilds the B-tree with full nodes. Keys written in order (the common load: sequence
    /// numbers, timestamps) leave each leaf a little over half full, since a full leaf splits
    /// near its middle; a bulk build from sorted rows fills every leaf. Moves the rows (no value
    /// is copied); O(rows), so it is done where a pass over every row is already being paid
    /// for: after a snapshot has encoded them. Also gives back each value's share count: see
    /// [`unshared`].
    pub fn compact(&mut self) {
        let rows = std::mem::take(&mut self.rows);
        self.rows = rows
            .into_iter()
            .map(|Row(mut e)| {
                e.value = unshared(std::mem::take(&mut e.value));
                Row(e)
            })
            .collect();
    }
}

/// `value` without its share count, if nothing else holds it. The first clone of a `Bytes` built
/// from a `Vec` (the store's copy of a decoded write's value) allocates a 24-byte count block
/// (a 32-byte malloc chunk) that stays after the other holder is gone: 32 B/key. Giving the buffer
/// back as a `Vec` frees the block without copying; a `Bytes` from a `Vec` as long as its
/// capacity has none until it is cloned again. A value still held elsewhere (a read in flight)
/// is left as it is.
fn unshared(value: bytes::Bytes) -> bytes::Bytes {
    if value.is_unique() { Vec::from(value).into() } else { value }
}

impl FromIterator<DirEntry> for KvTable {
    /// Later rows replace earlier ones with the same key.
    fn from_iter<I: IntoIterator<Item = DirEntry>>(iter: I) -> Self {
        let mut rows: Vec<Row> = iter.into_iter().map(Row).collect();
        // Stable: among equal keys the last one written is kept, as by repeated inserts.
        rows.sort();
        rows.reverse();
        rows.dedup();
        Self { rows: rows.into_iter().rev().collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, value: &str) -> DirEntry {
        DirEntry::new(key, value.as_bytes().to_vec())
    }

    #[test]
    fn rows_are_found_replaced_and_removed_by_key() {
        let mut t = KvTable::default();
        assert_eq!(t.insert(row("a/1", "x")), None);
        assert_eq!(t.insert(row("a/1", "y")).map(|r| r.value), Some(bytes::Bytes::from("x")));
        assert_eq!(t.get("a/1").map(|r| r.value.clone()), Some(bytes::Bytes::from("y")));
        assert!(t.contains_key("a/1") && !t.contains_key("a"));
        assert_eq!(t.remove("a/1").map(|r| r.key), Some("a/1".into()));
        assert!(t.is_empty());
    }

    #[test]
    fn prefix_scans_stop_at_the_first_key_outside_the_prefix() {
        let t: KvTable = ["a", "a/1", "a/2", "a0", "b/1", "a/"].iter().map(|k| row(k, "")).collect();
        let keys = |p: &str| t.prefixed(p).map(|e| e.key.to_string()).collect::<Vec<_>>();
        assert_eq!(keys("a/"), ["a/", "a/1", "a/2"]);
        assert_eq!(keys("a"), ["a", "a/", "a/1", "a/2", "a0"]);
        assert_eq!(keys(""), ["a", "a/", "a/1", "a/2", "a0", "b/1"]);
        assert!(keys("c").is_empty());
    }

    #[test]
    fn collecting_keeps_the_last_row_of_a_key_and_compacting_keeps_every_row() {
        let mut t: KvTable = [row("k", "old"), row("j", "1"), row("k", "new")].into_iter().collect();
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("k").map(|r| r.value.clone()), Some(bytes::Bytes::from("new")));
        let before = t.clone();
        t.compact();
        assert_eq!(t, before);
    }

    #[test]
    fn compacting_copies_no_value_whether_or_not_something_else_holds_it() {
        let held = bytes::Bytes::from(vec![b'x'; 64]);
        let alone = bytes::Bytes::from(vec![b'y'; 64]);
        let (held_at, alone_at) = (held.as_ptr(), alone.as_ptr());
        // Each clone gives its value a share count; only `alone`'s other holder then goes away.
        let mut t: KvTable = [DirEntry::new("a", held.clone()), DirEntry::new("b", alone.clone())].into_iter().collect();
        drop(alone);
        t.compact();
        let a = t.get("a").map(|r| r.value.clone()).unwrap_or_default();
        assert_eq!((a.as_ptr(), &a[..]), (held_at, &[b'x'; 64][..]));
        let b = t.get("b").map(|r| &r.value);
        assert!(b.is_some_and(|v| v.as_ptr() == alone_at && v[..] == [b'y'; 64] && v.is_unique()));
    }
}
