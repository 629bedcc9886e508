//! The run report: seed, scenario, options, faults, operation counts, verdicts, trace hash, and the
//! command that replays the run; on failure, the smallest failing sub-history.
//!
//! The finished text goes through one pass of [`checker::HostNames`], so whatever reached it
//! (fault text, invariant evidence, errors the agent recorded) names hosts (`s2`) rather than
//! showing their addresses (`192.168.0.2:8300`) or Raft ids.

use std::fmt::Write as _;

use checker::linearizable::Verdict;
use checker::{OpFn, Outcome};

use crate::run::RunResult;
use crate::verdict::Judgement;

/// Trace events shown before a panic that ended a run.
const PANIC_CONTEXT: usize = 12;

/// Renders the full report for one run.
pub fn render(result: &RunResult, judgement: &Judgement) -> String {
    let o = &result.options;
    let mut out = String::new();
    let _ = writeln!(out, "concord sim  seed={}  scenario={}", o.seed, o.scenario);
    let _ = writeln!(out, "options: {o} workload={}", crate::workload::for_scenario(&o.scenario).name());
    for bug in o.bugs.iter().filter(|b| !b.shows_in(&o.scenario)) {
        let _ = writeln!(out, "note: bug {} cannot show in {}; scenarios that can expose it: {}", bug.flag(), o.scenario, bug.scenarios().join(", "));
    }
    if let Some(detail) = &result.scenario_detail {
        let _ = writeln!(out, "scenario options: {detail}");
    }
    let _ = writeln!(out, "faults injected ({}):", result.faults.len());
    for (at, what) in &result.faults {
        let _ = writeln!(out, "  t={:>8.3}s  {what}", at.as_secs_f64());
    }
    if !result.buggified.is_empty() {
        let sites: Vec<String> = result.buggified.iter().map(|(site, n)| format!("{site} ×{n}")).collect();
        let _ = writeln!(out, "buggify fired: {}", sites.join(", "));
    }
    let (ok, fail, info) = result.history.outcome_counts();
    let _ = writeln!(out, "operations: {} (ok {ok}, fail {fail}, info {info})", result.history.ops.len());
    let _ = writeln!(
        out,
        "  (ok: took effect; fail: certainly did not, e.g. refused with no leader, expected while faults cut servers off; info: unknown, e.g. a timeout, may have taken effect)"
    );
    for (name, pred) in [
        ("read", (|f: &OpFn| matches!(f, OpFn::Read)) as fn(&OpFn) -> bool),
        ("write", |f| matches!(f, OpFn::Write(_))),
        ("cas", |f| matches!(f, OpFn::Cas { .. })),
        ("delete", |f| matches!(f, OpFn::Delete | OpFn::DeleteCas { .. })),
    ] {
        let ops: Vec<_> = result.history.ops.iter().filter(|op| pred(&op.f)).collect();
        let count = |want: fn(&Outcome) -> bool| ops.iter().filter(|op| want(&op.outcome)).count();
        let _ = writeln!(
            out,
            "  {name:<7} {:>5}  ok {:>5}  fail {:>5}  info {:>5}",
            ops.len(),
            count(|o| matches!(o, Outcome::Ok(_))),
            count(|o| matches!(o, Outcome::Fail)),
            count(|o| matches!(o, Outcome::Info)),
        );
    }
    let _ = writeln!(out, "checkers:");
    let object = crate::workload::for_scenario(&result.options.scenario).object();
    for (key, verdict) in &judgement.linearizable {
        let line = match verdict {
            Verdict::Linearizable => "linearizable".to_string(),
            Verdict::NotLinearizable(_) => "NOT LINEARIZABLE".to_string(),
            Verdict::Unknown { reason } => format!("UNKNOWN ({reason})"),
        };
        let _ = writeln!(out, "  {object} {key:<6} {line}");
    }
    if judgement.invariants.is_empty() {
        let workload = crate::workload::for_scenario(&result.options.scenario);
        let trace_oracles = match workload.trace_oracle_names() {
            "" => String::new(),
            names => format!(", {names}"),
        };
        let _ = writeln!(
            out,
            "  invariants ok: election safety, state machine safety, log matching, leader completeness, vote durability, apply once, {}{trace_oracles}",
            workload.oracle_names()
        );
    }
    const SHOWN: usize = 8;
    for v in judgement.invariants.iter().take(SHOWN) {
        let _ = writeln!(out, "  invariant  VIOLATED: {v}");
    }
    if judgement.invariants.len() > SHOWN {
        let mut by_name: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for v in &judgement.invariants[SHOWN..] {
            *by_name.entry(v.invariant).or_default() += 1;
        }
        let names: Vec<String> = by_name.iter().map(|(name, n)| format!("{name} ×{n}")).collect();
        let _ = writeln!(out, "  invariant  ... and {} more violations ({})", judgement.invariants.len() - SHOWN, names.join(", "));
    }
    let liveness_oracles = crate::workload::for_scenario(&result.options.scenario).liveness_oracle_names();
    if result.panic.is_some() {
        let _ = writeln!(out, "  liveness   not judged: the run stopped at the panic, before its liveness phase");
    } else if judgement.late.is_empty() && !liveness_oracles.is_empty() {
        let _ = writeln!(out, "  liveness   ok: {liveness_oracles}");
    }
    for v in judgement.late.iter().take(SHOWN) {
        let _ = writeln!(out, "  liveness   VIOLATED: {v}");
    }
    if judgement.late.len() > SHOWN {
        let _ = writeln!(out, "  liveness   ... and {} more violations", judgement.late.len() - SHOWN);
    }
    match (&judgement.no_liveness, result.live_at) {
        (None, Some(at)) => {
            let _ = writeln!(out, "  liveness   ok: proven {:.3}s after the final heal", (at - result.healed_at).as_secs_f64());
        }
        (Some(why), _) => {
            let _ = writeln!(out, "  liveness   VIOLATION: {why}");
        }
        _ => {}
    }
    if let Some(e) = &judgement.host_error {
        let _ = writeln!(out, "  host       FAILED: {e}");
    }
    if result.panic.is_some() {
        // What the nodes were doing just before: the history above holds only operations that
        // completed before the panic (any in flight are missing from it).
        let from = result.trace.len().saturating_sub(PANIC_CONTEXT);
        let _ = writeln!(out, "last {} trace events before the panic (all with --trace):", result.trace.len() - from);
        for record in &result.trace[from..] {
            let _ = writeln!(out, "  {record}");
        }
    }
    let _ = writeln!(
        out,
        "trace: hash={:016x} events={}  simulated={:.1}s wall={:.2}s ({:.0}x real time)",
        result.trace_hash,
        result.trace_events,
        result.sim_elapsed.as_secs_f64(),
        result.wall.as_secs_f64(),
        result.sim_elapsed.as_secs_f64() / result.wall.as_secs_f64().max(1e-9)
    );
    for (_, verdict) in &judgement.linearizable {
        if let Verdict::NotLinearizable(v) = verdict {
            let _ = writeln!(out, "smallest failing sub-history:\n{v}");
        }
    }
    let _ = writeln!(out, "replay: {}", o.replay_command());
    let _ = writeln!(out, "RESULT: {}", if judgement.passed() { "PASS" } else { "FAIL" });
    result.host_names.name_hosts(&out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use checker::{InvariantViolation, ReadMode};

    use super::*;
    use crate::timeline::tests::sample_with_servers;

    /// Issue 8: reports hid the clue. The minimal failing history must say which server answered
    /// each op and in which mode, and evidence must name servers, not show their addresses.
    #[test]
    fn report_names_servers_and_shows_each_ops_server_and_mode() {
        let mut result = sample_with_servers();
        // w2 reads k1 absent through s2 with ?consistent, after w1's write #0 was acknowledged.
        let mut stale = result.history.ops[1].clone();
        (stale.invoke_ns, stale.complete_ns, stale.mode) = (200_000_000, 210_000_000, ReadMode::Consistent);
        result.history.push(stale);
        let k1: Vec<_> = result.history.ops.iter().filter(|op| op.key == "k1").cloned().collect();
        let verdict = checker::check_key("k1", &k1, Duration::from_secs(5));
        assert!(matches!(verdict, Verdict::NotLinearizable(_)), "{verdict}");
        let evidence = vec!["w1 k1 write failed: rpc to 192.168.0.3:8300: connection lost".to_string()];
        let judgement = Judgement {
            linearizable: vec![("k1".into(), verdict)],
            no_liveness: None,
            host_error: Some("host s2 panicked: dial 192.168.0.1:8300 refused".into()),
            invariants: vec![InvariantViolation::new("example", "leader 192.168.0.1 lost its lease", evidence)],
            late: vec![],
        };
        let report = render(&result, &judgement);
        let lines: Vec<&str> = report.lines().collect();
        let at = lines.iter().position(|l| l.starts_with("key \"k1\" is NOT linearizable")).expect(&report);
        assert_eq!(lines[at + 1], "  #0      w1 via s1   write 3000000260           ok               invoke    100.000ms  complete 120.000ms");
        assert_eq!(lines[at + 2], "  #6      w2 via s2   read consistent            ok absent        invoke    200.000ms  complete 210.000ms");
        assert!(report.contains("  invariant  VIOLATED: example violated: leader s1 lost its lease\n    w1 k1 write failed: rpc to s3: connection lost\n"), "{report}");
        assert!(report.contains("host       FAILED: host s2 panicked: dial s1 refused"), "{report}");
        assert!(report.contains("operator: PUT /v1/operator/raft/peer?node=s3&address=s3: done"), "{report}");
        assert!(!report.contains("192.168."), "an address leaked into the report:\n{report}");
    }
}
