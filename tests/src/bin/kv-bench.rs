//! KV benchmark: Concord side by side with etcd 3.4 (its HTTP/JSON gateway) in one run, 1 and 3
//! servers on loopback, 1/16/64 closed-loop keep-alive clients, 256-byte values, random keys
//! (100k write key space, 10k pre-loaded keys for reads). Prints markdown tables with throughput,
//! p50/p99/p999 latency, server CPU seconds and the Concord/etcd ratio; then blocking-query
//! fan-out and per-server CPU and peak RSS. Only ratios from one run compare (noisy machines).
//!
//! etcd comes from `tests/install-etcd.sh`; without it the figures are Concord's alone.
//!
//! Usage: `cargo run --release -p tests --bin kv-bench -- [--smoke] [--secs S] [--max-ops N]
//! [--servers 1,3] [--clients 1,16,64] [--ops put,get,consistent,stale,cas] [--watchers N]
//! [--no-etcd]`. `--smoke` is CI's ~2 s run; it exits non-zero if any Concord operation fails, or
//! if etcd started but a row completed no operation at all (its request encoding broke). Sporadic
//! etcd errors and an etcd that cannot start are reported, not fatal: CI may lack or starve it.
//!
//! Memory modes (one Concord server, no etcd; see `tests::kvbench::memory`): `--memory N` (RSS
//! holding N keys of 256 B against 2x data + the empty server's RSS) and `--recurse-memory` (RSS
//! around 5 concurrent `?recurse` reads of ~54 MB). `--baseline PATH` first runs the same mode
//! against the `concord` binary at PATH (e.g. main's), so before and after come from one run.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tests::cluster::Cluster;
use tests::kvbench::breakdown::{breakdown_table, Breakdown, WriteTimers};
use tests::kvbench::etcd::{etcd_binary, EtcdCluster};
use tests::kvbench::fanout::{fan_out, FanOut};
use tests::kvbench::memory::{recurse_memory, steady_memory};
use tests::kvbench::load::{preload, run_load, Load, Op, System, READ_KEYS};
use tests::kvbench::report::{fanout_table, resources_line, rows_table, Measured, Row};
use tests::kvbench::stats::{fmt_rate, proc_stats, ProcStats};

/// Run settings (defaults: the full benchmark, about 6 minutes).
struct Config {
    smoke: bool,
    per_row: Duration,
    max_ops: u64,
    servers: Vec<usize>,
    clients: Vec<usize>,
    ops: Vec<Op>,
    watchers: usize,
    preload_keys: u64,
    etcd: bool,
    /// `--memory N` / `--recurse-memory`: run only that memory mode.
    memory: Option<MemoryMode>,
    /// `--baseline PATH`: run the memory mode against this `concord` binary first.
    baseline: Option<String>,
}

/// A memory measurement (see `tests::kvbench::memory`).
#[derive(Clone, Copy)]
enum MemoryMode {
    Steady(u64),
    Recurse,
}

fn list<T: std::str::FromStr>(v: &str) -> Result<Vec<T>, String> {
    v.split(',').map(|s| s.trim().parse().map_err(|_| format!("bad list item {s:?}"))).collect()
}

fn op_named(name: &str) -> Result<Op, String> {
    Ok(match name {
        "put" => Op::Put,
        "get" => Op::Get,
        "consistent" => Op::GetConsistent,
        "stale" => Op::GetStale,
        "cas" => Op::Cas,
        _ => return Err(format!("unknown op {name:?} (put, get, consistent, stale, cas)")),
    })
}

impl Config {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut c = Config {
            smoke: false,
            per_row: Duration::from_secs(4),
            max_ops: 500_000,
            servers: vec![1, 3],
            clients: vec![1, 16, 64],
            ops: Op::ALL.to_vec(),
            watchers: 10_000,
            preload_keys: READ_KEYS,
            etcd: true,
            memory: None,
            baseline: None,
        };
        if args.iter().any(|a| a == "--smoke") {
            // ~2 s of load: 2 client counts x 5 ops x 2 stores x 0.1 s, plus a small fan-out.
            c = Config { smoke: true, per_row: Duration::from_millis(100), max_ops: 5_000, servers: vec![1], clients: vec![1, 4], watchers: 50, preload_keys: 200, ..c };
        }
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
            match a.as_str() {
                "--smoke" => {}
                "--no-etcd" => c.etcd = false,
                "--secs" => c.per_row = Duration::from_secs_f64(val()?.parse().map_err(|_| "bad --secs")?),
                "--max-ops" => c.max_ops = val()?.parse().map_err(|_| "bad --max-ops")?,
                "--watchers" => c.watchers = val()?.parse().map_err(|_| "bad --watchers")?,
                "--servers" => c.servers = list(&val()?)?,
                "--clients" => c.clients = list(&val()?)?,
                "--memory" => c.memory = Some(MemoryMode::Steady(val()?.parse().map_err(|_| "bad --memory")?)),
                "--recurse-memory" => c.memory = Some(MemoryMode::Recurse),
                "--baseline" => c.baseline = Some(val()?),
                "--ops" => c.ops = val()?.split(',').map(op_named).collect::<Result<_, _>>()?,
                _ => return Err(format!("unknown argument {a:?}")),
            }
        }
        Ok(c)
    }
}

