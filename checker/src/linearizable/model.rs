//! The model a linearizability search checks a history against, as in Porcupine: an initial state,
//! a step function that applies one operation (with its recorded result) to a state or refuses it,
//! and state equality. The KV register ([`Register`]) is the first model; a new data type (a
//! catalog entry, a session, a lock) gets checked by the same search by implementing [`Model`]
//! for it.
//!
//! Reductions: the search can prune with model-specific knowledge of pending (`Info`) operations
//! ([`Reduce`]). A model without such knowledge uses [`NoReductions`] and gets Porcupine's plain
//! memoised search.

use std::fmt::Debug;
use std::hash::Hash;

use super::reduce::Reducer;
use super::search;
use crate::history::{Op, Value};

/// One recorded operation, as the search sees it.
pub trait Operation {
    /// Invocation time, ns since the run started.
    fn invoke_ns(&self) -> u64;
    /// Return time, ns; `u64::MAX` for an operation whose outcome is unknown (it may take effect
    /// at any time after its invocation).
    fn return_ns(&self) -> u64;
    /// Whether the outcome is unknown (Jepsen's `info`).
    fn is_info(&self) -> bool {
        self.return_ns() == u64::MAX
    }
}

/// A sequential specification (Porcupine's `Model`).
///
/// Contract: `step` is a pure function; `equal` agrees with `Eq` and `Hash` on `State` (the search
/// memoises configurations by hashing states, so two states that are `equal` must hash alike:
/// canonicalise in `step` if a type has several representations of one state).
pub trait Model {
    /// An operation with its recorded result.
    type Op: Operation;
    /// The data type's state. Small and `Copy`, as the search keeps one per configuration.
    type State: Copy + Eq + Hash + Debug;
    /// Model-specific pruning; [`NoReductions`] if the model has none.
    type Reducer: Reduce<Self::State>;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// Applies `op` (with its recorded result) to `state`: the next state if `op` is legal there,
    /// `None` if not.
    fn step(&self, state: Self::State, op: &Self::Op) -> Option<Self::State>;
    /// Whether two states are the same (defaults to `==`).
    fn equal(&self, a: &Self::State, b: &Self::State) -> bool {
        a == b
    }
    /// The reducer for one search over `ops`.
    fn reducer(&self, ops: &[&Self::Op]) -> Self::Reducer;
}

/// Sound pruning of the search space for one search (see [`super::reduce`] for the register's).
/// Operations are named by their index in the searched slice; `mark`/`unmark` follow
/// linearize/backtrack.
pub trait Reduce<S> {
    /// Whether op `i` has an unknown outcome.
    fn is_info(&self, i: usize) -> bool;
    /// Whether only `Info` ops remain unlinearized (the search then succeeds).
    fn only_info_left(&self) -> bool;
    /// Whether op `i` may be linearized now (e.g. only the first of interchangeable ops).
    fn may_linearize(&self, i: usize) -> bool;
    /// Op `i` was linearized.
    fn mark(&mut self, i: usize);
    /// Op `i` was un-linearized (backtracking).
    fn unmark(&mut self, i: usize);
    /// The canonical form of `state` for memoisation.
    fn canon(&self, state: S) -> S;
    /// How many members of each class of interchangeable `Info` ops were used (memo key part).
    fn class_counts(&self, state: S) -> Vec<u32>;
}

/// No pruning beyond Porcupine's memo and early success: every `Info` op is its own class.
pub struct NoReductions {
    is_info: Vec<bool>,
    linearized: Vec<bool>,
    ok_remaining: usize,
}

impl NoReductions {
    /// Bookkeeping for `ops`.
    pub fn new<O: Operation>(ops: &[&O]) -> Self {
        let is_info: Vec<bool> = ops.iter().map(|o| o.is_info()).collect();
        let ok_remaining = is_info.iter().filter(|i| !**i).count();
        Self { linearized: vec![false; ops.len()], is_info, ok_remaining }
    }
}

