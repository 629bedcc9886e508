//! Gossip scale benchmark: simulated time until a join is known to all members and until a crash
//! is detected by all, per pool size, next to HashiCorp's published Serf convergence figures, with
//! wall time per simulated second. The agent's own gossip driver, one per member, over a seeded
//! in-memory network on tokio's paused clock (see `sim::gossip_scale`).
//!
//! `cargo run --release -p sim --bin gossip-scale -- [--members 100,1000] [--seed 1] [--loss 0.0]`

use std::time::Duration;

use clap::Parser;
use sim::gossip_scale::{run_blocking, ScaleOptions, ScaleResult, Spread};

/// Cheaper allocation than glibc malloc for the drivers' many small, short-lived allocations.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Gossip convergence at scale: the agent's gossip driver over a seeded simulated network")]
struct Args {
    /// Pool sizes to run, comma-separated (members after the join).
    #[arg(long, value_delimiter = ',', default_values_t = [100usize, 1000])]
    members: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Probability that a datagram is lost.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Give up on a phase (bootstrap, join, crash) after this many simulated seconds.
    #[arg(long, default_value_t = 300)]
    phase_limit_s: u64,
    /// Stop a pool size's run after this many wall seconds and report how far it got.
    #[arg(long, default_value_t = 280)]
    wall_budget_s: u64,
    /// Bootstrap ends once every view holds this share of the other members live.
    #[arg(long, default_value_t = 0.95)]
    bootstrap_fraction: f64,
    /// Print bootstrap progress to stderr.
    #[arg(long)]
    progress: bool,
}

/// HashiCorp's Serf convergence simulator, 99.99% of members (serf.io/docs/internals/simulator):
/// gossip dissemination of one message, with Serf's own parameters.
fn serf_figure(n: usize) -> &'static str {
    match n {
        100 => "~2.0s",
        1000 => "~2.2s",
        10000 => "~2.6s",
        _ => "-",
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".to_string(), |d| format!("{:.2}s", d.as_secs_f64()))
}

fn quantiles(s: &Spread) -> String {
    format!("{:>7} {:>7} {:>7}", secs(s.at(0.5)), secs(s.at(0.99)), if s.complete() { secs(s.at(1.0)) } else { format!("{}/{}", s.seen.len(), s.observers) })
}

fn main() {
    let args = Args::parse();
    println!("seed {}, latency 1-5 ms uniform per datagram, loss {}, views sampled every {} ms", args.seed, args.loss, sim::gossip_scale::SAMPLE.as_millis());
    println!("boot sim: simulated time until N-1 members, started within 1 s and announcing to member 0, each list {}% of the other N-2 live", args.bootstrap_fraction * 100.0);
    println!("join: time from the new member's first announce until other members list it alive (50% / 99% / all)");
    println!("joiner: time until the new member knows every other member (- if not before the crash phase ended)");
    println!("crash: time from the driver's abort until survivors that knew it list it suspect-or-failed (first) and failed (50% / 99% / all)");
    println!(
        "{:>6} | {:>7} {:>7} {:>7} {:>6} | {:>7} | {:>7} | {:>7} {:>7} {:>7} | {:>6} {:>6} {:>6} | {:>9} {:>9} {:>9}",
        "N", "join50", "join99", "joinall", "serf", "joiner", "suspect", "fail50", "fail99", "failall", "probe", "susp_to", "max_tx", "boot sim", "boot w/s", "steady w/s"
    );
    for n in &args.members {
        let mut opts = ScaleOptions::new(*n, args.seed);
        opts.loss = args.loss;
        opts.phase_limit = Duration::from_secs(args.phase_limit_s);
        opts.wall_budget = Duration::from_secs(args.wall_budget_s);
        opts.progress = args.progress;
        opts.bootstrap_fraction = args.bootstrap_fraction;
        let r: ScaleResult = run_blocking(&opts);
        let foca = r.config.foca(false);
        println!(
            "{:>6} | {} {:>6} | {:>7} | {:>7} | {} | {:>5.1}s {:>5.1}s {:>6} | {:>8.1}s {:>8.2}s {:>9.2}s",
            r.members,
            quantiles(&r.join),
            serf_figure(r.members),
            secs(r.joiner_complete),
            secs(r.crash_suspect.at(1.0 / r.crash_suspect.observers.max(1) as f64)),
            quantiles(&r.crash_failed),
            foca.probe_period.as_secs_f64(),
            foca.suspect_to_down_after.as_secs_f64(),
            foca.max_transmissions,
            r.bootstrap_time.as_secs_f64(),
            r.bootstrap_cost.wall_per_sim_s(),
            r.steady_cost.wall_per_sim_s(),
        );
        if !r.bootstrapped {
            let why = if r.out_of_budget.is_some() { format!("the {} s wall budget", args.wall_budget_s) } else { format!("{} s simulated", args.phase_limit_s) };
            println!(
                "       bootstrap incomplete after {:.1}s simulated ({why}): live peers per view min {} mean {:.1} of {}; join and crash not run",
                r.bootstrap_time.as_secs_f64(),
                r.bootstrap_views.0,
                r.bootstrap_views.1,
                r.members - 2
            );
        } else if let Some(phase) = r.out_of_budget {
            println!("       wall budget ({} s) ran out in the {phase} phase: figures above are partial", args.wall_budget_s);
        }
        let per_member_s = |c: &sim::gossip_scale::PhaseCost| c.datagrams as f64 / c.virtual_time.as_secs_f64().max(1e-9) / r.members as f64;
        println!(
            "       datagrams per member per simulated s: bootstrap {:.1}, steady {:.1}; wall: bootstrap {:.1}s, steady {:.1}s",
            per_member_s(&r.bootstrap_cost),
            per_member_s(&r.steady_cost),
            r.bootstrap_cost.wall.as_secs_f64(),
            r.steady_cost.wall.as_secs_f64()
        );
    }
}
