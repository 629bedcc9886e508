//! The memo of explored search configurations, with dominance between `Info` symmetry classes.
//!
//! A configuration is (linearized ops outside symmetry classes, canonical state, number of
//! linearized members of each symmetry class). As in Porcupine, a configuration is explored at most
//! once. In addition, a configuration is skipped when a configuration that *failed* (was fully
//! explored without success) had the same ops and state but linearized no more members of any class:
//! pending `Info` ops of a class are options that can always be deferred to the end, so having more
//! of them pending can only help. Only failed configurations are used for dominance, which keeps the
//! argument simple: a failed configuration truly has no linearization (by induction on the order in
//! which configurations fail), hence neither has anything it dominates.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use super::search::State;

struct Entry {
    bits: Box<[u64]>,
    state: State,
    /// Non-zero class counts, sorted by class.
    counts: Box<[(u32, u32)]>,
    failed: bool,
}

impl Entry {
    fn same(&self, bits: &[u64], state: State, counts: &[u32]) -> bool {
        self.state == state && *self.bits == *bits && self.counts_equal(counts)
    }

    fn counts_equal(&self, counts: &[u32]) -> bool {
        let nonzero = counts.iter().filter(|&&c| c > 0).count();
        nonzero == self.counts.len()
            && self.counts.iter().all(|&(c, n)| counts.get(c as usize) == Some(&n))
    }

    /// Whether this (failed) entry dominates a configuration with `counts`.
    fn dominates(&self, bits: &[u64], state: State, counts: &[u32]) -> bool {
        self.failed
            && self.state == state
            && *self.bits == *bits
            && self.counts.iter().all(|&(c, n)| counts.get(c as usize).is_some_and(|&m| m >= n))
    }
}

/// Explored configurations, bucketed by a hash of (ops, state).
#[derive(Default)]
pub(crate) struct Cache {
    buckets: HashMap<u64, Vec<Entry>>,
    len: usize,
}

fn bucket(bits: &[u64], state: State) -> u64 {
    let mut h = DefaultHasher::new();
    bits.hash(&mut h);
    state.hash(&mut h);
    h.finish()
}

impl Cache {
    /// Number of configurations recorded.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the configuration was already explored or is dominated by a failed one.
    pub(crate) fn covers(&self, bits: &[u64], state: State, counts: &[u32]) -> bool {
        self.buckets.get(&bucket(bits, state)).is_some_and(|entries| {
            entries
                .iter()
                .any(|e| e.same(bits, state, counts) || e.dominates(bits, state, counts))
        })
    }

    /// Records a configuration as being explored.
    pub(crate) fn insert(&mut self, bits: &[u64], state: State, counts: &[u32]) {
        let sparse: Vec<(u32, u32)> = counts
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(c, &n)| (c as u32, n))
            .collect();
        self.buckets.entry(bucket(bits, state)).or_default().push(Entry {
            bits: bits.into(),
            state,
            counts: sparse.into_boxed_slice(),
            failed: false,
        });
        self.len += 1;
    }

    /// Marks a recorded configuration as fully explored without success.
    pub(crate) fn mark_failed(&mut self, bits: &[u64], state: State, counts: &[u32]) {
        if let Some(entries) = self.buckets.get_mut(&bucket(bits, state)) {
            if let Some(e) = entries.iter_mut().find(|e| e.same(bits, state, counts)) {
                e.failed = true;
            }
        }
    }
}
