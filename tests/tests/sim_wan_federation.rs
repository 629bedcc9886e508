//! The `wan-federation` scenario exercises what it claims: operations sent with `?dc=` through
//! the other datacenter take effect, and while the WAN is cut past failure detection they are
//! refused as certain failures ("No path to datacenter") while each datacenter keeps serving its
//! own keys. Exists because a federation scenario whose forwarded operations all failed would
//! pass the checkers while proving nothing about forwarding.

use std::time::Duration;

use checker::{Op, OpFn, Outcome};
use sim::options::RunOptions;

const SCENARIO: &str = "wan-federation";
const SERVERS_PER_DC: usize = 3;
/// The opening WAN cut lasts at least this long (`scenarios::wan_federation`'s LONG_CUT_MS).
const LONG_CUT: Duration = Duration::from_secs(60);

/// Whether `op` went through a server of another datacenter than its key's (`dc2/k0`,
/// `dc2/web/k0`).
fn forwarded(op: &Op) -> bool {
    let server = op.server.as_deref().and_then(nemesis::hosts::server_index).expect("workload ops name their server");
    let server_dc = sim::datacenters::name(sim::datacenters::of_server(server, SERVERS_PER_DC));
    let key_dc = op.key.split_once('/').map(|(dc, _)| dc).expect("keys are dc/key");
    server_dc != key_dc
}

/// A workload client's op that names the server it went through: every KV op and catalog write
/// (a catalog list read is recorded as one read per instance, without a server).
fn routed(op: &Op) -> bool {
    op.client != 0 && op.server.is_some()
}

fn is_write(op: &Op) -> bool {
    !matches!(op.f, OpFn::Read)
}

fn run(seed: u64) -> (sim::run::RunResult, sim::verdict::Judgement) {
    let options = RunOptions::derive(seed, SCENARIO, SERVERS_PER_DC, vec![], false);
    sim::run_seed(&options).expect("scenario exists")
}

#[test]
fn forwarded_reads_and_writes_take_effect() {
    let (result, judgement) = run(1);
    assert!(judgement.passed(), "{}", sim::report::render(&result, &judgement));
    let ops: Vec<&Op> = result.history.ops.iter().filter(|op| routed(op)).collect();
    let ok = |write: bool| ops.iter().filter(|op| forwarded(op) && is_write(op) == write && matches!(op.outcome, Outcome::Ok(_))).count();
    let direct = ops.iter().filter(|op| !forwarded(op) && matches!(op.outcome, Outcome::Ok(_))).count();
    assert!(ok(false) > 20 && ok(true) > 20, "forwarded ops that took effect: {} reads, {} writes", ok(false), ok(true));
    assert!(direct > 40, "direct ops that took effect: {direct}");
}

#[test]
fn a_long_wan_cut_refuses_forwarded_writes_as_certain_failures() {
    // The first seed whose schedule opens with the long WAN cut.
    let (result, cut_end) = (1..=10)
        .find_map(|seed| {
            let (result, _) = run(seed);
            let (start, cut) = result.faults.first().cloned()?;
            let (end, heal) = result.faults.get(1).cloned()?;
            let long = cut.starts_with("partition") && heal.starts_with("heal") && end >= start + LONG_CUT;
            long.then_some((result, end))
        })
        .expect("a seed in 1..=10 opens with the long WAN cut");
    // The cut's last 10 s, minus the clients' 3 s timeout: failure detection is done by then.
    let window = (cut_end - Duration::from_secs(10)).as_nanos() as u64..(cut_end - Duration::from_millis(3_500)).as_nanos() as u64;
    let during: Vec<&Op> = result.history.ops.iter().filter(|op| routed(op) && window.contains(&op.invoke_ns)).collect();
    let forwarded_writes: Vec<&&Op> = during.iter().filter(|op| forwarded(op) && is_write(op)).collect();
    assert!(forwarded_writes.iter().all(|op| !matches!(op.outcome, Outcome::Ok(_))), "no forwarded write gets through a cut WAN");
    let failed = forwarded_writes.iter().filter(|op| op.outcome == Outcome::Fail).count();
    assert!(failed > 0, "forwarded writes during the cut are refused as certain failures: {forwarded_writes:#?}");
    let direct_ok = during.iter().filter(|op| !forwarded(op) && matches!(op.outcome, Outcome::Ok(_))).count();
    assert!(direct_ok > 0, "each datacenter serves its own keys while the WAN is cut");
}
