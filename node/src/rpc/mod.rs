//! Server RPC transport (port 8300): named methods carrying encoded bodies, with deadlines.
//!
//! The transport knows no endpoint types: a request is a method name (`"KVS.Apply"`,
//! `"Raft.AppendEntries"`, …, as Consul names its RPC endpoints) and a body encoded with
//! [`crate::codec::encode`]; a [`RpcHandler`] (the server core) dispatches it. Every call has a
//! deadline ([`client::RpcClient::call`]): turmoil's TCP does not retransmit, and a partition can
//! swallow a reply forever.

pub mod client;
pub mod server;
pub mod wire;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use client::{RpcClient, RpcError};
pub use server::serve;

/// Serves requests arriving on the RPC port.
#[async_trait]
pub trait RpcHandler: Send + Sync + 'static {
    /// Serves one request: `method` is an endpoint name like `"KVS.Apply"`; `body` was encoded
    /// with [`crate::codec::encode`]. Errors are sent back to the caller as text.
    async fn handle(&self, method: String, body: Vec<u8>) -> Result<Vec<u8>, String>;
}

/// One request on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub struct RequestFrame {
    pub method: String,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// One response on the wire: the handler's encoded answer or its error text.
#[derive(Debug, Serialize, Deserialize)]
pub struct ResponseFrame {
    pub result: Result<serde_bytes::ByteBuf, String>,
}
