//! The RPC client: one connection per call, with a deadline covering connect, send and receive.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire::{read_msg, write_msg};
use super::{RequestFrame, ResponseFrame};
use crate::codec::{decode, encode};
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
    /// The remote handler answered with an error.
    #[error("rpc error: {0}")]
    Remote(String),
    /// A body could not be encoded or decoded.
    #[error("rpc codec: {0}")]
    Codec(String),
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
    opened: Arc<AtomicU64>,
}

impl RpcClient {
    pub fn new(net: Arc<dyn Net>) -> Self {
        Self { net, opened: Arc::default() }
    }

    /// Connections this client has opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Calls `method` on `addr` with an encoded `body`; waits up to `timeout` for the answer.
    pub async fn call_raw(&self, addr: SocketAddr, method: &str, body: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, RpcError> {
        // Fault point: a deadline far shorter than configured.
        let timeout = if crate::buggify!() { timeout / 10 } else { timeout };
        let timeout_ms = timeout.as_millis() as u64;
        let req = RequestFrame { method: method.to_string(), body };
        let work = async {
            let mut stream = self.net.connect(addr).await.map_err(|source| RpcError::Connect { addr, source })?;
            self.opened.fetch_add(1, Ordering::Relaxed);
            write_msg(&mut *stream, &req).await.map_err(|source| RpcError::Io { addr, source })?;
            read_msg::<_, ResponseFrame>(&mut *stream).await.map_err(|source| RpcError::Io { addr, source })
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(resp)) => resp.result.map(|b| b.into_vec()).map_err(RpcError::Remote),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RpcError::Timeout { addr, timeout_ms }),
        }
    }

    /// Calls `method` with `req`, decoding the answer as `Resp`.
    pub async fn call<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        method: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError> {
        let body = encode(req).map_err(|e| RpcError::Codec(e.to_string()))?;
        let bytes = self.call_raw(addr, method, body, timeout).await?;
        decode(&bytes).map_err(|e| RpcError::Codec(e.to_string()))
    }
}
