//! The lock model: a KV key locked by sessions (Consul `?acquire=`, `?release=`, session
//! invalidation), checked for linearizability with the same search as the KV register.
//!
//! State: the session holding the lock, or none. Operations (Consul's semantics, with a
//! lock-delay of 0 so that time does not enter the model):
//! - `acquire(s)`: `true` iff the lock is free or already held by `s`; then `s` holds it.
//! - `release(s)`: `true` iff `s` holds it; then it is free.
//! - `invalidate(s)`: the session ends (destroyed by its client, or its TTL ran out on the
//!   leader); if it held the lock, the lock is free. Always succeeds.
//! - `read`: the holder a `GET` shows (its `Session` field).
//!
//! Mutual exclusion is part of linearizability here: two acquires by different sessions that
//! both return `true` with no release or invalidation of the first between them have no legal
//! order. The session-TTL safety property enters as an operation too: a TTL invalidation of `s`
//! is an `Info` operation invoked TTL after `s`'s last acknowledged renew (a correct leader waits
//! 2×TTL, so this allows a leader clock up to twice as fast); if the lock was taken from `s`
//! earlier, nothing can be linearized.

use std::time::{Duration, Instant};

use crate::linearizable::model::{Model, NoReductions, Operation};
use crate::linearizable::{check_model, ModelVerdict};

/// A session, numbered by the workload (unique per run).
pub type SessionNo = u64;

/// What a lock operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockCall {
    Acquire(SessionNo),
    Release(SessionNo),
    Invalidate(SessionNo),
    /// A read that showed this holder (`None`: free).
    Read(Option<SessionNo>),
}

/// One lock operation with its result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockOp {
    /// Index of the history op this came from (for reports).
    pub id: usize,
    pub call: LockCall,
    /// `Some(answer)` for an acknowledged acquire or release, `None` otherwise.
    pub ok: Option<bool>,
    pub invoke_ns: u64,
    /// `u64::MAX` when the outcome is unknown (it may take effect any time after `invoke_ns`).
    pub return_ns: u64,
}

impl LockOp {
    /// The session the operation names (a read's holder), if any.
    pub fn session(&self) -> Option<SessionNo> {
        match self.call {
            LockCall::Acquire(s) | LockCall::Release(s) | LockCall::Invalidate(s) | LockCall::Read(Some(s)) => Some(s),
            LockCall::Read(None) => None,
        }
    }
}

impl Operation for LockOp {
    fn invoke_ns(&self) -> u64 {
        self.invoke_ns
    }
    fn return_ns(&self) -> u64 {
        self.return_ns
    }
}

impl std::fmt::Display for LockOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |s: Option<SessionNo>| s.map_or("free".to_string(), |s| format!("s{s}"));
        match self.call {
            LockCall::Acquire(s) => write!(f, "acquire by s{s}")?,
            LockCall::Release(s) => write!(f, "release by s{s}")?,
            LockCall::Invalidate(s) => write!(f, "invalidate s{s}")?,
            LockCall::Read(h) => write!(f, "read → {}", show(h))?,
        }
        if let Some(ok) = self.ok {
            write!(f, " → {ok}")?;
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        if self.return_ns == u64::MAX {
            write!(f, " [{:.1} ms, outcome unknown]", ms(self.invoke_ns))
        } else {
            write!(f, " [{:.1}–{:.1} ms]", ms(self.invoke_ns), ms(self.return_ns))
        }
    }
}

/// The lock's sequential specification.
pub struct Lock;

impl Model for Lock {
    type Op = LockOp;
    type State = Option<SessionNo>;
    type Reducer = NoReductions;

    fn init(&self) -> Self::State {
        None
    }

    fn step(&self, holder: Self::State, op: &LockOp) -> Option<Self::State> {
        match (op.call, op.ok) {
            (LockCall::Acquire(s), Some(true)) => (holder.is_none() || holder == Some(s)).then_some(Some(s)),
            (LockCall::Acquire(s), Some(false)) => (holder.is_some() && holder != Some(s)).then_some(holder),
            // An unknown acquire that happened: it took the lock if it could.
            (LockCall::Acquire(s), None) => Some(if holder.is_none() { Some(s) } else { holder }),
            (LockCall::Release(s), Some(true)) => (holder == Some(s)).then_some(None),
            (LockCall::Release(s), Some(false)) => (holder != Some(s)).then_some(holder),
            (LockCall::Release(s), None) => Some(if holder == Some(s) { None } else { holder }),
            (LockCall::Invalidate(s), _) => Some(if holder == Some(s) { None } else { holder }),
            (LockCall::Read(seen), _) => (seen == holder).then_some(holder),
        }
    }

    fn reducer(&self, ops: &[&LockOp]) -> NoReductions {
        NoReductions::new(ops)
    }
}

/// The verdict on one lock.
#[derive(Clone, Debug)]
pub enum LockVerdict {
    Linearizable,
    /// No legal order; `ops` is a small failing sub-history (shrunk greedily), sorted by
    /// invocation, and `explanation` says where the search got stuck.
    NotLinearizable { ops: Vec<LockOp>, explanation: String },
    Unknown { reason: String },
}

