//! A small seed sweep of every scenario, with determinism checks, always on in CI. Widen it with
//! `CONCORD_SIM_SEEDS=<n>` (seeds 1..=n per scenario) for nightly-style runs.

use sim::options::RunOptions;

fn seeds_per_scenario() -> u64 {
    std::env::var("CONCORD_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4)
}

#[test]
fn every_scenario_passes_a_small_sweep() {
    let n = seeds_per_scenario();
    let mut failures = Vec::new();
    for scenario in scenarios::REGISTRY {
        for seed in 1..=n {
            let options = RunOptions::derive(seed, scenario.name, 3, vec![], false);
            let (result, judgement) = sim::run_seed(&options).expect("registered scenario runs");
            assert!(!result.history.ops.is_empty(), "{} seed {seed}: the workload recorded nothing", scenario.name);
            if !judgement.passed() {
                failures.push(sim::report::render(&result, &judgement));
            }
        }
    }
    assert!(failures.is_empty(), "{} failing runs:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_seed_replays_to_the_same_trace_hash() {
    for scenario in scenarios::REGISTRY {
        let options = RunOptions::derive(7, scenario.name, 3, vec![], false);
        let (a, _) = sim::run_seed(&options).expect("runs");
        let (b, _) = sim::run_seed(&options).expect("runs");
        assert_eq!(a.trace_hash, b.trace_hash, "{}: seed 7 diverged on replay", scenario.name);
        assert_eq!(a.history.ops, b.history.ops, "{}: histories diverged on replay", scenario.name);
        let other = RunOptions::derive(8, scenario.name, 3, vec![], false);
        let (c, _) = sim::run_seed(&other).expect("runs");
        assert_ne!(a.trace_hash, c.trace_hash, "{}: different seeds must give different runs", scenario.name);
    }
}

#[test]
fn runs_on_parallel_threads_replay_exactly_as_one_at_a_time() {
    use sim::sweep::{run_jobs, Job};
    let jobs: Vec<Job> = ["partition-heal", "crash-restart", "swarm"]
        .iter()
        .flat_map(|s| (1..=3).map(move |seed| Job { scenario: s.to_string(), seed }))
        .collect();
    let hash = |job: &Job| {
        let options = RunOptions::derive(job.seed, &job.scenario, 3, vec![], false);
        sim::run_seed(&options).expect("runs").0.trace_hash
    };
    let serial: Vec<u64> = jobs.iter().map(hash).collect();
    let mut parallel = Vec::new();
    run_jobs(&jobs, 3, hash, |_, h| {
        parallel.push(h);
        true
    });
    assert_eq!(parallel, serial, "--jobs must not change any run");
}
