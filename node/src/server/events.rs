//! Operator log lines: Concord's own cluster events at INFO, naming servers by node name.
//!
//! Owns: turning openraft's metrics stream into events ([`RaftEvents::observe`], called from the
//! server's metrics watcher, [`super::leader::watch_raft_metrics`]) — raft state restored,
//! leader elected, leadership acquired and lost, no leader (then a summary every
//! [`SUMMARY_INTERVAL`]), servers added to or removed from the Raft configuration, snapshots
//! taken (installs are logged by the state machine) — and peer reachability
//! ([`PeerReachability`], fed by the Raft transport): "peer unreachable" once, a summary every
//! [`SUMMARY_INTERVAL`] while it lasts, and "peer reachable again". It never changes Raft or
//! server state, except learning the names of servers it has only an id for (a `Server.Hello`
//! to their RPC address, as bootstrap does).
//!
//! Consul's equivalents: `New leader elected`, `cluster leadership acquired|lost`,
//! `Adding|Removing server`, `raft: failed to contact`, `snapshot complete up to`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::{BasicNode, RaftMetrics, ServerState};
use tokio::time::Instant;

use super::bootstrap::HelloResponse;
use super::endpoints::SERVER_HELLO;
use super::membership::server_id;
use super::Server;
use crate::raft::{LogId, NodeId};

/// How often an ongoing condition (a peer down, no leader, bootstrap waiting) is summarised.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(30);
/// Deadline for the `Hello` that learns a server's name.
const NAME_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// `12.3s`, `4m05s`: a duration as an operator reads it.
pub(super) fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// The node name for a Raft id, from what this server has learned; else the id in hex.
pub fn name_of(server: &Server, id: NodeId) -> String {
    let peers = server.peers.lock().unwrap_or_else(|e| e.into_inner());
    peers.get(&id).map(|p| p.name.clone()).unwrap_or_else(|| server_id(id))
}

