//! Forwarding: one helper that sends a request to the leader (Consul `agent/consul/rpc.go`
//! `forward`/`forwardLeader`); other datacenters go through [`super::federation`]
//! (`forwardDC`). A client agent goes through the same door to a server ([`super::router`]).
//!
//! Every forwardable RPC body is a [`Forwarded`] envelope, so the receiving server knows the
//! request already took its one hop: if it is not the leader either (leadership moved in
//! between), it answers "no leader" instead of forwarding again, which bounds the hops at one.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::router::RetryElsewhere;
use super::Server;
use crate::rpc::RpcError;
use crate::structs::{QueryError, WriteError};

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
    /// A client agent knows no live server of its datacenter (Consul `structs.ErrNoServers`):
    /// nothing was sent.
    #[error("No known Consul servers")]
    NoServers,
    /// The call failed; [`RpcError::not_delivered`] says whether the leader may have acted.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// `?dc=` names a datacenter with no live server in the WAN pool (Consul
    /// `structs.ErrNoDCPath`): nothing was sent.
    #[error("No path to datacenter")]
    NoPathToDatacenter,
    /// The server a client agent asked to forward to another datacenter reported that call's
    /// failure; `not_delivered`: it certainly did not reach the other datacenter.
    #[error("rpc error forwarding to another datacenter: {message}")]
    Remote { message: String, not_delivered: bool },
}

impl ForwardError {
    /// Whether the request certainly did not reach a server that could act on it.
    pub fn not_delivered(&self) -> bool {
        match self {
            Self::NoLeader | Self::NoServers | Self::NoPathToDatacenter => true,
            Self::Rpc(e) => e.not_delivered(),
            Self::Remote { not_delivered, .. } => *not_delivered,
        }
    }

    /// The read error this failure answers (Consul: 500 with the text).
    pub fn into_query_error(self) -> QueryError {
        match self {
            Self::NoLeader => QueryError::NoLeader,
            Self::NoPathToDatacenter => QueryError::NoPathToDatacenter,
            e => QueryError::Rpc(e.to_string()),
        }
    }

    /// The write error this failure answers: certainly not applied, or outcome unknown.
    pub fn into_write_error(self) -> WriteError {
        match self {
            Self::NoLeader => WriteError::NoLeader,
            Self::NoPathToDatacenter => WriteError::NoPathToDatacenter,
            e if e.not_delivered() => WriteError::Rejected(e.to_string()),
            e => WriteError::Unknown(e.to_string()),
        }
    }
}

impl Server {
    /// Sends `args` to the leader's `method`, marked as forwarded, and waits up to `timeout`.
    /// A client agent, which knows no leader, sends it to a server instead, unmarked, and that
    /// server routes it ([`Server::forward_to_server`]).
    pub async fn forward_to_leader<Req: Serialize, Resp: DeserializeOwned + RetryElsewhere>(
        &self,
        method: &str,
        args: Req,
        timeout: Duration,
    ) -> Result<Resp, ForwardError> {
        if self.is_client() {
            return self.forward_to_server(method, args, timeout).await;
        }
        let addr = self.leader_addr().ok_or(ForwardError::NoLeader)?;
        let body = Forwarded { forwarded: true, args };
        Ok(self.rpc.call(addr, method, &body, timeout).await?)
    }
}
