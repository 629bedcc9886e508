//! Watches for blocking queries: wake a query only when a row or prefix it read changed.
//!
//! Consul wakes KV blocking queries on table-wide index changes, so every write wakes every
//! watcher (Consul #4984, #3890). Here a query registers what it read — a row, a prefix of rows,
//! or a whole table — and an applied write wakes only the watches of the rows it changed: the
//! exact row, every watched prefix of it, and its table.
//!
//! Bounded: watches nobody waits on are dropped whenever the set doubles past its last clean
//! size, and past [`MAX_WATCHES`] distinct keys a query is handed its table's watch instead
//! (coarser, never wrong: a table watch fires on every change to the table).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Most distinct watch keys kept; beyond it queries share their table's watch.
pub const MAX_WATCHES: usize = 65_536;
/// Clean when the set grows past this many keys at least.
const MIN_CLEAN_AT: usize = 64;

/// A replicated table, as named in watch keys and Consul's `index` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Table {
    /// KV entries (Consul `kvs`).
    Kvs,
    /// KV delete tombstones (Consul `tombstones`).
    Tombstones,
    /// Catalog nodes (Consul `nodes`). Row watches are per node name and fire on any change to
    /// the node, its services or its checks.
    Nodes,
    /// Catalog service instances (Consul `services`). Row watches are per service *name* and fire
    /// when an instance of it, or the health of one, changes.
    Services,
    /// Catalog health checks (Consul `checks`).
    Checks,
    /// Sessions (Consul `sessions`). Row watches are per session id.
    Sessions,
    /// Node network coordinates (Consul `coordinates`). Row watches are per node name.
    Coordinates,
}

impl Table {
    /// Consul's table name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Kvs => "kvs",
            Table::Tombstones => "tombstones",
            Table::Nodes => "nodes",
            Table::Services => "services",
            Table::Checks => "checks",
            Table::Sessions => "sessions",
            Table::Coordinates => "coordinates",
        }
    }

    /// The table named `name` (as [`Table::name`] spells it).
    pub fn from_name(name: &str) -> Option<Table> {
        [Table::Kvs, Table::Tombstones, Table::Nodes, Table::Services, Table::Checks, Table::Sessions, Table::Coordinates].into_iter().find(|t| t.name() == name)
    }
}

/// What a blocking query read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WatchKey {
    /// One row (a KV key, later a service name, a node, a session).
    Row(Table, String),
    /// Every row whose key starts with this prefix.
    Prefix(Table, String),
    /// Any change to the table.
    Table(Table),
}

/// A row an applied write changed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub table: Table,
    pub key: String,
    /// `false` when only a row's *scope* changed, not the table: a check changed the health of
    /// service `key`, so watchers of that service wake, but watchers of the whole `services`
    /// table (whose index did not move) do not.
    pub wakes_table: bool,
}

impl Change {
    /// A change to row `key` of `table` (and so to the table).
    pub fn row(table: Table, key: impl Into<String>) -> Self {
        Self { table, key: key.into(), wakes_table: true }
    }
}

/// Registry of outstanding watches.
#[derive(Default)]
pub struct WatchSet {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    watches: BTreeMap<WatchKey, Arc<Notify>>,
    clean_at: usize,
    /// Deliberate bug `lost_wakeup` (see `BugSwitches`): every other batch of changes removes
    /// the watches it should fire, unfired.
    lose_wakeups: bool,
    /// Batches of changes seen (counts only while `lose_wakeups` is on).
    batches: u64,
}

