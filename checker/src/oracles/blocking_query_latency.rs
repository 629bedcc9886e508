//! Blocking-query latency: a blocking read (`?index=I&wait=W`) returns promptly once something it
//! watches changes. A query that is never woken still answers correctly when its wait runs out, so
//! no safety check sees a lost wake-up; this one does. It is a *liveness* property (Consul HTTP
//! API, "Blocking Queries": the request "will block until there is a change to the result, or the
//! wait time is reached").
//!
//! The rule, for a blocking read `R` of key `k` with index `I`, which the client saw at time `s`:
//! a write or CAS `W` of `k` invoked at or after `s` commits at a Raft index above `I` (every index
//! a client can see was committed before `s`, and Leader Completeness puts `W`'s entry after every
//! committed one). If `W` committed at `c` (acknowledged at `c`, or first read back at `c` if its
//! outcome was unknown), `R` must return by `max(c, invocation of R) + bound`, unless the nemesis
//! disturbed the cluster at any time from `R`'s invocation to `c + bound` (a partition, pause,
//! crash, clog, slow or lossy link, clock drift, membership change or leadership transfer, each
//! extended by a settle time after it heals: the caller passes these spans), or `R` ended in an
//! error rather than an answer. Deliberately loose: any disturbance at all excuses the read, so
//! the rule never fires on a correct run. (A correct leader that answers `R` late and `Ok` must
//! have passed its leadership check after `c`, so it still led in `W`'s term, applied `W` before
//! acknowledging it, and so fired `R`'s watch.)
//!
//! Owns: the rule above. Never judges values (the linearizability checker does) and never fires on
//! a read that returned within the bound or was excused by a disturbance.

use std::collections::BTreeMap;

use super::{describe, secs, written_value};
use crate::history::{History, OkResult, Op, OpFn, Outcome, ReadMode};
use crate::invariant::InvariantViolation;

/// Name used in [`InvariantViolation::invariant`].
pub const BLOCKING_QUERY_LATENCY: &str = "blocking_query_latency";

/// How long after a committed change to what it watches a blocking read may take to return, in
/// ns of simulated time (issue 8: "say 2 s"). Generous: a woken query answers in milliseconds.
pub const WAKE_BOUND_NS: u64 = 2_000_000_000;

/// A span of simulated time, in ns since the start, during which the nemesis had the cluster
/// disturbed (from the fault until a settle time after it healed; `u64::MAX` if never).
pub type DisturbedSpan = (u64, u64);

/// When `w`'s effect is known to have committed: its acknowledgement, or, for an unknown outcome,
/// the first completion of a read that returned its value. `None`: it may never have happened.
fn committed_at(w: &Op, first_read_of: &BTreeMap<u64, u64>) -> Option<u64> {
    match (&w.f, &w.outcome) {
        (OpFn::Write(_), Outcome::Ok(OkResult::Done)) | (OpFn::Cas { .. }, Outcome::Ok(OkResult::Cas(true))) => Some(w.complete_ns),
        (OpFn::Write(v) | OpFn::Cas { new: v, .. }, Outcome::Info) => first_read_of.get(v).copied(),
        _ => None,
    }
}

