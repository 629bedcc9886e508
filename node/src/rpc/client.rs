//! The RPC client: one connection per call, with a deadline covering connect, send and receive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::wire::{read_msg, write_msg};
use super::{RpcRequest, RpcResponse};
use crate::io::Net;

/// Why an RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Could not connect: the request was certainly not delivered.
    #[error("connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    /// The deadline passed; the request may or may not have been delivered and acted on.
    #[error("rpc to {addr} timed out after {timeout_ms} ms")]
    Timeout { addr: SocketAddr, timeout_ms: u64 },
    /// The connection failed after the request may have been sent.
    #[error("rpc to {addr}: {source}")]
    Io { addr: SocketAddr, source: std::io::Error },
}

impl RpcError {
    /// True if the request certainly never reached the server.
    pub fn not_delivered(&self) -> bool {
        matches!(self, RpcError::Connect { .. })
    }
}

/// Calls servers over [`Net`].
#[derive(Clone)]
pub struct RpcClient {
    net: Arc<dyn Net>,
}

impl RpcClient {
    pub fn new(net: Arc<dyn Net>) -> Self {
        Self { net }
    }

    /// Sends `req` to `addr` and waits up to `timeout` for the response.
    pub async fn call(&self, addr: SocketAddr, req: &RpcRequest, timeout: Duration) -> Result<RpcResponse, RpcError> {
        // Fault point: a deadline far shorter than configured.
        let timeout = if crate::buggify!() { timeout / 10 } else { timeout };
        let timeout_ms = timeout.as_millis() as u64;
        let work = async {
            let mut stream = self.net.connect(addr).await.map_err(|source| RpcError::Connect { addr, source })?;
            write_msg(&mut *stream, req).await.map_err(|source| RpcError::Io { addr, source })?;
            read_msg::<_, RpcResponse>(&mut *stream).await.map_err(|source| RpcError::Io { addr, source })
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(RpcError::Timeout { addr, timeout_ms }),
        }
    }
}
