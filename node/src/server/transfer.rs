//! Leadership transfer (Consul: `consul operator raft transfer-leader [-id=…]`,
//! `POST /v1/operator/raft/transfer-leader?id=…`).
//!
//! openraft 0.9.25 has no transfer API (Raft's TimeoutNow arrives in 0.10), and its followers
//! refuse votes while their leader lease (one maximum election timeout since they last heard
//! from the leader) runs. So the leader hands over as a leader that goes quiet on purpose:
//!
//! 1. it refuses new writes ([`TransferState`]; certainly not applied, so clients retry),
//! 2. waits until the target has replicated its whole log (so the target's vote requests win),
//! 3. stops heartbeats, and sends the target `Raft.TimeoutNow` with the time at which every
//!    follower's lease has run out: one maximum election timeout plus two heartbeats;
//! 4. the target campaigns then, before any other follower's own timer fires (a follower
//!    campaigns after its lease *plus* a randomised election timeout, at least
//!    `election_timeout_min` later), and wins with a log as long as anyone's;
//! 5. the old leader, seeing the higher term, becomes a follower. Heartbeats and writes are
//!    switched back on whatever happened, so a transfer that fails leaves the old leader leading.
//!
//! Safety does not depend on the timing: the target wins only through an ordinary Raft election.
//! Lease reads stop on the old leader as soon as heartbeats stop (no quorum acks renew it).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::endpoints::{OPERATOR_TRANSFER_LEADER, RAFT_TIMEOUT_NOW};
use super::forward::ForwardError;
use super::events::name_of;
use super::membership::server_id;
use super::Server;
use crate::raft::NodeId;

/// How long the target may take to catch up before the transfer is abandoned.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline for the `Raft.TimeoutNow` call itself (the target answers at once).
const TIMEOUT_NOW_RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline for a transfer forwarded to the leader: catch-up plus an election, with room.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a transfer failed. The old leader keeps (or regains) leadership in every case.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Only the leader transfers leadership.
    #[error("this server is not the leader")]
    NotLeader,
    /// The named server is not a voter in the current configuration.
    #[error("cannot transfer leadership to {0}: not a voter in the raft configuration")]
    UnknownTarget(String),
    /// The target is this leader itself.
    #[error("cannot transfer leadership to itself")]
    SelfTarget,
    /// A single-voter cluster has nobody to hand over to.
    #[error("cannot transfer leadership: no other voter")]
    NoOtherVoter,
    /// A membership change (joint configuration) is under way.
    #[error("cannot transfer leadership during a membership change")]
    MembershipChanging,
    /// Another transfer is under way on this leader.
    #[error("a leadership transfer is already in progress")]
    InProgress,
    /// The target did not catch up, did not answer, or did not win in time.
    #[error("leadership transfer to {target} failed: {why}")]
    Failed { target: String, why: String },
}

/// The last log index the leader knows `id` has replicated (leader's metrics only).
fn matched_index(m: &openraft::RaftMetrics<NodeId, openraft::BasicNode>, id: NodeId) -> Option<u64> {
    m.replication.as_ref().and_then(|r| r.get(&id).copied().flatten()).map(|l| l.index)
}

/// The leader's transfer flag: while set, new writes are refused.
#[derive(Debug, Default)]
pub struct TransferState(AtomicBool);

impl TransferState {
    /// Whether a transfer is under way on this server.
    pub fn in_progress(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// `Raft.TimeoutNow`: campaign after `after_ms` (when every follower's leader lease has run out).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TimeoutNow {
    /// The Raft id the message is for (a server that took a new id refuses it).
    pub target: NodeId,
    /// The leader's term when it sent this: a target already past it ignores the message.
    pub term: u64,
    /// Milliseconds to wait before campaigning.
    pub after_ms: u64,
}

/// Clears the transfer flag and switches heartbeats back on when the transfer ends, however.
struct Resume<'a>(&'a Server);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.raft.runtime_config().heartbeat(true);
        self.0.transfer.0.store(false, Ordering::Release);
    }
}

