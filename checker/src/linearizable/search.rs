//! The register model and the Wing–Gong–Lowe search over one key's ops.
//!
//! This is Porcupine's `checkSingle`: call and return events sorted by time (calls before returns at
//! equal times, so ops with touching intervals count as concurrent) in a doubly linked list; the
//! search repeatedly linearizes (lifts out) the first call whose op is legal in the current model
//! state, memoising configurations so each is explored once, and backtracks (unlifts) when it
//! reaches the return of an op that has not been linearized.
//!
//! Departures from Porcupine, all to keep pending `Info` ops from blowing up the search (see
//! [`super::reduce`] and [`super::cache`]): from each configuration the `Ok` calls are tried
//! before the `Info` calls (so configurations that used fewer `Info` ops are explored, and fail,
//! first); the memo compares canonical states and `Info` usage by dominance; and each
//! configuration on the path carries a "taint" recording whether its failure was only relative to
//! an ancestor.

use std::time::Instant;

use super::cache::{Cache, Lookup};
use super::model::{Model, Operation, Reduce, Register};
use crate::history::{OkResult, Op, OpFn, Outcome, Value};

/// Model state: the register's value, `None` when the key is absent.
pub(crate) type State = Option<Value>;

/// Default cap on memoised configurations per search.
pub(crate) const MAX_STATES: usize = 2_000_000;

/// Cap on the total size of memoised bitsets, in 64-bit words (256 MiB).
const MAX_CACHE_WORDS: usize = 32 << 20;

/// How often (in loop iterations) the deadline is consulted.
const DEADLINE_CHECK_MASK: u64 = 0x3ff;

const NIL: usize = usize::MAX;
const NO_TAINT: usize = usize::MAX;
const HEAD: usize = 0;

/// Bounds on one search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Give up (inconclusively) after this instant; `None` = no time limit.
    pub deadline: Option<Instant>,
    /// Give up (inconclusively) after memoising this many configurations.
    pub max_states: usize,
}

impl Limits {
    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Where a failed search got furthest before running out of orderings.
#[derive(Clone, Debug)]
pub(crate) struct Stuck<S = State> {
    /// Index (into the searched slice) of the op whose return was reached before it could be
    /// linearized.
    pub op: usize,
    /// The ops linearized at that point, in linearization order (indices into the searched slice).
    pub prefix: Vec<usize>,
    /// The model's state after `prefix`.
    pub state: S,
}

/// Result of one search.
#[derive(Clone, Debug)]
pub(crate) enum SearchResult<S = State> {
    Linearizable,
    NotLinearizable(Stuck<S>),
    /// The time or state budget ran out; the reason says which.
    Exhausted(String),
}

/// Whether an op takes part in the search: `Fail` ops never happened and an `Info` read constrains
/// nothing (it may be dropped), so both are left out.
pub(crate) fn is_relevant(op: &Op) -> bool {
    match op.outcome {
        Outcome::Fail => false,
        Outcome::Info => !matches!(op.f, OpFn::Read),
        // A `?stale` read may lag any amount behind: it is judged by its own oracles, not here.
        Outcome::Ok(_) => op.mode.is_linearizable(),
    }
}

/// Rejects ops whose `Ok` result does not fit their function (e.g. a read carrying `Cas(true)`).
pub(crate) fn validate(op: &Op) -> Result<(), String> {
    let fits = matches!(
        (&op.f, &op.outcome),
        (_, Outcome::Fail | Outcome::Info)
            | (OpFn::Read, Outcome::Ok(OkResult::Read(_) | OkResult::Present))
            | (OpFn::Write(_) | OpFn::Delete, Outcome::Ok(OkResult::Done))
            | (OpFn::Cas { .. } | OpFn::DeleteCas { .. }, Outcome::Ok(OkResult::Cas(_)))
    );
    if fits {
        Ok(())
    } else {
        Err(format!(
            "op #{} has result {:?} which does not fit {:?}",
            op.id, op.outcome, op.f
        ))
    }
}

/// Applies `op` to `state`: `Some(next_state)` if the op (with its recorded result) is legal in
/// `state`, `None` if not. `Info` ops have no constraining result: an `Info` CAS swaps iff the
/// state matches (not applying at all is covered by linearizing it last).
pub(crate) fn step(state: State, op: &Op) -> Option<State> {
    match (&op.f, &op.outcome) {
        (_, Outcome::Fail) => None,
        (OpFn::Read, Outcome::Info) => Some(state),
        (OpFn::Write(v), Outcome::Info | Outcome::Ok(OkResult::Done)) => Some(Some(*v)),
        (OpFn::Delete, Outcome::Info | Outcome::Ok(OkResult::Done)) => Some(None),
        (OpFn::Cas { expect, new }, Outcome::Info) => {
            Some(if state == *expect { Some(*new) } else { state })
        }
        (OpFn::DeleteCas { expect }, Outcome::Info) => Some(if state == Some(*expect) { None } else { state }),
        (OpFn::DeleteCas { expect }, Outcome::Ok(OkResult::Cas(true))) => (state.is_none() || state == Some(*expect)).then_some(None),
        (OpFn::DeleteCas { expect }, Outcome::Ok(OkResult::Cas(false))) => (state.is_some() && state != Some(*expect)).then_some(state),
        (OpFn::Read, Outcome::Ok(OkResult::Read(v))) => (state == *v).then_some(state),
        // Presence only: no value is compared, so the value-renaming reductions stay sound.
        (OpFn::Read, Outcome::Ok(OkResult::Present)) => state.is_some().then_some(state),
        (OpFn::Cas { expect, new }, Outcome::Ok(OkResult::Cas(true))) => {
            (state == *expect).then_some(Some(*new))
        }
        (OpFn::Cas { expect, .. }, Outcome::Ok(OkResult::Cas(false))) => {
            (state != *expect).then_some(state)
        }
        _ => None,
    }
}

/// The time an op's return event sits at: `Info` ops never return (+infinity).
pub(crate) fn return_time(op: &Op) -> u64 {
    match op.outcome {
        Outcome::Info => u64::MAX,
        _ => op.complete_ns.max(op.invoke_ns),
    }
}

/// The event list as a doubly linked list over node indices; node 0 is the head sentinel.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For a call node, its return node; `NIL` for return nodes and the head.
    matching: Vec<usize>,
    /// The op (index into the searched slice) of each node.
    op_of: Vec<usize>,
}

