//! Sound reductions of the search space. They are needed because `Info` ops stay pending to the
//! end of the history, so a plain search may place each of them anywhere: proving a violation then
//! costs up to 2^k configurations for k pending `Info` ops.
//!
//! 1. *Dead values.* A register value none of whose remaining (unlinearized) ops compares against
//!    it (no pending read of it, no pending CAS expecting it) behaves exactly like any other such
//!    value, so all of them are memoised as one canonical value.
//! 2. *No-op `Info` ops.* Linearizing an `Info` op that leaves the canonical state unchanged is
//!    pointless: the op returns at +infinity and is always legal, so it can take effect last.
//! 3. *Interchangeable `Info` ops.* Pending `Info` ops with the same effect (`Info` deletes;
//!    `Info` writes of values nobody observes; `Info` CASes with the same `expect` writing values
//!    nobody observes) are symmetric once invoked, so only the earliest-invoked pending one of a
//!    class may be linearized; the classes (other `Info` ops are classes of one) are then
//!    described by how many members were used.
//! 4. *Dominance.* Using fewer `Info` ops is never worse (see [`super::cache`]); `Info` CASes that
//!    can never take effect again (their expected value was written and overwritten) are left out
//!    of the comparison, as using them or not makes no difference.
//! 5. *Early success.* Once every `Ok` op is linearized the rest are `Info` ops, which can all take
//!    effect last in any order.
//!
//! Reductions 1, 3 and 4 rely on values being compared only for equality, and the "can never take
//! effect again" part of 4 counts every writer of a value, so it stays sound even if a value were
//! written twice.

use std::collections::HashMap;

use super::search::State;
use crate::history::{OkResult, Op, OpFn, Outcome, Value};

/// Per-search bookkeeping for the reductions; `mark`/`unmark` follow linearize/backtrack.
/// The register's reductions (opaque outside the checker).
pub struct Reducer {
    /// A value no op observes, standing for every dead value.
    dead: Value,
    /// Dense index of each observed value.
    observed: HashMap<Value, usize>,
    /// For each op, the observed value (dense index) it compares against, if any.
    observes: Vec<Option<usize>>,
    /// Unlinearized observers per observed value.
    remaining: Vec<u32>,
    /// For `Info` ops (every one is in a class, possibly alone): (class, position in the class's
    /// invocation order).
    class_of: Vec<Option<(usize, usize)>>,
    /// Number of linearized members per class (always a prefix of the class).
    class_done: Vec<u32>,
    /// For classes of `Info` CASes expecting an observed value: that value's dense index.
    class_expect: Vec<Option<usize>>,
    /// The observed values, by dense index.
    values: Vec<Value>,
    /// For each op, the observed value (dense index) it writes when it takes effect, if any.
    writes: Vec<Option<usize>>,
    /// Linearized writers per observed value.
    writer_done: Vec<u32>,
    /// All writers per observed value.
    writers: Vec<u32>,
    is_info: Vec<bool>,
    /// Unlinearized `Ok` ops.
    ok_remaining: usize,
}

