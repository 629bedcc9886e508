//! Session-TTL liveness: a session whose client stopped renewing it is invalidated, and its
//! locks freed, within 2×TTL plus an election (Consul `session_ttl.go`: the leader allows
//! 2×TTL after the last renew, and a new leader restarts every timer). The safety side (never
//! before TTL) is judged inside the lock model ([`crate::lock`]); this is the other half, and a
//! *liveness* property: a leader that forgets a timer still answers every request correctly, but
//! a lock held by a dead client is never freed.
//!
//! The rule, for a read `R` (invoked at `r`) that showed session `s` holding a lock: let `a` be
//! the invocation of `s`'s last create or renew *attempt*, whatever its outcome (an unanswered
//! renew may still have reached the leader). The deadline is `max(a, end of every disturbance
//! overlapping [a, r]) + 2×TTL + slack`: after a fault heals (the span already includes a settle
//! time), a new leader restarts the timer at its election and owes a full 2×TTL from there. `R`
//! invoked after the deadline is a violation; a disturbance that never ended excuses it. Reads in
//! `?stale` mode are skipped (a lagging follower may show an old holder).
//!
//! Owns: the rule above. Never judges who may hold a lock (the lock model does).

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{History, OkResult, Op, OpFn, Outcome, ReadMode};
use crate::invariant::InvariantViolation;
use crate::oracles::{describe, secs, DisturbedSpan};

/// Name used in [`InvariantViolation::invariant`].
pub const SESSION_TTL_LIVENESS: &str = "session_ttl_liveness";

/// Beyond 2×TTL, the time a correct cluster may take to invalidate an expired session, in ns: the
/// leader's timer tick (100 ms), a Raft commit, and an election nobody injected (a follower's
/// timeout of up to 1 s, with its pre-vote round).
pub const INVALIDATION_SLACK_NS: u64 = 2_000_000_000;