/// One violation per blocking read that stayed pending past `bound_ns` after a committed change
/// to its key (see the module docs), when no span in `disturbed` overlaps its window.
pub fn check_blocking_query_latency(history: &History, disturbed: &[DisturbedSpan], bound_ns: u64) -> Vec<InvariantViolation> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in &history.ops {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let quiet = |from: u64, to: u64| !disturbed.iter().any(|&(a, b)| a <= to && from <= b);
    let mut out = Vec::new();
    for ops in by_key.values() {
        // Each value's first read-back (values are unique per key).
        let mut first_read_of: BTreeMap<u64, u64> = BTreeMap::new();
        for op in ops {
            if let Outcome::Ok(OkResult::Read(Some(v))) = op.outcome {
                let at = first_read_of.entry(v).or_insert(op.complete_ns);
                *at = (*at).min(op.complete_ns);
            }
        }
        // Only answers count: a read that ended in an error or a timeout was refused by a
        // cluster that could not serve it (e.g. still electing a leader after a heal), which the
        // liveness probe judges; a lost wake-up answers `Ok`, late, with unchanged data.
        for read in ops.iter().filter(|o| o.f == OpFn::Read && matches!(o.outcome, Outcome::Ok(_))) {
            let ReadMode::Blocking { index, wait_ms, index_seen_ns } = read.mode else { continue };
            let late = ops
                .iter()
                .filter(|w| w.id != read.id && written_value(w).is_some() && w.invoke_ns >= index_seen_ns)
                .filter_map(|w| committed_at(w, &first_read_of).map(|c| (c.max(read.invoke_ns), *w)))
                .filter(|&(c, _)| read.complete_ns.saturating_sub(c) > bound_ns && quiet(read.invoke_ns, c.saturating_add(bound_ns)))
                .min_by_key(|&(c, w)| (c, w.id));
            let Some((committed, write)) = late else { continue };
            let server = read.server.as_deref().unwrap_or("an unrecorded server");
            out.push(InvariantViolation::new(
                BLOCKING_QUERY_LATENCY,
                format!(
                    "blocking read #{} of {} (index {index}, wait {wait_ms}ms) through {server} returned at {}, {} after write #{} (invoked after index {index} was seen) committed by {}; bound {}, no fault in between",
                    read.id,
                    read.key,
                    secs(read.complete_ns),
                    secs(read.complete_ns - committed),
                    write.id,
                    secs(committed),
                    secs(bound_ns),
                ),
                vec![describe(read), describe(write)],
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracles::testing::*;

    const MS: u64 = 1_000_000;

    /// A blocking read by client 2 on `k` with index 5 seen at `seen_ms`, from `invoke_ms` to
    /// `complete_ms`.
    fn blocking(seen_ms: u64, invoke_ms: u64, complete_ms: u64) -> Op {
        let mut r = read(Some(1), invoke_ms, complete_ms);
        r.server = Some("n2".into());
        r.mode = ReadMode::Blocking { index: 5, wait_ms: 5_000, index_seen_ns: seen_ms * MS };
        r
    }

    #[test]
    fn a_blocking_read_that_sleeps_through_a_committed_write_is_late() {
        let h = history(vec![blocking(10, 20, 5_020), write(7, 100, 110, DONE)]);
        let v = check_blocking_query_latency(&h, &[], WAKE_BOUND_NS);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, BLOCKING_QUERY_LATENCY);
        assert!(v[0].detail.contains("#0") && v[0].detail.contains("through n2") && v[0].detail.contains("write #1"), "{}", v[0]);
    }

    #[test]
    fn a_blocking_read_that_ended_in_an_error_is_excused() {
        let mut r = blocking(10, 20, 5_020);
        r.outcome = Outcome::Fail;
        let h = history(vec![r, write(7, 100, 110, DONE)]);
        assert!(check_blocking_query_latency(&h, &[], WAKE_BOUND_NS).is_empty());
    }

    #[test]
    fn a_blocking_read_woken_within_the_bound_holds() {
        let h = history(vec![blocking(10, 20, 130), write(7, 100, 110, DONE)]);
        assert!(check_blocking_query_latency(&h, &[], WAKE_BOUND_NS).is_empty());
    }

    #[test]
    fn a_write_invoked_before_the_index_was_seen_may_be_below_it() {
        let h = history(vec![write(7, 5, 110, DONE), blocking(10, 20, 5_020)]);
        assert!(check_blocking_query_latency(&h, &[], WAKE_BOUND_NS).is_empty());
    }

    #[test]
    fn a_read_invoked_after_the_write_committed_must_return_at_once() {
        let h = history(vec![write(7, 15, 18, DONE), blocking(10, 20, 5_020)]);
        assert_eq!(check_blocking_query_latency(&h, &[], WAKE_BOUND_NS).len(), 1);
    }

    #[test]
    fn a_fault_in_the_window_excuses_the_read() {
        let h = history(vec![blocking(10, 20, 5_020), write(7, 100, 110, DONE)]);
        assert!(check_blocking_query_latency(&h, &[(1_000 * MS, 3_000 * MS)], WAKE_BOUND_NS).is_empty());
        // A fault that ended before the read began does not.
        assert_eq!(check_blocking_query_latency(&h, &[(0, 15 * MS)], WAKE_BOUND_NS).len(), 1);
    }

    #[test]
    fn an_unknown_write_counts_from_its_first_read_back() {
        let unread = history(vec![blocking(10, 20, 5_020), write(7, 100, 110, Outcome::Info)]);
        assert!(check_blocking_query_latency(&unread, &[], WAKE_BOUND_NS).is_empty());
        let read_back = history(vec![blocking(10, 20, 5_020), write(7, 100, 110, Outcome::Info), read(Some(7), 200, 300)]);
        let v = check_blocking_query_latency(&read_back, &[], WAKE_BOUND_NS);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("committed by 0.300000s"), "{}", v[0]);
    }

    #[test]
    fn failed_writes_and_cas_that_did_not_swap_change_nothing() {
        let h = history(vec![
            blocking(10, 20, 5_020),
            write(7, 100, 110, Outcome::Fail),
            cas(Some(3), 8, 120, 130, Outcome::Ok(OkResult::Cas(false))),
        ]);
        assert!(check_blocking_query_latency(&h, &[], WAKE_BOUND_NS).is_empty());
    }
}