fn observed_value(op: &Op) -> Option<Value> {
    match (&op.f, &op.outcome) {
        (OpFn::Read, Outcome::Ok(OkResult::Read(Some(v)))) => Some(*v),
        (
            OpFn::Cas {
                expect: Some(v), ..
            },
            Outcome::Ok(_) | Outcome::Info,
        ) => Some(*v),
        (OpFn::DeleteCas { expect }, Outcome::Ok(_) | Outcome::Info) => Some(*expect),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    Delete,
    UnobservedWrite,
    UnobservedCas(Option<Value>),
    /// An `Info` op with no interchangeable peer: a class of its own.
    Unique(usize),
}

impl Reducer {
    pub(crate) fn new(ops: &[&Op]) -> Self {
        let mut observed = HashMap::new();
        let mut observes = Vec::with_capacity(ops.len());
        for op in ops {
            observes.push(observed_value(op).map(|v| {
                let next = observed.len();
                *observed.entry(v).or_insert(next)
            }));
        }
        let mut values = vec![0; observed.len()];
        for (&v, &i) in &observed {
            values[i] = v;
        }
        let writes: Vec<Option<usize>> = ops
            .iter()
            .map(|op| match (&op.f, &op.outcome) {
                (OpFn::Cas { .. }, Outcome::Ok(OkResult::Cas(false))) => None,
                (OpFn::Write(v) | OpFn::Cas { new: v, .. }, _) => observed.get(v).copied(),
                _ => None,
            })
            .collect();
        let mut writers = vec![0u32; observed.len()];
        for &i in writes.iter().flatten() {
            writers[i] += 1;
        }
        let mut remaining = vec![0u32; observed.len()];
        for &i in observes.iter().flatten() {
            remaining[i] += 1;
        }
        let mut dead = Value::MAX;
        while observed.contains_key(&dead) {
            dead -= 1;
        }
        let is_info: Vec<bool> = ops.iter().map(|op| op.outcome == Outcome::Info).collect();
        let ok_remaining = is_info.iter().filter(|&&info| !info).count();

        // Symmetry classes of Info ops, members in event order (invocation time, then index).
        let unobserved = |v: &Value| !observed.contains_key(v);
        let mut order: Vec<usize> = (0..ops.len()).filter(|&i| is_info[i]).collect();
        order.sort_by_key(|&i| (ops[i].invoke_ns, i));
        let mut classes: HashMap<Class, usize> = HashMap::new();
        let mut class_of = vec![None; ops.len()];
        let mut class_size: Vec<usize> = Vec::new();
        let mut class_expect: Vec<Option<usize>> = Vec::new();
        for i in order {
            let class = match ops[i].f {
                OpFn::Delete => Class::Delete,
                OpFn::Write(v) if unobserved(&v) => Class::UnobservedWrite,
                OpFn::Cas { expect, new } if unobserved(&new) => Class::UnobservedCas(expect),
                _ => Class::Unique(i),
            };
            let next = classes.len();
            let c = *classes.entry(class).or_insert(next);
            if c == class_size.len() {
                class_size.push(0);
                class_expect.push(match ops[i].f {
                    OpFn::Cas {
                        expect: Some(v), ..
                    } => observed.get(&v).copied(),
                    _ => None,
                });
            }
            class_of[i] = Some((c, class_size[c]));
            class_size[c] += 1;
        }
        Reducer {
            dead,
            observed,
            observes,
            remaining,
            class_of,
            class_done: vec![0; classes.len()],
            class_expect,
            writer_done: vec![0; values.len()],
            writers,
            values,
            writes,
            is_info,
            ok_remaining,
        }
    }

    /// Whether op `i` may be linearized now (symmetry: earliest pending member of its class).
    pub(crate) fn may_linearize(&self, i: usize) -> bool {
        match self.class_of[i] {
            Some((c, pos)) => self.class_done[c] as usize == pos,
            None => true,
        }
    }

    /// Records op `i` as linearized.
    pub(crate) fn mark(&mut self, i: usize) {
        if let Some(v) = self.observes[i] {
            self.remaining[v] -= 1;
        }
        if let Some((c, _)) = self.class_of[i] {
            self.class_done[c] += 1;
        }
        if let Some(v) = self.writes[i] {
            self.writer_done[v] += 1;
        }
        if !self.is_info[i] {
            self.ok_remaining -= 1;
        }
    }

    /// Undoes [`Reducer::mark`] for op `i`.
    pub(crate) fn unmark(&mut self, i: usize) {
        if let Some(v) = self.observes[i] {
            self.remaining[v] += 1;
        }
        if let Some((c, _)) = self.class_of[i] {
            self.class_done[c] -= 1;
        }
        if let Some(v) = self.writes[i] {
            self.writer_done[v] -= 1;
        }
        if !self.is_info[i] {
            self.ok_remaining += 1;
        }
    }

    /// The state as memoised: dead values collapse to one.
    pub(crate) fn canon(&self, state: State) -> State {
        match state {
            Some(v) => match self.observed.get(&v) {
                Some(&i) if self.remaining[i] > 0 => state,
                _ => Some(self.dead),
            },
            None => None,
        }
    }

    /// Number of linearized members of each class of `Info` ops, as memoised in `state`: classes
    /// that can never again take effect count as 0 (an `Info` CAS expecting a value that was
    /// already written by all its writers and overwritten), since whether they were used makes no
    /// difference to the future.
    pub(crate) fn class_counts(&self, state: State) -> Vec<u32> {
        let mut counts = self.class_done.clone();
        for (c, n) in counts.iter_mut().enumerate() {
            if let Some(v) = self.class_expect[c] {
                if self.writer_done[v] == self.writers[v] && state != Some(self.values[v]) {
                    *n = 0;
                }
            }
        }
        counts
    }

    /// Whether op `i` is an `Info` op (returns at +infinity, result unconstrained).
    pub(crate) fn is_info(&self, i: usize) -> bool {
        self.is_info[i]
    }

    /// Whether every `Ok` op has been linearized.
    pub(crate) fn only_info_left(&self) -> bool {
        self.ok_remaining == 0
    }
}

impl super::model::Reduce<State> for Reducer {
    fn is_info(&self, i: usize) -> bool {
        Reducer::is_info(self, i)
    }
    fn only_info_left(&self) -> bool {
        Reducer::only_info_left(self)
    }
    fn may_linearize(&self, i: usize) -> bool {
        Reducer::may_linearize(self, i)
    }
    fn mark(&mut self, i: usize) {
        Reducer::mark(self, i)
    }
    fn unmark(&mut self, i: usize) {
        Reducer::unmark(self, i)
    }
    fn canon(&self, state: State) -> State {
        Reducer::canon(self, state)
    }
    fn class_counts(&self, state: State) -> Vec<u32> {
        Reducer::class_counts(self, state)
    }
}
