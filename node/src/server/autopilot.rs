//! Autopilot's dead-server cleanup (Consul `CleanupDeadServers`, on by default): the leader takes
//! servers whose LAN gossip member is gone out of the Raft configuration, and puts back servers
//! that are alive in the pool but not in it.
//!
//! Sources: Consul `agent/consul/leader.go` (`handleLeftMember` → `removeConsulServer`: a server
//! that left is removed at once; `handleAliveMember` → `joinConsulServer`: a live server missing
//! from Raft is added) and `hashicorp/raft-autopilot` `reconcile.go` (`pruneDeadServers`,
//! `adjudicateRemoval`: failed voters are removed only while that stays safe: at most
//! `(voters - 1) / 2` of them in one pass, so a majority of the voters is never removed at once
//! and a cluster that lost servers keeps a quorum of the ones it has).
//!
//! Owns: matching Raft voters to gossip members (by server RPC address: the member's IP and its
//! `port` tag), the removal plan ([`plan`]), and carrying it out through the ordinary membership
//! changes ([`super::membership`]). Every removal and addition is logged at INFO naming the server.
//! Never does: remove this server (a leader leaves through `leave`), or touch a server gossip does
//! not know (it may simply not have joined the pool yet).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::bootstrap::{HelloResponse, JoinRequest};
use super::endpoints::SERVER_HELLO;
use super::Server;
use crate::gossip::{Member, MemberStatus};
use crate::raft::NodeId;

/// How often the leader runs the cleanup (raft-autopilot's reconcile interval is 10 s; Concord's
/// membership reconcile runs every 2 s, and so does this).
pub const AUTOPILOT_INTERVAL: Duration = Duration::from_secs(2);

/// How long a live server member must have been missing from the Raft configuration before the
/// leader adds it back (Consul's `ServerStabilizationTime` is 10 s): a server that leaves
/// gracefully is removed from Raft a moment before it leaves the pool, and must not be re-added.
pub const REJOIN_AFTER: Duration = Duration::from_secs(5);