/// Names for `ids`; a server not yet known by name is shown by its RPC address from `m`'s
/// configuration (after a restart, names are learned from peers a moment later).
fn names(server: &Server, m: &RaftMetrics<NodeId, BasicNode>, ids: &BTreeSet<NodeId>) -> String {
    let peers = server.peers.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let membership = m.membership_config.membership();
    ids.iter()
        .map(|id| match (peers.get(id), membership.get_node(id)) {
            (Some(p), _) => p.name.clone(),
            (None, Some(node)) => node.addr.clone(),
            (None, None) => server_id(*id),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Copies the names this server knows into the reachability tracker.
fn sync_names(server: &Server) {
    let peers = server.peers.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for p in peers.values() {
        server.telemetry.peers.set_name(p.node_id, &p.name);
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
    /// The term restored from disk: openraft may restore a former leader *as leader* of it,
    /// which is not an election and is not reported as one.
    restored_term: u64,
}

impl RaftEvents {
    /// Compares `m` with the previous metrics and logs what changed. Cheap; never blocks.
    pub fn observe(&mut self, server: &Arc<Server>, m: &RaftMetrics<NodeId, BasicNode>) {
        self.learn_names(server, m);
        sync_names(server);
        let me = server.id;
        let term = m.current_term;
        let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        server.telemetry.metrics.observe_raft(m);
        if !self.seen {
            self.first(server, m, voters);
            return;
        }

        if self.voters != voters && !voters.is_empty() {
            let added: BTreeSet<NodeId> = voters.difference(&self.voters).copied().collect();
            let removed: BTreeSet<NodeId> = self.voters.difference(&voters).copied().collect();
            if self.voters.is_empty() {
                tracing::info!(voters = %names(server, m, &voters), "raft configuration initialised");
            } else {
                if !added.is_empty() {
                    tracing::info!(servers = %names(server, m, &added), voters = voters.len(), "server added to the raft configuration");
                }
                if !removed.is_empty() {
                    tracing::info!(servers = %names(server, m, &removed), voters = voters.len(), "server removed from the raft configuration");
                }
            }
        }

        if self.state == Some(ServerState::Leader) && m.state != ServerState::Leader {
            tracing::info!(term, "cluster leadership lost");
        }
        if m.current_leader != self.leader {
            match m.current_leader {
                Some(l) if l == me && m.state == ServerState::Leader && term <= self.restored_term => {
                    tracing::debug!(term, "restored as leader of the term on disk; not an election");
                }
                Some(l) if l == me && m.state == ServerState::Leader => {
                    tracing::info!(term, voters = voters.len(), "cluster leadership acquired");
                    server.telemetry.metrics.leader_changed();
                    self.leaderless = None;
                }
                Some(l) => {
                    tracing::info!(leader = %name_of(server, l), term, "new leader elected");
                    server.telemetry.metrics.leader_changed();
                    self.leaderless = None;
                }
                None if !voters.is_empty() => {
                    let was = self.leader.map(|l| name_of(server, l)).unwrap_or_else(|| "none".into());
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
            // A server cannot build a snapshot past what it has applied: one beyond it came from
            // the leader, and the state machine logs that install itself.
            if let Some(snap) = m.snapshot.filter(|snap| snap.index <= self.applied) {
                tracing::info!(index = snap.index, "snapshot taken");
            }
        }

        self.seen = true;
        let restored_leadership = m.state == ServerState::Leader && term <= self.restored_term;
        self.state = Some(if restored_leadership { ServerState::Follower } else { m.state });
        self.leader = m.current_leader;
        self.voters = voters;
        self.snapshot = m.snapshot;
        self.applied = m.last_applied.map(|l| l.index).unwrap_or(0);
    }

    /// The first metrics after start: what was restored from disk. openraft 0.9 restores a
    /// server that was leader *as leader* of its old term until it hears a higher term; that is
    /// not an election, so it is reported as restored state and not as leadership.
    fn first(&mut self, server: &Arc<Server>, m: &RaftMetrics<NodeId, BasicNode>, voters: BTreeSet<NodeId>) {
        if !voters.is_empty() {
            tracing::info!(term = m.current_term, last_index = m.last_log_index.unwrap_or(0),
                snapshot_index = m.snapshot.map(|s| s.index).unwrap_or(0), voters = %names(server, m, &voters),
                "raft state restored from disk; waiting for a leader");
        }
        self.seen = true;
        self.restored_term = m.current_term;
        self.state = Some(ServerState::Follower);
        self.leader = None;
        self.voters = voters;
        self.snapshot = m.snapshot;
        self.applied = m.last_applied.map(|l| l.index).unwrap_or(0);
    }

    /// Starts a `Hello` to every member whose name this server does not know yet (after a restart
    /// it knows only itself), so that logs and the API can name it.
    fn learn_names(&mut self, server: &Arc<Server>, m: &RaftMetrics<NodeId, BasicNode>) {
        let unknown: Vec<(NodeId, String)> = {
            let peers = server.peers.lock().unwrap_or_else(|e| e.into_inner());
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
            let server = server.clone();
            tokio::spawn(async move {
                if let Ok(HelloResponse { me, known, .. }) =
                    server.rpc.call::<_, HelloResponse>(addr, SERVER_HELLO, &server.me(), NAME_LOOKUP_TIMEOUT).await
                {
                    let mut peers = server.peers.lock().unwrap_or_else(|e| e.into_inner());
                    for p in known.into_iter().chain(std::iter::once(me)) {
                        if p.datacenter == server.config.datacenter {
                            peers.entry(p.node_id).or_insert(p);
                        }
                    }
                    drop(peers);
                    sync_names(&server);
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

    /// Bootstrap progress: logs "waiting for N more of M servers" (naming the servers the LAN pool
    /// holds, `me` first) when the count changes, and a summary every [`SUMMARY_INTERVAL`] while
    /// it does not. `others`: the other servers seen so far; `expect`: `-bootstrap-expect`.
    pub fn bootstrap_waiting(&self, me: &str, expect: usize, others: &[&str]) {
        let known = others.len() + 1;
        let mut last = self.bootstrap.lock().unwrap_or_else(|e| e.into_inner());
        let due = match *last {
            Some((n, at)) => n != known || at.elapsed() >= SUMMARY_INTERVAL,
            None => true,
        };
        if due {
            let servers: Vec<&str> = std::iter::once(me).chain(others.iter().copied()).collect();
            tracing::info!(known = %servers.join(", "), "bootstrap: waiting for {} more of {expect} servers", expect.saturating_sub(known));
            *last = Some((known, Instant::now()));
        }
    }
}