/// Checks one lock's operations. A violation is shrunk within a further `budget`: first to the
/// operations invoked before the stuck operation returned (later ones cannot be ordered before
/// it), then greedily, dropping every operation of one session at a time, then one operation at
/// a time while the rest still fails *at the same
/// operation*. (Dropping an acquire can make an unrelated read fail; requiring the same stuck
/// operation keeps the shrunk history about the original violation.)
pub fn check_lock(ops: &[LockOp], budget: Duration) -> LockVerdict {
    let refs: Vec<&LockOp> = ops.iter().collect();
    let stuck_id = match check_model(&Lock, &refs, budget) {
        ModelVerdict::Linearizable => return LockVerdict::Linearizable,
        ModelVerdict::Unknown { reason } => return LockVerdict::Unknown { reason },
        ModelVerdict::NotLinearizable { op, .. } => refs[op].id,
    };
    let deadline = Instant::now() + budget;
    let fails_at_stuck = |candidate: &[LockOp]| {
        let refs: Vec<&LockOp> = candidate.iter().collect();
        matches!(check_model(&Lock, &refs, budget / 8), ModelVerdict::NotLinearizable { op, .. } if refs[op].id == stuck_id)
    };
    let stuck_return = ops.iter().find(|o| o.id == stuck_id).map_or(u64::MAX, |o| o.return_ns);
    let mut kept: Vec<LockOp> = ops.to_vec();
    let prefix: Vec<LockOp> = ops.iter().filter(|o| o.invoke_ns <= stuck_return).cloned().collect();
    if prefix.len() < kept.len() && fails_at_stuck(&prefix) {
        kept = prefix;
    }
    // Whole sessions first: an acquire and its release only go together.
    let mut sessions: Vec<SessionNo> = kept.iter().filter_map(|o| o.session()).collect();
    sessions.sort_unstable();
    sessions.dedup();
    for s in sessions {
        if Instant::now() >= deadline {
            break;
        }
        let without: Vec<LockOp> = kept.iter().filter(|o| o.id == stuck_id || o.session() != Some(s)).cloned().collect();
        if without.len() < kept.len() && fails_at_stuck(&without) {
            kept = without;
        }
    }
    let mut i = 0;
    while i < kept.len() && Instant::now() < deadline {
        if kept[i].id == stuck_id {
            i += 1;
            continue;
        }
        let mut without = kept.clone();
        without.remove(i);
        if fails_at_stuck(&without) {
            kept = without;
        } else {
            i += 1;
        }
    }
    kept.sort_by_key(|o| (o.invoke_ns, o.id));
    let refs: Vec<&LockOp> = kept.iter().collect();
    let explanation = match check_model(&Lock, &refs, budget) {
        ModelVerdict::NotLinearizable { op, prefix, state } => {
            let order: Vec<String> = prefix.iter().map(|&i| refs[i].to_string()).collect();
            format!(
                "after [{}] the lock is held by {}, and `{}` cannot take effect before it returned",
                order.join("; "),
                state.map_or("no one".to_string(), |s| format!("s{s}")),
                refs[op]
            )
        }
        _ => "the full history has no legal order (the shrunk one was not re-proved)".to_string(),
    };
    LockVerdict::NotLinearizable { ops: kept, explanation }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: usize, call: LockCall, ok: Option<bool>, invoke: u64, ret: u64) -> LockOp {
        LockOp { id, call, ok, invoke_ns: invoke, return_ns: ret }
    }

    #[test]
    fn acquire_release_and_invalidate_in_order_are_linearizable() {
        let ops = vec![
            op(0, LockCall::Acquire(1), Some(true), 0, 10),
            op(1, LockCall::Acquire(2), Some(false), 20, 30),
            op(2, LockCall::Read(Some(1)), None, 31, 32),
            op(3, LockCall::Invalidate(1), None, 40, 50),
            op(4, LockCall::Acquire(2), Some(true), 60, 70),
            op(5, LockCall::Release(1), Some(false), 80, 90),
            op(6, LockCall::Release(2), Some(true), 100, 110),
            op(7, LockCall::Read(None), None, 120, 130),
        ];
        assert!(matches!(check_lock(&ops, Duration::from_secs(1)), LockVerdict::Linearizable));
    }

    #[test]
    fn two_holders_at_once_are_caught_and_shrunk_to_two_ops() {
        let ops = vec![
            op(0, LockCall::Read(None), None, 0, 5),
            op(1, LockCall::Acquire(1), Some(true), 10, 20),
            op(2, LockCall::Acquire(2), Some(true), 30, 40),
            op(3, LockCall::Read(Some(2)), None, 50, 60),
        ];
        match check_lock(&ops, Duration::from_secs(1)) {
            LockVerdict::NotLinearizable { ops, explanation } => {
                let ids: Vec<usize> = ops.iter().map(|o| o.id).collect();
                assert!(ids == vec![1, 2] || ids == vec![1, 3], "shrunk to s1's acquire and one sign of s2 holding: {ids:?}: {explanation}");
            }
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn a_ttl_invalidation_may_not_free_the_lock_before_its_earliest_time() {
        // s1 holds; its TTL invalidation may happen only from 100 on, yet s2 got the lock at 50.
        let early = vec![
            op(0, LockCall::Acquire(1), Some(true), 0, 10),
            op(1, LockCall::Acquire(2), Some(true), 40, 50),
            op(2, LockCall::Invalidate(1), None, 100, u64::MAX),
        ];
        assert!(matches!(check_lock(&early, Duration::from_secs(1)), LockVerdict::NotLinearizable { .. }));
        let in_time = vec![early[0].clone(), op(1, LockCall::Acquire(2), Some(true), 120, 130), early[2].clone()];
        assert!(matches!(check_lock(&in_time, Duration::from_secs(1)), LockVerdict::Linearizable));
    }

    #[test]
    fn a_release_that_kept_the_lock_is_caught() {
        let ops = vec![
            op(0, LockCall::Acquire(1), Some(true), 0, 10),
            op(1, LockCall::Release(1), Some(true), 20, 30),
            op(2, LockCall::Acquire(2), Some(false), 40, 50),
        ];
        assert!(matches!(check_lock(&ops, Duration::from_secs(1)), LockVerdict::NotLinearizable { .. }));
    }
}
