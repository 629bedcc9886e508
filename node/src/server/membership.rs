//! Raft membership changes on a running cluster: the operator's view of the voters, removing a
//! server (Consul `DELETE /v1/operator/raft/peer`) and adding one back.
//!
//! Changes go through openraft's joint-consensus `change_membership`, on the leader only.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{BasicNode, ChangeMembers};
use serde::Serialize;

use super::bootstrap::JoinRequest;
use super::endpoints::SERVER_JOIN;
use super::forward::ForwardError;
use super::Server;
use crate::raft::NodeId;

/// Deadline for a join forwarded to the leader: adding a learner waits for it to catch up.
const JOIN_FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a membership change was refused.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// Only the leader changes membership.
    #[error("this server is not the leader")]
    NotLeader,
    /// The change would leave no voter.
    #[error("refusing to remove the last voter")]
    LastVoter,
    /// No server with that id or address is in the configuration.
    #[error("no server {0} in the raft configuration")]
    Unknown(String),
    /// openraft refused or failed the change (e.g. leadership lost mid-change).
    #[error("membership change failed: {0}")]
    Raft(String),
}

/// One server in `GET /v1/operator/raft/configuration` (Consul's `RaftServer`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RaftServer {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub leader: bool,
    pub voter: bool,
}

/// Formats a Raft node id as Concord's server ID (16 hex digits).
pub fn server_id(id: NodeId) -> String {
    format!("{id:016x}")
}

impl Server {
    /// The Raft configuration as this server knows it: (servers, log index of the configuration).
    pub fn raft_configuration(&self) -> (Vec<RaftServer>, u64) {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let names = self.peers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let servers = membership
            .nodes()
            .map(|(id, node)| RaftServer {
                id: server_id(*id),
                node: names.get(id).map(|p| p.name.clone()).unwrap_or_else(|| server_id(*id)),
                address: node.addr.clone(),
                leader: m.current_leader == Some(*id),
                voter: voters.contains(id),
            })
            .collect();
        (servers, m.membership_config.log_id().map(|l| l.index).unwrap_or(0))
    }

    /// Resolves an operator's `id` (16 hex digits) or `address` (`ip:port`) to a node id.
    pub fn find_server(&self, id: Option<&str>, address: Option<&str>) -> Result<NodeId, MembershipError> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let found = membership.nodes().find(|(nid, node)| {
            id.is_some_and(|want| server_id(**nid) == want) || address.is_some_and(|want| node.addr == want)
        });
        found.map(|(nid, _)| *nid).ok_or_else(|| MembershipError::Unknown(id.or(address).unwrap_or("").to_string()))
    }

    /// Removes a voter from the cluster (leader only). Returns the log index of the change.
    pub async fn remove_server(&self, id: NodeId) -> Result<u64, MembershipError> {
        let voters: BTreeSet<NodeId> = self.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
        if !voters.contains(&id) {
            return Err(MembershipError::Unknown(server_id(id)));
        }
        if voters.len() <= 1 {
            return Err(MembershipError::LastVoter);
        }
        let change = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
        self.change(change).await
    }

    /// Adds a server as a voter (leader only): first as a learner that catches up, then promoted.
    pub async fn add_server(&self, id: NodeId, addr: String) -> Result<u64, MembershipError> {
        if !self.is_leader() {
            return Err(MembershipError::NotLeader);
        }
        self.raft
            .add_learner(id, BasicNode { addr: addr.clone() }, true)
            .await
            .map_err(|e| MembershipError::Raft(e.to_string()))?;
        self.change(ChangeMembers::AddVoters(BTreeMap::from([(id, BasicNode { addr })]))).await
    }

    /// Adds `peer` as a voter, then removes the voter `replaces` if given (leader), or forwards
    /// the request to the leader (follower). Idempotent: re-joining as an existing voter changes
    /// nothing and answers the current configuration's log index. Returns the log index of the
    /// (last) membership change.
    pub async fn join_server(&self, req: JoinRequest, forwarded: bool) -> Result<u64, String> {
        let JoinRequest { peer, replaces } = req;
        if !self.is_leader() {
            if forwarded {
                return Err("no leader".into());
            }
            let sent: Result<Result<u64, String>, ForwardError> =
                self.forward_to_leader(SERVER_JOIN, JoinRequest { peer, replaces }, JOIN_FORWARD_TIMEOUT).await;
            return sent.map_err(|e| e.to_string())?;
        }
        let node = BasicNode { addr: peer.rpc_addr.clone() };
        let id = peer.node_id;
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).insert(id, peer);
        let is_voter = |server: &Server, id: NodeId| {
            let m = server.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            // A joint configuration's voters are the union of both halves: only a voter of the
            // *last* half (the configuration being moved to) stays one.
            membership.get_joint_config().last().is_some_and(|half| half.contains(&id))
        };
        let mut index = 0;
        if !is_voter(self, id) {
            self.raft.add_learner(id, node.clone(), true).await.map_err(|e| e.to_string())?;
            // AddVoters, not ReplaceAllVoters from a copy of the voters read here: a copy taken
            // while another change (a graceful leave) is under way would put back the server it
            // removes. openraft applies AddVoters to the configuration current when it runs.
            index = self.change(ChangeMembers::AddVoters(BTreeMap::from([(id, node)]))).await.map_err(|e| e.to_string())?;
        }
        if let Some(old) = replaces.filter(|old| *old != id && is_voter(self, *old)) {
            index = self.change(ChangeMembers::RemoveVoters(BTreeSet::from([old]))).await.map_err(|e| e.to_string())?;
        }
        if index == 0 {
            index = self.raft.metrics().borrow().membership_config.log_id().map(|l| l.index).unwrap_or(0);
        }
        Ok(index)
    }

    async fn change(&self, change: ChangeMembers<NodeId, BasicNode>) -> Result<u64, MembershipError> {
        if !self.is_leader() {
            return Err(MembershipError::NotLeader);
        }
        let resp = self.raft.change_membership(change, false).await.map_err(|e| MembershipError::Raft(e.to_string()))?;
        Ok(resp.log_id.index)
    }
}