/// One store under test: its client addresses (leader first) and server pids.
struct Target {
    system: System,
    addrs: Vec<SocketAddr>,
    pids: Vec<u32>,
}

impl Target {
    fn cpu_secs(&self) -> f64 {
        self.pids.iter().filter_map(|&p| proc_stats(p)).map(|s| s.cpu_secs).sum()
    }

    /// Every server's write-path timers (Concord only), leader first.
    fn timers(&self) -> Result<Vec<WriteTimers>, String> {
        self.addrs.iter().map(|a| WriteTimers::scrape(a.port())).collect()
    }

    fn procs(&self) -> Vec<Option<ProcStats>> {
        self.pids.iter().map(|&p| proc_stats(p)).collect()
    }
}

fn leader_first<T: Copy>(items: &[T], leader: usize) -> Vec<T> {
    (0..items.len()).map(|i| items[(leader + i) % items.len()]).collect()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn measure(rt: &tokio::runtime::Runtime, t: &Target, load: Load, failures: &mut Vec<String>) -> Measured {
    let before = t.cpu_secs();
    let (summary, first_error) = match rt.block_on(run_load(t.system, &t.addrs, load)) {
        Ok(r) => r,
        Err(e) => (Default::default(), Some(e)),
    };
    let cpu_secs = t.cpu_secs() - before;
    if let Some(e) = first_error {
        failures.push(format!("{:?} {} x{}: {e}", t.system, load.op.label(), load.clients));
    } else if summary.ops == 0 {
        failures.push(format!("{:?} {} x{}: no operation completed", t.system, load.op.label(), load.clients));
    }
    eprintln!(
        "  {:?} {:>2} clients {:<32} {:>10}  p99 {:>6} us",
        t.system,
        load.clients,
        load.op.label(),
        fmt_rate(summary.per_sec),
        summary.p99_us
    );
    Measured { summary, cpu_secs }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match Config::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kv-bench: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(mode) = cfg.memory {
        return run_memory_mode(mode, cfg.baseline.as_deref(), &args);
    }
    let etcd_version = if cfg.etcd { etcd_binary() } else { None };
    match &etcd_version {
        Some(v) => println!("etcd: {v}"),
        None if cfg.etcd => println!("etcd was not found (run tests/install-etcd.sh): Concord-only figures"),
        None => println!("etcd skipped (--no-etcd): Concord-only figures"),
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let (mut rows, mut fanouts, mut resources, mut breakdowns) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Concord failures fail a smoke run; etcd's are reported (CI machines may lack or starve it).
    let (mut failures, mut etcd_failures) = (Vec::new(), Vec::new());

    for &n in &cfg.servers {
        eprintln!("== {n} server(s): starting Concord{}", if etcd_version.is_some() { " and etcd" } else { "" });
        let cluster = Cluster::start(n);
        let leader = cluster.leader_index();
        let concord = Target {
            system: System::Concord,
            addrs: leader_first(&cluster.servers.iter().map(|s| loopback(s.http_port)).collect::<Vec<_>>(), leader),
            pids: leader_first(&cluster.servers.iter().filter_map(|s| s.pid()).collect::<Vec<_>>(), leader),
        };
        eprintln!("  Concord pids, leader first: {:?}", concord.pids);
        let etcd_cluster = etcd_version.as_ref().and_then(|_| {
            EtcdCluster::start(n).map_err(|e| etcd_failures.push(format!("etcd with {n} members: {e}"))).ok()
        });
        let etcd = etcd_cluster.as_ref().map(|c| {
            let leader = c.wait_for_leader();
            Target {
                system: System::Etcd,
                addrs: leader_first(&c.members.iter().map(|m| loopback(m.client_port)).collect::<Vec<_>>(), leader),
                pids: leader_first(&c.members.iter().map(|m| m.pid()).collect::<Vec<_>>(), leader),
            }
        });
        let reads = cfg.ops.iter().any(|op| matches!(op, Op::Get | Op::GetConsistent | Op::GetStale));
        for t in std::iter::once(&concord).chain(etcd.as_ref()).filter(|_| reads) {
            match rt.block_on(preload(t.system, &t.addrs, cfg.preload_keys, 64)) {
                Ok(d) => eprintln!("  {:?}: pre-loaded {} keys in {:.1}s", t.system, cfg.preload_keys, d.as_secs_f64()),
                Err(e) => failures.push(format!("{:?} preload: {e}", t.system)),
            }
        }
        for &clients in &cfg.clients {
            for &op in &cfg.ops {
                let load = Load { op, clients, duration: cfg.per_row, max_ops: cfg.max_ops, read_keys: cfg.preload_keys };
                let timers_before = (op == Op::Put).then(|| concord.timers());
                let c = measure(&rt, &concord, load, &mut failures);
                if let (Some(Ok(before)), Ok(after)) = (timers_before, concord.timers()) {
                    let per_server = after.iter().zip(&before).map(|(a, b)| a.minus(*b)).collect();
                    let (writes, client_mean_us) = (c.summary.ops, c.summary.mean_us);
                    breakdowns.push(Breakdown { servers: n, clients, writes, client_mean_us, per_server });
                }
                let e = etcd.as_ref().map(|t| measure(&rt, t, load, &mut etcd_failures));
                rows.push(Row { servers: n, clients, op, concord: c, etcd: e });
            }
        }
        let timeout = Duration::from_secs(60);
        let fan = |t: &Target| -> Result<FanOut, String> { rt.block_on(fan_out(t.system, &t.addrs, cfg.watchers, timeout)) };
        let c_fan = fan(&concord);
        let e_fan = etcd.as_ref().map(&fan);
        match &c_fan {
            Ok(f) if f.answered == f.watchers => {}
            Ok(f) => failures.push(format!("Concord fan-out: {} of {} answered", f.answered, f.watchers)),
            Err(e) => failures.push(format!("Concord fan-out: {e}")),
        }
        if let Some(Err(e)) = &e_fan {
            etcd_failures.push(format!("etcd fan-out: {e}"));
        }
        eprintln!("  fan-out of {} watchers: Concord {:?}; etcd {:?}", cfg.watchers, c_fan.as_ref().map(|f| f.all), e_fan.as_ref().map(|f| f.as_ref().map(|f| f.all)));
        fanouts.push((n, c_fan, e_fan));
        resources.push(resources_line("Concord", n, &concord.procs()));
        if let Some(t) = &etcd {
            resources.push(resources_line("etcd", n, &t.procs()));
        }
    }

    println!("\n{}-byte values; {:.1} s or {} ops per row; clients spread over the servers, leader first\n", tests::kvbench::load::VALUE_BYTES, cfg.per_row.as_secs_f64(), cfg.max_ops);
    println!("{}", rows_table(&rows));
    if !breakdowns.is_empty() {
        println!("Where a Concord PUT's time goes (means from the servers' own timers over the PUT rows; clients on followers are forwarded)\n");
        println!("{}", breakdown_table(&breakdowns));
    }
    println!("Blocking-query fan-out: {} watchers of one key, one write\n", cfg.watchers);
    println!("{}", fanout_table(&fanouts));
    println!("Per server over the whole configuration (start, pre-load, every row, fan-out)\n");
    println!("| servers | store | per server, leader first |\n|---|---|---|\n{}", resources.join("\n"));
    for e in &etcd_failures {
        println!("etcd problem: {e}");
    }
    for e in &failures {
        println!("Concord problem: {e}");
    }
    let etcd_broken = rows.iter().any(|r| r.etcd.as_ref().is_some_and(|e| e.summary.ops == 0));
    let smoke_fails = !failures.is_empty() || etcd_broken;
    if cfg.smoke && smoke_fails {
        println!("kv-bench smoke run FAILED");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Runs a memory mode on one server of this build's `concord`, after the same mode on
/// `baseline`'s (a child kv-bench with `CONCORD_BIN` set) when given.
fn run_memory_mode(mode: MemoryMode, baseline: Option<&str>, args: &[String]) -> ExitCode {
    if let Some(bin) = baseline {
        let mut child_args = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--baseline" => {
                    it.next();
                }
                _ => child_args.push(a.clone()),
            }
        }
        println!("== baseline");
        let me = std::env::current_exe().expect("own path");
        match std::process::Command::new(me).args(&child_args).env(tests::CONCORD_BIN_ENV, bin).status() {
            Ok(s) if s.success() => {}
            other => println!("baseline run failed: {other:?}"),
        }
    }
    println!("== concord: {}", tests::concord_bin().display());
    let cluster = Cluster::start(1);
    let (addr, pid) = match cluster.servers[0].pid() {
        Some(pid) => (loopback(cluster.servers[0].http_port), pid),
        None => {
            println!("the server is gone");
            return ExitCode::FAILURE;
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let report = match mode {
        MemoryMode::Steady(keys) => rt.block_on(steady_memory(addr, pid, keys)),
        MemoryMode::Recurse => rt.block_on(recurse_memory(addr, pid)),
    };
    match report {
        Ok(r) => {
            println!("{r}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("memory mode failed: {e}");
            ExitCode::FAILURE
        }
    }
}
