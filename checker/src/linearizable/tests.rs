//! Unit tests pinning the checker's behaviour on hand-written histories.

use std::time::Duration;

use super::*;
use crate::history::{History, OkResult, Op, OpFn, Outcome};

pub(super) const BUDGET: Duration = Duration::from_secs(5);
const MS: u64 = 1_000_000;

pub(super) fn op(
    id: usize,
    client: u32,
    f: OpFn,
    invoke_ms: u64,
    complete_ms: u64,
    outcome: Outcome,
) -> Op {
    Op {
        id,
        client,
        key: "k".to_string(),
        f,
        invoke_ns: invoke_ms * MS,
        complete_ns: complete_ms * MS,
        outcome,
        server: None,
        mode: Default::default(),
    }
}

pub(super) fn read(v: Option<u64>) -> Outcome {
    Outcome::Ok(OkResult::Read(v))
}

pub(super) fn done() -> Outcome {
    Outcome::Ok(OkResult::Done)
}

pub(super) fn cas(swapped: bool) -> Outcome {
    Outcome::Ok(OkResult::Cas(swapped))
}

pub(super) fn check(ops: &[Op]) -> Verdict {
    check_key("k", ops, BUDGET)
}

fn violation(ops: &[Op]) -> Violation {
    match check(ops) {
        Verdict::NotLinearizable(v) => v,
        other => panic!("expected a violation, got {other}"),
    }
}

#[test]
fn sequential_history_is_linearizable() {
    let ops = vec![
        op(0, 1, OpFn::Read, 0, 1, read(None)),
        op(1, 1, OpFn::Write(1), 2, 3, done()),
        op(2, 2, OpFn::Read, 4, 5, read(Some(1))),
        op(
            3,
            2,
            OpFn::Cas {
                expect: Some(1),
                new: 2,
            },
            6,
            7,
            cas(true),
        ),
        op(
            4,
            1,
            OpFn::Cas {
                expect: Some(1),
                new: 3,
            },
            8,
            9,
            cas(false),
        ),
        op(5, 1, OpFn::Read, 10, 11, read(Some(2))),
        op(6, 2, OpFn::Delete, 12, 13, done()),
        op(
            7,
            2,
            OpFn::Cas {
                expect: None,
                new: 4,
            },
            14,
            15,
            cas(true),
        ),
        op(8, 1, OpFn::Read, 16, 17, read(Some(4))),
    ];
    assert!(check(&ops).is_linearizable());
}

#[test]
fn concurrent_write_and_read_may_linearize_either_way() {
    for seen in [None, Some(1)] {
        let ops = vec![
            op(0, 1, OpFn::Write(1), 0, 10, done()),
            op(1, 2, OpFn::Read, 2, 8, read(seen)),
        ];
        assert!(
            check(&ops).is_linearizable(),
            "read of {seen:?} should be allowed"
        );
    }
}

#[test]
fn touching_intervals_count_as_concurrent() {
    // The read is invoked at the very instant the write completes: treated as concurrent.
    let ops = vec![
        op(0, 1, OpFn::Write(1), 0, 10, done()),
        op(1, 2, OpFn::Read, 10, 20, read(None)),
    ];
    assert!(check(&ops).is_linearizable());
}

#[test]
fn stale_read_after_acknowledged_write_is_not_linearizable() {
    let ops = vec![
        op(0, 1, OpFn::Write(1), 0, 10, done()),
        op(1, 1, OpFn::Write(2), 20, 30, done()),
        op(2, 2, OpFn::Read, 40, 50, read(Some(1))),
    ];
    let v = violation(&ops);
    assert_eq!(v.key, "k");
    assert!(v.explanation.contains("#2"), "{}", v.explanation);
}

#[test]
fn lost_write_is_not_linearizable() {
    let ops = vec![
        op(0, 1, OpFn::Write(1), 0, 10, done()),
        op(1, 2, OpFn::Read, 12, 14, read(Some(1))),
        op(2, 1, OpFn::Write(2), 20, 30, done()),
        op(3, 2, OpFn::Read, 40, 50, read(Some(1))),
        op(4, 3, OpFn::Read, 60, 70, read(Some(1))),
    ];
    violation(&ops);
}

#[test]
fn cas_success_with_mismatched_expect_is_not_linearizable() {
    let ops = vec![
        op(0, 1, OpFn::Write(1), 0, 10, done()),
        op(
            1,
            2,
            OpFn::Cas {
                expect: Some(7),
                new: 2,
            },
            20,
            30,
            cas(true),
        ),
    ];
    violation(&ops);
}

#[test]
fn cas_absent_on_existing_key_reporting_success_is_not_linearizable() {
    let ops = vec![
        op(0, 1, OpFn::Write(1), 0, 10, done()),
        op(
            1,
            2,
            OpFn::Cas {
                expect: None,
                new: 2,
            },
            20,
            30,
            cas(true),
        ),
    ];
    violation(&ops);
}

#[test]
fn cas_reporting_no_swap_on_matching_value_is_not_linearizable() {
    let ops = vec![
        op(0, 1, OpFn::Write(1), 0, 10, done()),
        op(
            1,
            2,
            OpFn::Cas {
                expect: Some(1),
                new: 2,
            },
            20,
            30,
            cas(false),
        ),
    ];
    violation(&ops);
}

