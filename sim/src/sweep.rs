//! Sweeps: many seeds of one or more scenarios, with a progress bar while they run and a summary
//! table per scenario at the end.
//!
//! The progress bar (indicatif) draws on stderr only when stderr is a terminal, so CI logs and
//! piped output carry just the reports and the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// One run of a sweep: a scenario and a seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub scenario: String,
    pub seed: u64,
}

/// `--shard I/N` (1-based, as CI matrices number their jobs): which slice of a sweep this
/// process runs. Jobs are dealt round-robin, so every shard gets a similar mix of scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 1..=`of`.
    pub index: u64,
    /// How many shards the sweep is split into.
    pub of: u64,
}

impl Shard {
    /// Parses `I/N`. Errors: not two numbers, `N` = 0, or `I` outside 1..=N.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("--shard wants I/N (e.g. 2/4), got {s:?}"))?;
        let index: u64 = i.trim().parse().map_err(|e| format!("--shard index {i:?}: {e}"))?;
        let of: u64 = n.trim().parse().map_err(|e| format!("--shard count {n:?}: {e}"))?;
        if of == 0 || index == 0 || index > of {
            return Err(format!("--shard {s:?}: want 1 <= I <= N"));
        }
        Ok(Self { index, of })
    }

    /// The jobs of `all` that fall to this shard, in order.
    pub fn select(self, all: Vec<Job>) -> Vec<Job> {
        all.into_iter().enumerate().filter(|(k, _)| *k as u64 % self.of == self.index - 1).map(|(_, j)| j).collect()
    }
}

/// Runs `run` over `jobs` on `threads` worker threads (each run builds its own world on its own
/// thread, so runs are as deterministic as when run one at a time), and hands each result to
/// `done` on the calling thread **in job order**, whatever order they finish in. `done` returns
/// `false` to stop early (remaining jobs are skipped).
pub fn run_jobs<T: Send>(
    jobs: &[Job],
    threads: usize,
    run: impl Fn(&Job) -> T + Sync,
    mut done: impl FnMut(usize, T) -> bool,
) {
    let next = AtomicUsize::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, T)>();
        for _ in 0..threads.clamp(1, jobs.len().max(1)) {
            let tx = tx.clone();
            let (next, stop, run) = (&next, &stop, &run);
            scope.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= jobs.len() || stop.load(Ordering::Relaxed) {
                    return;
                }
                if tx.send((k, run(&jobs[k]))).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let mut waiting: BTreeMap<usize, T> = BTreeMap::new();
        let mut emit = 0;
        for (k, result) in rx {
            waiting.insert(k, result);
            while let Some(result) = waiting.remove(&emit) {
                if !done(emit, result) {
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
                emit += 1;
            }
        }
    });
}

/// What one seed of one scenario came to.
#[derive(Clone, Debug)]
pub struct SeedOutcome {
    /// Passed every check (and determinism, when checked).
    pub passed: bool,
    /// Safety checkers found a violation (a subset of failures).
    pub safety_violation: bool,
    /// The cluster did not recover within the liveness bound, or a liveness oracle failed (a
    /// blocking query answered late).
    pub no_liveness: bool,
    /// Operations by outcome: ok, fail, info.
    pub ops: (usize, usize, usize),
    /// Simulated time of the run.
    pub simulated: Duration,
    /// Wall time of the run (both runs, under `--check-determinism`).
    pub wall: Duration,
}

/// Totals for one scenario of a sweep.
#[derive(Clone, Debug, Default)]
pub struct ScenarioTally {
    /// Scenario name.
    pub scenario: String,
    /// Seeds run.
    pub seeds: usize,
    /// Seeds that failed, in the order run.
    pub failed: Vec<u64>,
    /// Failed seeds with a safety violation.
    pub safety: usize,
    /// Failed seeds where the cluster never became live again.
    pub no_liveness: usize,
    /// Operations by outcome over all seeds: ok, fail, info.
    pub ops: (usize, usize, usize),
    /// Simulated time over all seeds.
    pub simulated: Duration,
    /// Wall time of this scenario's runs, summed (with `--jobs`, more than the sweep's wall time).
    pub wall: Duration,
}

impl ScenarioTally {
    /// An empty tally for `scenario`.
    pub fn new(scenario: &str) -> Self {
        Self { scenario: scenario.to_string(), ..Self::default() }
    }

    /// Adds one seed's outcome.
    pub fn add(&mut self, seed: u64, outcome: &SeedOutcome) {
        self.seeds += 1;
        if !outcome.passed {
            self.failed.push(seed);
        }
        self.safety += usize::from(outcome.safety_violation);
        self.no_liveness += usize::from(outcome.no_liveness);
        self.ops.0 += outcome.ops.0;
        self.ops.1 += outcome.ops.1;
        self.ops.2 += outcome.ops.2;
        self.simulated += outcome.simulated;
        self.wall += outcome.wall;
    }
}

