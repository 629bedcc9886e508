//! Per-key linearizability of the KV register (read / write / CAS / delete).
//!
//! Owns: the register model, the search deciding whether one key's ops are linearizable, the
//! shrinking of a failing key history to a small failing sub-history, and the human-readable
//! report. Keys are independent registers, so a history is checked key by key (linearizability is
//! compositional: Herlihy & Wing 1990).
//!
//! Algorithm: the Wing & Gong (1993) search as improved by Lowe ("Testing for linearizability",
//! 2017) with memoisation of (set of linearized ops, model state) — the formulation used by
//! Porcupine (Anish Athalye, <https://github.com/anishathalye/porcupine>): call/return events sorted
//! by time in a linked list, lift/unlift of linearized ops, backtracking on an unlinearized return.
//!
//! Semantics of outcomes: `Fail` ops never happened and are dropped. `Info` ops may or may not have
//! happened: they return at +infinity and their result is unconstrained (an `Info` CAS swaps iff
//! the register holds its `expect`; an `Info` read is dropped). Events at equal times order calls
//! before returns, so ops whose intervals touch are treated as concurrent (the conservative choice).
//!
//! Budgets: each search is bounded by wall-clock time (`std::time::Instant`; the checker runs
//! outside the simulation) and by a cap on memoised states; running out yields
//! [`Verdict::Unknown`], never a silent pass.

mod cache;
pub mod model;
#[cfg(test)]
mod proptests;
mod reduce;
mod search;
mod shrink;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::history::{History, OkResult, Op, OpFn, Outcome, Value};
use search::{Limits, SearchResult, State, Stuck, MAX_STATES};

/// The result of checking one key.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Some order of the ops, consistent with real time, is a legal register history.
    Linearizable,
    /// No such order exists; the violation carries a small failing sub-history.
    NotLinearizable(Violation),
    /// The check ran out of time or states (or the ops were malformed); nothing was proven.
    Unknown {
        /// Why the check was inconclusive.
        reason: String,
    },
}

impl Verdict {
    /// True only for [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// A proven linearizability violation on one key.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The key whose history is not linearizable.
    pub key: String,
    /// The smallest failing sub-history found (a subset of the recorded ops, sorted by invocation),
    /// itself not linearizable.
    pub ops: Vec<Op>,
    /// Where the search of `ops` got furthest and why it could not go on.
    pub explanation: String,
}

/// Checks one key's ops (all treated as ops on a single register that starts absent; the `key`
/// field of the ops is not consulted). `budget` bounds the search; when a violation is found, a
/// further `budget` bounds its shrinking, so a failing check may take up to about twice `budget`.
pub fn check_key(key: &str, ops: &[Op], budget: Duration) -> Verdict {
    for op in ops {
        if let Err(reason) = search::validate(op) {
            return Verdict::Unknown {
                reason: format!("key {key:?}: malformed history: {reason}"),
            };
        }
    }
    let relevant: Vec<&Op> = ops.iter().filter(|op| search::is_relevant(op)).collect();
    let limits = Limits {
        deadline: Instant::now().checked_add(budget),
        max_states: MAX_STATES,
    };
    match search::search(&relevant, &limits) {
        SearchResult::Linearizable => Verdict::Linearizable,
        SearchResult::Exhausted(why) => Verdict::Unknown {
            reason: format!("key {key:?}: {why} checking {} ops", relevant.len()),
        },
        SearchResult::NotLinearizable(stuck) => {
            let (kept, stuck) =
                shrink::shrink(&relevant, stuck, Instant::now().checked_add(budget));
            let explanation = explain(&relevant, &kept, &stuck);
            let mut failing: Vec<Op> = kept.iter().map(|&i| relevant[i].clone()).collect();
            failing.sort_by_key(|op| (op.invoke_ns, op.id));
            Verdict::NotLinearizable(Violation {
                key: key.to_string(),
                ops: failing,
                explanation,
            })
        }
    }
}

/// The verdict on a history checked against any [`model::Model`] with [`check_model`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelVerdict<S> {
    /// Some order of the ops, consistent with real time, is legal for the model.
    Linearizable,
    /// No such order exists. `op` (an index into the checked slice) could not take effect before
    /// it returned; `prefix` is the longest partial linearization found, after which the model was
    /// in `state`.
    NotLinearizable { op: usize, prefix: Vec<usize>, state: S },
    /// The time or state budget ran out; nothing was proven.
    Unknown { reason: String },
}

/// Checks `ops` against `model` with the same Wing–Gong–Lowe search (and memoisation) as the KV
/// register. Ops that certainly did not happen must be left out by the caller; ops whose outcome
/// is unknown report [`model::Operation::is_info`]. `budget` bounds the search.
pub fn check_model<M: model::Model>(model: &M, ops: &[&M::Op], budget: Duration) -> ModelVerdict<M::State> {
    let limits = Limits { deadline: Instant::now().checked_add(budget), max_states: MAX_STATES };
    match search::search_model(model, ops, &limits) {
        SearchResult::Linearizable => ModelVerdict::Linearizable,
        SearchResult::NotLinearizable(s) => ModelVerdict::NotLinearizable { op: s.op, prefix: s.prefix, state: s.state },
        SearchResult::Exhausted(reason) => ModelVerdict::Unknown { reason },
    }
}