impl Events {
    fn new<O: Operation>(ops: &[&O]) -> Self {
        // (time, is_return, op): calls sort before returns at equal times.
        let mut evs: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            evs.push((op.invoke_ns(), false, i));
            evs.push((op.return_ns(), true, i));
        }
        evs.sort_unstable();
        let len = evs.len() + 1;
        let mut events = Events {
            next: vec![NIL; len],
            prev: vec![NIL; len],
            matching: vec![NIL; len],
            op_of: vec![NIL; len],
        };
        let mut call_node = vec![NIL; ops.len()];
        for (pos, &(_, is_return, op)) in evs.iter().enumerate() {
            let node = pos + 1;
            events.prev[node] = node - 1;
            events.next[node - 1] = node;
            events.op_of[node] = op;
            if is_return {
                if let Some(&call) = call_node.get(op) {
                    events.matching[call] = node;
                }
            } else {
                call_node[op] = node;
            }
        }
        events
    }

    /// Removes a call node and its return node from the list.
    fn lift(&mut self, call: usize) {
        let ret = self.matching[call];
        let (p, n) = (self.prev[call], self.next[call]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
        let (p, n) = (self.prev[ret], self.next[ret]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    /// Reinserts a lifted call node and its return node (inverse of `lift`, in reverse order).
    fn unlift(&mut self, call: usize) {
        let ret = self.matching[call];
        let (p, n) = (self.prev[ret], self.next[ret]);
        self.next[p] = ret;
        if n != NIL {
            self.prev[n] = ret;
        }
        let (p, n) = (self.prev[call], self.next[call]);
        self.next[p] = call;
        if n != NIL {
            self.prev[n] = call;
        }
    }
}

fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

fn clear_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] &= !(1 << (i % 64));
}

/// Decides whether `ops` (all on one register, all relevant per [`is_relevant`], initially absent)
/// are linearizable, within `limits`.
pub(crate) fn search(ops: &[&Op], limits: &Limits) -> SearchResult {
    search_model(&Register, ops, limits)
}

