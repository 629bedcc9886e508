//! Gossip scale benchmark: how long (simulated) until a join is known to every member and a crash
//! is detected by every member, for pools far larger than the turmoil world can hold.
//!
//! Protocol level, not agent level: each member is the agent's own gossip driver
//! (`node::gossip::driver::run` over a `node::gossip::Pool`, the agent's `GossipConfig` with
//! `expected_members` = N, identities built by `node::gossip::agent_identity` with Consul's client
//! tags) on a [`SimNet`] socket: an in-memory network whose per-datagram latency (and optional
//! loss) comes from one seeded RNG, delivered on tokio's clock. Everything runs on one
//! current-thread runtime with paused time, so tokio jumps virtual time to the next timer whenever
//! every task is idle and a run replays by seed. Members join as agents do, through
//! `driver::retry_join` to one address.
//!
//! Phases of [`run`]: bootstrap (N-1 members, started over one second, announce to member 0 until every view holds
//! [`ScaleOptions::bootstrap_fraction`] of the other N-2 live, then a settle so the join's rumours are not queued behind bootstrap's), join (one new
//! member announces to one random member; when does each other member list it alive), crash (one
//! random member's driver is aborted and its address unbound; when does each survivor that knew
//! it list it failed). Views are sampled every [`SAMPLE`] of virtual time, one name lookup per member that
//! has not yet seen the event, so times are rounded up to that step.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use node::gossip::{driver, GossipConfig, MemberStatus, Pool};
use node::io::{NoTrace, UdpSocket};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often the benchmark looks at the members' views (virtual time).
pub const SAMPLE: Duration = Duration::from_millis(20);

/// One run's shape.
#[derive(Clone, Debug)]
pub struct ScaleOptions {
    /// Members after the join (N-1 bootstrap, then one joins).
    pub members: usize,
    pub seed: u64,
    /// Per-datagram one-way latency, drawn uniformly from this range (inclusive), in µs.
    pub latency_us: (u64, u64),
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Bootstrap is over once every view holds this share of the other members live (rounded
    /// up). foca has no push-pull state sync, so the last few pairs of a large pool only meet
    /// when one probes the other, about N seconds; waiting for them measures nothing the join
    /// and crash phases need.
    pub bootstrap_fraction: f64,
    /// Virtual time to wait after bootstrap converged, before the join.
    pub settle: Duration,
    /// Give up on a phase after this much virtual time.
    pub phase_limit: Duration,
    /// Stop the whole run once this much wall time has passed (the result says how far it got).
    pub wall_budget: Duration,
    /// Print bootstrap progress to stderr every 10 simulated seconds.
    pub progress: bool,
}

impl ScaleOptions {
    /// 1–5 ms latency, no loss, bootstrap to 95% of each view, 5 s settle, 300 s (simulated) per phase, 280 s wall budget.
    pub fn new(members: usize, seed: u64) -> Self {
        Self {
            members,
            seed,
            latency_us: (1_000, 5_000),
            loss: 0.0,
            bootstrap_fraction: 0.95,
            settle: Duration::from_secs(5),
            phase_limit: Duration::from_secs(300),
            wall_budget: Duration::from_secs(280),
            progress: false,
        }
    }
}

/// When each observer first saw an event, as offsets from the event (virtual time).
#[derive(Clone, Debug, Default)]
pub struct Spread {
    /// Observers that must see it.
    pub observers: usize,
    /// Sorted offsets of those that did.
    pub seen: Vec<Duration>,
}

impl Spread {
    /// Time until `fraction` of the observers saw it (the ceil(fraction × observers)-th), if they did.
    pub fn at(&self, fraction: f64) -> Option<Duration> {
        let k = ((fraction * self.observers as f64).ceil() as usize).clamp(1, self.observers.max(1));
        self.seen.get(k - 1).copied()
    }
    /// Every observer saw it.
    pub fn complete(&self) -> bool {
        self.seen.len() == self.observers
    }
}

/// Wall time spent per phase against virtual time covered.
#[derive(Clone, Debug, Default)]
pub struct PhaseCost {
    pub virtual_time: Duration,
    pub wall: Duration,
    pub datagrams: u64,
}

impl PhaseCost {
    /// Wall seconds per simulated second.
    pub fn wall_per_sim_s(&self) -> f64 {
        self.wall.as_secs_f64() / self.virtual_time.as_secs_f64().max(1e-9)
    }
}

/// One run's figures.
#[derive(Clone, Debug, Default)]
pub struct ScaleResult {
    pub members: usize,
    pub config: GossipConfig,
    /// Bootstrap converged (every view held `bootstrap_fraction` of the other N-2 live); later
    /// phases run only if so.
    pub bootstrapped: bool,
    /// When the N-1 member views were first all that complete, or how far bootstrap got (virtual time).
    pub bootstrap_time: Duration,
    /// The smallest and the mean number of live peers in the N-1 views when bootstrap ended.
    pub bootstrap_views: (usize, f64),
    /// Set if the wall budget ran out, naming the phase it ran out in.
    pub out_of_budget: Option<&'static str>,
    /// Members that list the joiner alive, from the moment it starts announcing.
    pub join: Spread,
    /// When the joiner itself knows every other member (tracked until the crash phase ends).
    pub joiner_complete: Option<Duration>,
    /// Survivors that list the crashed member suspect (first detection)…
    pub crash_suspect: Spread,
    /// …and failed.
    pub crash_failed: Spread,
    pub bootstrap_cost: PhaseCost,
    /// Join and crash phases together (the settled pool's cost).
    pub steady_cost: PhaseCost,
}

struct NetState {
    inboxes: BTreeMap<SocketAddr, mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>>,
    rng: ChaCha8Rng,
    sent: u64,
}

/// An in-memory datagram network: one inbox per bound address, each datagram delivered after a
/// latency drawn from the network's seeded RNG (or dropped with probability `loss`).
#[derive(Clone)]
pub struct SimNet {
    state: Arc<Mutex<NetState>>,
    latency_us: (u64, u64),
    loss: f64,
}

impl SimNet {
    /// A network whose latencies and losses are drawn from `seed`.
    pub fn new(seed: u64, latency_us: (u64, u64), loss: f64) -> Self {
        let state = NetState { inboxes: BTreeMap::new(), rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6e65_7477_6f72_6b21), sent: 0 };
        Self { state: Arc::new(Mutex::new(state)), latency_us, loss }
    }