/// Deadline of the `Server.Hello` that asks a returning server for its Raft id.
const HELLO_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /v1/operator/autopilot/configuration` (Consul's `AutopilotConfiguration`, defaults of
/// Consul 1.x). Only `CleanupDeadServers` is acted on; the others are reported as Consul's defaults.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AutopilotConfiguration {
    pub cleanup_dead_servers: bool,
    pub last_contact_threshold: &'static str,
    pub max_trailing_logs: u64,
    pub min_quorum: u64,
    pub server_stabilization_time: &'static str,
    pub redundancy_zone_tag: &'static str,
    pub disable_upgrade_migration: bool,
    pub upgrade_version_tag: &'static str,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Default for AutopilotConfiguration {
    fn default() -> Self {
        Self {
            cleanup_dead_servers: true,
            last_contact_threshold: "200ms",
            max_trailing_logs: 250,
            min_quorum: 0,
            server_stabilization_time: "10s",
            redundancy_zone_tag: "",
            disable_upgrade_migration: false,
            upgrade_version_tag: "",
            create_index: 0,
            modify_index: 0,
        }
    }
}

/// What one pass removes: voters whose member left (all of them), and voters whose member
/// failed (as many as [`plan`] allows), by Raft id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub left: Vec<NodeId>,
    pub failed: Vec<NodeId>,
    /// Failed voters kept because removing them would remove a majority.
    pub kept: Vec<NodeId>,
}

/// Decides a pass over the voters (`(id, gossip status if known)`, this leader `me` among them):
/// every voter that left goes; of the failed ones, at most `(voters - 1) / 2` of the voters that
/// remain after the left ones (raft-autopilot `adjudicateRemoval`). `guard` false is the
/// deliberate bug `autopilot_removes_below_quorum`: every failed voter goes.
pub fn plan(voters: &[(NodeId, Option<MemberStatus>)], me: NodeId, guard: bool) -> Plan {
    let mut p = Plan::default();
    let others = voters.iter().filter(|(id, _)| *id != me);
    p.left = others.clone().filter(|(_, s)| *s == Some(MemberStatus::Left)).map(|(id, _)| *id).collect();
    let remaining = voters.len() - p.left.len();
    let mut max_removal = if guard { remaining.saturating_sub(1) / 2 } else { usize::MAX };
    for (id, _) in others.filter(|(_, s)| *s == Some(MemberStatus::Failed)) {
        if max_removal == 0 {
            p.kept.push(*id);
        } else {
            max_removal -= 1;
            p.failed.push(*id);
        }
    }
    p
}

/// The server RPC address a server member advertises (`ip:port` from its `port` tag).
fn rpc_addr_of(m: &Member) -> Option<String> {
    let port: u16 = m.tags.get("port")?.parse().ok()?;
    Some(std::net::SocketAddr::new(m.addr.ip(), port).to_string())
}

/// Runs on every server; acts only while this server leads.
pub async fn run(server: Arc<Server>) {
    let mut missing_since = BTreeMap::new();
    loop {
        tokio::time::sleep(AUTOPILOT_INTERVAL).await;
        if server.is_leader() {
            cleanup_once(&server, &mut missing_since).await;
        } else {
            missing_since.clear();
        }
    }
}

/// One pass: removes dead voters as [`plan`] says, then adds live server members that Raft has
/// lacked for [`REJOIN_AFTER`] (`missing_since`: when each was first seen missing, by RPC address).
pub async fn cleanup_once(server: &Server, missing_since: &mut BTreeMap<String, tokio::time::Instant>) {
    let dc = &server.config.datacenter;
    let servers: BTreeMap<String, Member> = server
        .gossip
        .members()
        .into_iter()
        .filter(|m| m.tags.get("role").is_some_and(|r| r == "consul") && m.tags.get("dc").is_none_or(|d| d == dc))
        .filter_map(|m| rpc_addr_of(&m).map(|a| (a, m)))
        .collect();
    let (voters, in_config): (Vec<(NodeId, Option<MemberStatus>)>, Vec<String>) = {
        let m = server.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters = membership.voter_ids().map(|id| (id, membership.get_node(&id).and_then(|n| servers.get(&n.addr)).map(|s| s.status))).collect();
        (voters, membership.nodes().map(|(_, n)| n.addr.clone()).collect())
    };
    let p = plan(&voters, server.id, !server.config.bugs.autopilot_removes_below_quorum);
    let name = |id: NodeId| super::events::name_of(server, id);
    for id in &p.kept {
        tracing::debug!(server = %name(*id), voters = voters.len(), "autopilot: not removing a failed server: removing a majority of voters is not safe");
    }
    for (id, why) in p.left.iter().map(|id| (id, "left")).chain(p.failed.iter().map(|id| (id, "failed"))) {
        match server.remove_server(*id).await {
            Ok(index) => tracing::info!(server = %name(*id), index, "autopilot: removed a {why} server from the raft configuration"),
            Err(e) => tracing::info!(server = %name(*id), error = %e, "autopilot: removing a {why} server failed"),
        }
    }
    let now = tokio::time::Instant::now();
    let missing: Vec<(&String, &Member)> = servers
        .iter()
        // Alive to Serf: a suspect member is alive (Consul's `handleAliveMember` sees it so); a
        // suspicion the member never heard of, lost in a partition, can outlast it for a while.
        .filter(|(addr, m)| m.status.consul_code() == MemberStatus::Alive.consul_code() && !in_config.contains(addr) && m.name != server.config.node_name)
        .collect();
    missing_since.retain(|addr, _| missing.iter().any(|(a, _)| *a == addr));
    for (addr, m) in missing {
        let since = *missing_since.entry(addr.clone()).or_insert(now);
        if now.duration_since(since) >= REJOIN_AFTER {
            rejoin(server, m, addr).await;
        }
    }
}

/// Adds a live server member that Raft lacks (one autopilot removed and that came back): asks it
/// for its Raft id, then joins it as a voter (learner first).
async fn rejoin(server: &Server, m: &Member, addr: &str) {
    let Ok(sock) = addr.parse::<std::net::SocketAddr>() else { return };
    let hello: Result<HelloResponse, _> = server.rpc.call(sock, SERVER_HELLO, &server.me(), HELLO_TIMEOUT).await;
    let peer = match hello {
        Ok(h) if h.me.datacenter == server.config.datacenter => h.me,
        Ok(_) => return,
        Err(e) => {
            tracing::debug!(server = %m.name, error = %e, "autopilot: a live server missing from raft did not answer");
            return;
        }
    };
    match server.join_server(JoinRequest { peer, replaces: None }, true).await {
        Ok(index) => tracing::info!(server = %m.name, index, "autopilot: added a live server back to the raft configuration"),
        Err(e) => tracing::info!(server = %m.name, error = %e, "autopilot: adding a live server back failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MemberStatus::{Alive, Failed, Left};

    #[test]
    fn a_left_server_goes_at_once_and_one_failed_of_three_goes() {
        let p = plan(&[(1, Some(Alive)), (2, Some(Left)), (3, Some(Alive))], 1, true);
        assert_eq!((p.left, p.failed), (vec![2], vec![]));
        let p = plan(&[(1, Some(Alive)), (2, Some(Alive)), (3, Some(Failed))], 1, true);
        assert_eq!((p.failed, p.kept), (vec![3], vec![]));
    }

    #[test]
    fn failed_voters_are_never_removed_as_a_majority() {
        let p = plan(&[(1, Some(Alive)), (2, Some(Failed))], 1, true);
        assert_eq!((p.failed, p.kept), (vec![], vec![2]), "(2 - 1) / 2 = 0: the second of two stays");
        let p = plan(&[(1, Some(Alive)), (2, Some(Failed)), (3, Some(Failed))], 1, true);
        assert_eq!((p.failed.len(), p.kept.len()), (1, 1), "(3 - 1) / 2 = 1 of two failed");
        let five = [(1, Some(Alive)), (2, Some(Alive)), (3, Some(Failed)), (4, Some(Failed)), (5, Some(Failed))];
        assert_eq!(plan(&five, 1, true).failed, vec![3, 4]);
        assert_eq!(plan(&five, 1, false).failed, vec![3, 4, 5], "the deliberate bug drops the guard");
    }

    #[test]
    fn unknown_and_live_voters_and_the_leader_stay() {
        let p = plan(&[(1, Some(Failed)), (2, None), (3, Some(MemberStatus::Suspect))], 1, true);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn the_configuration_has_consuls_shape() {
        insta::assert_json_snapshot!("autopilot_configuration", AutopilotConfiguration::default());
    }
}
