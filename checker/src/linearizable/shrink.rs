//! Minimisation of a non-linearizable key history to a small failing sub-history.
//!
//! Uses the search as an oracle and only ever keeps removals after which the remaining ops are
//! still not linearizable, so the result is always a genuine subset of the recorded ops that fails
//! on its own. Removals are *closed* under "explains": an op that observes a value (an `Ok` read of
//! `v`, an `Ok` CAS that swapped from `v`) is removed together with the op that wrote `v`, so the
//! report never degenerates into "a read of a value nobody wrote" unless the history really
//! contained one.
//!
//! Shrinking is anchored on the op where the full search got stuck: candidates must keep it and,
//! when that holds for the history cut at its return, must pass without it — so the report
//! explains *that* op's failure, not an unrelated op that fails once its context is removed.
//!
//! Phases, each bounded by the deadline (running out just ends shrinking with what was found):
//! 1. drop every op invoked after the stuck op returned;
//! 2. keep only a time window ending at the stuck op's return, doubling it until the window fails;
//! 3. delta debugging (Zeller's ddmin, complement removal) down to single-op removals.

use std::collections::HashMap;
use std::time::Instant;

use super::search::{self, Limits, SearchResult, Stuck, MAX_STATES};
use crate::history::{OkResult, Op, OpFn, Outcome};

/// Which ops observe the value another op wrote (values are unique per key, so each observed
/// value has at most one writer).
struct Deps {
    /// For each op, the ops that observe the value it wrote.
    observers: Vec<Vec<usize>>,
}

impl Deps {
    fn new(ops: &[&Op]) -> Self {
        let mut writer = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            match op.f {
                OpFn::Write(v) | OpFn::Cas { new: v, .. } => {
                    writer.insert(v, i);
                }
                OpFn::Read | OpFn::Delete | OpFn::DeleteCas { .. } => {}
            }
        }
        let mut observers = vec![Vec::new(); ops.len()];
        for (i, op) in ops.iter().enumerate() {
            let observed = match (&op.f, &op.outcome) {
                (OpFn::Read, Outcome::Ok(OkResult::Read(Some(v)))) => Some(*v),
                (
                    OpFn::Cas {
                        expect: Some(v), ..
                    },
                    Outcome::Ok(OkResult::Cas(true)),
                ) => Some(*v),
                (OpFn::DeleteCas { expect }, Outcome::Ok(OkResult::Cas(true))) => Some(*expect),
                _ => None,
            };
            if let Some(&w) = observed.as_ref().and_then(|v| writer.get(v)) {
                if w != i {
                    observers[w].push(i);
                }
            }
        }
        Deps { observers }
    }

    /// `current` minus `remove` minus everything transitively observing a removed op's value.
    fn remove_closed(&self, current: &[usize], remove: &[usize]) -> Vec<usize> {
        let mut removed = vec![false; self.observers.len()];
        let mut stack: Vec<usize> = remove.to_vec();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut removed[i], true) {
                continue;
            }
            stack.extend(self.observers[i].iter().copied().filter(|&j| !removed[j]));
        }
        current.iter().copied().filter(|&i| !removed[i]).collect()
    }
}

/// What a candidate sub-history must satisfy besides failing.
#[derive(Clone, Copy)]
enum Anchor {
    /// Nothing more.
    Free,
    /// It keeps this op (where the full search got stuck).
    Kept(usize),
    /// It keeps this op, and without it (and its observers) the rest is linearizable: the
    /// report is then about *this* op rather than an unrelated op that fails once its context is
    /// removed (e.g. a CAS that reported "not swapped" against a key left empty).
    Essential(usize),
}

struct Shrinker<'a, 'o> {
    ops: &'a [&'o Op],
    deps: Deps,
    deadline: Option<Instant>,
    anchor: Anchor,
}

impl Shrinker<'_, '_> {
    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn run(&self, subset: &[usize]) -> SearchResult {
        let sub: Vec<&Op> = subset.iter().map(|&i| self.ops[i]).collect();
        let limits = Limits {
            deadline: self.deadline,
            max_states: MAX_STATES,
        };
        search::search(&sub, &limits)
    }

