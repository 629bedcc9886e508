//! No false failures: under packet loss alone, SWIM's failure detector must not declare a live
//! member failed (issue 10: "no live member is declared failed under a configured loss rate of
//! 5% in a run without partitions"). SWIM's safeguards are what make this hold: a missed direct
//! probe is retried through indirect probes, and a suspect has a suspicion timeout in which to
//! refute (Das, Gupta & Motivala 2002, §4; Lifeguard, Dadgar et al. 2018).
//!
//! The rule, for runs whose faults never cut a member off, crash or pause it (the caller decides
//! that from the scenario): every `member M failed` event any agent traces is a violation.
//!
//! Owns: the rule above; membership convergence after faults is `membership_converges`'s.

use crate::invariant::InvariantViolation;
use crate::raft::{Event, Record};

/// Name used in [`InvariantViolation::invariant`].
pub const NO_FALSE_FAILURES: &str = "no_false_failures";

/// One violation per (observer, member) that was declared failed; the evidence is the trace line.
pub fn check_no_false_failures(trace: &[Record]) -> Vec<InvariantViolation> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for r in trace {
        let Event::Member { member, status } = &r.event else { continue };
        if status != "failed" || !seen.insert((r.who.clone(), member.clone())) {
            continue;
        }
        out.push(InvariantViolation::new(
            NO_FALSE_FAILURES,
            format!("{} declared {member} failed at {:.3}s, although no fault cut it off (only packet loss)", r.who, r.time_ms as f64 / 1e3),
            vec![r.to_string()],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(time_ms: u64, who: &str, member: &str, status: &str) -> Record {
        Record { time_ms, who: who.into(), event: Event::Member { member: member.into(), status: status.into() } }
    }

    #[test]
    fn a_failed_verdict_under_loss_alone_is_a_violation_once_per_observer_and_member() {
        let trace = vec![
            member(10, "s1", "s2", "alive"),
            member(20, "s1", "s2", "suspect"),
            member(30, "s1", "s2", "failed"),
            member(40, "s1", "s2", "alive"),
            member(50, "s1", "s2", "failed"),
            member(60, "s3", "s2", "failed"),
        ];
        let v = check_no_false_failures(&trace);
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].invariant, NO_FALSE_FAILURES);
        assert!(v[0].detail.contains("s1 declared s2 failed at 0.030s"), "{}", v[0]);
        assert!(check_no_false_failures(&trace[..2]).is_empty(), "suspicion alone is no verdict");
    }
}
