//! A panic inside a simulated node is a failed seed, not the end of the simulator: with
//! `vote-in-memory`, crash-restart seed 1 runs on until openraft's own `unreachable!` (two
//! committed leaders in one term) fires inside a server. The `sim` binary must report that seed
//! like any failure (exit code 1, the seed, the replay command, the panic and where it was) and a
//! sweep must go on to the other seeds. Before, the process aborted (exit code 134, no report).

use std::process::{Command, Output};

/// Runs the release-built `sim` with `args` in a scratch directory (it writes `sim-reports/`).
fn sim(args: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("concord-sim-node-panic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .current_dir(&dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("sim runs")
}

#[test]
fn a_node_that_panics_fails_its_seed_with_a_report() {
    let out = sim(&["--seed", "1", "--scenario", "crash-restart", "--bug", "vote-in-memory"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "the usual failure exit code, not an abort:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("concord sim  seed=1  scenario=crash-restart"), "{stdout}");
    assert!(stdout.contains("replay: cargo run --release -p sim -- --seed 1 --scenario crash-restart --servers 3 --bug vote-in-memory"), "{stdout}");
    let failed = stdout.lines().find(|l| l.contains("host       FAILED: the simulation panicked at t=")).expect(&stdout);
    assert!(failed.contains("openraft-") && failed.contains("src/vote/vote.rs:"), "where it panicked: {failed}");
    assert!(failed.contains("two incomparable leaders can not be both committed"), "the panic message: {failed}");
    assert!(stdout.contains("trace events before the panic"), "{stdout}");
    assert!(stdout.contains("liveness   not judged: the run stopped at the panic"), "{stdout}");
    assert!(stdout.contains("RESULT: FAIL"), "{stdout}");
    // The report carries the panic; stderr stays quiet without RUST_BACKTRACE.
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_sweep_counts_a_panicking_seed_as_failed_and_goes_on() {
    let out = sim(&["--seeds", "1..3", "--scenario", "crash-restart", "--bug", "vote-in-memory", "--jobs", "2", "--quiet"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("the simulation panicked at t="), "seed 1's report: {stdout}");
    assert!(stdout.contains("concord sim  seed=2  scenario=crash-restart"), "seed 2 ran too: {stdout}");
    assert!(stdout.contains("sweep crash-restart seeds 1..3: 0 passed, 2 failed"), "{stdout}");
}
