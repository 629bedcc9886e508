//! Forwarding: one helper that sends a request to the leader (Consul `agent/consul/rpc.go`
//! `forward`/`forwardLeader`); other datacenters come later through the same door.
//!
//! Every forwardable RPC body is a [`Forwarded`] envelope, so the receiving server knows the
//! request already took its one hop: if it is not the leader either (leadership moved in
//! between), it answers "no leader" instead of forwarding again, which bounds the hops at one.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::Server;
use crate::rpc::RpcError;

/// An RPC body that may have been forwarded by another server.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Forwarded<T> {
    /// True when a server (not the original client) sent it here: do not forward again.
    pub forwarded: bool,
    pub args: T,
}

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No leader is known: nothing was sent.
    #[error("No cluster leader")]
    NoLeader,
    /// The call failed; [`RpcError::not_delivered`] says whether the leader may have acted.
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

impl Server {
    /// Sends `args` to the leader's `method`, marked as forwarded, and waits up to `timeout`.
    pub async fn forward_to_leader<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: &str,
        args: Req,
        timeout: Duration,
    ) -> Result<Resp, ForwardError> {
        let addr = self.leader_addr().ok_or(ForwardError::NoLeader)?;
        let body = Forwarded { forwarded: true, args };
        Ok(self.rpc.call(addr, method, &body, timeout).await?)
    }
}
