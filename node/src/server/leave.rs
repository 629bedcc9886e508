//! Graceful leave (`consul leave`, `PUT /v1/agent/leave`): this server is removed from the Raft
//! configuration, then the process exits.
//!
//! On the leader, removing itself makes openraft 0.9 step down once the configuration without it
//! commits; the remaining voters elect a new leader within an election timeout. (openraft 0.9.25
//! has no leadership-transfer API, so leadership is handed over by stepping down, not by naming a
//! successor.) A follower asks the leader to remove it (`Server.Leave`). The last voter
//! cannot be removed: it just leaves, and the cluster is gone, as with Consul.

use std::time::Duration;

use super::endpoints::SERVER_LEAVE;
use super::events::name_of;
use super::forward::ForwardError;
use super::membership::MembershipError;
use super::Server;
use crate::raft::NodeId;

/// Deadline for a follower's leave forwarded to the leader (a membership change commits in a
/// few round trips; joint consensus takes two).
const LEAVE_FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a graceful leave failed (the agent keeps running).
#[derive(Debug, thiserror::Error)]
pub enum LeaveError {
    #[error("No cluster leader: cannot leave the raft configuration")]
    NoLeader,
    #[error("leaving the raft configuration failed: {0}")]
    Failed(String),
}

/// Fired once a graceful leave is complete; the `concord` binary exits when it fires.
pub struct LeaveSignal(tokio::sync::watch::Sender<bool>);

impl Default for LeaveSignal {
    fn default() -> Self {
        Self(tokio::sync::watch::channel(false).0)
    }
}

impl LeaveSignal {
    /// Marks the leave complete.
    pub fn fire(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once [`LeaveSignal::fire`] has been called.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|left| *left).await;
    }
}

impl Server {
    /// Leaves the cluster gracefully: removes this server from the Raft configuration (through
    /// the leader), leaves the LAN gossip pool, and fires [`Server::leave`]. Errors: no leader, or the change failed.
    pub async fn leave_cluster(&self) -> Result<(), LeaveError> {
        let voters: Vec<NodeId> = self.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
        if voters.contains(&self.id) && voters.len() > 1 {
            tracing::info!(voters = voters.len(), "graceful leave: removing this server from the raft configuration");
            if self.is_leader() {
                self.remove_leaving_server(self.id).await.map_err(LeaveError::Failed)?;
                tracing::info!("graceful leave: stepped down as leader; the other servers elect a new one");
            } else {
                let answer: Result<Result<u64, String>, ForwardError> =
                    self.forward_to_leader(SERVER_LEAVE, self.id, LEAVE_FORWARD_TIMEOUT).await;
                match answer {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(LeaveError::Failed(e)),
                    Err(ForwardError::NoLeader) => return Err(LeaveError::NoLeader),
                    Err(e) => return Err(LeaveError::Failed(e.to_string())),
                }
            }
        } else {
            tracing::info!("graceful leave: not in a multi-server raft configuration; nothing to hand over");
        }
        // Then the LAN pool: the other agents see this one `left` (not `failed`), and the leader
        // deregisters its node (`server::reconcile`).
        if let Some(wan) = &self.wan {
            wan.leave().await;
        }
        self.gossip.leave().await;
        tracing::info!("graceful leave complete");
        self.leave.fire();
        Ok(())
    }

    /// Leader: removes a leaving server (`Server.Leave`). Returns the configuration's log index
    /// (0 if it was not in the configuration). Errors: not the leader, the last voter, or a
    /// failed change.
    pub async fn remove_leaving_server(&self, id: NodeId) -> Result<u64, String> {
        let name = name_of(self, id);
        match self.remove_server(id).await {
            Ok(index) => {
                tracing::info!(server = %name, index, "server left gracefully");
                Ok(index)
            }
            Err(MembershipError::Unknown(_)) => Ok(0),
            Err(e) => Err(e.to_string()),
        }
    }
}
