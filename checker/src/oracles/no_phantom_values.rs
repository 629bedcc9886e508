//! No phantom values: a read returns only a value some write actually stored. The client-visible
//! face of State Machine Safety (Ongaro & Ousterhout 2014, Figure 3, §5.4.3): every replica's state
//! machine applies exactly the committed entries, so a read can only observe a value that a
//! client's command put into the log, and only after that command was issued.
//!
//! For every `Ok` read returning `Some(v)` on key `k`: some `Write(v)` or `Cas { new: v }` on `k`
//! must exist that may have taken effect (outcome `Ok` or `Info`; a `Fail` op never happened and a
//! CAS answered `Ok(false)` did not swap) and that was invoked no later than the read completed.
//! Values are unique per key (the workload guarantees it), so the source is unambiguous.

use std::collections::BTreeMap;

use super::{describe, written_value};
use crate::history::{History, OkResult, Op, Outcome, Value};
use crate::invariant::InvariantViolation;

/// Name used in [`InvariantViolation::invariant`].
pub const NO_PHANTOM_VALUES: &str = "no_phantom_values";

/// Whether `op` may have stored its value.
fn may_have_written(op: &Op) -> bool {
    !matches!(op.outcome, Outcome::Fail | Outcome::Ok(OkResult::Cas(false)))
}

/// One violation per read that returned a value no legitimate write explains; the evidence is the
/// read and the ops that wrote that value (if any).
pub fn check_no_phantom_values(history: &History) -> Vec<InvariantViolation> {
    let mut writers: BTreeMap<(&str, Value), Vec<&Op>> = BTreeMap::new();
    for op in &history.ops {
        if let Some(v) = written_value(op) {
            writers.entry((op.key.as_str(), v)).or_default().push(op);
        }
    }
    let mut out = Vec::new();
    for read in &history.ops {
        let Outcome::Ok(OkResult::Read(Some(v))) = read.outcome else { continue };
        let candidates = writers.get(&(read.key.as_str(), v)).map(Vec::as_slice).unwrap_or_default();
        let possible: Vec<&&Op> = candidates.iter().filter(|w| may_have_written(w)).collect();
        if possible.iter().any(|w| w.invoke_ns <= read.complete_ns) {
            continue;
        }
        let why = if candidates.is_empty() {
            "which no op ever wrote"
        } else if possible.is_empty() {
            "written only by ops that did not take effect"
        } else {
            "before any op writing it was invoked"
        };
        let mut evidence = vec![describe(read)];
        evidence.extend(candidates.iter().take(5).map(|w| describe(w)));
        out.push(InvariantViolation::new(
            NO_PHANTOM_VALUES,
            format!("read #{} of {} returned {v}, {why}", read.id, read.key),
            evidence,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpFn;
    use crate::oracles::testing::*;

    #[test]
    fn reads_of_written_values_hold_including_concurrent_and_unknown_writes() {
        let h = history(vec![
            write(1, 10, 20, DONE),
            read(Some(1), 30, 40),
            write(2, 50, 60, Outcome::Info),
            read(Some(2), 70, 80),
            read(Some(3), 90, 100),
            cas(Some(2), 3, 95, 110, Outcome::Ok(OkResult::Cas(true))),
            read(None, 120, 130),
        ]);
        assert!(check_no_phantom_values(&h).is_empty());
    }

    #[test]
    fn read_of_never_written_value_is_phantom() {
        let h = history(vec![write(1, 10, 20, DONE), read(Some(99), 30, 40)]);
        let v = check_no_phantom_values(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, NO_PHANTOM_VALUES);
        assert!(v[0].detail.contains("returned 99, which no op ever wrote"), "{}", v[0]);
    }

    #[test]
    fn failed_write_value_read_back_is_phantom() {
        let h = history(vec![write(5, 10, 20, Outcome::Fail), read(Some(5), 30, 40)]);
        let v = check_no_phantom_values(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("did not take effect"), "{}", v[0]);
        assert_eq!(v[0].evidence.len(), 2);
    }

    #[test]
    fn refused_cas_value_read_back_is_phantom() {
        let h = history(vec![cas(Some(1), 6, 10, 20, Outcome::Ok(OkResult::Cas(false))), read(Some(6), 30, 40)]);
        assert_eq!(check_no_phantom_values(&h).len(), 1);
    }

    #[test]
    fn value_read_before_its_write_was_invoked_is_phantom() {
        let h = history(vec![read(Some(7), 10, 20), write(7, 30, 40, DONE)]);
        let v = check_no_phantom_values(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("before any op writing it was invoked"), "{}", v[0]);
    }

    #[test]
    fn a_value_written_to_another_key_does_not_explain_a_read() {
        let h = history(vec![op(1, "other", OpFn::Write(4), 10, 20, DONE), read(Some(4), 30, 40)]);
        assert_eq!(check_no_phantom_values(&h).len(), 1);
    }
}