/// One violation per read that showed a session holding a lock past its deadline (see the
/// module docs). `anchor_keys` are the keys whose `write s` ops are `s`'s creates and renews;
/// `ttl_ns` is the sessions' TTL.
pub fn check_session_ttl_liveness(history: &History, anchor_keys: &[&str], ttl_ns: u64, disturbed: &[DisturbedSpan]) -> Vec<InvariantViolation> {
    let mut last_attempt: BTreeMap<u64, &Op> = BTreeMap::new();
    for op in history.ops.iter().filter(|o| anchor_keys.contains(&o.key.as_str())) {
        if let OpFn::Write(s) = op.f {
            let e = last_attempt.entry(s).or_insert(op);
            if op.invoke_ns > e.invoke_ns {
                *e = op;
            }
        }
    }
    let mut out = Vec::new();
    // The earliest late sighting per session is enough to show it.
    let mut reported: BTreeSet<u64> = BTreeSet::new();
    for read in history.ops.iter().filter(|o| o.f == OpFn::Read && o.mode != ReadMode::Stale) {
        let Outcome::Ok(OkResult::Read(Some(s))) = read.outcome else { continue };
        let Some(anchor) = last_attempt.get(&s) else { continue };
        if reported.contains(&s) {
            continue;
        }
        let (a, r) = (anchor.invoke_ns, read.invoke_ns);
        // The clock restarts when the last fault overlapping [a, r] settled; one that never
        // settled (`u64::MAX`) excuses the read.
        let resume = disturbed.iter().filter(|&&(from, to)| from <= r && to >= a).map(|&(_, to)| to).fold(a, u64::max);
        if resume == u64::MAX {
            continue;
        }
        let deadline = resume.saturating_add(2 * ttl_ns + INVALIDATION_SLACK_NS);
        if r <= deadline {
            continue;
        }
        reported.insert(s);
        let server = read.server.as_deref().unwrap_or("an unrecorded server");
        let since = if resume > a { format!(", and the last fault settled at {}", secs(resume)) } else { String::new() };
        out.push(InvariantViolation::new(
            SESSION_TTL_LIVENESS,
            format!(
                "read #{} of {} through {server} at {} still showed session s{s} holding it: its last create/renew was sent at {}{since}, so it should have been invalidated by {} (2×TTL of {} + {} slack)",
                read.id,
                read.key,
                secs(r),
                secs(a),
                secs(deadline),
                secs(ttl_ns),
                secs(INVALIDATION_SLACK_NS),
            ),
            vec![describe(anchor), describe(read)],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracles::testing::history;

    const MS: u64 = 1_000_000;
    const TTL: u64 = 2_000 * MS;

    fn op(id: usize, key: &str, f: OpFn, outcome: Outcome, invoke_ms: u64) -> Op {
        let at = invoke_ms * MS;
        Op { id, client: 1, key: key.into(), f, invoke_ns: at, complete_ns: at + 5 * MS, outcome, server: Some("s1".into()), mode: ReadMode::Default }
    }

    fn sighting(id: usize, holder: u64, at_ms: u64) -> Op {
        op(id, "k0", OpFn::Read, Outcome::Ok(OkResult::Read(Some(holder))), at_ms)
    }

    fn check(ops: Vec<Op>, disturbed: &[DisturbedSpan]) -> Vec<InvariantViolation> {
        check_session_ttl_liveness(&history(ops), &["create", "renew"], TTL, disturbed)
    }

    #[test]
    fn a_lock_held_past_twice_the_ttl_after_the_last_renew_is_late() {
        let base = vec![
            op(0, "create", OpFn::Write(7), Outcome::Ok(OkResult::Done), 0),
            op(1, "renew", OpFn::Write(7), Outcome::Ok(OkResult::Done), 1_000),
        ];
        // Deadline: 1 s + 4 s + 2 s slack = 7 s.
        let held = [base.clone(), vec![sighting(2, 7, 6_900)]].concat();
        assert!(check(held, &[]).is_empty());
        let late = [base, vec![sighting(2, 7, 7_100), sighting(3, 7, 8_000)]].concat();
        let v = check(late, &[]);
        assert_eq!(v.len(), 1, "one report per session: {v:?}");
        assert_eq!(v[0].invariant, SESSION_TTL_LIVENESS);
        assert!(v[0].detail.contains("read #2") && v[0].detail.contains("s7") && v[0].detail.contains("through s1"), "{}", v[0]);
    }

    #[test]
    fn an_unanswered_renew_moves_the_deadline_and_other_sessions_do_not() {
        let ops = vec![
            op(0, "create", OpFn::Write(7), Outcome::Ok(OkResult::Done), 0),
            op(1, "renew", OpFn::Write(7), Outcome::Info, 3_000),
            op(2, "renew", OpFn::Write(8), Outcome::Ok(OkResult::Done), 5_000),
            sighting(3, 7, 9_000),
        ];
        assert!(check(ops, &[]).is_empty());
    }

    #[test]
    fn a_fault_restarts_the_clock_and_one_that_never_ends_excuses() {
        let ops = vec![op(0, "create", OpFn::Write(7), Outcome::Ok(OkResult::Done), 0), sighting(1, 7, 9_000)];
        assert!(check(ops.clone(), &[(1_000 * MS, 3_000 * MS)]).is_empty(), "deadline 3 s + 6 s");
        assert_eq!(check(ops.clone(), &[(1_000 * MS, 2_000 * MS)]).len(), 1, "deadline 2 s + 6 s");
        assert!(check(ops, &[(1_000 * MS, u64::MAX)]).is_empty());
    }

    #[test]
    fn stale_reads_and_free_locks_are_not_judged() {
        let mut stale = sighting(1, 7, 20_000);
        stale.mode = ReadMode::Stale;
        let ops = vec![op(0, "create", OpFn::Write(7), Outcome::Ok(OkResult::Done), 0), stale, op(2, "k0", OpFn::Read, Outcome::Ok(OkResult::Read(None)), 20_000)];
        assert!(check(ops, &[]).is_empty());
    }
}
