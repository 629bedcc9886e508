//! Watches for blocking queries: wake a query only when a key it read changed.
//!
//! Consul wakes KV blocking queries on table-wide index changes, so every write wakes every
//! watcher (Consul #4984, #3890). Here a query registers the exact key or the prefix it read, and
//! an applied write notifies only the exact key and the prefixes of that key.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// What a blocking query read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WatchKey {
    /// A single key.
    Exact(String),
    /// Every key starting with this prefix.
    Prefix(String),
}

/// Registry of outstanding watches.
#[derive(Default)]
pub struct WatchSet {
    watches: Mutex<BTreeMap<WatchKey, Arc<Notify>>>,
}

impl WatchSet {
    /// Returns the notifier for `key`. Callers must create `notified()` and `enable()` it *before*
    /// reading state, so a write between the read and the wait is not missed.
    pub fn watch(&self, key: WatchKey) -> Arc<Notify> {
        let Ok(mut map) = self.watches.lock() else { return Arc::new(Notify::new()) };
        // Drop watches nobody waits on any more; bounded by the live ones.
        if map.len() > 64 {
            map.retain(|_, n| Arc::strong_count(n) > 1);
        }
        map.entry(key).or_insert_with(|| Arc::new(Notify::new())).clone()
    }

    /// Wakes the watchers of `key`: its exact watch and every watched prefix of it.
    pub fn changed(&self, key: &str) {
        let Ok(map) = self.watches.lock() else { return };
        if map.is_empty() {
            return;
        }
        if let Some(n) = map.get(&WatchKey::Exact(key.to_string())) {
            n.notify_waiters();
        }
        for (end, _) in key.char_indices().chain(std::iter::once((key.len(), ' '))) {
            if let Some(n) = map.get(&WatchKey::Prefix(key[..end].to_string())) {
                n.notify_waiters();
            }
        }
    }

    /// Wakes everyone (after a snapshot install replaced the whole state).
    pub fn changed_all(&self) {
        let Ok(map) = self.watches.lock() else { return };
        for n in map.values() {
            n.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_to_other_key_does_not_wake_watcher() {
        let ws = WatchSet::default();
        let n = ws.watch(WatchKey::Exact("a".into()));
        let fut = n.notified();
        tokio::pin!(fut);
        fut.as_mut().enable();
        ws.changed("b");
        assert!(futures::poll!(fut.as_mut()).is_pending());
        ws.changed("a");
        assert!(futures::poll!(fut.as_mut()).is_ready());
    }

    #[tokio::test]
    async fn write_under_prefix_wakes_prefix_watcher() {
        let ws = WatchSet::default();
        let n = ws.watch(WatchKey::Prefix("app/".into()));
        let fut = n.notified();
        tokio::pin!(fut);
        fut.as_mut().enable();
        ws.changed("other/x");
        assert!(futures::poll!(fut.as_mut()).is_pending());
        ws.changed("app/x/y");
        assert!(futures::poll!(fut.as_mut()).is_ready());
    }
}
