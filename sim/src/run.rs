//! One simulation run: build a turmoil world of servers and workload clients, drive the nemesis
//! schedule over simulated time, heal, run the liveness phase, and collect what happened.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use checker::{History, HostNames};
use nemesis::{Fault, Schedule};
use node::agent::{Agent, AgentConfig, Ports, RaftTiming};
use node::io::mem::MemDisk;
use node::io::trace::{Event, Nemesis, Record, NEMESIS, OPERATOR};
use node::io::Io;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::io::{SimClock, Trace, TraceHandle, TurmoilNet, UdpLoss};
use crate::operator::{run_operator, OperatorQueue};
use crate::world::World;
use crate::options::RunOptions;
use crate::workload::{liveness_probe, ClientSpec};

const HTTP_PORT: u16 = 8500;
const SERVER_PORT: u16 = 8300;
/// How long after the fault phase workload clients keep going (they overlap the liveness phase).
const WORKLOAD_TAIL: Duration = Duration::from_secs(5);
/// Servers boot at a seed-chosen offset within this many ms of each other.
const BOOT_STAGGER_MS: u64 = 300;
/// Pause before a server that failed to start is started again.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);
/// Tombstones are reaped this long after their delete (production: 15 min), so reaping happens,
/// and races blocking queries, within a run (the workload's blocking reads wait 200 ms, under it).
const SIM_TOMBSTONE_TTL: Duration = Duration::from_secs(1);
/// Mixed into the seed for each server's disk latency stream.
const DISK_SEED_SALT: u64 = 0x6469_736b_6c61_7421;
/// Hard stop beyond the liveness bound, in case a client never returns.
const RUN_SLACK: Duration = Duration::from_secs(15);
/// How long after the nemesis' faults heal the cluster still counts as disturbed (re-election,
/// catch-up of a server that was cut off or restarted), for the blocking-query latency oracle.
const SETTLE: Duration = Duration::from_secs(2);
/// Raft identity generations named in reports: a server that abandons corrupt storage rejoins as
/// generation 1, 2, … (`node::server::identity`) and is shown as `s2#1`; a run sees few of them.
const NAMED_GENERATIONS: u64 = 4;

/// The spans of simulated time during which the nemesis had the cluster disturbed: from a fault
/// until the world is quiet again ([`World::is_quiet`]) plus [`SETTLE`]; an instantaneous fault
/// (a transfer, a bit flip, an operator's membership change) disturbs for [`SETTLE`].
#[derive(Default)]
struct Disturbances {
    since: Option<Duration>,
    spans: Vec<checker::oracles::DisturbedSpan>,
}

impl Disturbances {
    fn push(&mut self, from: Duration, to: Duration) {
        self.spans.push((from.as_nanos() as u64, (to + SETTLE).as_nanos() as u64));
    }

    /// Notes a fault applied at `now`, after which the world is `quiet` or not.
    fn after_fault(&mut self, now: Duration, quiet: bool) {
        match (self.since, quiet) {
            (None, false) => self.since = Some(now),
            (Some(from), true) => {
                self.push(from, now);
                self.since = None;
            }
            (None, true) => self.push(now, now),
            (Some(_), false) => {}
        }
    }

    /// The spans; one still open never ends.
    fn finish(mut self) -> Vec<checker::oracles::DisturbedSpan> {
        if let Some(from) = self.since.take() {
            self.spans.push((from.as_nanos() as u64, u64::MAX));
        }
        self.spans
    }
}