#[test]
fn info_write_later_observed_is_linearizable() {
    let ops = vec![
        op(0, 1, OpFn::Write(1), 0, 10, Outcome::Info),
        op(1, 2, OpFn::Read, 20, 30, read(None)),
        op(2, 2, OpFn::Read, 500, 510, read(Some(1))),
        op(
            3,
            3,
            OpFn::Cas {
                expect: Some(1),
                new: 2,
            },
            520,
            530,
            Outcome::Info,
        ),
        op(4, 2, OpFn::Read, 600, 610, read(Some(2))),
    ];
    assert!(check(&ops).is_linearizable());
}

#[test]
fn info_write_never_observed_is_linearizable() {
    let ops = vec![
        op(0, 1, OpFn::Write(1), 0, 10, done()),
        op(1, 2, OpFn::Write(2), 20, 30, Outcome::Info),
        op(2, 3, OpFn::Read, 40, 50, read(Some(1))),
        op(3, 3, OpFn::Read, 60, 70, read(Some(1))),
        op(4, 4, OpFn::Read, 80, 90, Outcome::Info),
    ];
    assert!(check(&ops).is_linearizable());
}

#[test]
fn fail_ops_are_ignored() {
    let ops = vec![
        op(0, 1, OpFn::Write(1), 0, 10, done()),
        op(1, 2, OpFn::Write(2), 20, 30, Outcome::Fail),
        op(2, 3, OpFn::Delete, 31, 32, Outcome::Fail),
        op(3, 3, OpFn::Read, 40, 50, read(Some(1))),
    ];
    assert!(check(&ops).is_linearizable());
}

#[test]
fn delete_then_read_absent_is_linearizable() {
    let ops = vec![
        op(0, 1, OpFn::Write(1), 0, 10, done()),
        op(1, 1, OpFn::Delete, 20, 30, done()),
        op(2, 2, OpFn::Read, 40, 50, read(None)),
        op(
            3,
            2,
            OpFn::Cas {
                expect: None,
                new: 2,
            },
            60,
            70,
            cas(true),
        ),
    ];
    assert!(check(&ops).is_linearizable());
}

#[test]
fn minimal_sub_history_of_stale_read_has_at_most_three_ops() {
    let mut ops = Vec::new();
    let mut t = 0;
    // Noise: an ordinary, linearizable prefix on the key.
    for v in 1..=20u64 {
        ops.push(op(ops.len(), 1, OpFn::Write(v), t, t + 5, done()));
        ops.push(op(ops.len(), 2, OpFn::Read, t + 1, t + 8, read(Some(v))));
        t += 10;
    }
    ops.push(op(ops.len(), 1, OpFn::Write(100), t, t + 5, done()));
    ops.push(op(ops.len(), 1, OpFn::Write(101), t + 10, t + 15, done()));
    let stale = ops.len();
    ops.push(op(stale, 3, OpFn::Read, t + 20, t + 25, read(Some(100))));
    // Noise after the violation.
    for v in 200..210u64 {
        t += 10;
        ops.push(op(ops.len(), 1, OpFn::Write(v), t + 30, t + 35, done()));
    }
    let v = violation(&ops);
    assert!(v.ops.len() <= 3, "not minimal:\n{v}");
    assert!(
        v.ops.iter().any(|o| o.id == stale),
        "stale read missing:\n{v}"
    );
    // Explainable: the value read is written by an op in the report.
    assert!(
        v.ops.iter().any(|o| o.f == OpFn::Write(100)),
        "writer missing:\n{v}"
    );
    let report = Verdict::NotLinearizable(v).to_string();
    assert!(report.contains(&format!("#{stale}")), "{report}");
    assert!(report.contains("NOT linearizable"), "{report}");
}

#[test]
fn budget_exhaustion_returns_unknown() {
    // 24 fully concurrent writes and a read of a value nobody wrote: the search must try every
    // subset of writes before giving up, far beyond a 1ms budget.
    let mut ops: Vec<Op> = (0..24u64)
        .map(|v| op(v as usize, v as u32, OpFn::Write(v + 1), 0, 100, done()))
        .collect();
    ops.push(op(24, 99, OpFn::Read, 0, 100, read(Some(999))));
    match check_key("k", &ops, Duration::from_millis(1)) {
        Verdict::Unknown { reason } => assert!(reason.contains("budget"), "{reason}"),
        other => panic!("expected Unknown, got {other}"),
    }
}

#[test]
fn malformed_result_is_unknown_not_a_pass() {
    let ops = vec![op(0, 1, OpFn::Read, 0, 1, cas(true))];
    assert!(matches!(check(&ops), Verdict::Unknown { .. }));
}

