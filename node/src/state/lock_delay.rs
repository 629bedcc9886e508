//! Lock-delays: after a session invalidation frees a key, no session may acquire it until the
//! session's lock-delay has passed (Consul `agent/consul/state/delay.go`).
//!
//! Like Consul's, this table is not replicated: every server records the delay when it applies
//! the invalidation, on its own clock, and only the leader consults it before proposing an
//! acquire. Times are the host's monotonic clock readings (`io::Clock::monotonic`), passed in, so
//! this module does no I/O and the simulator's clock drift reaches the delay.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Above this many keys, expired delays are dropped on the next insert.
const PRUNE_ABOVE: usize = 1024;

/// Keys under a lock-delay, each with the clock reading at which it ends.
#[derive(Debug, Default)]
pub struct LockDelays {
    until: Mutex<BTreeMap<String, Duration>>,
}

impl LockDelays {
    /// Starts a delay of `delay_ms` on `key` at clock reading `now` (a later end wins).
    pub fn start(&self, key: &str, now: Duration, delay_ms: u64) {
        let end = now + Duration::from_millis(delay_ms);
        let mut until = self.until.lock().unwrap_or_else(|e| e.into_inner());
        if until.len() >= PRUNE_ABOVE {
            until.retain(|_, e| *e > now);
        }
        let slot = until.entry(key.to_string()).or_insert(end);
        *slot = (*slot).max(end);
    }

    /// Whether `key` is still under a lock-delay at clock reading `now`.
    pub fn blocks(&self, key: &str, now: Duration) -> bool {
        let until = self.until.lock().unwrap_or_else(|e| e.into_inner());
        until.get(key).is_some_and(|end| *end > now)
    }

    /// Number of keys with a recorded delay (expired ones included until pruned).
    pub fn len(&self) -> usize {
        self.until.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no delay is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_blocks_until_its_end_and_a_longer_one_wins() {
        let d = LockDelays::default();
        assert!(d.is_empty());
        let s = Duration::from_secs;
        d.start("k", s(10), 15_000);
        assert!(!d.is_empty());
        assert!(d.blocks("k", s(24)));
        assert!(!d.blocks("k", s(25)));
        assert!(!d.blocks("other", s(10)));
        d.start("k", s(11), 1_000);
        assert!(d.blocks("k", s(24)), "a shorter later delay does not cut the earlier one short");
    }

    #[test]
    fn expired_delays_are_pruned_once_the_table_is_large() {
        let d = LockDelays::default();
        for i in 0..PRUNE_ABOVE {
            d.start(&format!("k{i}"), Duration::ZERO, 1);
        }
        d.start("late", Duration::from_secs(1), 1_000);
        assert_eq!(d.len(), 1);
    }
}
