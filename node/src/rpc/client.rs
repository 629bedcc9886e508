//! The RPC client: a pool of one long-lived, multiplexed connection per server ([`Conn`]),
//! reconnecting with exponential backoff, and a deadline on every call.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use super::conn::Conn;
use crate::io::Net;

/// First wait after a failed connect to a server; doubles per consecutive failure.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between connect attempts to a server that keeps failing.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Why an RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The request certainly was not delivered: no connection (refused, or backing off after
    /// failures), the connection closed before it was sent, or the in-flight cap stayed full.
    #[error("connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    /// The deadline passed; the request may or may not have been delivered and acted on.
    #[error("rpc to {addr} timed out after {timeout_ms} ms")]
    Timeout { addr: SocketAddr, timeout_ms: u64 },
    /// The connection failed after the request may have been sent.
    #[error("rpc to {addr}: {source}")]
    Io { addr: SocketAddr, source: std::io::Error },
    /// The server's handler returned an error (e.g. an unknown method, a body it cannot decode).
    #[error("rpc handler error: {0}")]
    Remote(String),
    /// The request could not be encoded (or was over the frame limit; not sent), or the response
    /// could not be decoded (the request was served).
    #[error("rpc codec: {0}")]
    Codec(String),
}

impl RpcError {
    /// True only if the request certainly never left this process.
    pub fn not_delivered(&self) -> bool {
        matches!(self, RpcError::Connect { .. })
    }
}

/// The connection slot for one server.
#[derive(Default)]
struct Slot {
    conn: Option<Arc<Conn>>,
    /// Consecutive failed connects; reset by a successful one.
    failures: u32,
    /// No connect is attempted before this instant.
    retry_at: Option<Instant>,
}

struct Pool {
    net: Arc<dyn Net>,
    /// One slot per server address. The async mutex serialises connecting: concurrent callers
    /// wait for the one connect in progress instead of opening their own.
    slots: Mutex<BTreeMap<SocketAddr, Arc<tokio::sync::Mutex<Slot>>>>,
    opened: AtomicU64,
}

/// Calls servers over [`Net`], one multiplexed connection per server. Cheap to clone (the pool
/// is shared).
#[derive(Clone)]
pub struct RpcClient {
    pool: Arc<Pool>,
}

/// The wait before the next connect after `failures` consecutive failures.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (RECONNECT_BACKOFF_MIN * 2u32.pow(doublings)).min(RECONNECT_BACKOFF_MAX)
}

impl RpcClient {
    /// A client with an empty pool.
    pub fn new(net: Arc<dyn Net>) -> Self {
        Self { pool: Arc::new(Pool { net, slots: Mutex::new(BTreeMap::new()), opened: AtomicU64::new(0) }) }
    }

    /// TCP connections this client has opened so far (for tests and metrics).
    pub fn connections_opened(&self) -> u64 {
        self.pool.opened.load(Ordering::SeqCst)
    }

    /// Calls `method` on the server at `addr` with an already-encoded `body`, waiting up to
    /// `timeout` (connecting included) for the response body. Errors: see [`RpcError`].
    pub async fn call_raw(
        &self,
        addr: SocketAddr,
        method: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        // Fault point: a deadline far shorter than configured.
        let timeout = if crate::buggify!("rpc-deadline-cut-tenfold") { timeout / 10 } else { timeout };
        let timeout_ms = timeout.as_millis() as u64;
        let deadline = Instant::now() + timeout;
        let conn = self.connection(addr, deadline).await?;
        conn.request(method, body, deadline, timeout_ms).await
    }

    /// Calls `method` on the server at `addr`: `req` and the response in the binary encoding
    /// ([`crate::codec`]). Errors: see [`RpcError`].
    pub async fn call<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        method: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError> {
        let body = crate::codec::encode(req).map_err(|e| RpcError::Codec(e.to_string()))?;
        let resp = self.call_raw(addr, method, body, timeout).await?;
        crate::codec::decode(&resp).map_err(|e| RpcError::Codec(e.to_string()))
    }

    /// The open connection to `addr`, connecting if there is none (unless backing off).
    async fn connection(&self, addr: SocketAddr, deadline: Instant) -> Result<Arc<Conn>, RpcError> {
        let timed_out = || RpcError::Connect { addr, source: std::io::ErrorKind::TimedOut.into() };
        let slot = {
            let mut slots = self.pool.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.entry(addr).or_default().clone()
        };
        let mut slot = tokio::time::timeout_at(deadline, slot.lock()).await.map_err(|_| timed_out())?;
        if let Some(conn) = slot.conn.as_ref().filter(|c| c.is_open()) {
            return Ok(conn.clone());
        }
        slot.conn = None;
        if let Some(at) = slot.retry_at.filter(|at| *at > Instant::now()) {
            let source = std::io::Error::other(format!(
                "backing off for {} ms after {} failed connects",
                at.saturating_duration_since(Instant::now()).as_millis(),
                slot.failures
            ));
            return Err(RpcError::Connect { addr, source });
        }
        let result = match tokio::time::timeout_at(deadline, self.pool.net.connect(addr)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        };
        match result {
            Ok(stream) => {
                self.pool.opened.fetch_add(1, Ordering::SeqCst);
                slot.failures = 0;
                slot.retry_at = None;
                let conn = Arc::new(Conn::start(addr, stream));
                slot.conn = Some(conn.clone());
                Ok(conn)
            }
            Err(source) => {
                slot.failures = slot.failures.saturating_add(1);
                slot.retry_at = Some(Instant::now() + backoff(slot.failures));
                tracing::debug!(peer = %addr, failures = slot.failures, error = %source, "rpc connect failed");
                Err(RpcError::Connect { addr, source })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_and_stops_at_the_maximum() {
        assert_eq!(backoff(1), RECONNECT_BACKOFF_MIN);
        assert_eq!(backoff(2), RECONNECT_BACKOFF_MIN * 2);
        assert_eq!(backoff(100), RECONNECT_BACKOFF_MAX);
    }
}
