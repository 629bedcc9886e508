//! Server RPC transport (port 8300): named methods carrying encoded bodies, with deadlines.
//!
//! One long-lived TCP connection per peer carries many requests at once, matched to responses by
//! id ([`conn`]), as Consul multiplexes its RPC over one yamux session per server. Every call
//! has a deadline ([`RpcClient::call_raw`]): turmoil's TCP does not retransmit, and a partition can
//! swallow a reply forever. Wire format: [`wire`].
//!
//! The transport knows no endpoint types: a request is a method name (`"KVS.Apply"`,
//! `"Raft.AppendEntries"`, …, as Consul names its RPC endpoints) and a body in the binary encoding
//! ([`crate::codec`]); an [`RpcHandler`] (the server core) dispatches it.

pub mod client;
pub mod conn;
pub mod server;
pub mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;

pub use client::{RpcClient, RpcError};
pub use server::serve;

/// Serves the requests that arrive on the server RPC port.
#[async_trait]
pub trait RpcHandler: Send + Sync + 'static {
    /// Serves one request: `method` is an endpoint name like `"KVS.Apply"`; `body` is
    /// [`crate::codec::encode`]d. The `Ok` body is encoded the same way; an `Err` reaches the
    /// caller as [`RpcError::Remote`] (an unknown method, a body that does not decode).
    async fn handle(&self, method: String, body: Vec<u8>) -> Result<Vec<u8>, String>;

    /// Observes one served request (for metrics): its method and whether the handler answered
    /// without error. The default ignores it.
    fn observe(&self, _method: &str, _ok: bool) {}
}
