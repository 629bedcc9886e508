//! The Concord simulator: a seeded turmoil world of agents, a nemesis driving faults over
//! simulated time, workload clients recording a history, and checkers judging it.
//!
//! One seed is one run: the same seed and commit replay the same run event for event, which
//! [`run::run`]'s trace hash proves (`--check-determinism`).

pub mod agent_workload;
pub mod bank_workload;
pub mod catalog_workload;
pub mod client_agents;
pub mod dead_server_workload;
pub mod coordinate_workload;
pub mod datacenters;
pub mod federation_workload;
pub mod final_reads;
pub mod gossip_scale;
pub mod gossip_workload;
pub mod keyring_workload;
pub mod http_client;
pub mod io;
pub mod lock_cli_workload;
pub mod lock_workload;
pub mod junit;
pub mod kv_wide_workload;
pub mod operator;
pub mod options;
pub mod panics;
pub mod report;
pub mod run;
pub mod sweep;
pub mod server_lanes;
pub mod snapshot_workload;
pub mod timeline;
pub mod verdict;
pub mod wan_workload;
pub mod watch_workload;
pub mod workload;
pub mod world;

use options::RunOptions;
use rand::SeedableRng;

/// Checks that `scenario` names a registered scenario (before a sweep starts).
pub fn run_seed_check(scenario: &str) -> Result<(), String> {
    scenarios::find(scenario).map(|_| ()).ok_or_else(|| format!("unknown scenario {scenario:?}"))
}

/// Builds the scenario's schedule and runs it. Errors: unknown scenario name.
pub fn run_seed(options: &RunOptions) -> Result<(run::RunResult, verdict::Judgement), String> {
    let scenario = scenarios::find(&options.scenario).ok_or_else(|| {
        let names: Vec<&str> = scenarios::REGISTRY.iter().map(|s| s.name).collect();
        format!("unknown scenario {:?}; known: {}", options.scenario, names.join(", "))
    })?;
    let params = scenarios::Params { servers: options.servers, fault_phase: options.fault_phase };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed ^ 0x6e65_6d65_7369_7321);
    let schedule = (scenario.build)(&mut rng, &params);
    let mut result = run::run(options, &schedule);
    result.scenario_detail = schedule.options.clone();
    let judgement = verdict::judge(&result);
    Ok((result, judgement))
}