    /// The oracle: `Some(stuck)` (indices into `self.ops`) iff `subset` is still not linearizable
    /// and satisfies the anchor. Inconclusive searches never keep a candidate.
    fn fails(&self, subset: &[usize]) -> Option<Stuck> {
        if subset.is_empty() || self.expired() {
            return None;
        }
        let anchor = match self.anchor {
            Anchor::Free => None,
            Anchor::Kept(a) | Anchor::Essential(a) => Some(a),
        };
        if anchor.is_some_and(|a| subset.binary_search(&a).is_err()) {
            return None;
        }
        let SearchResult::NotLinearizable(s) = self.run(subset) else {
            return None;
        };
        if let Anchor::Essential(a) = self.anchor {
            let without = self.deps.remove_closed(subset, &[a]);
            if !matches!(self.run(&without), SearchResult::Linearizable) {
                return None;
            }
        }
        Some(Stuck {
            op: subset[s.op],
            prefix: s.prefix.iter().map(|&i| subset[i]).collect(),
            state: s.state,
        })
    }

    /// Tries keeping only the ops of `current` accepted by `keep` (closed under observation);
    /// adopts the result if it is smaller and still fails.
    fn try_keep(
        &self,
        current: &mut Vec<usize>,
        stuck: &mut Stuck,
        keep: impl Fn(&Op) -> bool,
    ) -> bool {
        let remove: Vec<usize> = current
            .iter()
            .copied()
            .filter(|&i| !keep(self.ops[i]))
            .collect();
        self.try_remove(current, stuck, &remove)
    }

    fn try_remove(&self, current: &mut Vec<usize>, stuck: &mut Stuck, remove: &[usize]) -> bool {
        if remove.is_empty() {
            return false;
        }
        let candidate = self.deps.remove_closed(current, remove);
        if candidate.len() >= current.len() {
            return false;
        }
        match self.fails(&candidate) {
            Some(s) => {
                *current = candidate;
                *stuck = s;
                true
            }
            None => false,
        }
    }
}

/// Shrinks the failing history `ops` (whose full search got stuck at `stuck`) within `deadline`.
/// Returns the kept ops (indices into `ops`, ascending) and where the search of that subset got
/// stuck (indices into `ops`).
pub(crate) fn shrink(ops: &[&Op], stuck: Stuck, deadline: Option<Instant>) -> (Vec<usize>, Stuck) {
    let anchor = stuck.op;
    let mut shrinker = Shrinker {
        ops,
        deps: Deps::new(ops),
        deadline,
        anchor: Anchor::Kept(anchor),
    };
    let mut current: Vec<usize> = (0..ops.len()).collect();
    let mut stuck = stuck;

    // Phase 1: nothing invoked after the stuck op returned can be needed to *show* it is stuck.
    let end = search::return_time(ops[anchor]);
    shrinker.try_keep(&mut current, &mut stuck, |op| op.invoke_ns <= end);

    // If the stuck op is what makes these ops fail, insist on that from here on; otherwise (the
    // history has another, independent violation) any failing subset will do.
    let without = shrinker.deps.remove_closed(&current, &[anchor]);
    shrinker.anchor = match shrinker.run(&without) {
        SearchResult::Linearizable => Anchor::Essential(anchor),
        _ => Anchor::Free,
    };

    // Phase 2: a window of ops overlapping [end - width, end], doubling the width.
    let first = current.iter().map(|&i| ops[i].invoke_ns).min().unwrap_or(0);
    let mut width = end.saturating_sub(ops[anchor].invoke_ns).max(1);
    while end.saturating_sub(width) > first && !shrinker.expired() {
        let start = end.saturating_sub(width);
        if shrinker.try_keep(&mut current, &mut stuck, |op| {
            search::return_time(op) >= start && op.invoke_ns <= end
        }) {
            break;
        }
        width = width.saturating_mul(2);
    }

    // Phase 3: ddmin by complement removal.
    let mut granularity = 2usize;
    while current.len() >= 2 && !shrinker.expired() {
        let chunk = current.len().div_ceil(granularity);
        let mut reduced = false;
        let mut start = 0;
        while start < current.len() && !shrinker.expired() {
            let stop = (start + chunk).min(current.len());
            let remove = current[start..stop].to_vec();
            if shrinker.try_remove(&mut current, &mut stuck, &remove) {
                reduced = true;
                break;
            }
            start = stop;
        }
        if reduced {
            granularity = granularity.saturating_sub(1).max(2);
        } else if granularity >= current.len() {
            break;
        } else {
            granularity = (granularity * 2).min(current.len());
        }
    }
    (current, stuck)
}
