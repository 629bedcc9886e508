//! Agent-local registrations survive and reach the catalog: what an agent acknowledged through
//! its own API (`/v1/agent/service/register`, `/deregister`, `/v1/agent/check/pass|fail`) is
//! what it holds after crashes and restarts (Consul persists API-registered services and TTL
//! check status in the data dir), and anti-entropy makes the catalog show it for the agent's node
//! within a bound after the cluster heals.
//!
//! The history (recorded by the simulator's agent-services workload) has one object per
//! `agent/service-id` key, written by one client at a time:
//! - a registration is `Write(`[`register`]`(s))` where `s` is the state it creates on an absent
//!   service ([`PLAIN`] without a check, else its TTL check's initial status; a re-registration
//!   keeps an existing check's status, as Consul does);
//! - a TTL update is `Write(`[`ttl`]`(s))`; a deregistration is `Delete`;
//! - the final observation, made once the workload stopped and the catalog matched every agent
//!   (or the convergence bound ran out), is two reads recorded by client 0: what the agent itself
//!   holds ([`agent_view`]) and what the catalog shows under its node ([`catalog_view`]). A read
//!   that could not be made is `Fail`.
//!
//! The expectation per object is folded from its ops in order: `Ok` ops set it, `Fail` ops leave
//! it, `Info` ops (unknown outcome) make what they could have changed unknown. Like the other
//! oracles, this trusts a client's ops on one object to take effect in the order it issued them
//! (the next op is issued only after the previous one answered or timed out).
//!
//! Violations: [`REGISTRATION_LOST`] (an acknowledged registration the agent no longer holds),
//! [`DEREGISTRATION_LOST`] (an acknowledged deregistration undone, or a service nobody
//! registered), [`CHECK_STATUS_LOST`] (a TTL status other than the last acknowledged one), and
//! [`CATALOG_CONVERGENCE`] (the catalog still disagrees with the agent at the final observation).

use std::collections::BTreeMap;

use super::secs;
use crate::history::{History, OkResult, Op, OpFn, Outcome, Value};
use crate::invariant::InvariantViolation;

/// An acknowledged registration (or TTL status) the agent no longer holds.
pub const REGISTRATION_LOST: &str = "registration_lost";
/// An acknowledged deregistration the agent undid, or a service nobody registered.
pub const DEREGISTRATION_LOST: &str = "deregistration_lost";
/// A TTL check whose status is not the last acknowledged one.
pub const CHECK_STATUS_LOST: &str = "check_status_lost";
/// The catalog did not come to show what the agent holds within the bound.
pub const CATALOG_CONVERGENCE: &str = "catalog_convergence";

/// A service's state on one agent: [`ABSENT`], [`PLAIN`] (present without a check), or present
/// with its TTL check [`PASSING`], [`WARNING`] or [`CRITICAL`].
pub type State = u64;
pub const ABSENT: State = 0;
pub const PLAIN: State = 1;
pub const PASSING: State = 2;
pub const WARNING: State = 3;
pub const CRITICAL: State = 4;

const KIND_REGISTER: u64 = 1;
const KIND_TTL: u64 = 2;
const VIEW_AGENT: u64 = 3;
const VIEW_CATALOG: u64 = 4;

/// The value of a registration that creates state `s` on an absent service.
pub fn register(s: State) -> Value {
    KIND_REGISTER * 10 + s
}
/// The value of a TTL update to status `s`.
pub fn ttl(s: State) -> Value {
    KIND_TTL * 10 + s
}
/// The value of a final read of the agent's own state.
pub fn agent_view(s: State) -> Value {
    VIEW_AGENT * 10 + s
}
/// The value of a final read of the catalog's state for the agent's node.
pub fn catalog_view(s: State) -> Value {
    VIEW_CATALOG * 10 + s
}

/// `absent`, `plain`, `passing`, ...
pub fn state_name(s: State) -> &'static str {
    match s {
        ABSENT => "absent",
        PLAIN => "plain",
        PASSING => "passing",
        WARNING => "warning",
        CRITICAL => "critical",
        _ => "?",
    }
}

