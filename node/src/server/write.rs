//! The write path: commit a command through Raft on the leader, within Consul's
//! `rpc_hold_timeout`, and say honestly whether a failed write may have been applied.

use std::time::Duration;

use serde::Serialize;

use super::forward::ForwardError;
use super::{group_commit, Server};
use crate::codec::CodecError;
use crate::structs::{Command, CommandResult, MessageType, WriteError};

/// How long a write may wait to commit (Consul's `rpc_hold_timeout`, 7 s). A leader that cannot
/// commit within it answers "outcome unknown"; a follower forwarding to it waits this long plus
/// [`FORWARD_SLACK`].
pub const RPC_HOLD_TIMEOUT: Duration = Duration::from_secs(7);
/// Extra time a forwarded call gets beyond the leader's own deadline, so the leader's answer
/// (rather than a blind timeout) reaches the client.
pub const FORWARD_SLACK: Duration = Duration::from_millis(500);

impl Server {
    /// Proposes `cmd` on this server, which must be a leader in contact with a quorum, and waits
    /// for it to commit and apply; concurrent writes share entries ([`group_commit`]). Errors: [`WriteError::NoLeader`] when not proposed (not the
    /// leader, or a leader that lost its quorum: certainly not applied); [`WriteError::Unknown`]
    /// when proposed but not known to have committed within [`RPC_HOLD_TIMEOUT`].
    pub async fn raft_apply(&self, cmd: Command) -> Result<CommandResult, WriteError> {
        if !self.is_leader() {
            return Err(WriteError::NoLeader);
        }
        if self.transfer.in_progress() {
            // hashicorp/raft's ErrLeadershipTransferInProgress: refused, so certainly not applied.
            return Err(WriteError::Rejected("leadership transfer in progress".into()));
        }
        let _commit_timer = self.telemetry.metrics.raft_commit_timer();
        if self.config.bugs.ack_before_commit {
            // Deliberate bug: answer before the entry commits (the write may later be lost).
            let _pending = self.raft.client_write_ff(cmd).await;
            return Ok(CommandResult::Kvs { ok: true, index: 0 });
        }
        // A restore replaces the whole store: it goes in an entry of its own.
        let written = if cmd.msg_type == MessageType::RESTORE {
            tokio::time::timeout(RPC_HOLD_TIMEOUT, group_commit::commit(&self.raft, cmd)).await
        } else {
            tokio::time::timeout(RPC_HOLD_TIMEOUT, self.group_commit.write(cmd)).await
        };
        match written {
            Ok(answer) => answer,
            Err(_) => Err(WriteError::Unknown(format!(
                "not committed within {} s (the leader may have lost its quorum)",
                RPC_HOLD_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Applies a write endpoint's request: on the leader, as the command `build` makes of it,
    /// through Raft; from a follower, by forwarding the request to the leader's `method` (once: a
    /// `forwarded` request is never forwarded again).
    pub async fn apply_write<Req: Serialize>(
        &self,
        method: &str,
        req: Req,
        forwarded: bool,
        build: impl FnOnce(&Req) -> Result<Command, CodecError>,
    ) -> Result<CommandResult, WriteError> {
        if self.is_leader() || forwarded {
            let cmd = build(&req).map_err(|e| WriteError::Rejected(e.to_string()))?;
            return self.raft_apply(cmd).await;
        }
        let result: Result<Result<CommandResult, WriteError>, ForwardError> =
            self.forward_to_leader(method, req, RPC_HOLD_TIMEOUT + FORWARD_SLACK).await;
        match result {
            // Fault point: the leader's answer is lost on the way back.
            Ok(_) if crate::buggify!("forwarded-write-reply-lost") => Err(WriteError::Unknown("buggify: forwarded write's reply lost".into())),
            Ok(answer) => answer,
            Err(e) => Err(e.into_write_error()),
        }
    }
}
