//! Simulator speed benchmark: simulated seconds per wall second and seeds per minute for the
//! 3-server world with 2 workload clients under the swarm scenario, with a breakdown of where
//! wall time goes (simulation vs checkers). Each tick size is reported as a ratio against the
//! 1 ms baseline measured in the same process, since absolute figures on shared machines drift.
//! `cpu s/s` divides by this thread's time on a CPU instead of wall time (Linux
//! `/proc/thread-self/schedstat`), so other work on the machine moves it much less.
//!
//! `cargo run --release -p sim --bin sim-bench -- [seeds-per-config]`

use std::time::{Duration, Instant};

use sim::options::RunOptions;

/// Cheaper allocation than glibc malloc for the simulator's many small, short-lived allocations.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let seeds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(8);
    println!("swarm, 3 servers, 2 clients, seeds 1..={seeds} per tick size");
    println!("{:>7} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>10} {:>8}", "tick", "sim s/s", "cpu s/s", "seeds/min", "run %", "check %", "ops/seed", "x baseline", "verdict");
    let mut baseline = None;
    for tick_ms in [1u64, 2, 5, 10] {
        let (mut run_wall, mut check_wall, mut simulated, mut ops, mut failures) = (Duration::ZERO, Duration::ZERO, 0f64, 0usize, 0);
        let cpu_start = thread_cpu();
        for seed in 1..=seeds {
            let mut options = RunOptions::derive(seed, "swarm", 3, vec![], false);
            options.clients = 2;
            options.tick = Duration::from_millis(tick_ms);
            let started = Instant::now();
            let (result, judgement) = sim::run_seed(&options).expect("swarm is registered");
            let total = started.elapsed();
            run_wall += result.wall;
            check_wall += total.saturating_sub(result.wall);
            simulated += result.sim_elapsed.as_secs_f64();
            ops += result.history.ops.len();
            failures += usize::from(!judgement.passed());
        }
        let wall = (run_wall + check_wall).as_secs_f64();
        let cpu = match (cpu_start, thread_cpu()) {
            (Some(a), Some(b)) => format!("{:.0}x", simulated / (b - a).as_secs_f64()),
            _ => "-".to_string(),
        };
        let speed = simulated / wall;
        let base = *baseline.get_or_insert(speed);
        println!(
            "{:>5}ms {:>9.0}x {:>10} {:>10.1} {:>8.0}% {:>8.0}% {:>9} {:>9.2}x {:>8}",
            tick_ms,
            speed,
            cpu,
            seeds as f64 * 60.0 / wall,
            100.0 * run_wall.as_secs_f64() / wall,
            100.0 * check_wall.as_secs_f64() / wall,
            ops / seeds as usize,
            speed / base,
            if failures == 0 { "pass".to_string() } else { format!("{failures} FAIL") }
        );
    }
}

/// This thread's time on a CPU so far (the first field of `/proc/thread-self/schedstat`, in ns);
/// `None` where that file does not exist.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(stat.split_whitespace().next()?.parse().ok()?))
}