/// The summary table, one row per scenario plus a total row:
///
/// ```text
/// scenario          seeds  passed  failed  safety  no-live   ops ok/fail/info    sim s  wall s  speed  failing seeds
/// ```
pub fn render_table(tallies: &[ScenarioTally]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>5} {:>6} {:>6} {:>6} {:>7} {:>22} {:>8} {:>7} {:>6}  failing seeds",
        "scenario", "seeds", "passed", "failed", "safety", "no-live", "ops ok/fail/info", "sim s", "wall s", "speed"
    );
    let mut total = ScenarioTally::new("total");
    for t in tallies {
        row(&mut out, t);
        total.seeds += t.seeds;
        total.failed.extend(&t.failed);
        total.safety += t.safety;
        total.no_liveness += t.no_liveness;
        total.ops = (total.ops.0 + t.ops.0, total.ops.1 + t.ops.1, total.ops.2 + t.ops.2);
        total.simulated += t.simulated;
        total.wall += t.wall;
    }
    if tallies.len() > 1 {
        row(&mut out, &total);
    }
    out
}

fn row(out: &mut String, t: &ScenarioTally) {
    let ops = format!("{}/{}/{}", t.ops.0, t.ops.1, t.ops.2);
    let speed = t.simulated.as_secs_f64() / t.wall.as_secs_f64().max(1e-9);
    let failing = if t.failed.is_empty() {
        "-".to_string()
    } else {
        let shown: Vec<String> = t.failed.iter().take(10).map(u64::to_string).collect();
        let more = t.failed.len().saturating_sub(10);
        if more > 0 {
            format!("{} (+{more} more)", shown.join(","))
        } else {
            shown.join(",")
        }
    };
    let _ = writeln!(
        out,
        "{:<20} {:>5} {:>6} {:>6} {:>6} {:>7} {:>22} {:>8.0} {:>7.1} {:>5.0}x  {failing}",
        t.scenario,
        t.seeds,
        t.seeds - t.failed.len(),
        t.failed.len(),
        t.safety,
        t.no_liveness,
        ops,
        t.simulated.as_secs_f64(),
        t.wall.as_secs_f64(),
        speed
    );
}

/// A progress bar over `total` runs, with seeds/s and an ETA; hidden unless stderr is a terminal
/// (indicatif's default draw target) or when `hidden`.
pub fn progress(total: u64, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template("{bar:30} {pos}/{len} seeds  {per_sec}  ETA {eta}  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(passed: bool, safety: bool) -> SeedOutcome {
        SeedOutcome {
            passed,
            safety_violation: safety,
            no_liveness: !passed && !safety,
            ops: (5, 2, 1),
            simulated: Duration::from_secs(30),
            wall: Duration::from_millis(500),
        }
    }

    #[test]
    fn the_table_counts_failures_by_kind_and_totals_across_scenarios() {
        let mut a = ScenarioTally::new("partition-heal");
        a.add(1, &outcome(true, false));
        a.add(2, &outcome(false, true));
        let mut b = ScenarioTally::new("crash-restart");
        b.add(7, &outcome(false, false));
        let table = render_table(&[a, b]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(cols(lines[1])[..6], ["partition-heal", "2", "1", "1", "1", "0"], "{table}");
        assert_eq!(cols(lines[1]).last().map(String::as_str), Some("2"), "{table}");
        assert_eq!(cols(lines[2])[..6], ["crash-restart", "1", "0", "1", "0", "1"], "{table}");
        assert_eq!(cols(lines[3])[..7], ["total", "3", "1", "2", "1", "1", "15/6/3"], "{table}");
        assert!(lines[3].ends_with("2,7"), "{table}");
    }

    fn jobs(n: u64) -> Vec<Job> {
        (0..n).map(|seed| Job { scenario: "s".into(), seed }).collect()
    }

    #[test]
    fn parallel_runs_are_delivered_in_job_order() {
        let jobs = jobs(40);
        let mut seen = Vec::new();
        // Later jobs finish first: the order must still be the jobs' order.
        run_jobs(&jobs, 4, |j| {
            std::thread::sleep(Duration::from_micros(200 * (40 - j.seed)));
            j.seed * 10
        }, |k, v| {
            seen.push((k, v));
            true
        });
        let want: Vec<(usize, u64)> = (0..40).map(|k| (k, k as u64 * 10)).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn shards_partition_the_sweep() {
        let all = jobs(10);
        let mut union: Vec<u64> = Vec::new();
        for i in 1..=3 {
            let part = Shard::parse(&format!("{i}/3")).expect("valid").select(all.clone());
            assert!(part.len() >= 3 && part.len() <= 4, "{part:?}");
            union.extend(part.iter().map(|j| j.seed));
        }
        union.sort_unstable();
        assert_eq!(union, (0..10).collect::<Vec<_>>());
        for bad in ["0/3", "4/3", "1/0", "x", "1-3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_clean_scenario_shows_no_failing_seeds_and_no_total_row() {
        let mut a = ScenarioTally::new("bridge");
        a.add(1, &outcome(true, false));
        let table = render_table(&[a]);
        assert_eq!(table.lines().count(), 2, "{table}");
        assert!(table.lines().nth(1).is_some_and(|l| l.ends_with(" -")), "{table}");
    }
}