impl<S> Reduce<S> for NoReductions {
    fn is_info(&self, i: usize) -> bool {
        self.is_info[i]
    }
    fn only_info_left(&self) -> bool {
        self.ok_remaining == 0
    }
    fn may_linearize(&self, _i: usize) -> bool {
        true
    }
    fn mark(&mut self, i: usize) {
        self.linearized[i] = true;
        if !self.is_info[i] {
            self.ok_remaining -= 1;
        }
    }
    fn unmark(&mut self, i: usize) {
        self.linearized[i] = false;
        if !self.is_info[i] {
            self.ok_remaining += 1;
        }
    }
    fn canon(&self, state: S) -> S {
        state
    }
    fn class_counts(&self, _state: S) -> Vec<u32> {
        // One class per Info op: 1 if linearized.
        self.is_info.iter().zip(&self.linearized).filter(|(info, _)| **info).map(|(_, done)| u32::from(*done)).collect()
    }
}

/// The KV register (read / write / CAS / delete on one key, initially absent), with the
/// register-specific reductions of [`super::reduce`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Register;

impl Operation for Op {
    fn invoke_ns(&self) -> u64 {
        self.invoke_ns
    }
    fn return_ns(&self) -> u64 {
        search::return_time(self)
    }
}

impl Model for Register {
    type Op = Op;
    type State = Option<Value>;
    type Reducer = Reducer;
    fn init(&self) -> Self::State {
        None
    }
    fn step(&self, state: Self::State, op: &Op) -> Option<Self::State> {
        search::step(state, op)
    }
    fn reducer(&self, ops: &[&Op]) -> Reducer {
        Reducer::new(ops)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::linearizable::{check_model, ModelVerdict};

    /// A second data type through the same search: a counter with `add` and `read`.
    struct Counter;

    struct CounterOp {
        invoke: u64,
        ret: Option<u64>,
        kind: CounterKind,
    }

    enum CounterKind {
        Add(i64),
        Read(i64),
    }

    impl Operation for CounterOp {
        fn invoke_ns(&self) -> u64 {
            self.invoke
        }
        fn return_ns(&self) -> u64 {
            self.ret.unwrap_or(u64::MAX)
        }
    }

    impl Model for Counter {
        type Op = CounterOp;
        type State = i64;
        type Reducer = NoReductions;
        fn init(&self) -> i64 {
            0
        }
        fn step(&self, state: i64, op: &CounterOp) -> Option<i64> {
            match op.kind {
                CounterKind::Add(n) => Some(state + n),
                CounterKind::Read(v) => (v == state).then_some(state),
            }
        }
        fn reducer(&self, ops: &[&CounterOp]) -> NoReductions {
            NoReductions::new(ops)
        }
    }

    fn op(invoke: u64, ret: Option<u64>, kind: CounterKind) -> CounterOp {
        CounterOp { invoke, ret, kind }
    }

    fn check(ops: &[CounterOp]) -> ModelVerdict<i64> {
        let refs: Vec<&CounterOp> = ops.iter().collect();
        check_model(&Counter, &refs, Duration::from_secs(5))
    }

    #[test]
    fn a_counter_history_is_checked_by_the_same_search() {
        // Two concurrent adds, then a read of their sum: linearizable.
        let ok = [op(0, Some(10), CounterKind::Add(1)), op(2, Some(8), CounterKind::Add(2)), op(20, Some(30), CounterKind::Read(3))];
        assert_eq!(check(&ok), ModelVerdict::Linearizable);
        // A read that returned 1 after both adds completed: no order explains it.
        let bad = [op(0, Some(10), CounterKind::Add(1)), op(2, Some(8), CounterKind::Add(2)), op(20, Some(30), CounterKind::Read(1))];
        assert!(matches!(check(&bad), ModelVerdict::NotLinearizable { op: 2, .. }), "{:?}", check(&bad));
    }

    #[test]
    fn a_counter_info_op_may_or_may_not_have_happened() {
        // The add timed out (info): reads of 0 and later 5 are both explained.
        let ops = [op(0, None, CounterKind::Add(5)), op(1, Some(2), CounterKind::Read(0)), op(10, Some(12), CounterKind::Read(5))];
        assert_eq!(check(&ops), ModelVerdict::Linearizable);
        // ... but it cannot be undone: 5 then 0 is a violation.
        let ops = [op(0, None, CounterKind::Add(5)), op(1, Some(2), CounterKind::Read(5)), op(10, Some(12), CounterKind::Read(0))];
        assert!(matches!(check(&ops), ModelVerdict::NotLinearizable { .. }));
    }
}