/// What the history says an object must look like (`None`: unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expect {
    present: Option<bool>,
    /// The state it has if it is present.
    if_present: Option<State>,
}

fn same_or_unknown(a: Option<State>, b: Option<State>) -> Option<State> {
    if a == b { a } else { None }
}

impl Expect {
    const NEW: Expect = Expect { present: Some(false), if_present: None };

    fn step(self, op: &Op, settled: bool) -> Expect {
        let outcome = if settled { &op.outcome } else { &Outcome::Info };
        let ok = matches!(outcome, Outcome::Ok(_));
        match (outcome, &op.f) {
            (Outcome::Fail, _) => self,
            (_, OpFn::Write(v)) if v / 10 == KIND_REGISTER => {
                let created = Some(v % 10);
                // Plain services have no check to keep; a registration over a present service
                // keeps its check's status.
                let after = match self.present {
                    _ if v % 10 == PLAIN => created,
                    Some(true) => self.if_present,
                    Some(false) => created,
                    None => same_or_unknown(self.if_present, created),
                };
                if ok {
                    Expect { present: Some(true), if_present: after }
                } else {
                    Expect { present: if self.present == Some(true) { Some(true) } else { None }, if_present: after }
                }
            }
            (_, OpFn::Write(v)) if v / 10 == KIND_TTL => {
                let set = Some(v % 10);
                if ok {
                    Expect { present: Some(true), if_present: set }
                } else {
                    Expect { present: self.present, if_present: same_or_unknown(self.if_present, set) }
                }
            }
            (_, OpFn::Delete) => {
                if ok {
                    Expect { present: Some(false), if_present: None }
                } else {
                    Expect { present: if self.present == Some(false) { Some(false) } else { None }, if_present: self.if_present }
                }
            }
            _ => self,
        }
    }
}

/// The last read of `view` on this object: its state and op id.
fn final_view(reads: &[&Op], view: u64) -> Option<(State, usize)> {
    reads
        .iter()
        .filter_map(|o| match (&o.f, &o.outcome) {
            (OpFn::Read, Outcome::Ok(OkResult::Read(Some(v)))) if v / 10 == view => Some((o.invoke_ns, o.id, v % 10)),
            _ => None,
        })
        .max()
        .map(|(_, id, s)| (s, id))
}

/// One op as an evidence line, in the workload's words.
fn describe(op: &Op) -> String {
    let f = match &op.f {
        OpFn::Write(v) if v / 10 == KIND_REGISTER => format!("register ({})", state_name(v % 10)),
        OpFn::Write(v) if v / 10 == KIND_TTL => format!("ttl {}", state_name(v % 10)),
        OpFn::Delete => "deregister".to_string(),
        OpFn::Read => match &op.outcome {
            Outcome::Ok(OkResult::Read(Some(v))) if v / 10 == VIEW_AGENT => format!("agent view: {}", state_name(v % 10)),
            Outcome::Ok(OkResult::Read(Some(v))) if v / 10 == VIEW_CATALOG => format!("catalog view: {}", state_name(v % 10)),
            _ => "view".to_string(),
        },
        other => format!("{other:?}"),
    };
    let outcome = match &op.outcome {
        Outcome::Ok(_) => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    };
    let complete = if op.outcome == Outcome::Info { "?".to_string() } else { secs(op.complete_ns) };
    format!("#{} {} {} {f} [{}..{complete}] -> {outcome}", op.id, op.client_name(), op.key, secs(op.invoke_ns))
}

/// How many workload ops of one object a violation shows (the latest).
const SHOWN: usize = 10;

