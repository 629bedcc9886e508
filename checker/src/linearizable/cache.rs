//! The memo of search configurations, with dominance between uses of `Info` ops.
//!
//! A configuration is (linearized `Ok` ops, canonical state, number of linearized members of each
//! class of `Info` ops). As in Porcupine, a configuration is explored at most once. On top of that,
//! configuration `A` *dominates* `B` when they agree on `Ok` ops and state and `A` used no more
//! members of any class: pending `Info` ops can always take effect last instead, so whatever `B`
//! can still do, `A` can too. A configuration is skipped when it is dominated by
//!
//! - one that *failed* for good (explored without success), which then rules it out; or
//! - one still being explored further up the current path (a run of `Info` moves that came back
//!   to the same state having used more `Info` ops is pointless: any linearization through it can
//!   skip the run).
//!
//! The second kind of pruning is only valid relative to that ancestor, so a configuration whose
//! subtree was pruned because of an ancestor strictly above it fails only *conditionally*: it is
//! not recorded as failed (it neither prunes nor dominates later) — the standard fix for cycles in
//! memoised search. The search tracks this as a "taint" depth per configuration on its path.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};


#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    /// On the current search path, at this depth.
    Exploring(usize),
    /// Explored without success, unconditionally.
    Failed,
    /// Explored without success relative to an ancestor; may need exploring again.
    Conditional,
}

struct Entry<State> {
    bits: Box<[u64]>,
    state: State,
    /// Non-zero class counts, sorted by class.
    counts: Box<[(u32, u32)]>,
    status: Status,
}

impl<State> Entry<State> {
    fn counts_equal(&self, counts: &[u32]) -> bool {
        let nonzero = counts.iter().filter(|&&c| c > 0).count();
        nonzero == self.counts.len()
            && self
                .counts
                .iter()
                .all(|&(c, n)| counts.get(c as usize) == Some(&n))
    }

    fn counts_at_most(&self, counts: &[u32]) -> bool {
        self.counts
            .iter()
            .all(|&(c, n)| counts.get(c as usize).is_some_and(|&m| m >= n))
    }
}

/// What the memo says about a configuration about to be entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Explore it.
    New,
    /// Skip it: explored before or dominated by a failure.
    Failed,
    /// Skip it: dominated by the configuration at this depth on the current path.
    Ancestor(usize),
}

/// Configurations, bucketed by a hash of (`Ok` ops, state).
pub(crate) struct Cache<State> {
    buckets: HashMap<u64, Vec<Entry<State>>>,
    len: usize,
}

fn bucket<State: Hash>(bits: &[u64], state: &State) -> u64 {
    let mut h = DefaultHasher::new();
    bits.hash(&mut h);
    state.hash(&mut h);
    h.finish()
}

impl<State> Default for Cache<State> {
    fn default() -> Self {
        Self { buckets: HashMap::new(), len: 0 }
    }
}

impl<State: Copy + Eq + Hash> Cache<State> {
    /// Number of configurations recorded.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Looks a configuration up (see [`Lookup`]).
    pub(crate) fn lookup(&self, bits: &[u64], state: State, counts: &[u32]) -> Lookup {
        let Some(entries) = self.buckets.get(&bucket(bits, &state)) else {
            return Lookup::New;
        };
        let mut result = Lookup::New;
        for e in entries {
            if e.state != state || *e.bits != *bits || !e.counts_at_most(counts) {
                continue;
            }
            match e.status {
                Status::Failed => return Lookup::Failed,
                Status::Exploring(depth) => {
                    // Any such ancestor justifies the skip; report the deepest, which keeps
                    // the resulting taint as harmless as possible.
                    result = match result {
                        Lookup::Ancestor(d) if d >= depth => result,
                        _ => Lookup::Ancestor(depth),
                    };
                }
                Status::Conditional => {}
            }
        }
        result
    }

    /// Records a configuration as being explored at `depth` on the current path.
    pub(crate) fn enter(&mut self, bits: &[u64], state: State, counts: &[u32], depth: usize) {
        let entries = self.buckets.entry(bucket(bits, &state)).or_default();
        if let Some(e) = entries
            .iter_mut()
            .find(|e| e.state == state && *e.bits == *bits && e.counts_equal(counts))
        {
            e.status = Status::Exploring(depth);
            return;
        }
        let sparse: Vec<(u32, u32)> = counts
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(c, &n)| (c as u32, n))
            .collect();
        entries.push(Entry {
            bits: bits.into(),
            state,
            counts: sparse.into_boxed_slice(),
            status: Status::Exploring(depth),
        });
        self.len += 1;
    }

    /// Records that a configuration on the path was explored without success; `unconditionally`
    /// unless pruning relative to a strict ancestor was involved.
    pub(crate) fn leave(
        &mut self,
        bits: &[u64],
        state: State,
        counts: &[u32],
        unconditionally: bool,
    ) {
        if let Some(entries) = self.buckets.get_mut(&bucket(bits, &state)) {
            if let Some(e) = entries
                .iter_mut()
                .find(|e| e.state == state && *e.bits == *bits && e.counts_equal(counts))
            {
                e.status = if unconditionally {
                    Status::Failed
                } else {
                    Status::Conditional
                };
            }
        }
    }
}
