//! `sim`: run Concord scenarios under a seeded nemesis and check the histories.
//!
//! `cargo run --release -p sim -- --seed 42 --scenario partition-heal`

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use node::io::trace::Record;
use sim::options::{Bug, RunOptions};
use sim::sweep::{Job, ScenarioTally, SeedOutcome, Shard};

/// Cheaper allocation than glibc malloc for the simulator's many small, short-lived allocations.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "sim", about = "Concord deterministic simulator")]
struct Args {
    /// The seed: one seed is one run (default 42).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Sweep seeds A..B (half-open), e.g. `1..200`.
    #[arg(long)]
    seeds: Option<String>,
    /// Scenario name (see --list); several, comma-separated, or `all` for a sweep of every
    /// scenario ending in one summary table. Default: partition-heal, or with `--bug` the first
    /// scenario that can expose the bug.
    #[arg(long)]
    scenario: Option<String>,
    /// Number of servers (1 to 9).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
    servers: u8,
    /// Run each seed twice and fail if the trace hashes differ.
    #[arg(long)]
    check_determinism: bool,
    /// Switch on a deliberate bug (to prove the checkers catch it).
    #[arg(long, value_enum)]
    bug: Vec<Bug>,
    /// Print the per-event trace.
    #[arg(long)]
    trace: bool,
    /// Write the typed trace records to this file, one JSON object per line (input for the
    /// checker's trace-file test).
    #[arg(long, value_name = "PATH", conflicts_with = "seeds")]
    trace_json: Option<std::path::PathBuf>,
    /// List scenarios and exit.
    #[arg(long)]
    list: bool,
    /// In a sweep, print only the reports of failing seeds and the summary table.
    #[arg(long)]
    quiet: bool,
    /// Run this many seeds at once, one simulated world per thread; reports still appear in
    /// seed order and every run is as deterministic as alone.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: u16,
    /// Run only slice I of N of the sweep (1-based, e.g. `--shard 2/4`), for CI matrices.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Write a JUnit XML report (one test case per seed) to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<std::path::PathBuf>,
}

/// The seed of a run when neither `--seed` nor `--seeds` is given.
const DEFAULT_SEED: u64 = 42;
/// The scenario of a run when neither `--scenario` nor `--bug` is given.
const DEFAULT_SCENARIO: &str = "partition-heal";

/// What `--list` prints: the scenarios, then each deliberate bug with the scenarios that can
/// expose it (the first is the one `--bug` alone runs).
fn list_text() -> String {
    use clap::ValueEnum as _;
    let mut out = String::new();
    for s in scenarios::REGISTRY {
        out.push_str(&format!("{:<18} {}\n", s.name, s.about));
    }
    out.push_str("\ndeliberate bugs (--bug), and the scenarios that can expose them (alone, --bug runs the first):\n");
    for bug in Bug::value_variants() {
        let help = bug.to_possible_value().and_then(|v| v.get_help().map(ToString::to_string)).unwrap_or_default();
        out.push_str(&format!("{:<26} {}\n{:<26} shows in: {}\n", bug.flag(), help, "", bug.scenarios().join(", ")));
    }
    out
}