/// Judges every `agent/service-id` object of an agent-services history (see the module docs).
/// Objects without a final observation (the run never got that far) are not judged here: the
/// missing liveness is reported on its own.
pub fn check_agent_services(history: &History) -> Vec<InvariantViolation> {
    let mut by_key: BTreeMap<&str, (Vec<&Op>, Vec<&Op>)> = BTreeMap::new();
    for op in &history.ops {
        let e = by_key.entry(op.key.as_str()).or_default();
        if op.client == 0 { e.1.push(op) } else { e.0.push(op) }
    }
    // The final observation happened if any object has one; from then on every object with ops
    // must have been observed.
    let observed = by_key.values().any(|(_, reads)| !reads.is_empty());
    let mut out = Vec::new();
    for (key, (mut ops, reads)) in by_key {
        if !observed {
            break;
        }
        let (agent, catalog) = (final_view(&reads, VIEW_AGENT), final_view(&reads, VIEW_CATALOG));
        let observed_at = reads.iter().map(|r| r.invoke_ns).max().unwrap_or(u64::MAX);
        ops.sort_by_key(|o| (o.invoke_ns, o.id));
        // An op still in flight at the observation is as unknown as a timed-out one.
        let expect = ops.iter().fold(Expect::NEW, |e, op| e.step(op, op.complete_ns < observed_at));
        let evidence = |extra: &[usize]| -> Vec<String> {
            let mut lines: Vec<String> = ops.iter().rev().take(SHOWN).rev().map(|o| describe(o)).collect();
            if ops.len() > SHOWN {
                lines.insert(0, format!("({} earlier ops not shown)", ops.len() - SHOWN));
            }
            lines.extend(reads.iter().filter(|r| extra.contains(&r.id)).map(|r| describe(r)));
            lines
        };
        let (agent_state, catalog_state) = (agent.map(|a| a.0), catalog.map(|c| c.0));
        let shown: Vec<usize> = agent.iter().chain(catalog.iter()).map(|v| v.1).collect();
        let mut agent_wrong = false;
        if let Some(seen) = agent_state {
            let violation = match (expect.present, seen) {
                (Some(true), ABSENT) => Some((REGISTRATION_LOST, "the agent no longer holds an acknowledged registration".to_string())),
                (Some(false), s) if s != ABSENT => {
                    let what = if ops.iter().any(|o| matches!(o.f, OpFn::Write(_)) && o.outcome != Outcome::Fail) {
                        "the agent holds a service whose deregistration it acknowledged"
                    } else {
                        "the agent holds a service nobody registered on it"
                    };
                    Some((DEREGISTRATION_LOST, format!("{what} ({})", state_name(s))))
                }
                (Some(true) | None, s) if s != ABSENT && expect.if_present.is_some_and(|e| e != s) => Some((
                    CHECK_STATUS_LOST,
                    format!("the agent shows {} but its last acknowledged status is {}", state_name(s), state_name(expect.if_present.unwrap_or(s))),
                )),
                _ => None,
            };
            if let Some((name, detail)) = violation {
                agent_wrong = true;
                out.push(InvariantViolation::new(name, format!("{key}: {detail}"), evidence(&shown)));
            }
        }
        if agent_wrong {
            continue;
        }
        // The catalog must show what the agent holds (or, when the agent could not be read, what
        // the agent acknowledged).
        let want = agent_state.or(match (expect.present, expect.if_present) {
            (Some(false), _) => Some(ABSENT),
            (Some(true), Some(s)) => Some(s),
            _ => None,
        });
        let verb = if agent_state.is_some() { "holds" } else { "acknowledged" };
        match (want, catalog_state) {
            (Some(w), Some(c)) if w != c => out.push(InvariantViolation::new(
                CATALOG_CONVERGENCE,
                format!(
                    "{key}: at the final observation ({}) the catalog shows {} but the agent {} {}",
                    secs(observed_at),
                    state_name(c),
                    verb,
                    state_name(w)
                ),
                evidence(&shown),
            )),
            (Some(w), None) => out.push(InvariantViolation::new(
                CATALOG_CONVERGENCE,
                format!("{key}: the catalog could not be read at the final observation ({}); the agent {verb} {}", secs(observed_at), state_name(w)),
                evidence(&shown),
            )),
            (None, None) if agent_state.is_none() && !ops.is_empty() => out.push(InvariantViolation::new(
                CATALOG_CONVERGENCE,
                format!("{key}: neither the agent nor the catalog could be read by the end of the final observation"),
                evidence(&shown),
            )),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracles::testing::{history, op, DONE};

    const KEY: &str = "n1/svc-w1-1";

    fn w(v: Value, at: u64, outcome: Outcome) -> Op {
        op(1, KEY, OpFn::Write(v), at, at + 1, outcome)
    }
    fn dereg(at: u64, outcome: Outcome) -> Op {
        op(1, KEY, OpFn::Delete, at, at + 1, outcome)
    }
    fn views(agent: State, catalog: State, at: u64) -> Vec<Op> {
        vec![
            op(0, KEY, OpFn::Read, at, at + 1, Outcome::Ok(OkResult::Read(Some(agent_view(agent))))),
            op(0, KEY, OpFn::Read, at, at + 2, Outcome::Ok(OkResult::Read(Some(catalog_view(catalog))))),
        ]
    }
    fn judge(mut ops: Vec<Op>, agent: State, catalog: State) -> Vec<&'static str> {
        ops.extend(views(agent, catalog, 10_000));
        check_agent_services(&history(ops)).iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn acknowledged_state_held_and_in_the_catalog_passes() {
        let ops = vec![w(register(CRITICAL), 10, DONE), w(ttl(PASSING), 20, DONE)];
        assert!(judge(ops.clone(), PASSING, PASSING).is_empty());
        let ops = vec![w(register(PLAIN), 10, DONE), dereg(20, DONE), dereg(30, Outcome::Fail)];
        assert!(judge(ops, ABSENT, ABSENT).is_empty());
    }

    #[test]
    fn a_forgotten_registration_is_lost_and_a_lagging_catalog_is_not_converged() {
        let ops = vec![w(register(PASSING), 10, DONE)];
        assert_eq!(judge(ops.clone(), ABSENT, ABSENT), vec![REGISTRATION_LOST]);
        assert_eq!(judge(ops.clone(), PASSING, ABSENT), vec![CATALOG_CONVERGENCE]);
        assert_eq!(judge(ops, PASSING, CRITICAL), vec![CATALOG_CONVERGENCE]);
    }

    #[test]
    fn an_undone_deregistration_and_a_stale_status_are_caught() {
        let ops = vec![w(register(PASSING), 10, DONE), dereg(20, DONE)];
        assert_eq!(judge(ops, PASSING, PASSING), vec![DEREGISTRATION_LOST]);
        let ops = vec![w(register(PASSING), 10, DONE), w(ttl(CRITICAL), 20, DONE)];
        assert_eq!(judge(ops, PASSING, PASSING), vec![CHECK_STATUS_LOST]);
        // A re-registration keeps the check's status.
        let ops = vec![w(register(CRITICAL), 10, DONE), w(ttl(PASSING), 20, DONE), w(register(CRITICAL), 30, DONE)];
        assert!(judge(ops.clone(), PASSING, PASSING).is_empty());
        assert_eq!(judge(ops, CRITICAL, CRITICAL), vec![CHECK_STATUS_LOST]);
    }

    #[test]
    fn unknown_outcomes_make_only_what_they_could_change_unknown() {
        // An unknown deregistration: present or absent, both fine; the catalog must still agree.
        let ops = vec![w(register(PASSING), 10, DONE), dereg(20, Outcome::Info)];
        assert!(judge(ops.clone(), ABSENT, ABSENT).is_empty());
        assert!(judge(ops.clone(), PASSING, PASSING).is_empty());
        assert_eq!(judge(ops, PASSING, ABSENT), vec![CATALOG_CONVERGENCE]);
        // An unknown TTL update leaves the service present.
        let ops = vec![w(register(PASSING), 10, DONE), w(ttl(CRITICAL), 20, Outcome::Info)];
        assert!(judge(ops.clone(), CRITICAL, CRITICAL).is_empty());
        assert_eq!(judge(ops, ABSENT, ABSENT), vec![REGISTRATION_LOST]);
        // A later acknowledged op settles it again.
        let ops = vec![w(register(PASSING), 10, Outcome::Info), w(ttl(CRITICAL), 20, DONE)];
        assert_eq!(judge(ops, PASSING, PASSING), vec![CHECK_STATUS_LOST]);
    }

    #[test]
    fn a_service_nobody_registered_is_reported() {
        let v = check_agent_services(&history(views(PASSING, PASSING, 10)));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].invariant, DEREGISTRATION_LOST);
        assert!(v[0].detail.contains("nobody registered"), "{}", v[0]);
    }
}
