//! Operator log lines: Concord's own cluster events at INFO, naming servers by node name.
//!
//! Owns: turning openraft's metrics stream into events ([`RaftEvents::observe`], called from the
//! agent's metrics watcher) — leader elected, leadership acquired and lost, no leader (then a
//! summary every [`SUMMARY_INTERVAL`]), servers added to or removed from the Raft configuration,
//! snapshots taken or installed — and peer reachability ([`PeerReachability`], fed by the Raft
//! transport): "peer unreachable" once, a summary every [`SUMMARY_INTERVAL`] while it lasts, and
//! "peer reachable again". It never changes Raft or agent state, except learning the names of
//! servers it has only an id for (a `Hello` to their RPC address, as bootstrap does).
//!
//! Consul's equivalents: `New leader elected`, `cluster leadership acquired|lost`,
//! `Adding|Removing server`, `raft: failed to contact`, `snapshot complete up to`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::{BasicNode, RaftMetrics, ServerState};
use tokio::time::Instant;

use super::membership::server_id;
use super::Agent;
use crate::raft::{LogId, NodeId};
use crate::rpc::{RpcRequest, RpcResponse};

/// How often an ongoing condition (a peer down, no leader, bootstrap waiting) is summarised.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(30);
/// Deadline for the `Hello` that learns a server's name.
const NAME_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// `12.3s`, `4m05s`: a duration as an operator reads it.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// The node name for a Raft id, from what this agent has learned; else the id in hex.
pub fn name_of(agent: &Agent, id: NodeId) -> String {
    let peers = agent.peers.lock().unwrap_or_else(|e| e.into_inner());
    peers.get(&id).map(|p| p.name.clone()).unwrap_or_else(|| server_id(id))
}

fn names(agent: &Agent, ids: &BTreeSet<NodeId>) -> String {
    ids.iter().map(|id| name_of(agent, *id)).collect::<Vec<_>>().join(", ")
}

/// Copies the names this agent knows into the reachability tracker.
fn sync_names(agent: &Agent) {
    let peers = agent.peers.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for p in peers.values() {
        agent.telemetry.peers.set_name(p.node_id, &p.name);
    }
}

/// What the watcher saw last.
#[derive(Default)]
pub struct RaftEvents {
    seen: bool,
    state: Option<ServerState>,
    leader: Option<NodeId>,
    voters: BTreeSet<NodeId>,
    snapshot: Option<LogId>,
    applied: u64,
    /// Since when no leader is known, with the term then, and when it was last summarised.
    leaderless: Option<(Instant, u64, Instant)>,
    /// Ids whose name lookup is under way or done.
    looked_up: BTreeSet<NodeId>,
}

impl RaftEvents {
    /// Compares `m` with the previous metrics and logs what changed. Cheap; never blocks.
    pub fn observe(&mut self, agent: &Arc<Agent>, m: &RaftMetrics<NodeId, BasicNode>) {
        self.learn_names(agent, m);
        sync_names(agent);
        let me = agent.id;
        let term = m.current_term;
        let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        agent.telemetry.metrics.observe_raft(m);
        if !self.seen {
            self.first(agent, m, voters);
            return;
        }

        if self.voters != voters && !voters.is_empty() {
            let added: BTreeSet<NodeId> = voters.difference(&self.voters).copied().collect();
            let removed: BTreeSet<NodeId> = self.voters.difference(&voters).copied().collect();
            if self.voters.is_empty() {
                tracing::info!(voters = %names(agent, &voters), "raft configuration initialised");
            } else {
                if !added.is_empty() {
                    tracing::info!(servers = %names(agent, &added), voters = voters.len(), "server added to the raft configuration");
                }
                if !removed.is_empty() {
                    tracing::info!(servers = %names(agent, &removed), voters = voters.len(), "server removed from the raft configuration");
                }
            }
        }

        if self.state == Some(ServerState::Leader) && m.state != ServerState::Leader {
            tracing::info!(term, "cluster leadership lost");
        }
        if m.current_leader != self.leader {
            match m.current_leader {
                Some(l) if l == me && m.state == ServerState::Leader => {
                    tracing::info!(term, voters = voters.len(), "cluster leadership acquired");
                    agent.telemetry.metrics.leader_changed();
                    self.leaderless = None;
                }
                Some(l) => {
                    tracing::info!(leader = %name_of(agent, l), term, "new leader elected");
                    agent.telemetry.metrics.leader_changed();
                    self.leaderless = None;
                }
                None if !voters.is_empty() => {
                    let was = self.leader.map(|l| name_of(agent, l)).unwrap_or_else(|| "none".into());
                    tracing::info!(previous = %was, term, "no cluster leader: election under way");
                    let now = Instant::now();
                    self.leaderless = Some((now, term, now));
                }
                None => {}
            }
        }
        if m.current_leader.is_none() {
            if let Some((since, since_term, last)) = self.leaderless {
                if last.elapsed() >= SUMMARY_INTERVAL {
                    let elections = term.saturating_sub(since_term);
                    tracing::info!(leaderless_for = %human(since.elapsed()), elections, term, voters = voters.len(),
                        "still no cluster leader (a majority of servers must be reachable)");
                    self.leaderless = Some((since, since_term, Instant::now()));
                }
            }
        }

        if m.snapshot != self.snapshot {
            if let Some(snap) = m.snapshot {
                // A server cannot build a snapshot past what it has applied: one beyond it came
                // from the leader.
                if snap.index > self.applied {
                    tracing::info!(index = snap.index, leader = %m.current_leader.map(|l| name_of(agent, l)).unwrap_or_default(),
                        "snapshot installed from the leader");
                } else {
                    tracing::info!(index = snap.index, "snapshot taken");
                }
            }
        }

        self.seen = true;
        self.state = Some(m.state);
        self.leader = m.current_leader;
        self.voters = voters;
        self.snapshot = m.snapshot;
        self.applied = m.last_applied.map(|l| l.index).unwrap_or(0);
    }

