//! Group commit: writes that arrive together share one Raft entry, so one log append, one fsync
//! and one replication round serve them all.
//!
//! openraft 0.9 appends each `client_write` as its own entry and holds its core loop until that
//! append is fsynced, so N concurrent writes cost N fsyncs one after another: the leader's disk,
//! not the network or the CPU, bounded write throughput (issue 12's profile: fsync was 79–92% of
//! a write's time at 16 and 64 clients). Here at most [`MAX_IN_FLIGHT`] entries are proposed at
//! once; writes that arrive meanwhile queue, and the next entry takes all of them (up to
//! [`MAX_BATCH_WRITES`] and [`MAX_BATCH_BYTES`]) as one `BATCH` command
//! ([`crate::structs::BatchRequest`]). A lone write is proposed as itself, so a lightly loaded
//! server's log reads as before and a single client waits for nothing.
//!
//! What a client sees does not change: its write is acknowledged only after its entry commits on
//! a quorum and applies, with its own result (a failed CAS in a batch fails alone). Every write
//! in a batch gets the batch's Raft index as its ModifyIndex, as the operations of one Consul
//! transaction do, and readers see the entry whole. A batch that fails fails every write in it
//! the same way (see [`write_error`]).

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::write::RPC_HOLD_TIMEOUT;
use crate::raft::{NodeId, Raft};
use crate::structs::{BatchRequest, Command, CommandResult, WriteError};

/// Entries proposed and not yet answered, at most. Two let one entry's append overlap the
/// previous one's replication; more would only make smaller batches.
pub const MAX_IN_FLIGHT: usize = 2;
/// Writes in one entry, at most: bounds an entry's apply time and the replies waiting on it.
pub const MAX_BATCH_WRITES: usize = 512;
/// Encoded command bytes in one entry, at most (1 MiB): bounds AppendEntries messages. A
/// single larger write still goes, alone.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

type Reply = oneshot::Sender<Result<CommandResult, WriteError>>;

/// The queue in front of Raft's `client_write` on this server (see the module docs).
pub struct GroupCommit {
    tx: mpsc::UnboundedSender<(Command, Reply)>,
}

impl GroupCommit {
    /// Starts the batcher task over `raft`; it ends when this handle drops or when aborted.
    /// `misroute_results` is the deliberate bug `batch-results-misrouted`: each write in a batch
    /// is answered with its neighbour's result.
    pub fn start(raft: Raft, misroute_results: bool) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(raft, rx, misroute_results));
        (Self { tx }, task)
    }

    /// Proposes `cmd` in the next entry and waits for its own result. Errors: as
    /// [`write_error`] maps the entry's failure; [`WriteError::NoLeader`] if the batcher has
    /// stopped (shutdown), when nothing was proposed.
    pub async fn write(&self, cmd: Command) -> Result<CommandResult, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((cmd, reply)).map_err(|_| WriteError::NoLeader)?;
        // A dropped reply means the proposing task died (aborted at shutdown) mid-write.
        answer.await.unwrap_or_else(|_| Err(WriteError::Unknown("server shut down while the write was in flight".into())))
    }
}

/// Maps `client_write`'s failure to what the client is told. Every failure after the command
/// reached openraft may still commit, so it is "outcome unknown".
pub fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, openraft::BasicNode>>) -> WriteError {
    match e {
        // Leadership moved while the entry was in flight: it may still commit.
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            WriteError::Unknown("leadership lost while the write was in flight".into())
        }
        e => WriteError::Unknown(e.to_string()),
    }
}

async fn run(raft: Raft, mut rx: mpsc::UnboundedReceiver<(Command, Reply)>, misroute_results: bool) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        // Wait for a free slot *before* taking writes, so those that arrive meanwhile gather.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(first) = rx.recv().await else { return };
        let mut bytes = first.0.body.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_WRITES && bytes < MAX_BATCH_BYTES {
            let Ok(next) = rx.try_recv() else { break };
            bytes += next.0.body.len();
            batch.push(next);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch, misroute_results).await;
            drop(slot);
        });
    }
}

/// Proposes `cmd` and waits for its result, giving up (outcome unknown) when this server stops
/// leading the term it proposed in, or after [`RPC_HOLD_TIMEOUT`]. openraft 0.9 may never answer
/// a write whose leader stepped down, and a slot held by such a write would stall every later
/// one; hashicorp/raft likewise fails in-flight writes with `ErrLeadershipLost` on step-down.
pub async fn commit(raft: &Raft, cmd: Command) -> Result<CommandResult, WriteError> {
    let term = raft.metrics().borrow().current_term;
    let written = tokio::time::timeout(RPC_HOLD_TIMEOUT, async {
        tokio::select! {
            written = raft.client_write(cmd) => written.map(|r| r.data).map_err(write_error),
            _ = leadership_lost(raft, term) => Err(WriteError::Unknown("leadership lost while the write was in flight".into())),
        }
    });
    written.await.unwrap_or_else(|_| {
        Err(WriteError::Unknown(format!(
            "not committed within {} s (the leader may have lost its quorum)",
            RPC_HOLD_TIMEOUT.as_secs()
        )))
    })
}

/// Resolves once this server is no longer the leader of `term`.
async fn leadership_lost(raft: &Raft, term: u64) {
    let mut metrics = raft.metrics();
    loop {
        {
            let m = metrics.borrow_and_update();
            if m.current_term != term || m.state != openraft::ServerState::Leader {
                return;
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Proposes one entry for `batch` and answers each write.
async fn propose(raft: &Raft, mut batch: Vec<(Command, Reply)>, misroute_results: bool) {
    if batch.len() == 1 {
        let Some((cmd, reply)) = batch.pop() else { return };
        let _ = reply.send(commit(raft, cmd).await);
        return;
    }
    let (commands, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
    let cmd = match Command::batch(&BatchRequest { commands }) {
        Ok(cmd) => cmd,
        Err(e) => return answer_all(replies, Err(WriteError::Rejected(e.to_string()))),
    };
    match commit(raft, cmd).await {
        Ok(CommandResult::Batch { mut results, .. }) if results.len() == replies.len() => {
            if misroute_results {
                results.rotate_right(1);
            }
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        // The state machine stopped on the entry (a refused batch applies nothing).
        Ok(CommandResult::Refused { error, .. }) => answer_all(replies, Err(WriteError::Unknown(error))),
        Ok(other) => answer_all(replies, Err(WriteError::Unknown(format!("batch entry answered {other:?}")))),
        Err(e) => answer_all(replies, Err(e)),
    }
}

fn answer_all(replies: Vec<Reply>, answer: Result<CommandResult, WriteError>) {
    for reply in replies {
        let _ = reply.send(answer.clone());
    }
}