/// Everything a run produced, for the checkers and the report.
pub struct RunResult {
    pub options: RunOptions,
    pub history: History,
    /// Faults as applied, with what they resolved to.
    pub faults: Vec<(Duration, String)>,
    pub trace_hash: u64,
    pub trace_events: u64,
    /// Every trace record, in order (rendered, they are the lines `--trace` prints).
    pub trace: Vec<Record>,
    /// When the liveness probe proved the cluster live, if it did.
    pub live_at: Option<Duration>,
    /// When the final heal happened (start of the liveness phase).
    pub healed_at: Duration,
    /// A host that failed (e.g. refused to start on corrupt storage), or the panic that ended the run.
    pub host_error: Option<String>,
    /// The panic that ended the run early, if one did (also in `host_error`).
    pub panic: Option<crate::panics::SimPanic>,
    pub sim_elapsed: Duration,
    pub wall: Duration,
    /// What a seed-driven scenario (swarm) chose, for the report.
    pub scenario_detail: Option<String>,
    /// Fault points (`buggify!`) that fired, with counts.
    pub buggified: Vec<(&'static str, u64)>,
    /// When the nemesis had the cluster disturbed (ns spans; see `Disturbances`).
    pub disturbed: Vec<checker::oracles::DisturbedSpan>,
    /// The servers' host names, in order (`s1`, `s2`, …).
    pub servers: Vec<String>,
    /// Hosts' addresses and Raft ids by name, so reports name servers instead of showing IPs.
    pub host_names: HostNames,
}

/// The names of the hosts `(name, ip)`, with each server's Raft ids (every generation up to
/// [`NAMED_GENERATIONS`]; generation `g` > 0 is shown as `name#g`).
pub fn host_names(servers: &[(String, std::net::IpAddr)], clients: &[(String, std::net::IpAddr)]) -> HostNames {
    let mut names = HostNames::new();
    for (name, ip) in servers {
        names.add_host(name, *ip);
        names.add_raft_id(name, node::raft::node_id_for(name));
        for generation in 1..=NAMED_GENERATIONS {
            let shown = format!("{name}#{generation}");
            names.add_raft_id(&shown, node::raft::node_id_for(&shown));
        }
    }
    for (name, ip) in clients {
        names.add_host(name, *ip);
    }
    names
}

/// Runs the scenario for `options` and returns what happened. Deterministic in `options`.
pub fn run(options: &RunOptions, schedule: &Schedule) -> RunResult {
    let wall_start = Instant::now();
    node::raft::runtime::reseed(options.seed);
    // CONCORD_SIM_NO_BUGGIFY=1 switches fault points off, to triage whether one is involved.
    if std::env::var_os("CONCORD_SIM_NO_BUGGIFY").is_none() {
        node::buggify::enable(options.seed);
    } else {
        node::buggify::disable();
    }
    let mut sim = turmoil::Builder::new()
        .rng_seed(options.seed)
        .simulation_duration(Duration::from_secs(3600))
        .tick_duration(options.tick)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(options.latency_max)
        .enable_random_order()
        .build();

    let trace = Arc::new(Trace::new());
    // `--servers` per datacenter; a second datacenter's servers follow the first's in host order
    // (`crate::datacenters`), so a one-datacenter world is exactly what it always was.
    let per_dc = options.servers;
    let datacenters = crate::datacenters::count(&options.scenario);
    let n = per_dc * datacenters;
    let names: Vec<String> = nemesis::hosts::servers(n);
    let ips: Vec<_> = names.iter().map(|name| sim.lookup(name.as_str())).collect();
    let rpc_addrs: Vec<String> = ips.iter().map(|ip| SocketAddr::new(*ip, SERVER_PORT).to_string()).collect();
    let http_addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, HTTP_PORT)).collect();
    // Each disk's service times come from its own seeded stream, so they replay.
    let disks: Vec<Arc<MemDisk>> =
        (0..n).map(|i| Arc::new(MemDisk::with_latency(options.seed ^ DISK_SEED_SALT.wrapping_mul(i as u64 + 1)))).collect();
    let clocks: Vec<Arc<SimClock>> = (0..n).map(|_| Arc::new(SimClock::new())).collect();
    // Drop streams seeded apart from `seeds`, so adding them shifts no other random choice.
    let udp_loss: Vec<Arc<UdpLoss>> = (0..n).map(|i| UdpLoss::new(options.seed ^ (0x7564_706c_6f73 + i as u64))).collect();
    let agents: Rc<RefCell<Vec<Option<Arc<Agent>>>>> = Rc::new(RefCell::new(vec![None; n]));
    let mut seeds = ChaCha8Rng::seed_from_u64(options.seed);
    let wan_pool = scenarios::find(&options.scenario)
        .is_some_and(|s| matches!(s.workload, scenarios::WorkloadKind::WanGossip | scenarios::WorkloadKind::WanFederation | scenarios::WorkloadKind::GossipKeyring));

    for i in 0..n {
        let dc = crate::datacenters::of_server(i, per_dc);
        let same_dc = |j: usize| crate::datacenters::of_server(j, per_dc) == dc;
        // WAN joins: dc2's servers name dc1's (`-retry-join-wan`); a datacenter's own servers find
        // each other in the WAN pool by flood join from the LAN pool, as Consul's do.
        let wan_peer = |j: usize| !same_dc(j) && crate::datacenters::of_server(j, per_dc) == 0;
        let config = AgentConfig {
            node_name: names[i].clone(),
            datacenter: crate::datacenters::name(dc),
            server: true,
            bootstrap_expect: per_dc,
            bind_addr: ips[i],
            client_addr: ips[i],
            ports: Ports { http: HTTP_PORT, server: SERVER_PORT, ..Ports::default() },
            data_dir: None,
            retry_join: rpc_addrs.iter().enumerate().filter(|(j, a)| same_dc(*j) && **a != rpc_addrs[i]).map(|(_, a)| a.clone()).collect(),
            raft: RaftTiming {
                snapshot_threshold: options.snapshot_threshold,
                trailing_logs: 32,
                tombstone_ttl_ms: SIM_TOMBSTONE_TTL.as_millis() as u64,
                // Only the scenario that judges it: elsewhere removing cut-off servers from Raft
                // would change what those scenarios exercise (and where their bugs show).
                cleanup_dead_servers: scenarios::find(&options.scenario).is_some_and(|s| s.workload == scenarios::WorkloadKind::DeadServerCleanup),
                ..RaftTiming::default()
            },
            dns: Default::default(),
            bugs: options.bug_switches(),
            dev: false,
            enable_script_checks: false,
            config_entries: Default::default(),
            session_ttl_min_ms: crate::lock_workload::SESSION_TTL_MS,
            gossip: crate::keyring_workload::gossip_config(&options.scenario),
            // Only the scenario that judges it: the WAN pool's traffic and trace events would
            // change every other scenario's run.
            wan: node::gossip::wan::WanSettings {
                enabled: wan_pool,
                retry_join: ips
                    .iter()
                    .enumerate()
                    .filter(|(j, ip)| **ip != ips[i] && wan_peer(*j))
                    .map(|(_, ip)| SocketAddr::new(*ip, Ports::default().serf_wan).to_string())
                    .collect(),
                start_join: Vec::new(),
            },
        };
        let disk = disks[i].clone();
        let clock = clocks[i].clone();
        let host_udp_loss = udp_loss[i].clone();
        let trace = trace.clone();
        let agents = agents.clone();
        let agent_seed = rand::Rng::gen::<u64>(&mut seeds);
        // Servers never boot in the same instant. Without this, their openraft election ticks
        // (every 1.5 heartbeats) are phase-aligned and equal quantised timeouts split the vote
        // forever (found by the sim: partition-heal seed 94 with a 10 ms step).
        let boot_delay = Duration::from_millis(rand::Rng::gen_range(&mut seeds, 0..BOOT_STAGGER_MS));
        sim.host(names[i].as_str(), move || {
            let io = Io {
                net: Arc::new(TurmoilNet { udp_loss: host_udp_loss.clone() }),
                clock: clock.clone(),
                disk: disk.clone(),
                trace: Arc::new(TraceHandle(trace.clone())),
                processes: Arc::new(node::io::process::ScriptedProcesses),
                seed: agent_seed,
            };
            let config = config.clone();
            let agents = agents.clone();
            let raft_rate: Arc<dyn node::raft::drift::HostRate> = clock.clone();
            async move {
                // openraft's timers on this host (this runtime) follow its drifting clock.
                node::raft::drift::register_host_rate(raft_rate);
                tokio::time::sleep(boot_delay).await;
                // Like a service manager with Restart=always: a server that fails to start (e.g.
                // an injected disk read error) is retried; one that never starts shows up as
                // "start failed" in the trace and fails the liveness phase.
                loop {
                    match node::agent::start(config.clone(), io.clone()).await {
                        Ok(agent) => {
                            agents.borrow_mut()[i] = Some(agent.clone());
                            // A fatal Raft error (e.g. a failed fsync) stops the process; the
                            // service manager restarts it from its disk.
                            let why = agent.wait_fatal().await;
                            io.trace.event(&config.node_name, Event::RaftFatal { reason: why });
                            agents.borrow_mut()[i] = None;
                            agent.shutdown().await;
                            tokio::time::sleep(RESTART_BACKOFF).await;
                        }
                        Err(e) => {
                            io.trace.event(&config.node_name, Event::StartFailed { reason: e.to_string() });
                            tokio::time::sleep(RESTART_BACKOFF).await;
                        }
                    }
                }
            }
        });
    }

    let history = Rc::new(RefCell::new(History::default()));
    let workload_until = options.fault_phase + WORKLOAD_TAIL;
    let keys: Vec<String> = (0..options.keys).map(|k| format!("k{k}")).collect();
    let workload = crate::workload::for_scenario(&options.scenario);
    // Workloads that go through client agents get one per workload client (`c1` for `w1`, …).
    let client_agents: Vec<(String, SocketAddr)> = if workload.through_client_agents() {
        let spec = crate::client_agents::ClientAgentsSpec {
            count: options.clients,
            join: rpc_addrs[0].clone(),
            http_port: HTTP_PORT,
            server_port: SERVER_PORT,
            bugs: options.bug_switches(),
            trace: &trace,
            run_seed: options.seed,
        };
        crate::client_agents::start(&mut sim, spec, &mut seeds)
    } else {
        Vec::new()
    };
    for c in 0..options.clients {
        let spec = ClientSpec {
            id: c as u32 + 1,
            servers: match client_agents.get(c) {
                Some(agent) => vec![agent.clone()],
                None => names.iter().cloned().zip(http_addrs.iter().copied()).collect(),
            },
            keys: keys.clone(),
            until: workload_until,
            rng: ChaCha8Rng::seed_from_u64(rand::Rng::gen::<u64>(&mut seeds)),
            history: history.clone(),
            schedule: schedule.clone(),
            bugs: options.bugs.clone(),
        };
        sim.client(nemesis::hosts::workload(c), workload.client(spec));
    }
    let client_ips: Vec<(String, std::net::IpAddr)> = (0..options.clients)
        .map(nemesis::hosts::workload)
        .map(|name| { let ip = sim.lookup(name.as_str()); (name, ip) })
        .chain(client_agents.iter().map(|(name, addr)| (name.clone(), addr.ip())))
        .collect();
    let host_names = host_names(&names.iter().cloned().zip(ips.iter().copied()).collect::<Vec<_>>(), &client_ips);
    let live_at = Rc::new(RefCell::new(None));
    let liveness_deadline = options.fault_phase + options.liveness_bound;
    // The liveness probe and the operator join the world only when needed: every host costs a
    // runtime tick per simulation step, and most of a run they would sit idle.
    let operator = Rc::new(RefCell::new(OperatorQueue::default()));
    let mut operator_started = false;
    let client_names: Vec<String> =
        (0..options.clients).map(nemesis::hosts::workload).chain(client_agents.iter().map(|(name, _)| name.clone())).collect();
    let latency = (Duration::from_millis(1), options.latency_max);
    let mut world =
        World::new(names.clone(), client_names, agents.clone(), disks, (clocks, udp_loss), options.seed, latency, (operator.clone(), rpc_addrs.clone()));
    let mut faults = Vec::new();
    let mut pending = schedule.events().iter().peekable();
    let mut healed = false;
    let mut disturbances = Disturbances::default();
    let mut host_error = None;
    let hard_stop = liveness_deadline + RUN_SLACK + workload.final_reads_bound();
    let mut panic = None;
    loop {
        let now = sim.elapsed();
        // A panic anywhere in the step (a node's task, a fault's restart, a client) fails the run
        // there; the history and trace so far are judged and reported (`crate::panics`).
        let stepped = crate::panics::catch(|| {
            while let Some((at, fault)) = pending.peek() {
                if *at > now {
                    break;
                }
                let what = world.apply(&mut sim, fault);
                faults.push((now, what.to_string()));
                trace.record(now, NEMESIS, Event::Nemesis(what));
                disturbances.after_fault(now, world.is_quiet());
                pending.next();
            }
            if !healed && now >= options.fault_phase {
                let healed_all = world.apply(&mut sim, &Fault::HealAll);
                assert_eq!(healed_all, Nemesis::HealAll, "the final heal cannot be skipped");
                for i in world.removed() {
                    world.apply(&mut sim, &Fault::AddServer(nemesis::Target::server(i)));
                }
                // Every server must serve again, including one that rejoined after disk corruption.
                // Client agents are read and polled like servers (after them).
                let servers: Vec<(String, SocketAddr)> =
                    names.iter().cloned().zip(http_addrs.iter().copied()).chain(client_agents.iter().cloned()).collect();
                let final_reads = workload.final_reads(servers, keys.clone(), history.clone());
                let probe = liveness_probe(http_addrs.clone(), now, liveness_deadline, live_at.clone(), final_reads);
                sim.client(nemesis::hosts::LIVENESS, probe);
                world.add_client(nemesis::hosts::LIVENESS);
                let mut restarted = Vec::new();
                for i in 0..n {
                    if world.is_crashed(i) {
                        world.apply(&mut sim, &Fault::Restart(nemesis::Target::server(i)));
                        restarted.push(names[i].clone());
                    }
                }
                let what = Nemesis::FinalHeal { restarted };
                faults.push((now, what.to_string()));
                trace.record(now, NEMESIS, Event::Nemesis(what));
                disturbances.after_fault(now, world.is_quiet());
                healed = true;
            }
            if !operator_started && !operator.borrow().pending.is_empty() {
                let fault_phase = options.fault_phase;
                sim.client(nemesis::hosts::OPERATOR, run_operator(operator.clone(), http_addrs.clone(), fault_phase, live_at.clone(), liveness_deadline));
                world.add_client(nemesis::hosts::OPERATOR);
                operator_started = true;
            }
            for outcome in std::mem::take(&mut operator.borrow_mut().outcomes) {
                faults.push((now, format!("operator: {outcome}")));
                trace.record(now, OPERATOR, Event::Operator(outcome));
                disturbances.after_fault(now, world.is_quiet());
            }
            sim.step()
        });
        match stepped {
            Ok(Ok(true)) => break,
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                host_error = Some(e.to_string());
                break;
            }
            Err(p) => {
                host_error = Some(format!("the simulation {p}"));
                panic = Some(p);
                break;
            }
        }
        if now > hard_stop {
            break;
        }
    }
    let sim_elapsed = sim.elapsed();
    // Dropping the world cancels every node task; a destructor that panics fails the run too.
    if let Err(p) = crate::panics::catch(|| drop(sim)) {
        if panic.is_none() {
            host_error = Some(format!("the simulation {p}"));
            panic = Some(p);
        }
    }
    let buggified = node::buggify::fired();
    node::buggify::disable();
    let history = Rc::try_unwrap(history).map(RefCell::into_inner).unwrap_or_else(|rc| rc.borrow().clone());
    let (trace_hash, trace_events) = trace.summary();
    let live_at = *live_at.borrow();
    RunResult {
        options: options.clone(),
        history,
        faults,
        trace_hash,
        trace_events,
        trace: trace.take_records(),
        live_at,
        healed_at: options.fault_phase,
        host_error,
        panic,
        sim_elapsed,
        wall: wall_start.elapsed(),
        scenario_detail: None,
        buggified,
        disturbed: disturbances.finish(),
        servers: names,
        host_names,
    }
}