impl Server {
    /// Hands leadership to `target` (a voter's Raft id), or to the most caught-up other voter
    /// when `None`. Returns the new leader's id once it has been elected. Errors: see
    /// [`TransferError`]; on every error this server keeps or regains leadership.
    pub async fn transfer_leadership(&self, target: Option<NodeId>) -> Result<NodeId, TransferError> {
        if !self.is_leader() {
            return Err(TransferError::NotLeader);
        }
        let target = self.choose_transfer_target(target)?;
        let target_name = name_of(self, target);
        let failed = |why: String| TransferError::Failed { target: target_name.clone(), why };
        if self.transfer.0.swap(true, Ordering::AcqRel) {
            return Err(TransferError::InProgress);
        }
        // From here on, the drop guard re-enables writes and heartbeats.
        let _resume = Resume(self);
        tracing::info!(target = %target_name, "leadership transfer: writes paused until the target has the whole log");
        self.wait_caught_up(target).await.map_err(failed)?;
        let term = self.raft.metrics().borrow().current_term;
        let t = &self.config.raft;
        let after_ms = t.election_timeout_max_ms + 2 * t.heartbeat_ms;
        self.raft.runtime_config().heartbeat(false);
        let addr = self.voter_addr(target).ok_or_else(|| failed("no address for the target".into()))?;
        let msg = TimeoutNow { target, term, after_ms };
        let answer: Result<Result<(), String>, _> = self.rpc.call(addr, RAFT_TIMEOUT_NOW, &msg, TIMEOUT_NOW_RPC_TIMEOUT).await;
        answer.map_err(|e| failed(e.to_string()))?.map_err(failed)?;
        tracing::info!(target = %target_name, campaign_in_ms = after_ms, "leadership transfer: heartbeats stopped; the target campaigns once every follower's lease has run out");
        let deadline = Duration::from_millis(after_ms + 2 * t.election_timeout_max_ms);
        let mut rx = self.raft.metrics();
        let won = async move { rx.wait_for(|m| m.current_leader == Some(target)).await.map(|_| ()) };
        match tokio::time::timeout(deadline, won).await {
            Ok(Ok(())) => {
                tracing::info!(leader = %target_name, "leadership transferred");
                Ok(target)
            }
            Ok(Err(_)) => Err(failed("raft stopped".into())),
            Err(_) => Err(failed(format!("no election won by the target within {} ms", deadline.as_millis()))),
        }
    }

    /// [`Server::transfer_leadership`] on the leader: run here if this server leads, else
    /// forwarded to the leader once (`Operator.TransferLeader`). Returns the new leader's id.
    /// Errors: as [`TransferError`], as text when they come from the leader.
    pub async fn transfer_leadership_via_leader(&self, target: Option<NodeId>) -> Result<NodeId, String> {
        if self.is_leader() {
            return self.transfer_leadership(target).await.map_err(|e| e.to_string());
        }
        let answer: Result<Result<NodeId, String>, ForwardError> =
            self.forward_to_leader(OPERATOR_TRANSFER_LEADER, target, FORWARD_TIMEOUT).await;
        answer.map_err(|e| e.to_string())?
    }

    /// Target of `Raft.TimeoutNow`: campaigns after `after_ms`, unless by then this server has
    /// moved past the sender's term (someone else already won). Answers at once.
    pub fn timeout_now(&self, msg: TimeoutNow) -> Result<(), String> {
        if msg.target != self.id {
            return Err(format!("TimeoutNow for {} reached {}", server_id(msg.target), server_id(self.id)));
        }
        let raft = self.raft.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(msg.after_ms)).await;
            if raft.metrics().borrow().current_term > msg.term {
                return;
            }
            tracing::info!(term = msg.term, "leadership transfer: campaigning as asked by the leader");
            let _ = raft.trigger().elect().await;
        });
        Ok(())
    }

    fn choose_transfer_target(&self, target: Option<NodeId>) -> Result<NodeId, TransferError> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        if membership.get_joint_config().len() > 1 {
            return Err(TransferError::MembershipChanging);
        }
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        match target {
            Some(t) if t == self.id => Err(TransferError::SelfTarget),
            Some(t) if voters.contains(&t) => Ok(t),
            Some(t) => Err(TransferError::UnknownTarget(server_id(t))),
            None => {
                // Most caught up first; ties go to the lowest id, so the choice is deterministic.
                voters
                    .iter()
                    .filter(|id| **id != self.id)
                    .max_by_key(|id| (matched_index(&m, **id).unwrap_or(0), std::cmp::Reverse(**id)))
                    .copied()
                    .ok_or(TransferError::NoOtherVoter)
            }
        }
    }

    /// Waits until `target` has replicated this leader's last log index. Errors: leadership
    /// lost, or not caught up within [`CATCH_UP_TIMEOUT`].
    async fn wait_caught_up(&self, target: NodeId) -> Result<(), String> {
        let mut rx = self.raft.metrics();
        let me = self.id;
        let caught_up = async move {
            let m = rx
                .wait_for(|m| {
                    let last = m.last_log_index.unwrap_or(0);
                    m.current_leader != Some(me) || matched_index(m, target).is_some_and(|i| i >= last)
                })
                .await;
            m.map(|m| m.current_leader == Some(me))
        };
        match tokio::time::timeout(CATCH_UP_TIMEOUT, caught_up).await {
            Ok(Ok(true)) => Ok(()),
            Ok(_) => Err("leadership lost while waiting for the target to catch up".into()),
            Err(_) => Err(format!("the target did not catch up within {} s", CATCH_UP_TIMEOUT.as_secs())),
        }
    }

    fn voter_addr(&self, id: NodeId) -> Option<std::net::SocketAddr> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config.membership().get_node(&id).and_then(|n| n.addr.parse().ok())
    }
}