    /// A socket bound at `addr` (replaces any earlier binding there).
    pub fn bind(&self, addr: SocketAddr) -> Box<dyn UdpSocket> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().inboxes.insert(addr, tx);
        Box::new(SimSocket { addr, net: self.clone(), rx: tokio::sync::Mutex::new(rx) })
    }

    /// Unbinds `addr`: datagrams to it vanish from now on (a crashed host).
    pub fn unbind(&self, addr: SocketAddr) {
        self.lock().inboxes.remove(&addr);
    }

    /// Datagrams sent so far.
    pub fn sent(&self) -> u64 {
        self.lock().sent
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct SimSocket {
    addr: SocketAddr,
    net: SimNet,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<(Vec<u8>, SocketAddr)>>,
}

#[async_trait]
impl UdpSocket for SimSocket {
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> std::io::Result<usize> {
        let (inbox, delay) = {
            let mut s = self.net.lock();
            s.sent += 1;
            let lost = self.net.loss > 0.0 && s.rng.gen_bool(self.net.loss);
            let delay = Duration::from_micros(s.rng.gen_range(self.net.latency_us.0..=self.net.latency_us.1));
            match s.inboxes.get(&target) {
                Some(tx) if !lost => (tx.clone(), delay),
                _ => return Ok(buf.len()),
            }
        };
        let (data, from) = (buf.to_vec(), self.addr);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = inbox.send((data, from));
        });
        Ok(buf.len())
    }

    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        let mut rx = self.rx.lock().await;
        match rx.recv().await {
            Some((data, from)) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                Ok((n, from))
            }
            // Unbound and drained: this host is gone; its driver is being aborted.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

struct Member {
    name: String,
    addr: SocketAddr,
    pool: Arc<Pool>,
    driver: tokio::task::JoinHandle<()>,
    joiner: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.driver.abort();
        if let Some(j) = &self.joiner {
            j.abort();
        }
    }
}

/// Member `i`'s LAN gossip address: 10.0.0.0/8 counted up from 10.0.0.1, port 8301.
fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::from(0x0a00_0001u32 + i as u32).into(), 8301)
}

