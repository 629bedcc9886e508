//! The Raft trace invariants on a real simulator trace: `cargo run -p sim -- --seed 1 --trace`
//! (scenario partition-heal), cut to ~200 representative lines (every role change and fault, and
//! every node's apply lines for a sample of 50 log indexes, so the sample stays self-consistent).

use checker::raft::{self, EventKind, RaftRole};
use checker::{check_raft_trace, parse_trace};

const TRACE: &str = include_str!("fixtures/trace_seed1.txt");

fn lines() -> Vec<String> {
    TRACE.lines().map(str::to_string).collect()
}

#[test]
fn real_trace_parses_into_leader_apply_and_fault_events() {
    let lines = lines();
    let events = parse_trace(&lines);
    let leaders = events.iter().filter(|e| matches!(e.kind, EventKind::RaftState { role: RaftRole::Leader, .. })).count();
    let applies = events.iter().filter(|e| matches!(e.kind, EventKind::Apply { .. })).count();
    let faults = events.iter().filter(|e| e.node == raft::NEMESIS).count();
    assert!(leaders > 0 && applies > 0 && faults > 0, "leaders={leaders} applies={applies} faults={faults}");
    assert_eq!(leaders, 4);
    assert_eq!(applies, 150);
    // Every line of the fixture is a known event kind.
    assert_eq!(events.len(), lines.len());
}

#[test]
fn real_trace_satisfies_all_raft_invariants() {
    let violations = check_raft_trace(&lines());
    let shown: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(violations.is_empty(), "{}", shown.join("\n"));
}

#[test]
fn tampering_with_the_real_trace_is_caught() {
    let mut second_leader = lines();
    second_leader.push("    25.000 n3 raft term=10 state=Leader leader=1".to_string());
    let v = check_raft_trace(&second_leader);
    assert!(v.iter().any(|v| v.invariant == "election_safety"), "{v:?}");

    let mut rewritten = lines();
    let Some(at) = rewritten.iter().position(|l| l.contains(" n3 apply ") && l.contains(" set ")) else {
        panic!("fixture has no set applied by n3");
    };
    rewritten[at] = rewritten[at].replace(" set ", " delete ");
    let v = check_raft_trace(&rewritten);
    assert!(v.iter().any(|v| v.invariant == "state_machine_safety"), "{v:?}");

    // Drop n1's second apply (its first would be read as a snapshot it resumed from).
    let mut dropped = lines();
    let Some(at) = dropped.iter().enumerate().filter(|(_, l)| l.contains(" n1 apply ")).nth(1).map(|(i, _)| i) else {
        panic!("fixture has fewer than two applies by n1");
    };
    dropped.remove(at);
    let v = check_raft_trace(&dropped);
    assert!(v.iter().any(|v| v.invariant == "leader_completeness"), "{v:?}");
}

/// Checks any trace file: `CONCORD_TRACE=/tmp/trace.txt cargo test -p checker --test
/// raft_trace_fixture -- --ignored` (the output of `sim --trace`, report lines included).
#[test]
#[ignore = "needs CONCORD_TRACE=<path to a sim --trace output>"]
fn trace_file_named_by_concord_trace_satisfies_all_raft_invariants() {
    let Ok(path) = std::env::var("CONCORD_TRACE") else { panic!("set CONCORD_TRACE") };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => panic!("cannot read {path}: {e}"),
    };
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let events = parse_trace(&lines);
    let applies = events.iter().filter(|e| matches!(e.kind, EventKind::Apply { .. })).count();
    let violations = check_raft_trace(&lines);
    let shown: Vec<String> = violations.iter().map(ToString::to_string).collect();
    eprintln!("{path}: {} lines, {} events, {applies} applies, {} violations", lines.len(), events.len(), violations.len());
    eprintln!("idle survivors: {:?}", raft::survivors_that_applied_nothing(&events));
    assert!(violations.is_empty(), "{}", shown.join("\n"));
}
