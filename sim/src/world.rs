//! The simulator's hand on the world: applies nemesis faults to the turmoil network, the hosts,
//! their disks and clocks, and remembers what it did so heals and crashes restore exactly the
//! links the nemesis set.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use nemesis::{DiskFile, Fault, Host, Role, Target};
use node::agent::Agent;
use node::io::mem::MemDisk;
use node::io::trace::Nemesis;
use node::raft::ServerState;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::io::SimClock;
use crate::operator::OperatorQueue;

/// Files the Raft storage keeps (see `node::raft::log_store` and `state_machine`).
const RAFT_LOG_FILE: &str = "raft-log";
const SNAPSHOT_FILE: &str = "raft-snapshot";

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

/// The simulator's view of the cluster while applying faults.
pub struct World {
    names: Vec<String>,
    /// Workload and probe hosts (never partitioned by faults).
    client_names: Vec<String>,
    agents: Rc<RefCell<Vec<Option<Arc<Agent>>>>>,
    disks: Vec<Arc<MemDisk>>,
    clocks: Vec<Arc<SimClock>>,
    /// Each host's gossip-only packet loss ([`Fault::UdpLoss`]).
    udp_loss: Vec<Arc<crate::io::UdpLoss>>,
    crashed: Vec<bool>,
    /// Server pairs `(low, high)` currently cut both ways.
    cut: BTreeSet<(usize, usize)>,
    /// Directed server pairs currently cut one way.
    cut_oneway: BTreeSet<(usize, usize)>,
    /// Server pairs whose links are held (clogged), and paused servers.
    clogged: BTreeSet<(usize, usize)>,
    paused: BTreeSet<usize>,
    /// Paused workload clients, by client index.
    paused_clients: BTreeSet<usize>,
    /// Servers whose links have non-default latency or loss.
    degraded: BTreeMap<usize, &'static str>,
    /// For choosing fault details (bit-flip bits) reproducibly.
    rng: ChaCha8Rng,
    /// The run's default link latency bounds, restored by a heal.
    latency: (Duration, Duration),
    /// Servers removed from the Raft voters by the nemesis.
    removed: BTreeSet<usize>,
    /// Servers whose clock runs at another rate than real time.
    drifted: BTreeSet<usize>,
    /// Membership changes for the operator host to carry out.
    operator: Rc<RefCell<OperatorQueue>>,
    /// Server RPC addresses, for membership changes.
    rpc_addrs: Vec<String>,
}

