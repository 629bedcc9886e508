//! Acknowledged writes survive: a write the cluster acknowledged is committed, and Leader
//! Completeness (Ongaro & Ousterhout 2014, Figure 3, §5.4) keeps committed entries in every later
//! leader's log, so after the cluster heals a linearizable read still sees that write, unless
//! something that could have come after it overwrote or deleted it.
//!
//! For each key, the final read is the applied state every server agreed on when the survival
//! check read it (client 0's `?stale` reads, see
//! [`super::consistent_read_matches_applied_state`]), or, without one, its last `Ok` linearizable
//! read (latest invocation; the simulator ends every run with `?consistent` reads of every key).
//! Judging the applied state keeps a broken `?consistent` read path from being reported as a
//! lost write: that disagreement is its own violation. For every acknowledged write-like op `w` (`Write`
//! answered `Ok`, or `Cas` answered `Ok(true)`) that completed before the final read was invoked,
//! the value read must be explained: it is `w`'s value, or the value of another write or CAS that
//! was not `Fail` and may have taken effect after `w` did, or (for an absent read) such a delete.
//! "May have taken effect after `w`" means it had not completed before `w` was invoked (an `Info`
//! op never completes). This is deliberately loose: only writes nothing could have replaced are
//! flagged, leaving subtler orderings to the linearizability checker.

use std::collections::BTreeMap;

use super::consistent_read_matches_applied_state::applied_state;
use super::{describe, written_value};
use crate::history::{History, OkResult, Op, OpFn, Outcome};
use crate::invariant::InvariantViolation;

/// Name used in [`InvariantViolation::invariant`].
pub const ACKNOWLEDGED_WRITES_SURVIVE: &str = "acknowledged_writes_survive";

/// How many lost writes a violation shows.
const SHOWN: usize = 5;

fn acknowledged(op: &Op) -> bool {
    matches!(
        (&op.f, &op.outcome),
        (OpFn::Write(_), Outcome::Ok(OkResult::Done)) | (OpFn::Cas { .. }, Outcome::Ok(OkResult::Cas(true)))
    )
}

/// Whether `later` may have taken effect after `w`: it may have happened at all, and it was still
/// in flight (or not yet invoked) when `w` was invoked.
fn may_follow(later: &Op, w: &Op) -> bool {
    later.id != w.id
        && match later.outcome {
            Outcome::Fail => false,
            Outcome::Info => true,
            Outcome::Ok(_) => later.complete_ns >= w.invoke_ns,
        }
}

