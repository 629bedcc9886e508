//! Background duties driven by Raft's state: tracking leadership and quorum contact, breaking
//! election lockstep, and (on the leader) reaping old KV tombstones.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use rand::Rng;

use super::Server;
use crate::io::trace::{Event, RaftRole};
use crate::structs::{Command, TombstoneReapRequest};

/// How often the leader samples its applied index for tombstone reaping, as a fraction of the
/// TTL (Consul's `tombstone_ttl_granularity` is 30 s for a 15 min TTL: 1/30).
const REAP_SAMPLES_PER_TTL: u32 = 30;

/// Follows openraft's metrics: keeps the leader's quorum-contact times, and emits a trace event
/// whenever this server's term, role or known leader changes.
pub async fn watch_raft_metrics(server: Arc<Server>) {
    let mut rx = server.raft.metrics();
    let mut last = None;
    let mut events = super::events::RaftEvents::default();
    let mut snapshot_seen = None;
    loop {
        let (now, acked_ms, snapshot) = {
            let m = rx.borrow_and_update();
            events.observe(&server, &m);
            ((m.current_term, m.state, m.current_leader), m.millis_since_quorum_ack, m.snapshot.map(|l| l.index))
        };
        let leading = now.1 == ServerState::Leader;
        server.lease.observe(if leading { acked_ms } else { None });
        {
            let mut since = server.leader_since.lock().unwrap_or_else(|e| e.into_inner());
            let new_term = last.is_none_or(|(t, s, _)| t != now.0 || s != ServerState::Leader);
            *since = match (leading, new_term) {
                (true, true) => Some(tokio::time::Instant::now()),
                (true, false) => *since,
                (false, _) => None,
            };
        }
        if last != Some(now) {
            server.io.trace.event(&server.config.node_name, Event::RaftState { term: now.0, role: role(now.1), leader: now.2 });
            last = Some(now);
        }
        // A size-triggered snapshot the state machine asked for (`raft::state_machine::SNAPSHOT_LOG_BYTES`).
        if server.state.take_snapshot_request() && server.raft.trigger().snapshot().await.is_err() {
            return;
        }
        // A new snapshot: keep at most TRAILING_LOG_BYTES of command behind it.
        if snapshot != snapshot_seen {
            snapshot_seen = snapshot;
            let target = snapshot.and_then(|i| server.log.trailing_purge_target(i, crate::raft::state_machine::TRAILING_LOG_BYTES));
            if let Some(upto) = target {
                if server.raft.trigger().purge_log(upto).await.is_err() {
                    return;
                }
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Announces the quorum-loss step-down. A leader that has heard from no quorum within an election
/// timeout reports no leader and refuses writes and lease reads ([`Server::leader`]); openraft 0.9
/// keeps it leader internally, so nothing in the metrics stream marks the moment. This samples
/// quorum contact every heartbeat while openraft holds this server as leader, and logs the
/// step-down once and the recovery once (Consul: "failed to contact quorum of nodes, stepping
/// down"). Only a leader that *had* contact in its term can lose it: a server restored as leader
/// of its old term, or one whose election the metrics watcher has not recorded yet, says nothing.
pub async fn watch_quorum_contact(server: Arc<Server>) {
    let every = Duration::from_millis(server.config.raft.heartbeat_ms.max(10));
    // (term, contact held at some point in it, when it was lost).
    let mut state: Option<(u64, bool, Option<tokio::time::Instant>)> = None;
    let mut rx = server.raft.metrics();
    loop {
        if !server.is_raft_leader() {
            state = None;
            if rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        let term = rx.borrow().current_term;
        if state.is_some_and(|(t, _, _)| t != term) {
            state = None;
        }
        let (_, had_contact, lost_at) = state.get_or_insert((term, false, None));
        match (server.has_quorum_contact(), *lost_at) {
            (true, None) => *had_contact = true,
            (false, None) if *had_contact => {
                tracing::info!(term, "leader lost contact with a quorum: stepping down (no leader reported, writes and lease reads refused)");
                *lost_at = Some(tokio::time::Instant::now());
            }
            (true, Some(at)) => {
                tracing::info!(term, after = %super::events::human(at.elapsed()), "leader regained contact with a quorum: serving again");
                *lost_at = None;
            }
            _ => {}
        }
        tokio::time::sleep(every).await;
    }
}

/// The trace's name for an openraft role.
fn role(state: ServerState) -> RaftRole {
    match state {
        ServerState::Learner => RaftRole::Learner,
        ServerState::Follower => RaftRole::Follower,
        ServerState::Candidate => RaftRole::Candidate,
        ServerState::Leader => RaftRole::Leader,
        ServerState::Shutdown => RaftRole::Shutdown,
    }
}

/// Breaks election lockstep. openraft 0.9 draws each server's election timeout once, at start,
/// and checks it on a fixed tick; two servers whose timers were reset by the same heartbeat and
/// whose timeouts round to the same tick then campaign in the same instant every round and split
/// the vote forever (found by the simulator: membership-change seed 7, after the leader removed
/// itself). After two failed elections in a row, this server sits out elections for a random
/// time up to one maximum election timeout, as Raft's randomised timeouts intend.
pub async fn election_backoff(server: Arc<Server>) {
    let mut rx = server.raft.metrics();
    let mut failed_in_a_row = 0u32;
    let mut last_candidate_term = None;
    loop {
        let (state, term) = {
            let m = rx.borrow_and_update();
            (m.state, m.current_term)
        };
        match state {
            ServerState::Candidate if last_candidate_term.is_some_and(|t| t < term) => {
                failed_in_a_row += 1;
                last_candidate_term = Some(term);
            }
            ServerState::Candidate => last_candidate_term = Some(term),
            _ => {
                failed_in_a_row = 0;
                last_candidate_term = None;
            }
        }
        if failed_in_a_row >= 2 {
            let max_ms = server.config.raft.election_timeout_max_ms;
            let pause = Duration::from_millis(server.rng().gen_range(0..=max_ms));
            server.raft.runtime_config().elect(false);
            tokio::time::sleep(pause).await;
            server.raft.runtime_config().elect(true);
            failed_in_a_row = 0;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Consul's tombstone GC, on the leader: samples the applied index every TTL/30, and once a
/// sample is a TTL old, commits a `TombstoneRequest` reaping every tombstone at or below it, so
/// all servers forget the same tombstones at the same log index. Samples are dropped when
/// leadership is lost (the next leader starts afresh, reaping later, never earlier). Bounded:
/// at most [`REAP_SAMPLES_PER_TTL`] + 1 samples.
pub async fn reap_tombstones(server: Arc<Server>) {
    let ttl = Duration::from_millis(server.config.raft.tombstone_ttl_ms.max(1));
    let every = ttl / REAP_SAMPLES_PER_TTL;
    let mut samples: VecDeque<(tokio::time::Instant, u64)> = VecDeque::new();
    loop {
        tokio::time::sleep(every).await;
        if !server.is_leader() {
            samples.clear();
            continue;
        }
        let Ok((applied, reapable)) = server.state.read().map(|a| {
            let applied = a.last_applied.map(|l| l.index).unwrap_or(0);
            let oldest = samples.front().map(|(_, i)| *i).unwrap_or(0);
            (applied, a.store.has_tombstones_at_or_below(oldest))
        }) else {
            return;
        };
        samples.push_back((tokio::time::Instant::now(), applied));
        while samples.len() > 1 && samples[1].0.elapsed() >= ttl {
            samples.pop_front();
        }
        let Some(&(at, reap_index)) = samples.front() else { continue };
        if at.elapsed() < ttl || !reapable {
            continue;
        }
        let Ok(cmd) = Command::tombstone_reap(&TombstoneReapRequest { reap_index }) else { continue };
        match server.raft_apply(cmd).await {
            Ok(r) => tracing::debug!(node = %server.config.node_name, reap_index, ?r, "reaped tombstones"),
            Err(e) => tracing::debug!(node = %server.config.node_name, error = %e, "tombstone reap not committed"),
        }
    }
}