/// Starts member `i` as a client agent would: its identity from `agent_identity` (Consul's client
/// tags, a seeded node ID), the driver on a fresh socket after a seeded delay of up to `stagger`
/// (agents do not start in the same millisecond, so their probe and gossip timers do not tick in
/// lockstep), and retry-join to `join` if given.
fn start(i: usize, net: &SimNet, config: &GossipConfig, seed: u64, join: Option<SocketAddr>, stagger: Duration) -> Member {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let uuid: String = format!("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", rng.gen::<u32>(), rng.gen::<u16>(), rng.gen::<u16>(), rng.gen::<u16>(), rng.gen::<u64>() >> 16);
    let mut agent = node::config::AgentConfig::dev();
    agent.node_name = format!("node-{i:05}");
    agent.server = false;
    agent.dev = false;
    agent.bind_addr = addr_of(i).ip();
    agent.gossip = config.clone();
    let id = node::gossip::agent_identity(&agent, &uuid, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let pool = Arc::new(Pool::new(&id));
    let addr = id.addr;
    let delay = Duration::from_micros(rng.gen_range(0..=stagger.as_micros() as u64));
    let run = driver::run(pool.clone(), net.bind(addr), config.clone(), rng.gen(), Arc::new(NoTrace));
    let driver = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        run.await
    });
    let interval = Duration::from_millis(config.retry_join_interval_ms);
    let joiner = join.map(|to| tokio::spawn(driver::retry_join(pool.clone(), vec![to], interval, |a| async move { vec![a] })));
    Member { name: id.name, addr, pool, driver, joiner }
}

/// Samples every [`SAMPLE`] until each observer's `seen` holds (or `limit` passes); returns when
/// each first did, counted from `t0`.
async fn spread(observers: &[&Member], t0: Instant, limit: Duration, wall_end: std::time::Instant, seen: impl Fn(&Member) -> bool) -> Spread {
    let mut waiting: Vec<&Member> = observers.to_vec();
    let mut out = Spread { observers: observers.len(), seen: Vec::new() };
    loop {
        let now = Instant::now();
        waiting.retain(|m| {
            let yes = seen(m);
            if yes {
                out.seen.push(now - t0);
            }
            !yes
        });
        if waiting.is_empty() || now - t0 >= limit || std::time::Instant::now() >= wall_end {
            return out;
        }
        tokio::time::sleep(SAMPLE).await;
    }
}

