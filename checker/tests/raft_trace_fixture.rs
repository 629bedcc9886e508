//! The Raft trace invariants on a real simulator trace: `cargo run -p sim -- --seed 1 --trace`
//! (scenario partition-heal, at an older commit whose servers were named `n1`…), cut to ~200
//! representative records (every role change and fault, and every node's apply events for a
//! sample of 50 log indexes, so the sample stays self-consistent), stored as typed records, one
//! JSON object per line (the format of `sim --trace-json`).

use checker::raft::{self, AppliedEntry, Event, RaftRole, Record};
use checker::{check_raft_trace, trace_events};

const TRACE: &str = include_str!("fixtures/trace_seed1.jsonl");

/// Reads JSON-lines trace records.
fn parse_records(text: &str) -> Vec<Record> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("record {i}: {e}: {l}")))
        .collect()
}

fn records() -> Vec<Record> {
    parse_records(TRACE)
}

#[test]
fn real_trace_holds_leader_apply_and_fault_events() {
    let records = records();
    let events = trace_events(&records);
    let leaders = events.iter().filter(|e| matches!(e.kind, Event::RaftState { role: RaftRole::Leader, .. })).count();
    let applies = events.iter().filter(|e| matches!(e.kind, Event::Apply { .. })).count();
    let faults = events.iter().filter(|e| e.node == raft::NEMESIS).count();
    assert!(leaders > 0 && applies > 0 && faults > 0, "leaders={leaders} applies={applies} faults={faults}");
    assert_eq!(leaders, 4);
    assert_eq!(applies, 150);
    assert_eq!(events.len(), 198);
    assert_eq!(events[15].raw, "     0.607 n2 apply 0 t0 membership [626980046172116160, 626982245195372582, 626983344707000793]");
}

#[test]
fn real_trace_satisfies_all_raft_invariants() {
    let violations = check_raft_trace(&records());
    let shown: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(violations.is_empty(), "{}", shown.join("\n"));
}

#[test]
fn tampering_with_the_real_trace_is_caught() {
    // n1 led term 10 in the fixture.
    let mut second_leader = records();
    second_leader.push(Record {
        time_ms: 25_000,
        who: "n3".into(),
        event: Event::RaftState { term: 10, role: RaftRole::Leader, leader: Some(1) },
    });
    let v = check_raft_trace(&second_leader);
    assert!(v.iter().any(|v| v.invariant == "election_safety"), "{v:?}");

    let mut rewritten = records();
    let set_by_n3 = |r: &Record| {
        r.who == "n3" && matches!(&r.event, Event::Apply { entry: AppliedEntry::Command { summary, .. }, .. } if summary.starts_with("set "))
    };
    let Some(at) = rewritten.iter().position(set_by_n3) else {
        panic!("fixture has no set applied by n3");
    };
    if let Event::Apply { entry: AppliedEntry::Command { summary, .. }, .. } = &mut rewritten[at].event {
        *summary = summary.replacen("set ", "delete ", 1);
    }
    let v = check_raft_trace(&rewritten);
    assert!(v.iter().any(|v| v.invariant == "state_machine_safety"), "{v:?}");

    // Drop n1's second apply (its first would be read as a snapshot it resumed from).
    let mut dropped = records();
    let applied_by_n1 = |r: &&Record| r.who == "n1" && matches!(r.event, Event::Apply { .. });
    let Some(at) = dropped.iter().enumerate().filter(|(_, r)| applied_by_n1(r)).nth(1).map(|(i, _)| i) else {
        panic!("fixture has fewer than two applies by n1");
    };
    dropped.remove(at);
    let v = check_raft_trace(&dropped);
    assert!(v.iter().any(|v| v.invariant == "leader_completeness"), "{v:?}");
}

/// Checks any trace file: `cargo run --release -p sim -- --seed 1 --trace-json /tmp/trace.jsonl`,
/// then `CONCORD_TRACE=/tmp/trace.jsonl cargo test -p checker --test raft_trace_fixture --
/// --ignored`.
#[test]
#[ignore = "needs CONCORD_TRACE=<path to a sim --trace-json output>"]
fn trace_file_named_by_concord_trace_satisfies_all_raft_invariants() {
    let Ok(path) = std::env::var("CONCORD_TRACE") else { panic!("set CONCORD_TRACE") };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => panic!("cannot read {path}: {e}"),
    };
    let records = parse_records(&text);
    let events = trace_events(&records);
    let applies = events.iter().filter(|e| matches!(e.kind, Event::Apply { .. })).count();
    let violations = check_raft_trace(&records);
    let shown: Vec<String> = violations.iter().map(ToString::to_string).collect();
    eprintln!("{path}: {} records, {applies} applies, {} violations", records.len(), violations.len());
    eprintln!("idle survivors: {:?}", raft::survivors_that_applied_nothing(&events));
    assert!(violations.is_empty(), "{}", shown.join("\n"));
}