    /// The first metrics after start: what was restored from disk. openraft 0.9 restores a
    /// server that was leader *as leader* of its old term until it hears a higher term; that is
    /// not an election, so it is reported as restored state and not as leadership.
    fn first(&mut self, agent: &Arc<Agent>, m: &RaftMetrics<NodeId, BasicNode>, voters: BTreeSet<NodeId>) {
        if !voters.is_empty() {
            tracing::info!(term = m.current_term, last_index = m.last_log_index.unwrap_or(0),
                snapshot_index = m.snapshot.map(|s| s.index).unwrap_or(0), voters = %names(agent, &voters),
                "raft state restored from disk; waiting for a leader");
        }
        self.seen = true;
        self.state = Some(ServerState::Follower);
        self.leader = None;
        self.voters = voters;
        self.snapshot = m.snapshot;
        self.applied = m.last_applied.map(|l| l.index).unwrap_or(0);
    }

    /// Starts a `Hello` to every member whose name this agent does not know yet (after a restart
    /// it knows only itself), so that logs and the API can name it.
    fn learn_names(&mut self, agent: &Arc<Agent>, m: &RaftMetrics<NodeId, BasicNode>) {
        let unknown: Vec<(NodeId, String)> = {
            let peers = agent.peers.lock().unwrap_or_else(|e| e.into_inner());
            m.membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| !peers.contains_key(id) && !self.looked_up.contains(id))
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect()
        };
        for (id, addr) in unknown {
            self.looked_up.insert(id);
            let Ok(addr) = addr.parse() else { continue };
            let agent = agent.clone();
            tokio::spawn(async move {
                if let Ok(RpcResponse::Hello { me, known, .. }) =
                    agent.rpc.call(addr, &RpcRequest::Hello(agent.me()), NAME_LOOKUP_TIMEOUT).await
                {
                    let mut peers = agent.peers.lock().unwrap_or_else(|e| e.into_inner());
                    for p in known.into_iter().chain(std::iter::once(me)) {
                        if p.datacenter == agent.config.datacenter {
                            peers.entry(p.node_id).or_insert(p);
                        }
                    }
                    drop(peers);
                    sync_names(&agent);
                }
            });
        }
    }
}

/// One peer's reachability as the Raft transport sees it.
struct Down {
    since: Instant,
    failures: u64,
    last_report: Instant,
}

/// Peer reachability, fed by every Raft RPC outcome ([`PeerReachability::record`]).
#[derive(Default)]
pub struct PeerReachability {
    names: Mutex<BTreeMap<NodeId, String>>,
    down: Mutex<BTreeMap<NodeId, Down>>,
    bootstrap: Mutex<Option<(usize, Instant)>>,
}

impl PeerReachability {
    /// Tells the tracker a server's name (the transport knows only ids and addresses).
    pub fn set_name(&self, id: NodeId, name: &str) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if names.get(&id).map(String::as_str) != Some(name) {
            names.insert(id, name.to_string());
        }
    }

    fn name(&self, id: NodeId, addr: &str) -> String {
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names.get(&id).cloned().unwrap_or_else(|| addr.to_string())
    }

    /// Records one Raft RPC to `target` at `addr`: `Err(why)` if it did not get an answer.
    pub fn record(&self, target: NodeId, addr: &str, outcome: Result<(), String>) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match (outcome, down.get_mut(&target)) {
            (Ok(()), None) => {}
            (Ok(()), Some(d)) => {
                tracing::info!(peer = %self.name(target, addr), after = %human(d.since.elapsed()), failed_rpcs = d.failures,
                    "peer reachable again");
                down.remove(&target);
            }
            (Err(why), None) => {
                tracing::info!(peer = %self.name(target, addr), %addr, error = %why, "peer unreachable");
                let now = Instant::now();
                down.insert(target, Down { since: now, failures: 1, last_report: now });
            }
            (Err(_), Some(d)) => {
                d.failures += 1;
                if d.last_report.elapsed() >= SUMMARY_INTERVAL {
                    tracing::info!(peer = %self.name(target, addr), down_for = %human(d.since.elapsed()), failed_rpcs = d.failures,
                        "peer still unreachable");
                    d.last_report = Instant::now();
                }
            }
        }
    }

    /// Names of the peers currently unreachable from here.
    pub fn unreachable(&self) -> Vec<NodeId> {
        self.down.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect()
    }

    /// Bootstrap progress: logs "waiting for N of M servers" when the count changes, and a
    /// summary every [`SUMMARY_INTERVAL`] while it does not.
    pub fn bootstrap_waiting(&self, agent: &Agent, known: usize) {
        let expect = agent.config.bootstrap_expect;
        let mut last = self.bootstrap.lock().unwrap_or_else(|e| e.into_inner());
        let due = match *last {
            Some((n, at)) => n != known || at.elapsed() >= SUMMARY_INTERVAL,
            None => true,
        };
        if due {
            let servers: Vec<String> =
                agent.peers.lock().unwrap_or_else(|e| e.into_inner()).values().map(|p| p.name.clone()).collect();
            tracing::info!(known = %servers.join(", "), "bootstrap: waiting for {} more of {expect} servers", expect.saturating_sub(known));
            *last = Some((known, Instant::now()));
        }
    }
}