/// One violation per key whose final read lost acknowledged writes; the evidence is the final
/// read, the lost writes (latest first) and the op that wrote the value read, if any.
pub fn check_acknowledged_writes_survive(history: &History) -> Vec<InvariantViolation> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in &history.ops {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut out = Vec::new();
    for (key, ops) in by_key {
        // The agreed applied state of every server when the survival check read it, as of its
        // first read (a write acknowledged during the round may not have reached a follower read
        // after it); else the last linearizable read (a lagging server's `?stale` answer alone
        // proves nothing lost).
        let final_read = match applied_state(&ops) {
            Some((_, reads)) => reads.into_iter().min_by_key(|o| (o.invoke_ns, o.id)),
            None => ops
                .iter()
                .copied()
                .filter(|o| matches!(o.outcome, Outcome::Ok(OkResult::Read(_))) && o.mode.is_linearizable())
                .max_by_key(|o| (o.invoke_ns, o.id)),
        };
        let Some(read) = final_read else { continue };
        let Outcome::Ok(OkResult::Read(seen)) = read.outcome else { continue };
        let explains = |o: &Op, w: &Op| match seen {
            Some(v) => written_value(o) == Some(v) && may_follow(o, w),
            None => super::may_delete(o) && may_follow(o, w),
        };
        let mut lost: Vec<&Op> = ops
            .iter()
            .copied()
            .filter(|w| acknowledged(w) && w.complete_ns < read.invoke_ns)
            .filter(|w| seen.is_none() || written_value(w) != seen)
            .filter(|w| !ops.iter().any(|o| explains(o, w)))
            .collect();
        if lost.is_empty() {
            continue;
        }
        lost.sort_by_key(|w| std::cmp::Reverse((w.complete_ns, w.id)));
        let seen_text = seen.map_or_else(|| "absent".to_string(), |v| v.to_string());
        let ids: Vec<String> = lost.iter().take(SHOWN).map(|w| format!("#{}", w.id)).collect();
        let more = if lost.len() > SHOWN { format!(" and {} more", lost.len() - SHOWN) } else { String::new() };
        let mut evidence = vec![describe(read)];
        evidence.extend(lost.iter().take(SHOWN).map(|w| describe(w)));
        if let Some(v) = seen {
            evidence.extend(ops.iter().filter(|o| written_value(o) == Some(v)).take(1).map(|o| describe(o)));
        }
        out.push(InvariantViolation::new(
            ACKNOWLEDGED_WRITES_SURVIVE,
            format!(
                "final read #{} of {key} saw {seen_text}; acknowledged {} {}{more} completed before it and nothing that could follow explains that",
                read.id,
                if lost.len() == 1 { "write" } else { "writes" },
                ids.join(", ")
            ),
            evidence,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracles::testing::*;

    const SWAPPED: Outcome = Outcome::Ok(OkResult::Cas(true));

    #[test]
    fn final_read_of_the_last_acknowledged_write_holds() {
        let h = history(vec![write(1, 10, 20, DONE), cas(Some(1), 2, 30, 40, SWAPPED), read(Some(1), 35, 45), read(Some(2), 50, 60)]);
        assert!(check_acknowledged_writes_survive(&h).is_empty());
    }

    #[test]
    fn acknowledged_write_overwritten_by_nothing_but_missing_is_lost() {
        let h = history(vec![write(1, 10, 20, DONE), write(2, 30, 40, DONE), read(Some(1), 50, 60)]);
        let v = check_acknowledged_writes_survive(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, ACKNOWLEDGED_WRITES_SURVIVE);
        assert!(v[0].detail.contains("saw 1") && v[0].detail.contains("write #1 "), "{}", v[0]);
    }

    #[test]
    fn acknowledged_write_read_back_absent_without_a_delete_is_lost() {
        let h = history(vec![write(1, 10, 20, DONE), delete(5, 8, DONE), read(None, 50, 60)]);
        let v = check_acknowledged_writes_survive(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("saw absent"), "{}", v[0]);
    }

    #[test]
    fn a_delete_after_the_write_explains_an_absent_final_read() {
        let h = history(vec![write(1, 10, 20, DONE), delete(30, 40, DONE), read(None, 50, 60)]);
        assert!(check_acknowledged_writes_survive(&h).is_empty());
    }

    #[test]
    fn a_concurrent_or_unknown_op_may_explain_the_final_value() {
        // 3 was invoked before write 1 but still in flight: it may have landed after it.
        let concurrent = history(vec![write(3, 5, 15, DONE), write(1, 10, 20, DONE), read(Some(3), 50, 60)]);
        assert!(check_acknowledged_writes_survive(&concurrent).is_empty());
        // An `Info` write may take effect at any time after its invocation.
        let unknown = history(vec![write(4, 1, 2, Outcome::Info), write(1, 10, 20, DONE), read(Some(4), 50, 60)]);
        assert!(check_acknowledged_writes_survive(&unknown).is_empty());
        let unknown_delete = history(vec![delete(1, 2, Outcome::Info), write(1, 10, 20, DONE), read(None, 50, 60)]);
        assert!(check_acknowledged_writes_survive(&unknown_delete).is_empty());
    }

    #[test]
    fn a_failed_op_cannot_explain_the_final_value() {
        let h = history(vec![write(1, 10, 20, DONE), delete(30, 40, Outcome::Fail), read(None, 50, 60)]);
        assert_eq!(check_acknowledged_writes_survive(&h).len(), 1);
    }

    #[test]
    fn a_stale_consistent_read_is_not_a_lost_write_when_the_applied_state_holds_it() {
        // Found by `--bug stale-consistent-read` (partition-heal seed 2): the final `?consistent`
        // read through a lagging server missed the last write, which every server had applied.
        let mut consistent = op(0, "k", OpFn::Read, 50, 60, Outcome::Ok(OkResult::Read(Some(1))));
        consistent.mode = crate::history::ReadMode::Consistent;
        let mut applied = op(0, "k", OpFn::Read, 70, 80, Outcome::Ok(OkResult::Read(Some(2))));
        applied.mode = crate::history::ReadMode::Stale;
        let h = history(vec![write(1, 10, 20, DONE), write(2, 30, 40, DONE), consistent, applied]);
        assert!(check_acknowledged_writes_survive(&h).is_empty());
        let v = crate::oracles::check_consistent_read_matches_applied_state(&h);
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn writes_still_in_flight_at_the_final_read_are_not_judged() {
        let h = history(vec![write(1, 10, 20, DONE), write(2, 45, 70, DONE), read(Some(1), 50, 60)]);
        assert!(check_acknowledged_writes_survive(&h).is_empty());
    }
}
