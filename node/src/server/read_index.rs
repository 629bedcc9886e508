//! Read-index batching: concurrent reads that must prove leadership share one quorum round.
//!
//! A `?consistent` read (and a default-mode read without a valid lease) calls openraft's
//! `ensure_linearizable`: a heartbeat round to a quorum, then a wait until the state machine has
//! applied the commit index the round began with (the Raft thesis's ReadIndex, §6.4). Each call
//! runs its own round, so 64 readers cost 64 rounds. Here one round runs at a time; readers that
//! arrive while it runs wait for the *next* round, which then answers all of them at once.
//!
//! Why only the next round: a round proves leadership at the moment it *began*, and only for
//! what had committed by then; a reader that arrived after it began waits for the next.
//!
//! A round has two steps, and both matter: the quorum check yields the read index (the leader's
//! commit index), then the state machine must have applied up to it. A newly elected leader
//! commits its predecessor's last entries with its first blank entry but applies them a moment
//! later; answering between the two would miss writes already acknowledged. The deliberate bug
//! `read-index-skips-apply` answers after the quorum check alone, and the KV register model
//! catches the stale read.

use tokio::sync::{mpsc, oneshot};

use crate::raft::Raft;

/// How long one round may take before its readers are told leadership is unproven (Consul's
/// `rpc_hold_timeout`, as for writes).
const ROUND_TIMEOUT: std::time::Duration = super::write::RPC_HOLD_TIMEOUT;

/// The queue of readers waiting for a leadership round on this server (see the module docs).
pub struct ReadIndex {
    tx: mpsc::UnboundedSender<oneshot::Sender<bool>>,
}

impl ReadIndex {
    /// Starts the round task over `raft`; it ends when this handle drops or when aborted.
    /// `skips_apply` is the deliberate bug `read-index-skips-apply` (see the module docs).
    pub fn start(raft: Raft, skips_apply: bool) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, tokio::spawn(run(raft, rx, skips_apply)))
    }

    /// Waits for a round that began after this call: `true` when it proved this server leads (a
    /// quorum answered in its term) and its state machine has applied that round's read index;
    /// `false` when not the leader, leadership was lost, the round took longer than
    /// [`ROUND_TIMEOUT`], or the task has stopped.
    pub async fn confirm(&self) -> bool {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(reply).is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

async fn run(raft: Raft, mut rx: mpsc::UnboundedReceiver<oneshot::Sender<bool>>, skips_apply: bool) {
    while let Some(first) = rx.recv().await {
        // Everyone queued now arrived before the round below begins.
        let mut readers = vec![first];
        while let Ok(next) = rx.try_recv() {
            readers.push(next);
        }
        // Bounded: a round that never finished would stall every later read on this server.
        let led = tokio::time::timeout(ROUND_TIMEOUT, round(&raft, skips_apply)).await.unwrap_or(false);
        for reader in readers {
            let _ = reader.send(led);
        }
    }
}

/// One ReadIndex round: the quorum check, then the wait for the state machine to apply the read
/// index (openraft's `ensure_linearizable`, in its two steps).
async fn round(raft: &Raft, skips_apply: bool) -> bool {
    let Ok((read_log_id, _applied)) = raft.get_read_log_id().await else { return false };
    if skips_apply {
        return true;
    }
    let read_index = read_log_id.map(|l| l.index);
    raft.wait(None).applied_index_at_least(read_index, "read index").await.is_ok()
}