/// Checks every key of `history` independently, each with `budget_per_key`. Returns one verdict
/// per key, sorted by key.
pub fn check_history(history: &History, budget_per_key: Duration) -> Vec<(String, Verdict)> {
    let mut by_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in &history.ops {
        by_key.entry(op.key.as_str()).or_default().push(op.clone());
    }
    by_key
        .into_iter()
        .map(|(key, ops)| (key.to_string(), check_key(key, &ops, budget_per_key)))
        .collect()
}

fn show_value(v: Option<Value>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "absent".to_string(),
    }
}

fn show_state(s: State) -> String {
    match s {
        Some(v) => format!("held {v}"),
        None => "was absent".to_string(),
    }
}

/// Why `op` cannot take effect when the register is in `state`.
fn why_illegal(op: &Op, state: State) -> String {
    if search::step(state, op).is_some() {
        return "every ordering that places it there was already explored and failed".to_string();
    }
    match (&op.f, &op.outcome) {
        (OpFn::Read, Outcome::Ok(OkResult::Read(v))) => {
            format!(
                "it read {} while the register {}",
                show_value(*v),
                show_state(state)
            )
        }
        (OpFn::Read, Outcome::Ok(OkResult::Present)) => format!("it listed the key as present while the register {}", show_state(state)),
        (OpFn::Cas { expect, .. }, Outcome::Ok(OkResult::Cas(true))) => format!(
            "it swapped expecting {} while the register {}",
            show_value(*expect),
            show_state(state)
        ),
        (OpFn::Cas { .. }, Outcome::Ok(OkResult::Cas(false))) => format!(
            "it reported no swap although the register {}, as it expected",
            show_state(state)
        ),
        _ => "it cannot take effect there".to_string(),
    }
}

fn explain(ops: &[&Op], kept: &[usize], stuck: &Stuck) -> String {
    let ids = |idx: &[usize]| -> String {
        if idx.is_empty() {
            return "none".to_string();
        }
        idx.iter()
            .map(|&i| format!("#{}", ops[i].id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let op = ops[stuck.op];
    let deadline = match op.outcome {
        Outcome::Info => "at some point".to_string(),
        _ => format!("before it returned at {}", ms(op.complete_ns)),
    };
    let these = match kept.len() {
        1 => "this op".to_string(),
        n => format!("these {n} ops"),
    };
    format!(
        "No order of {these} respects real time and is a legal register history.\n\
         Longest partial linearization found: [{}], after which the register {}.\n\
         Op #{} must take effect {deadline}, but {}.",
        ids(&stuck.prefix),
        show_state(stuck.state),
        op.id,
        why_illegal(op, stuck.state),
    )
}

fn ms(ns: u64) -> String {
    format!("{}.{:03}ms", ns / 1_000_000, (ns % 1_000_000) / 1_000)
}

fn show_fn(f: &OpFn) -> String {
    match f {
        OpFn::Read => "read".to_string(),
        OpFn::Write(v) => format!("write {v}"),
        OpFn::Cas { expect, new } => format!("cas {}->{new}", show_value(*expect)),
        OpFn::Delete => "delete".to_string(),
        OpFn::DeleteCas { expect } => format!("delete-cas {expect}"),
    }
}

fn show_outcome(o: &Outcome) -> String {
    match o {
        Outcome::Ok(OkResult::Read(v)) => format!("ok {}", show_value(*v)),
        Outcome::Ok(OkResult::Present) => "ok present".to_string(),
        Outcome::Ok(OkResult::Cas(true)) => "ok swapped".to_string(),
        Outcome::Ok(OkResult::Cas(false)) => "ok not-swapped".to_string(),
        Outcome::Ok(OkResult::Done) => "ok".to_string(),
        Outcome::Fail => "fail".to_string(),
        Outcome::Info => "info".to_string(),
    }
}

/// What an op did, with a read's mode: `write 7`, `read consistent`, `read blocking index=4 wait=200ms`.
fn show_fn_mode(op: &Op) -> String {
    match op.f {
        OpFn::Read => format!("read {}", op.mode.label()),
        _ => show_fn(&op.f),
    }
}

/// One op as a report line: id, client and the server it went to, function (with a read's mode),
/// outcome, invoke/complete times in ms, e.g.
/// `#178    w1 via s3   read consistent        ok 10            invoke   4789.000ms  complete 4820.000ms`.
fn show_op(op: &Op) -> String {
    let complete = match op.outcome {
        Outcome::Info => format!("never (gave up at {})", ms(op.complete_ns)),
        _ => ms(op.complete_ns),
    };
    let route = format!("{} via {}", op.client_name(), op.server.as_deref().unwrap_or("?"));
    format!(
        "#{:<6} {:<11} {:<26} {:<16} invoke {:>12}  complete {}",
        op.id,
        route,
        show_fn_mode(op),
        show_outcome(&op.outcome),
        ms(op.invoke_ns),
        complete
    )
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {:?} is NOT linearizable; minimal failing sub-history ({} op{}):",
            self.key,
            self.ops.len(),
            if self.ops.len() == 1 { "" } else { "s" }
        )?;
        for op in &self.ops {
            writeln!(f, "  {}", show_op(op))?;
        }
        for line in self.explanation.lines() {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => writeln!(f, "linearizable"),
            Verdict::NotLinearizable(v) => write!(f, "{v}"),
            Verdict::Unknown { reason } => writeln!(f, "unknown (inconclusive): {reason}"),
        }
    }
}
