//! Displaced lock holders stop their children in time: the property `concord lock` exists for
//! (Consul `command/lock`, `api/lock.go` and `api/semaphore.go`). A holder runs its child while
//! it holds its place; once another contender has taken the place over, the holder's watcher must
//! notice (the key or lock document no longer names its session, or its reads keep failing) and
//! stop the child.
//!
//! The history holds one op per child run, on a key naming the lock prefix: invoked when the
//! child started, completed when it ended. The rule, for a prefix with `limit` places: when a
//! child starts at `t`, its holder owns a place at `t`, so at most `limit` of the children that
//! started by `t` may still run at `t + bound`. `bound` is the recipe's own worst time to notice
//! a loss and stop the child (every request it sends has a deadline), so it holds under any
//! network fault, as long as the holder's own process runs. Overlap shorter than the bound is not
//! flagged: it is the window every lock recipe has, which fencing tokens exist to close.
//!
//! Owns: the rule above. Never judges who may take a lock (the lock model does).

use crate::history::{History, Op};
use crate::invariant::InvariantViolation;
use crate::oracles::{describe, secs};

/// Name used in [`InvariantViolation::invariant`].
pub const HOLDERS_STEP_DOWN: &str = "holders_step_down";

/// One violation per lock key (the earliest), where `limits` maps each holder key of the history
/// to its number of places and `bound_ns` is the recipe's loss-notice bound.
pub fn check_holders_step_down(history: &History, limits: &[(&str, u32)], bound_ns: u64) -> Vec<InvariantViolation> {
    let mut out = Vec::new();
    for &(key, limit) in limits {
        let mut runs: Vec<&Op> = history.ops.iter().filter(|o| o.key == key).collect();
        runs.sort_by_key(|o| (o.invoke_ns, o.id));
        for newest in &runs {
            let t = newest.invoke_ns;
            let still: Vec<&&Op> = runs.iter().take_while(|o| o.invoke_ns <= t).filter(|o| o.complete_ns > t.saturating_add(bound_ns)).collect();
            if still.len() <= limit as usize {
                continue;
            }
            let clients: Vec<String> = still.iter().map(|o| o.client.to_string()).collect();
            out.push(InvariantViolation::new(
                HOLDERS_STEP_DOWN,
                format!(
                    "{key}: {} children (clients {}) still ran at {}, {} after client {}'s child started holding one of {limit} place(s); a displaced holder must stop its child within that bound",
                    still.len(),
                    clients.join(", "),
                    secs(t.saturating_add(bound_ns)),
                    secs(bound_ns),
                    newest.client,
                ),
                still.iter().map(|o| describe(o)).collect(),
            ));
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OkResult, OpFn, Outcome, ReadMode};

    fn run(id: usize, client: u32, from_s: u64, to_s: u64) -> Op {
        let s = 1_000_000_000;
        Op { id, client, key: "holder/l".into(), f: OpFn::Write(u64::from(client)), invoke_ns: from_s * s, complete_ns: to_s * s, outcome: Outcome::Ok(OkResult::Done), server: None, mode: ReadMode::Default }
    }

    fn history(ops: Vec<Op>) -> History {
        History { ops, ..History::default() }
    }

    const BOUND: u64 = 5_000_000_000;

    #[test]
    fn a_holder_that_stops_within_the_bound_passes() {
        let h = history(vec![run(0, 1, 0, 14), run(1, 2, 10, 30)]);
        assert!(check_holders_step_down(&h, &[("holder/l", 1)], BOUND).is_empty());
    }

    #[test]
    fn a_holder_running_past_the_bound_is_caught() {
        let h = history(vec![run(0, 1, 0, 16), run(1, 2, 10, 30)]);
        let v = check_holders_step_down(&h, &[("holder/l", 1)], BOUND);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].invariant, HOLDERS_STEP_DOWN);
        assert_eq!(v[0].evidence.len(), 2, "both children are named: {:?}", v[0].evidence);
    }

    #[test]
    fn a_semaphore_admits_its_limit() {
        let h = history(vec![run(0, 1, 0, 40), run(1, 2, 10, 40), run(2, 3, 20, 40)]);
        assert!(check_holders_step_down(&h, &[("holder/l", 3)], BOUND).is_empty());
        assert_eq!(check_holders_step_down(&h, &[("holder/l", 2)], BOUND).len(), 1);
    }
}