#[test]
fn check_history_reports_each_key_sorted() {
    let mut h = History::default();
    let mut b = op(0, 1, OpFn::Write(1), 0, 10, done());
    b.key = "b".into();
    let mut a = op(0, 1, OpFn::Read, 20, 30, read(Some(5)));
    a.key = "a".into();
    h.push(b);
    h.push(a);
    let verdicts = check_history(&h, BUDGET);
    let keys: Vec<&str> = verdicts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a", "b"]);
    assert!(matches!(verdicts[0].1, Verdict::NotLinearizable(_)));
    assert!(verdicts[1].1.is_linearizable());
}

/// The minimal failing history must say which server answered each op and in which read mode,
/// because that is the clue to the cause (issue 8: a stale `?consistent` read through one server
/// was indistinguishable from any other read).
#[test]
fn violation_report_shows_server_and_read_mode_per_op() {
    let mut w = op(0, 1, OpFn::Write(7), 0, 10, done());
    w.server = Some("s1".into());
    let mut r = op(1, 2, OpFn::Read, 20, 30, read(None));
    r.server = Some("s3".into());
    r.mode = crate::history::ReadMode::Consistent;
    let mut b = op(2, 3, OpFn::Read, 40, 250, read(None));
    b.server = Some("s2".into());
    b.mode = crate::history::ReadMode::Blocking { index: 4, wait_ms: 200, index_seen_ns: 0 };
    let report = violation(&[w, r, b]).to_string();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "key \"k\" is NOT linearizable; minimal failing sub-history (2 ops):", "{report}");
    assert_eq!(
        lines[1],
        "  #0      w1 via s1   write 7                    ok               invoke      0.000ms  complete 10.000ms"
    );
    // Either read alone contradicts the write; the shrinker keeps the first that fails.
    assert_eq!(
        lines[2],
        "  #1      w2 via s3   read consistent            ok absent        invoke     20.000ms  complete 30.000ms"
    );
    let mut unrouted = op(0, 1, OpFn::Write(7), 0, 10, done());
    unrouted.server = None;
    let mut blocking = op(1, 3, OpFn::Read, 40, 250, read(None));
    blocking.server = Some("s2".into());
    blocking.mode = crate::history::ReadMode::Blocking { index: 4, wait_ms: 200, index_seen_ns: 0 };
    let report = violation(&[unrouted, blocking]).to_string();
    assert!(report.contains("#0      w1 via ?    write 7 "), "{report}");
    assert!(report.contains("#1      w3 via s2   read blocking index=4 wait=200ms ok absent "), "{report}");
}

#[test]
fn delete_cas_deletes_only_its_value_and_succeeds_on_an_absent_key() {
    let cas = |b: bool| Outcome::Ok(OkResult::Cas(b));
    // Consul: a matching index deletes; an absent key answers true; another value answers false.
    let legal = vec![
        op(0, 1, OpFn::Write(1), 0, 10, done()),
        op(1, 1, OpFn::DeleteCas { expect: 1 }, 20, 30, cas(true)),
        op(2, 2, OpFn::Read, 40, 50, read(None)),
        op(3, 2, OpFn::DeleteCas { expect: 1 }, 60, 70, cas(true)),
        op(4, 1, OpFn::Write(2), 80, 90, done()),
        op(5, 2, OpFn::DeleteCas { expect: 1 }, 100, 110, cas(false)),
        op(6, 2, OpFn::Read, 120, 130, read(Some(2))),
    ];
    assert!(check(&legal).is_linearizable());
    // A delete-cas that answered true while another value was there is a violation, as is one
    // that answered false and then the key is seen deleted.
    let wrong = vec![op(0, 1, OpFn::Write(2), 0, 10, done()), op(1, 2, OpFn::DeleteCas { expect: 1 }, 20, 30, cas(true))];
    assert!(!check(&wrong).is_linearizable());
    let refused_but_gone = vec![
        op(0, 1, OpFn::Write(1), 0, 10, done()),
        op(1, 2, OpFn::DeleteCas { expect: 1 }, 20, 30, cas(false)),
        op(2, 2, OpFn::Read, 40, 50, read(Some(1))),
    ];
    assert!(!check(&refused_but_gone).is_linearizable());
    // An unknown delete-cas may have deleted the value it expected.
    let unknown = vec![
        op(0, 1, OpFn::Write(1), 0, 10, done()),
        op(1, 2, OpFn::DeleteCas { expect: 1 }, 20, 30, Outcome::Info),
        op(2, 1, OpFn::Read, 40, 50, read(None)),
    ];
    assert!(check(&unknown).is_linearizable());
}

#[test]
fn a_keys_listing_is_judged_by_presence() {
    let present = Outcome::Ok(OkResult::Present);
    // Listed while some value is held (whichever): fine.
    let ok = vec![op(0, 1, OpFn::Write(7), 0, 1, done()), op(1, 2, OpFn::Read, 2, 3, present.clone())];
    assert!(matches!(check(&ok), Verdict::Linearizable));
    // Listed after an acknowledged delete finished: no order explains it.
    let stale = vec![
        op(0, 1, OpFn::Write(7), 0, 1, done()),
        op(1, 1, OpFn::Delete, 2, 3, done()),
        op(2, 2, OpFn::Read, 4, 5, present),
    ];
    let v = violation(&stale);
    assert!(v.explanation.contains("listed the key as present"), "{}", v.explanation);
}