impl World {
    /// A world with every server up and every link healthy.
    pub fn new(
        names: Vec<String>,
        client_names: Vec<String>,
        agents: Rc<RefCell<Vec<Option<Arc<Agent>>>>>,
        disks: Vec<Arc<MemDisk>>,
        (clocks, udp_loss): (Vec<Arc<SimClock>>, Vec<Arc<crate::io::UdpLoss>>),
        seed: u64,
        latency: (Duration, Duration),
        operator: (Rc<RefCell<OperatorQueue>>, Vec<String>),
    ) -> Self {
        let n = names.len();
        Self {
            names,
            client_names,
            agents,
            disks,
            clocks,
            udp_loss,
            crashed: vec![false; n],
            cut: BTreeSet::new(),
            cut_oneway: BTreeSet::new(),
            clogged: BTreeSet::new(),
            paused: BTreeSet::new(),
            paused_clients: BTreeSet::new(),
            degraded: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x776f_726c_6421),
            latency,
            removed: BTreeSet::new(),
            drifted: BTreeSet::new(),
            operator: operator.0,
            rpc_addrs: operator.1,
        }
    }

    /// Registers a host that joined the world late (it is never partitioned by faults, but a
    /// crash must cut it off too).
    pub fn add_client(&mut self, name: &str) {
        self.client_names.push(name.to_string());
    }

    /// Servers currently removed from the voters.
    pub fn removed(&self) -> Vec<usize> {
        self.removed.iter().copied().collect()
    }

    /// The 0-based index of server `name`, if it is one of this world's servers.
    pub fn server_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Resolves a fault's target to a server index: a named server, the current leader, or a
    /// random server (from the world's seeded RNG). `Err` says why nothing was hit.
    fn resolve(&mut self, target: &Target) -> Result<usize, String> {
        match target {
            Target::Host(name) => self.server_index(name).ok_or_else(|| format!("{name} is not a server of this world")),
            Target::Leader => self.current_leader().ok_or_else(|| "no leader now".to_string()),
            Target::Any(Role::Server) => Ok(self.rng.gen_range(0..self.names.len())),
            Target::Any(role) => Err(format!("no {role:?} hosts can take this fault")),
        }
    }

    fn indexes(&self, hosts: &[Host]) -> Result<Vec<usize>, String> {
        hosts.iter().map(|h| self.server_index(h).ok_or_else(|| format!("{h} is not a server of this world"))).collect()
    }

    /// Whether no fault the nemesis set is in force: every server up and a voter, every link
    /// healthy, every clock at real rate. (Instantaneous faults — a leadership transfer, a bit
    /// flip, an armed read error — leave it quiet; the caller counts them as disturbances.)
    pub fn is_quiet(&self) -> bool {
        !self.crashed.iter().any(|&c| c)
            && self.cut.is_empty()
            && self.cut_oneway.is_empty()
            && self.clogged.is_empty()
            && self.paused.is_empty()
            && self.paused_clients.is_empty()
            && self.degraded.is_empty()
            && self.removed.is_empty()
            && self.drifted.is_empty()
    }

    /// Whether server `i` is down.
    pub fn is_crashed(&self, i: usize) -> bool {
        self.crashed[i]
    }

    /// The current leader among live servers: the one in state Leader with the highest term.
    pub fn current_leader(&self) -> Option<usize> {
        let agents = self.agents.borrow();
        let mut best: Option<(u64, usize)> = None;
        for (i, a) in agents.iter().enumerate() {
            let Some(a) = a else { continue };
            let m = a.server.raft.metrics();
            let m = m.borrow();
            if m.state == ServerState::Leader && best.is_none_or(|(t, _)| m.current_term > t) {
                best = Some((m.current_term, i));
            }
        }
        best.map(|(_, i)| i)
    }

    fn name(&self, i: usize) -> &str {
        self.names[i].as_str()
    }

    fn cut_pairs(&mut self, sim: &mut turmoil::Sim<'_>, pairs: &[(usize, usize)]) {
        for (x, y) in pairs {
            if x != y {
                sim.partition(self.name(*x), self.name(*y));
                self.cut.insert(pair(*x, *y));
            }
        }
    }

    /// Kills server `i`. Its connections are dropped in an order that depends on tokio's global
    /// task ids (not on the seed), and each drop sends a FIN or RST; so the host is first cut off
    /// from everyone, making those last words vanish (as they would from a machine that lost
    /// power), and the links are then restored to what the nemesis had set.
    fn crash(&mut self, sim: &mut turmoil::Sim<'_>, i: usize) {
        let victim = self.names[i].clone();
        let others: Vec<String> = self.names.iter().chain(&self.client_names).filter(|h| **h != victim).cloned().collect();
        for h in &others {
            sim.partition(victim.as_str(), h.as_str());
        }
        sim.crash(victim.as_str());
        for (j, h) in self.names.iter().enumerate() {
            if j != i && !self.cut.contains(&pair(i, j)) {
                sim.repair(victim.as_str(), h.as_str());
            }
        }
        for h in &self.client_names {
            sim.repair(victim.as_str(), h.as_str());
        }
        self.paused.remove(&i);
        self.disks[i].crash();
        self.agents.borrow_mut()[i] = None;
        self.crashed[i] = true;
    }

    /// Holds (or, with `hold` false, releases) every link between client `c` and the servers.
    fn hold_client(&self, sim: &mut turmoil::Sim<'_>, c: usize, hold: bool) {
        let client = nemesis::hosts::workload(c);
        for server in &self.names {
            if hold {
                sim.hold(client.as_str(), server.as_str());
            } else {
                sim.release(client.as_str(), server.as_str());
            }
        }
    }

    /// Every host a server talks to: the other servers and the clients.
    fn peers_of(&self, i: usize) -> Vec<String> {
        self.names.iter().chain(&self.client_names).filter(|h| **h != self.names[i]).cloned().collect()
    }

    /// Restores every link to healthy: cuts, one-way cuts, clogs, pauses, latency and loss.
    fn heal_all(&mut self, sim: &mut turmoil::Sim<'_>) {
        for (x, y) in std::mem::take(&mut self.cut) {
            sim.repair(self.name(x), self.name(y));
        }
        for (x, y) in std::mem::take(&mut self.cut_oneway) {
            sim.repair_oneway(self.name(x), self.name(y));
        }
        for (x, y) in std::mem::take(&mut self.clogged) {
            sim.release(self.name(x), self.name(y));
        }
        for i in std::mem::take(&mut self.paused) {
            for h in self.peers_of(i) {
                sim.release(self.name(i), h.as_str());
            }
        }
        for c in std::mem::take(&mut self.paused_clients) {
            self.hold_client(sim, c, false);
        }
        for loss in &self.udp_loss {
            loss.set(0);
        }
        for i in std::mem::take(&mut self.degraded).into_keys() {
            for h in self.peers_of(i) {
                sim.set_link_fail_rate(self.name(i), h.as_str(), 0.0);
                sim.set_link_latency(self.name(i), h.as_str(), self.latency.0);
                sim.set_link_max_message_latency(self.name(i), h.as_str(), self.latency.1);
            }
        }
    }

    /// Applies one fault; returns what it did, for the trace and the fault log (hosts by name; a
    /// target resolved now is shown as the host it hit).
    pub fn apply(&mut self, sim: &mut turmoil::Sim<'_>, fault: &Fault) -> Nemesis {
        match self.apply_resolved(sim, fault) {
            Ok(what) => what,
            Err(why) => Nemesis::Skipped { fault: fault.to_string(), why },
        }
    }

    fn apply_resolved(&mut self, sim: &mut turmoil::Sim<'_>, fault: &Fault) -> Result<Nemesis, String> {
        let n = self.names.len();
        // What a resolved target hit: `crash s2` rather than `crash the leader`.
        let hit = |name: &str| -> Nemesis {
            let node = name.to_string();
            match fault {
                Fault::Isolate(t) => Nemesis::Isolate { node, leader: *t == Target::Leader },
                Fault::Crash(_) => Nemesis::Crash { node, torn: false },
                Fault::CrashTorn(_) => Nemesis::Crash { node, torn: true },
                Fault::Restart(_) => Nemesis::Restart { node },
                _ => Nemesis::Other(shown_as_hit(fault, name)),
            }
        };
        match fault {
            Fault::Partition { a: side_a, b: side_b } => {
                let (a, b) = (self.indexes(side_a)?, self.indexes(side_b)?);
                let pairs: Vec<(usize, usize)> = a.iter().flat_map(|x| b.iter().map(move |y| (*x, *y))).collect();
                self.cut_pairs(sim, &pairs);
                return Ok(Nemesis::Partition { sides: vec![side_a.clone(), side_b.clone()] });
            }
            Fault::Cut { pairs, .. } => {
                let pairs = pairs
                    .iter()
                    .map(|(x, y)| Ok((self.indexes(std::slice::from_ref(x))?[0], self.indexes(std::slice::from_ref(y))?[0])))
                    .collect::<Result<Vec<_>, String>>()?;
                self.cut_pairs(sim, &pairs);
            }
            Fault::PartitionOneWay { from, to } => {
                let (from, to) = (self.indexes(from)?, self.indexes(to)?);
                for x in &from {
                    for y in &to {
                        sim.partition_oneway(self.name(*x), self.name(*y));
                        self.cut_oneway.insert((*x, *y));
                    }
                }
            }
            Fault::Isolate(t) => {
                let l = self.resolve(t)?;
                let pairs: Vec<(usize, usize)> = (0..n).filter(|i| *i != l).map(|i| (l, i)).collect();
                self.cut_pairs(sim, &pairs);
                return Ok(hit(&self.names[l]));
            }
            Fault::HealAll => {
                self.heal_all(sim);
                return Ok(Nemesis::HealAll);
            }
            Fault::Crash(t) | Fault::CrashTorn(t) => {
                let i = self.resolve(t)?;
                if self.crashed[i] {
                    return Err(format!("{} already down", self.names[i]));
                }
                if matches!(fault, Fault::CrashTorn(_)) {
                    self.disks[i].tear_on_crash();
                }
                self.crash(sim, i);
                return Ok(hit(&self.names[i]));
            }
            Fault::Restart(t) => {
                let i = self.resolve(t)?;
                if !self.crashed[i] {
                    return Err(format!("{} not down", self.names[i]));
                }
                sim.bounce(self.name(i));
                self.crashed[i] = false;
                return Ok(hit(&self.names[i]));
            }
            Fault::Pause(t) => {
                let i = self.resolve(t)?;
                if self.crashed[i] || !self.paused.insert(i) {
                    return Err(format!("{} down or already paused", self.names[i]));
                }
                for h in self.peers_of(i) {
                    sim.hold(self.name(i), h.as_str());
                }
                return Ok(hit(&self.names[i]));
            }
            Fault::Resume(t) => {
                let i = self.resolve(t)?;
                if !self.paused.remove(&i) {
                    return Err(format!("{} not paused", self.names[i]));
                }
                for h in self.peers_of(i) {
                    sim.release(self.name(i), h.as_str());
                }
                return Ok(hit(&self.names[i]));
            }
            Fault::PauseClient(c) => {
                let name = nemesis::hosts::workload(*c);
                if !self.client_names.contains(&name) || !self.paused_clients.insert(*c) {
                    return Err(format!("{name} not a client of this run, or already paused"));
                }
                self.hold_client(sim, *c, true);
            }
            Fault::ResumeClient(c) => {
                if !self.paused_clients.remove(c) {
                    return Err(format!("{} not paused", nemesis::hosts::workload(*c)));
                }
                self.hold_client(sim, *c, false);
            }
            Fault::Clog(a, b) => {
                let (a, b) = (self.indexes(std::slice::from_ref(a))?[0], self.indexes(std::slice::from_ref(b))?[0]);
                if self.clogged.insert(pair(a, b)) {
                    sim.hold(self.name(a), self.name(b));
                }
            }
            Fault::Unclog(a, b) => {
                let (a, b) = (self.indexes(std::slice::from_ref(a))?[0], self.indexes(std::slice::from_ref(b))?[0]);
                if self.clogged.remove(&pair(a, b)) {
                    sim.release(self.name(a), self.name(b));
                }
            }
            Fault::SlowNode { host, min_ms, jitter_ms } => {
                let i = self.resolve(host)?;
                self.degraded.insert(i, "slow");
                for h in self.peers_of(i) {
                    sim.set_link_latency(self.name(i), h.as_str(), Duration::from_millis(*min_ms));
                    sim.set_link_max_message_latency(self.name(i), h.as_str(), Duration::from_millis(min_ms + jitter_ms));
                }
                return Ok(hit(&self.names[i]));
            }
            Fault::LinkLatency { a, b, min_ms, jitter_ms } => {
                for x in a {
                    for y in b.iter().filter(|y| *y != x) {
                        let (Some(i), Some(j)) = (self.server_index(x), self.server_index(y)) else {
                            return Err(format!("{x} or {y} is not a server of this world"));
                        };
                        sim.set_link_latency(self.name(i), self.name(j), Duration::from_millis(*min_ms));
                        sim.set_link_max_message_latency(self.name(i), self.name(j), Duration::from_millis(min_ms + jitter_ms));
                    }
                }
                return Ok(Nemesis::Other(fault.to_string()));
            }
            Fault::LossyNode { host, per_mille } => {
                let i = self.resolve(host)?;
                self.degraded.insert(i, "lossy");
                for h in self.peers_of(i) {
                    sim.set_link_fail_rate(self.name(i), h.as_str(), f64::from(*per_mille) / 1000.0);
                }
                return Ok(hit(&self.names[i]));
            }
            Fault::UdpLoss { host, per_mille } => {
                let i = self.resolve(host)?;
                self.degraded.insert(i, "udp-lossy");
                self.udp_loss[i].set(*per_mille);
                return Ok(hit(&self.names[i]));
            }
            Fault::ClockDrift { host, rate_ppm } => {
                let i = self.resolve(host)?;
                self.clocks[i].set_rate_ppm(*rate_ppm, sim.elapsed());
                if *rate_ppm == nemesis::RATE_REAL {
                    self.drifted.remove(&i);
                } else {
                    self.drifted.insert(i);
                }
                return Ok(hit(&self.names[i]));
            }
            Fault::DiskReadError(t) => {
                let i = self.resolve(t)?;
                self.disks[i].fail_next_read();
                return Ok(hit(&self.names[i]));
            }
            Fault::RemoveServer(t) => {
                let i = self.resolve(t)?;
                if self.removed.len() + 1 >= n || !self.removed.insert(i) {
                    return Err("would leave too few voters or already removed".into());
                }
                let id = format!("{:016x}", node::raft::node_id_for(self.name(i)));
                self.operator.borrow_mut().pending.push_back((hyper::Method::DELETE, format!("/v1/operator/raft/peer?id={id}")));
                return Ok(hit(&self.names[i]));
            }
            Fault::AddServer(t) => {
                let i = self.resolve(t)?;
                if !self.removed.remove(&i) {
                    return Err(format!("{} not removed", self.names[i]));
                }
                let path = format!("/v1/operator/raft/peer?node={}&address={}", self.names[i], self.rpc_addrs[i]);
                self.operator.borrow_mut().pending.push_back((hyper::Method::PUT, path));
                return Ok(hit(&self.names[i]));
            }
            Fault::ForceLeave(t) => {
                let i = self.resolve(t)?;
                let path = format!("/v1/agent/force-leave/{}", self.names[i]);
                self.operator.borrow_mut().pending.push_back((hyper::Method::PUT, path));
                return Ok(hit(&self.names[i]));
            }
            Fault::TransferLeader(t) => {
                let i = self.resolve(t)?;
                match self.current_leader() {
                    None => return Err("no leader now".into()),
                    Some(l) if l == i => return Err(format!("{} already leads", self.names[i])),
                    Some(_) if self.removed.contains(&i) => return Err(format!("{} is not a voter", self.names[i])),
                    Some(_) => {}
                }
                let id = format!("{:016x}", node::raft::node_id_for(self.name(i)));
                let path = format!("/v1/operator/raft/transfer-leader?id={id}");
                self.operator.borrow_mut().pending.push_back((hyper::Method::POST, path));
                return Ok(hit(&self.names[i]));
            }
            Fault::BitFlip { host, file, position_per_mille } => {
                let i = self.resolve(host)?;
                let path = match file {
                    DiskFile::RaftLog => RAFT_LOG_FILE,
                    DiskFile::Snapshot => SNAPSHOT_FILE,
                };
                let len = self.disks[i].len(path);
                if len == 0 {
                    return Err("file empty".into());
                }
                let offset = len * (*position_per_mille as usize) / 1000;
                let bit = self.rng.gen_range(0..8u8);
                self.disks[i].flip_bit(path, offset.min(len - 1), bit);
                return Ok(Nemesis::Other(format!("{} (byte {offset} of {len}, bit {bit})", hit(&self.names[i]))));
            }
        }
        Ok(Nemesis::Other(fault.to_string()))
    }
}

/// `fault` as shown, with the target it named replaced by the host it hit (`pause s2` rather than
/// `pause the leader`).
fn shown_as_hit(fault: &Fault, name: &str) -> String {
    let shown = fault.to_string();
    let target = match fault {
        Fault::Crash(t) | Fault::CrashTorn(t) | Fault::Restart(t) | Fault::Pause(t) | Fault::Resume(t)
        | Fault::DiskReadError(t) | Fault::RemoveServer(t) | Fault::AddServer(t) | Fault::ForceLeave(t) | Fault::TransferLeader(t)
        | Fault::SlowNode { host: t, .. } | Fault::LossyNode { host: t, .. }
        | Fault::ClockDrift { host: t, .. } | Fault::BitFlip { host: t, .. } => t.to_string(),
        _ => return shown,
    };
    shown.replacen(&target, name, 1)
}