/// Runs bootstrap, join and crash for `opts.members` members; see the module header. Must run on
/// a current-thread runtime with paused time ([`run_blocking`] builds one).
pub async fn run(opts: &ScaleOptions) -> ScaleResult {
    let n = opts.members.max(3);
    let config = GossipConfig { expected_members: n as u32, ..GossipConfig::default() };
    let net = SimNet::new(opts.seed, opts.latency_us, opts.loss);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x7363_616c_6521);
    let mut result = ScaleResult { members: n, config: config.clone(), ..Default::default() };

    // Bootstrap: N-1 members, each announcing to member 0 until it sees someone.
    let (wall0, virt0) = (std::time::Instant::now(), Instant::now());
    let wall_end = wall0 + opts.wall_budget;
    let mut members: Vec<Member> = (0..n - 1).map(|i| start(i, &net, &config, opts.seed, (i > 0).then(|| addr_of(0)), Duration::from_secs(1))).collect();
    let mut next_report = Duration::from_secs(10);
    loop {
        let want = ((opts.bootstrap_fraction.clamp(0.0, 1.0) * (n - 2) as f64).ceil() as usize).min(n - 2);
        if members.iter().all(|m| m.pool.live_peers() >= want) {
            result.bootstrapped = true;
            break;
        }
        let elapsed = Instant::now() - virt0;
        if opts.progress && elapsed >= next_report {
            next_report += Duration::from_secs(10);
            let (min, mean) = views(&members);
            eprintln!("  N={n}: bootstrap at {:.0}s simulated, live peers per view min {min} mean {mean:.1} of {}, {:.0}s wall", elapsed.as_secs_f64(), n - 2, wall0.elapsed().as_secs_f64());
        }
        if elapsed >= opts.phase_limit {
            break;
        }
        if std::time::Instant::now() >= wall_end {
            result.out_of_budget = Some("bootstrap");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    result.bootstrap_time = Instant::now() - virt0;
    result.bootstrap_views = views(&members);
    for m in &mut members {
        if let Some(j) = m.joiner.take() {
            j.abort();
        }
    }
    if result.bootstrapped {
        tokio::time::sleep(opts.settle).await;
    }
    result.bootstrap_cost = PhaseCost { virtual_time: Instant::now() - virt0, wall: wall0.elapsed(), datagrams: net.sent() };
    if !result.bootstrapped {
        return result;
    }

    // Join: member N-1 announces to one random member.
    let (wall1, virt1, sent1) = (std::time::Instant::now(), Instant::now(), net.sent());
    let via = addr_of(rng.gen_range(0..n - 1));
    members.push(start(n - 1, &net, &config, opts.seed, Some(via), Duration::ZERO));
    let joiner = &members[n - 1];
    let others: Vec<&Member> = members[..n - 1].iter().collect();
    let name = joiner.name.clone();
    result.join = spread(&others, virt1, opts.phase_limit, wall_end, |m| m.pool.status_of(&name) == Some(MemberStatus::Alive)).await;
    if std::time::Instant::now() >= wall_end {
        result.out_of_budget = Some("join");
        result.steady_cost = PhaseCost { virtual_time: Instant::now() - virt1, wall: wall1.elapsed(), datagrams: net.sent() - sent1 };
        return result;
    }
    // The joiner learns the others meanwhile (through its announce's feed, rumours and being
    // probed): tracked until the crash phase ends, not waited for.
    let crash_done = std::cell::Cell::new(false);
    let others_names: Vec<String> = others.iter().map(|m| m.name.clone()).collect();
    let joined = async {
        loop {
            if others_names.iter().all(|o| joiner.pool.status_of(o).is_some()) {
                return Some(Instant::now() - virt1);
            }
            if crash_done.get() {
                return None;
            }
            tokio::time::sleep(SAMPLE).await;
        }
    };
    let crash = async {
        tokio::time::sleep(opts.settle).await;
        // Crash: abort one random member's driver (not the joiner's) and unbind its address.
        let victim = rng.gen_range(0..n - 1);
        let (vname, vaddr) = (members[victim].name.clone(), members[victim].addr);
        members[victim].driver.abort();
        net.unbind(vaddr);
        let virt2 = Instant::now();
        // Observers: survivors that knew the victim (with bootstrap_fraction < 1 a few may not).
        let survivors: Vec<&Member> =
            members.iter().enumerate().filter(|(i, m)| *i != victim && m.pool.status_of(&vname).is_some_and(|s| s.is_live())).map(|(_, m)| m).collect();
        let suspect = spread(&survivors, virt2, opts.phase_limit, wall_end, |m| matches!(m.pool.status_of(&vname), Some(MemberStatus::Suspect | MemberStatus::Failed)));
        let failed = spread(&survivors, virt2, opts.phase_limit, wall_end, |m| m.pool.status_of(&vname) == Some(MemberStatus::Failed));
        let out = tokio::join!(suspect, failed);
        crash_done.set(true);
        out
    };
    let (joiner_complete, (suspect, failed)) = tokio::join!(joined, crash);
    (result.joiner_complete, result.crash_suspect, result.crash_failed) = (joiner_complete, suspect, failed);
    if std::time::Instant::now() >= wall_end {
        result.out_of_budget = Some("crash");
    }
    result.steady_cost = PhaseCost { virtual_time: Instant::now() - virt1, wall: wall1.elapsed(), datagrams: net.sent() - sent1 };
    result
}

/// The smallest and the mean number of live peers over the members' views.
fn views(members: &[Member]) -> (usize, f64) {
    let counts: Vec<usize> = members.iter().map(|m| m.pool.live_peers()).collect();
    (counts.iter().copied().min().unwrap_or(0), counts.iter().sum::<usize>() as f64 / counts.len().max(1) as f64)
}

/// [`run`] on its own current-thread runtime with paused (virtual) time.
pub fn run_blocking(opts: &ScaleOptions) -> ScaleResult {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("a current-thread runtime");
    rt.block_on(run(opts))
}