impl WatchSet {
    /// Returns the notifier for `key`. Callers must create `notified()` and `enable()` it *before*
    /// reading state, so a write between the read and the wait is not missed.
    pub fn watch(&self, key: WatchKey) -> Arc<Notify> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.watches.len() >= inner.clean_at.max(MIN_CLEAN_AT) {
            inner.watches.retain(|_, n| Arc::strong_count(n) > 1);
            inner.clean_at = inner.watches.len() * 2;
        }
        let key = if inner.watches.len() >= MAX_WATCHES && !inner.watches.contains_key(&key) {
            match key {
                WatchKey::Row(t, _) | WatchKey::Prefix(t, _) | WatchKey::Table(t) => WatchKey::Table(t),
            }
        } else {
            key
        };
        inner.watches.entry(key).or_insert_with(|| Arc::new(Notify::new())).clone()
    }

    /// Test-only switch (`lost_wakeup`): on every other batch of changes, the watches of the
    /// changed rows are taken out of the set without being fired, so their waiters sleep until
    /// their deadline (a later change fires a fresh watch they no longer hold).
    pub fn lose_wakeups(&self, on: bool) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).lose_wakeups = on;
    }

    /// Number of distinct watch keys held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).watches.len()
    }

    /// Whether no watch is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes the watchers of every changed row: its exact watch, every watched prefix of it, and
    /// its table's watch.
    pub fn changed(&self, changes: &[Change]) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *guard;
        if inner.watches.is_empty() {
            return;
        }
        let lose = inner.lose_wakeups && {
            inner.batches += 1;
            inner.batches % 2 == 0
        };
        let watches = &mut inner.watches;
        let mut wake = |k: &WatchKey| {
            if lose {
                watches.remove(k);
            } else if let Some(n) = watches.get(k) {
                n.notify_waiters();
            }
        };
        let mut tables = std::collections::BTreeSet::new();
        for c in changes {
            if c.wakes_table {
                tables.insert(c.table);
            }
            wake(&WatchKey::Row(c.table, c.key.clone()));
            for (end, _) in c.key.char_indices().chain(std::iter::once((c.key.len(), ' '))) {
                wake(&WatchKey::Prefix(c.table, c.key[..end].to_string()));
            }
        }
        for t in tables {
            wake(&WatchKey::Table(t));
        }
    }

    /// Wakes everyone (after a snapshot install replaced the whole state).
    pub fn changed_all(&self) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for n in inner.watches.values() {
            n.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str) -> Vec<Change> {
        vec![Change::row(Table::Kvs, key)]
    }

    async fn is_woken(ws: &WatchSet, key: WatchKey, change: &[Change]) -> bool {
        let n = ws.watch(key);
        let fut = n.notified();
        tokio::pin!(fut);
        fut.as_mut().enable();
        ws.changed(change);
        futures::poll!(fut.as_mut()).is_ready()
    }

    #[tokio::test]
    async fn write_to_other_row_does_not_wake_row_watcher() {
        let ws = WatchSet::default();
        assert!(!is_woken(&ws, WatchKey::Row(Table::Kvs, "a".into()), &kv("b")).await);
        assert!(is_woken(&ws, WatchKey::Row(Table::Kvs, "a".into()), &kv("a")).await);
    }

    #[tokio::test]
    async fn write_under_prefix_wakes_prefix_and_table_watchers_only_in_that_table() {
        let ws = WatchSet::default();
        assert!(!is_woken(&ws, WatchKey::Prefix(Table::Kvs, "app/".into()), &kv("other/x")).await);
        assert!(is_woken(&ws, WatchKey::Prefix(Table::Kvs, "app/".into()), &kv("app/x/y")).await);
        assert!(is_woken(&ws, WatchKey::Table(Table::Kvs), &kv("z")).await);
        let tomb = vec![Change::row(Table::Tombstones, "app/x")];
        assert!(!is_woken(&ws, WatchKey::Prefix(Table::Kvs, "app/".into()), &tomb).await);
    }

    #[tokio::test]
    async fn a_scope_change_wakes_its_row_but_not_its_table() {
        let ws = WatchSet::default();
        let health = vec![Change { table: Table::Services, key: "web".into(), wakes_table: false }];
        assert!(is_woken(&ws, WatchKey::Row(Table::Services, "web".into()), &health).await);
        assert!(!is_woken(&ws, WatchKey::Table(Table::Services), &health).await);
        assert!(!is_woken(&ws, WatchKey::Row(Table::Services, "db".into()), &health).await);
    }

    #[tokio::test]
    async fn the_lost_wakeup_bug_drops_every_other_batch_unfired() {
        let ws = WatchSet::default();
        ws.lose_wakeups(true);
        let row = WatchKey::Row(Table::Kvs, "a".into());
        assert!(is_woken(&ws, row.clone(), &kv("a")).await, "first batch fires");
        assert!(!is_woken(&ws, row.clone(), &kv("a")).await, "second batch is lost");
        assert!(is_woken(&ws, row, &kv("a")).await, "third batch fires");
    }

    #[tokio::test]
    async fn abandoned_watches_are_cleaned_and_the_set_is_capped() {
        let ws = WatchSet::default();
        for i in 0..10_000 {
            drop(ws.watch(WatchKey::Row(Table::Kvs, format!("k{i}"))));
        }
        assert!(ws.len() < 200, "abandoned watches are dropped, {} left", ws.len());
        let held: Vec<_> = (0..MAX_WATCHES + 10).map(|i| ws.watch(WatchKey::Row(Table::Kvs, format!("h{i}")))).collect();
        assert!(ws.len() <= MAX_WATCHES + 1, "capped: {}", ws.len());
        // A query past the cap shares the table watch, which still wakes on its row.
        let last = held.last().expect("held").clone();
        let fut = last.notified();
        tokio::pin!(fut);
        fut.as_mut().enable();
        ws.changed(&kv("anything"));
        assert!(futures::poll!(fut.as_mut()).is_ready());
    }
}
