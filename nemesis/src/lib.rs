//! The nemesis: faults as data, scheduled over simulated time.
//!
//! A [`Schedule`] is a list of `(at, Fault)` pairs; the simulator applies each fault when the
//! simulated clock reaches `at`. Nodes are named by index (`0..servers`), so a schedule is
//! independent of addresses and can be printed, diffed and replayed. Faults that depend on the
//! cluster's state at the time (e.g. "isolate whoever leads now") are resolved by the simulator
//! when applied, and the resolution is recorded in the run's fault log.

use std::fmt;
use std::time::Duration;

/// One fault (or repair). Node arguments are server indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Cut every link between the two sides (both directions).
    Partition { a: Vec<usize>, b: Vec<usize> },
    /// Cut the current leader off from every other server (resolved when applied; if no leader is
    /// known, nothing happens and the log says so).
    IsolateLeader,
    /// Restore every link.
    HealAll,
    /// Kill a server: its tasks stop and unsynced disk writes are lost.
    Crash(usize),
    /// Start a crashed server again from its disk.
    Restart(usize),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition { a, b } => write!(f, "partition {a:?} | {b:?}"),
            Fault::IsolateLeader => write!(f, "isolate leader"),
            Fault::HealAll => write!(f, "heal all"),
            Fault::Crash(n) => write!(f, "crash n{}", n + 1),
            Fault::Restart(n) => write!(f, "restart n{}", n + 1),
        }
    }
}

/// Faults in simulated-time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    events: Vec<(Duration, Fault)>,
}

impl Schedule {
    /// An empty schedule.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a fault at simulated time `at` (kept sorted; equal times keep insertion order).
    pub fn at(&mut self, at: Duration, fault: Fault) -> &mut Self {
        let pos = self.events.partition_point(|(t, _)| *t <= at);
        self.events.insert(pos, (at, fault));
        self
    }

    /// The scheduled faults in time order.
    pub fn events(&self) -> &[(Duration, Fault)] {
        &self.events
    }

    /// The time of the last fault (zero if none).
    pub fn end(&self) -> Duration {
        self.events.last().map(|(t, _)| *t).unwrap_or_default()
    }
}

/// Splits `0..n` into two random non-empty halves (sizes ⌊n/2⌋ and ⌈n/2⌉), as Jepsen's
/// `partition-random-halves`.
pub fn random_halves(rng: &mut impl rand::Rng, n: usize) -> (Vec<usize>, Vec<usize>) {
    let mut nodes: Vec<usize> = (0..n).collect();
    rand::seq::SliceRandom::shuffle(nodes.as_mut_slice(), rng);
    let b = nodes.split_off(n / 2);
    let (mut a, mut b) = (nodes, b);
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn schedule_stays_sorted_and_stable() {
        let mut s = Schedule::new();
        s.at(Duration::from_secs(5), Fault::HealAll);
        s.at(Duration::from_secs(1), Fault::Crash(0));
        s.at(Duration::from_secs(5), Fault::Restart(0));
        let order: Vec<_> = s.events().iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(order, vec![Fault::Crash(0), Fault::HealAll, Fault::Restart(0)]);
        assert_eq!(s.end(), Duration::from_secs(5));
    }

    #[test]
    fn random_halves_cover_all_nodes_once() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for n in 2..7 {
            let (a, b) = random_halves(&mut rng, n);
            assert!(!a.is_empty() && !b.is_empty());
            let mut all: Vec<_> = a.iter().chain(&b).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
    }
}