fn parse_range(s: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("--seeds wants A..B, got {s:?}"))?;
    let a = a.trim().parse::<u64>().map_err(|e| format!("--seeds start: {e}"))?;
    let b = b.trim().parse::<u64>().map_err(|e| format!("--seeds end: {e}"))?;
    if b <= a {
        return Err(format!("--seeds range {s:?} is empty"));
    }
    Ok(a..b)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        print!("{}", list_text());
        return ExitCode::SUCCESS;
    }
    if std::env::var_os("CONCORD_SIM_LOG").is_some() {
        // Stamped with simulated time (the wall clock says nothing about a simulated run).
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("CONCORD_SIM_LOG"))
            .with_timer(SimTime)
            .with_ansi(false)
            .init();
    }
    let seeds = match &args.seeds {
        Some(r) => match parse_range(r) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => {
            let seed = args.seed.unwrap_or(DEFAULT_SEED);
            seed..seed.saturating_add(1)
        }
    };
    let scenario_arg = match (&args.scenario, args.bug.first()) {
        (Some(s), _) => s.clone(),
        (None, Some(bug)) => {
            let first = bug.scenarios()[0];
            eprintln!("note: --bug {} without --scenario runs {first}, the first scenario that can expose it", bug.flag());
            first.to_string()
        }
        (None, None) => DEFAULT_SCENARIO.to_string(),
    };
    let scenario_names: Vec<String> = if scenario_arg == "all" {
        scenarios::REGISTRY.iter().map(|s| s.name.to_string()).collect()
    } else {
        scenario_arg.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    };
    for name in &scenario_names {
        if sim::run_seed_check(name).is_err() {
            let names: Vec<&str> = scenarios::REGISTRY.iter().map(|s| s.name).collect();
            eprintln!("error: unknown scenario {name:?}; known: {} (or `all`)", names.join(", "));
            return ExitCode::from(2);
        }
    }
    if scenario_names.is_empty() {
        eprintln!("error: --scenario names no scenario");
        return ExitCode::from(2);
    }
    // A bug in a scenario that cannot expose it runs (a sweep of `all` is legitimate) but would
    // pass for the wrong reason: say so before anything runs.
    for bug in &args.bug {
        let blind: Vec<&str> = scenario_names.iter().map(String::as_str).filter(|s| !bug.shows_in(s)).collect();
        if !blind.is_empty() {
            eprintln!(
                "warning: --bug {} cannot show in {} {}; scenarios that can expose it: {}",
                bug.flag(),
                if blind.len() == 1 { "scenario" } else { "scenarios" },
                blind.join(", "),
                bug.scenarios().join(", ")
            );
        }
    }
    let mut jobs: Vec<Job> = scenario_names
        .iter()
        .flat_map(|scenario| seeds.clone().map(move |seed| Job { scenario: scenario.clone(), seed }))
        .collect();
    if let Some(spec) = &args.shard {
        match Shard::parse(spec) {
            Ok(shard) => jobs = shard.select(jobs),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let sweep = seeds.end - seeds.start > 1 || scenario_names.len() > 1;
    let started = Instant::now();
    let bar = sim::sweep::progress(jobs.len() as u64, !sweep);
    let mut tallies: Vec<ScenarioTally> = scenario_names.iter().map(|s| ScenarioTally::new(s)).collect();
    let mut cases: Vec<sim::junit::Case> = Vec::new();
    let mut exit: Option<ExitCode> = None;
    let threads = usize::from(args.jobs.max(1));
    sim::sweep::run_jobs(
        &jobs,
        threads,
        |job| run_one(&args, &job.scenario, job.seed, sweep),
        |k, run| {
            let job = &jobs[k];
            let run = match run {
                Ok(run) => run,
                Err(code) => {
                    exit = Some(code);
                    return false;
                }
            };
            if !run.text.is_empty() {
                use std::io::Write as _;
                if bar.suspend(|| std::io::stdout().lock().write_all(run.text.as_bytes())).is_err() {
                    exit = Some(ExitCode::SUCCESS); // reader went away (e.g. `| head`)
                    return false;
                }
            }
            if let Some(t) = tallies.iter_mut().find(|t| t.scenario == job.scenario) {
                t.add(job.seed, &run.outcome);
            }
            cases.push(sim::junit::Case {
                scenario: job.scenario.clone(),
                seed: job.seed,
                wall: run.outcome.wall,
                failure: (!run.outcome.passed).then(|| (run.replay.clone(), run.report.clone())),
            });
            bar.set_message(format!("{} seed {}", job.scenario, job.seed));
            bar.inc(1);
            true
        },
    );
    bar.finish_and_clear();
    if let Some(code) = exit {
        return code;
    }
    if let Some(path) = &args.junit {
        if let Err(e) = std::fs::write(path, sim::junit::render(&cases)) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if sweep {
        for tally in tallies.iter().filter(|t| t.seeds > 0) {
            println!(
                "sweep {} seeds {}..{}{}: {} passed, {} failed; determinism {}{}",
                tally.scenario,
                seeds.start,
                seeds.end,
                args.shard.as_deref().map(|s| format!(" (shard {s})")).unwrap_or_default(),
                tally.seeds - tally.failed.len(),
                tally.failed.len(),
                if args.check_determinism { "checked (each seed run twice, trace hashes equal)" } else { "not checked (add --check-determinism)" },
                if tally.failed.is_empty() { String::new() } else { format!("; failing seeds: {:?}", tally.failed) }
            );
        }
        let wall = started.elapsed().as_secs_f64();
        let simulated: f64 = tallies.iter().map(|t| t.simulated.as_secs_f64()).sum();
        print!("\n{}", sim::sweep::render_table(&tallies));
        println!(
            "{} runs on {threads} thread{} in {wall:.1}s wall ({:.0}x real time overall)",
            jobs.len(),
            if threads == 1 { "" } else { "s" },
            simulated / wall.max(1e-9)
        );
    }
    if tallies.iter().all(|t| t.failed.is_empty()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What one seed produced: the text to print (the report, unless a quiet sweep passed), the
/// outcome, and for failures the replay line and full report (for `--junit`).
struct SeedRun {
    text: String,
    outcome: SeedOutcome,
    replay: String,
    report: String,
}

/// Runs (and judges) one seed of `scenario`; its report is kept for printing unless this is a
/// quiet sweep and it passed. Errors: the exit code for a run that could not start.
fn run_one(args: &Args, scenario: &str, seed: u64, sweep: bool) -> Result<SeedRun, ExitCode> {
    use std::fmt::Write as _;
    let run_started = Instant::now();
    // Determinism checks keep the trace so a divergence can be shown line by line.
    let keep_trace = args.trace || args.trace_json.is_some() || args.check_determinism;
    let options = RunOptions::derive(seed, scenario, usize::from(args.servers), args.bug.clone(), keep_trace);
    let (result, judgement) = sim::run_seed(&options).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    let mut ok = judgement.passed();
    let mut determinism_note = String::new();
    if args.check_determinism {
        let (again, _) = sim::run_seed(&options).map_err(|e| {
            eprintln!("error: second run failed to start: {e}");
            ExitCode::from(2)
        })?;
        if again.trace_hash != result.trace_hash || again.history.ops != result.history.ops {
            ok = false;
            determinism_note = format!(
                "DETERMINISM VIOLATION: seed {seed} replayed with trace hash {:016x} then {:016x} ({} vs {} events)\n{}",
                result.trace_hash,
                again.trace_hash,
                result.trace_events,
                again.trace_events,
                first_divergence(&result.trace, &again.trace)
            );
        } else {
            determinism_note = format!("determinism: ok (hash {:016x} twice)", result.trace_hash);
        }
    }
    let mut text = String::new();
    if args.trace {
        for record in &result.trace {
            let _ = writeln!(text, "{record}");
        }
    }
    if let Some(path) = &args.trace_json {
        if let Err(e) = write_trace_json(path, &result.trace) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Err(ExitCode::from(2));
        }
    }
    let mut report = sim::report::render(&result, &judgement);
    if !determinism_note.is_empty() {
        let _ = writeln!(report, "{}", result.host_names.name_hosts(&determinism_note));
    }
    if judgement.safety_violation() {
        let violations: Vec<&checker::Violation> = judgement
            .linearizable
            .iter()
            .filter_map(|(_, v)| match v {
                checker::Verdict::NotLinearizable(v) => Some(v),
                _ => None,
            })
            .collect();
        match sim::timeline::write_violation_timeline(&result, &violations, std::path::Path::new("sim-reports")) {
            Ok(path) => {
                let _ = writeln!(report, "timeline: {}", path.display());
            }
            Err(e) => eprintln!("warning: could not write the timeline: {e}"),
        }
    }
    if !sweep || !args.quiet || !ok {
        text.push_str(&report);
    }
    Ok(SeedRun {
        text,
        outcome: SeedOutcome {
            passed: ok,
            safety_violation: judgement.safety_violation(),
            no_liveness: judgement.liveness_violation(),
            ops: result.history.outcome_counts(),
            simulated: result.sim_elapsed,
            wall: run_started.elapsed(),
        },
        replay: options.replay_command(),
        report,
    })
}

/// Writes `records` to `path` as JSON lines.
fn write_trace_json(path: &std::path::Path, records: &[Record]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for record in records {
        serde_json::to_writer(&mut out, record)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Shows where two traces of the same seed first differ, with a little context.
fn first_divergence(a: &[Record], b: &[Record]) -> String {
    let at = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let from = at.saturating_sub(3);
    let mut out = format!("first divergence at trace line {at}:\n");
    for (name, t) in [("run 1", a), ("run 2", b)] {
        out.push_str(&format!("  {name}:\n"));
        for line in t.iter().skip(from).take(6) {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}

/// Log timestamps in simulated seconds (`-` outside a simulation).
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(t) => write!(w, "{:>10.3}s", t.as_secs_f64()),
            None => write!(w, "         -"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_shows_each_bug_with_the_scenarios_that_can_expose_it() {
        let text = list_text();
        assert!(text.contains("partition-heal"), "{text}");
        assert!(text.lines().any(|l| l.starts_with("skip-fsync")), "{text}");
        assert!(text.contains("shows in: rolling-restart, crash-restart"), "{text}");
        assert!(text.contains("lost-wakeup"), "{text}");
    }
}
