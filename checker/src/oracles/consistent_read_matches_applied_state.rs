//! Consistent reads match the applied state: the survival check's two paths agree.
//!
//! After the final heal the simulator reads every key twice, as client 0: first with `?consistent`
//! through every server, then, once every server's `?stale` answers agree (all caught up), from
//! every server's applied state with `?stale` ([`applied_state`]). A `?consistent` read is
//! linearizable (Consul HTTP API, "Consistency Modes"), so the value it returned was current at
//! some point during it; the applied state, read later, can differ only through an op that may
//! have taken effect after that read began. When it differs otherwise, the read path is broken
//! (e.g. a server answered `?consistent` from its own stale state), not the log: this is reported
//! here, and [`super::acknowledged_writes_survive`] judges survival against the applied state.
//!
//! Owns: comparing client 0's `?consistent` reads with the agreed applied state. Never judges a
//! key whose servers did not agree (a server may still have been behind).

use std::collections::BTreeMap;

use super::{describe, written_value};
use crate::history::{History, OkResult, Op, OpFn, Outcome, ReadMode, Value};
use crate::invariant::InvariantViolation;

/// Name used in [`InvariantViolation::invariant`].
pub const CONSISTENT_READ_MATCHES_APPLIED_STATE: &str = "consistent_read_matches_applied_state";

/// Client 0's `?stale` reads of `ops` (one key): the applied-state reads of the survival check,
/// and the value they agree on (`None` if there are none, or any failed or disagreed).
pub fn applied_state<'a>(ops: &[&'a Op]) -> Option<(Option<Value>, Vec<&'a Op>)> {
    let reads: Vec<&Op> = ops.iter().copied().filter(|o| o.client == 0 && o.f == OpFn::Read && o.mode == ReadMode::Stale).collect();
    let mut agreed: Option<Option<Value>> = None;
    for r in &reads {
        let Outcome::Ok(OkResult::Read(v)) = r.outcome else { return None };
        match agreed {
            None => agreed = Some(v),
            Some(a) if a != v => return None,
            Some(_) => {}
        }
    }
    agreed.map(|v| (v, reads))
}

/// Whether `o` may have changed `key` to `value` after `read` began: it stores that value (or, for
/// an absent value, deletes), it did not certainly fail, and it had not completed before `read`
/// was invoked.
fn may_set_after(o: &Op, value: Option<Value>, read: &Op) -> bool {
    let sets = match value {
        Some(v) => written_value(o) == Some(v),
        None => super::may_delete(o),
    };
    let cas_failed = matches!(o.outcome, Outcome::Ok(OkResult::Cas(false)));
    sets && !cas_failed
        && match o.outcome {
            Outcome::Fail => false,
            Outcome::Info => true,
            Outcome::Ok(_) => o.complete_ns >= read.invoke_ns,
        }
}

/// One violation per client-0 `?consistent` read whose value the agreed applied state, read after
/// it, contradicts with no op to explain the difference.
pub fn check_consistent_read_matches_applied_state(history: &History) -> Vec<InvariantViolation> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in &history.ops {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut out = Vec::new();
    for (key, ops) in by_key {
        let Some((applied, applied_reads)) = applied_state(&ops) else { continue };
        let Some(first_applied) = applied_reads.iter().map(|r| r.invoke_ns).min() else { continue };
        let consistent = ops.iter().filter(|o| o.client == 0 && o.mode == ReadMode::Consistent && o.complete_ns < first_applied);
        for read in consistent {
            let Outcome::Ok(OkResult::Read(seen)) = read.outcome else { continue };
            if seen == applied || ops.iter().any(|o| o.id != read.id && may_set_after(o, applied, read)) {
                continue;
            }
            let server = read.server.as_deref().unwrap_or("an unrecorded server");
            let show = |v: Option<Value>| v.map_or_else(|| "absent".to_string(), |v| v.to_string());
            let servers: Vec<&str> = applied_reads.iter().filter_map(|r| r.server.as_deref()).collect();
            let mut evidence = vec![describe(read)];
            evidence.extend(applied_reads.iter().map(|r| describe(r)));
            evidence.extend(ops.iter().filter(|o| applied.is_some() && written_value(o) == applied).take(1).map(|o| describe(o)));
            out.push(InvariantViolation::new(
                CONSISTENT_READ_MATCHES_APPLIED_STATE,
                format!(
                    "consistent read disagrees with applied state on {server}: ?consistent read #{} of {key} through {server} saw {}, but the applied state of {} (read after it, all agreeing) holds {}, and no op that could follow the read set that",
                    read.id,
                    show(seen),
                    if servers.is_empty() { "every server".to_string() } else { servers.join(", ") },
                    show(applied),
                ),
                evidence,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracles::testing::*;

    fn final_read(v: Option<u64>, mode: ReadMode, server: &str, invoke_ms: u64) -> Op {
        let mut r = op(0, "k", OpFn::Read, invoke_ms, invoke_ms + 1, Outcome::Ok(OkResult::Read(v)));
        r.mode = mode;
        r.server = Some(server.into());
        r
    }

    #[test]
    fn a_consistent_read_behind_the_applied_state_is_reported_with_its_server() {
        let h = history(vec![
            write(1, 10, 20, DONE),
            write(2, 30, 40, DONE),
            final_read(Some(1), ReadMode::Consistent, "n2", 100),
            final_read(Some(2), ReadMode::Stale, "n1", 200),
            final_read(Some(2), ReadMode::Stale, "n2", 201),
        ]);
        let v = check_consistent_read_matches_applied_state(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.starts_with("consistent read disagrees with applied state on n2"), "{}", v[0]);
    }

    #[test]
    fn agreement_or_a_later_write_holds() {
        let same = history(vec![write(1, 10, 20, DONE), final_read(Some(1), ReadMode::Consistent, "n1", 100), final_read(Some(1), ReadMode::Stale, "n1", 200)]);
        assert!(check_consistent_read_matches_applied_state(&same).is_empty());
        // Write 2 was still in flight when the consistent read began.
        let later = history(vec![
            write(1, 10, 20, DONE),
            write(2, 90, 150, DONE),
            final_read(Some(1), ReadMode::Consistent, "n1", 100),
            final_read(Some(2), ReadMode::Stale, "n1", 200),
        ]);
        assert!(check_consistent_read_matches_applied_state(&later).is_empty());
    }

    #[test]
    fn servers_that_disagree_are_not_judged() {
        let h = history(vec![
            write(1, 10, 20, DONE),
            write(2, 30, 40, DONE),
            final_read(Some(1), ReadMode::Consistent, "n1", 100),
            final_read(Some(2), ReadMode::Stale, "n1", 200),
            final_read(Some(1), ReadMode::Stale, "n2", 201),
        ]);
        assert!(check_consistent_read_matches_applied_state(&h).is_empty());
    }
}