/// Decides whether `ops` are linearizable with respect to `model`, starting from
/// `model.init()`, within `limits`. Ops whose outcome is certainly "did not happen" must be left
/// out by the caller.
pub(crate) fn search_model<M: Model>(model: &M, ops: &[&M::Op], limits: &Limits) -> SearchResult<M::State> {
    if ops.is_empty() {
        return SearchResult::Linearizable;
    }
    let mut ev = Events::new(ops);
    let mut reducer = model.reducer(ops);
    if reducer.only_info_left() {
        return SearchResult::Linearizable;
    }
    let words = ops.len().div_ceil(64);
    let max_states = limits.max_states.min(MAX_CACHE_WORDS / words.max(1)).max(1);
    // Linearized `Ok` ops (linearized `Info` ops are counted per class by the reducer).
    let mut linearized = vec![0u64; words];
    // Moves from a configuration are tried `Ok` calls first, then `Info` calls.
    let mut info_phase = false;
    let mut cache: Cache<M::State> = Cache::default();
    // Per configuration on the path (index = depth): the shallowest ancestor depth its subtree
    // was pruned against (see `super::cache`).
    let mut taint: Vec<usize> = vec![NO_TAINT];
    // (call node, state before it) for each linearized op, in order.
    let mut calls: Vec<(usize, M::State)> = Vec::new();
    let mut state: M::State = model.init();
    let mut best: Option<Stuck<M::State>> = None;
    let mut entry = ev.next[HEAD];
    let mut iterations: u64 = 0;

    while ev.next[HEAD] != NIL {
        iterations += 1;
        if iterations & DEADLINE_CHECK_MASK == 0 && limits.expired() {
            return SearchResult::Exhausted(format!(
                "time budget exhausted after exploring {} states",
                cache.len()
            ));
        }
        if entry == NIL {
            // Unreachable: every call is followed by its return, so a walk from the head meets a
            // return before the end of the list.
            return SearchResult::Exhausted("internal error: event list ended on a call".into());
        }
        let ret = ev.matching[entry];
        if ret != NIL {
            let op = ev.op_of[entry];
            if reducer.is_info(op) == info_phase && reducer.may_linearize(op) {
                if let Some(next_state) = model.step(state, ops[op]) {
                    reducer.mark(op);
                    let canon_next = reducer.canon(next_state);
                    let no_op = reducer.is_info(op) && model.equal(&canon_next, &reducer.canon(state));
                    if !no_op {
                        if reducer.only_info_left() {
                            return SearchResult::Linearizable;
                        }
                        let info = reducer.is_info(op);
                        if !info {
                            set_bit(&mut linearized, op);
                        }
                        let counts = reducer.class_counts(next_state);
                        let depth = calls.len();
                        match cache.lookup(&linearized, canon_next, &counts) {
                            Lookup::New => {
                                if cache.len() >= max_states {
                                    return SearchResult::Exhausted(format!(
                                        "state budget exhausted ({} states explored)",
                                        cache.len()
                                    ));
                                }
                                cache.enter(&linearized, canon_next, &counts, depth + 1);
                                taint.push(NO_TAINT);
                                calls.push((entry, state));
                                state = next_state;
                                ev.lift(entry);
                                entry = ev.next[HEAD];
                                info_phase = false;
                                continue;
                            }
                            Lookup::Failed => {}
                            Lookup::Ancestor(at) => taint[depth] = taint[depth].min(at),
                        }
                        if !info {
                            clear_bit(&mut linearized, op);
                        }
                    }
                    reducer.unmark(op);
                }
            }
            entry = ev.next[entry];
        } else if !info_phase {
            // All `Ok` moves tried: now try `Info` moves (deferring them is explored first, so
            // configurations that used fewer `Info` ops fail first and dominate the rest).
            info_phase = true;
            entry = ev.next[HEAD];
        } else {
            // The return of an op not yet linearized: this ordering is a dead end.
            let deeper = match &best {
                Some(b) => calls.len() > b.prefix.len(),
                None => true,
            };
            if deeper {
                best = Some(Stuck {
                    op: ev.op_of[entry],
                    prefix: calls.iter().map(|&(node, _)| ev.op_of[node]).collect(),
                    state,
                });
            }
            let depth = calls.len();
            if depth > 0 {
                let counts = reducer.class_counts(state);
                let own = taint.pop().unwrap_or(NO_TAINT);
                cache.leave(&linearized, reducer.canon(state), &counts, own >= depth);
                if let Some(parent) = taint.last_mut() {
                    *parent = (*parent).min(own);
                }
            }
            let Some((call, prior)) = calls.pop() else {
                return match best {
                    Some(stuck) => SearchResult::NotLinearizable(stuck),
                    None => SearchResult::Exhausted("internal error: no dead end recorded".into()),
                };
            };
            state = prior;
            let undone = ev.op_of[call];
            info_phase = reducer.is_info(undone);
            if !info_phase {
                clear_bit(&mut linearized, undone);
            }
            reducer.unmark(undone);
            ev.unlift(call);
            entry = ev.next[call];
        }
    }
    SearchResult::Linearizable
}
