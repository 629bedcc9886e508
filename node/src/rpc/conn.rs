//! One multiplexed client connection: many requests in flight over one stream, matched to their
//! responses by id, in any order.
//!
//! A writer task sends queued requests; a reader task routes responses to the waiting callers
//! and expires requests at their deadlines, whether or not the caller is still waiting (an HTTP
//! client may have given up and dropped it). An expired request is forgotten (a late response is
//! dropped) and leaves the connection to the others, unless nothing at all arrived on the
//! connection since it was sent: then the connection is presumed dead and closed. (turmoil's TCP
//! does not retransmit, so a segment lost in a partition stalls the stream forever; real TCP can
//! also hang on a dead peer.)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::client::RpcError;
use super::wire::{encode_frame, Envelope, FrameReader, WireError};
use crate::io::BoxStream;

/// Most requests one connection carries at once; further callers wait (within their deadline),
/// and the server stops reading the connection. Raft traffic shares the connection with forwarded
/// blocking queries, so the cap is well above any expected number of concurrent queries.
pub const MAX_IN_FLIGHT_PER_CONN: usize = 1024;

type Reply = Result<Vec<u8>, String>;

/// A request sent (or queued) and not yet answered or expired.
struct Pending {
    tx: oneshot::Sender<Reply>,
    deadline: Instant,
    /// [`Shared::received`] when the request was registered.
    received_before: u64,
}

/// State shared by the connection handle and its reader and writer tasks.
struct Shared {
    addr: SocketAddr,
    open: AtomicBool,
    /// Requests waiting for a response, by id.
    pending: Mutex<BTreeMap<u64, Pending>>,
    /// Frames received so far (progress, for the dead-connection test).
    received: AtomicU64,
    /// Wakes the reader when a request is registered (its deadline may be the earliest).
    registered: Notify,
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The earliest deadline among pending requests.
    fn next_deadline(&self) -> Option<Instant> {
        self.pending().values().map(|p| p.deadline).min()
    }

    /// Forgets requests whose deadline has passed (their callers, if still waiting, time out
    /// on their own). Returns true if one of them saw nothing arrive on the connection since it
    /// was sent: the connection is presumed dead.
    fn expire(&self, now: Instant) -> bool {
        let received = self.received.load(Ordering::SeqCst);
        let mut dead = false;
        self.pending().retain(|_, p| {
            let expired = p.deadline <= now;
            dead |= expired && p.received_before == received;
            !expired
        });
        dead
    }

    /// Marks the connection closed and fails every waiting caller (their receivers see the
    /// sender dropped).
    fn close(&self, why: &str) {
        if self.open.swap(false, Ordering::SeqCst) {
            tracing::debug!(peer = %self.addr, why, "rpc connection closed");
        }
        self.pending().clear();
    }
}

/// A live connection to one server. Dropping it stops its tasks and closes the socket.
pub struct Conn {
    shared: Arc<Shared>,
    next_id: AtomicU64,
    permits: Semaphore,
    outbox: mpsc::UnboundedSender<(u64, Vec<u8>)>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.close("dropped");
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Conn {
    /// Takes over `stream` (already connected to `addr`) and starts its reader and writer.
    pub fn start(addr: SocketAddr, stream: BoxStream) -> Self {
        let shared = Arc::new(Shared {
            addr,
            open: AtomicBool::new(true),
            pending: Mutex::new(BTreeMap::new()),
            received: AtomicU64::new(0),
            registered: Notify::new(),
        });
        let (rd, mut wr) = tokio::io::split(stream);
        let (outbox, mut queue) = mpsc::unbounded_channel::<(u64, Vec<u8>)>();
        let writer = {
            let shared = shared.clone();
            tokio::spawn(async move {
                while let Some((id, bytes)) = queue.recv().await {
                    // A request whose caller gave up, or whose deadline passed, is not sent at all.
                    let live = shared.pending().get(&id).is_some_and(|p| !p.tx.is_closed() && p.deadline > Instant::now());
                    if !live {
                        continue;
                    }
                    if let Err(e) = async { wr.write_all(&bytes).await?; wr.flush().await }.await {
                        shared.close(&format!("write: {e}"));
                        return;
                    }
                }
            })
        };
        let reader = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut frames = FrameReader::new(rd);
                loop {
                    let next_deadline = shared.next_deadline();
                    let expiry = async {
                        match next_deadline {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    };
                    // `FrameReader::next` is cancel-safe, so losing this race loses no bytes.
                    let frame = tokio::select! {
                        biased;
                        frame = frames.next() => frame,
                        () = shared.registered.notified() => continue,
                        () = expiry => {
                            if shared.expire(Instant::now()) {
                                shared.close("a request's deadline passed with nothing received since it was sent");
                                return;
                            }
                            continue;
                        }
                    };
                    let (id, reply) = match frame {
                        Ok(Envelope::Ok { id, body }) => (id, Ok(body)),
                        Ok(Envelope::Err { id, error }) => (id, Err(error)),
                        Ok(Envelope::Request { .. }) => {
                            shared.close("protocol error: a request from the server");
                            return;
                        }
                        Err(e) => {
                            shared.close(&e.to_string());
                            return;
                        }
                    };
                    shared.received.fetch_add(1, Ordering::SeqCst);
                    // A response nobody waits for any more (deadline passed) is dropped.
                    if let Some(p) = shared.pending().remove(&id) {
                        let _ = p.tx.send(reply);
                    }
                }
            })
        };
        Self {
            shared,
            next_id: AtomicU64::new(1),
            permits: Semaphore::new(MAX_IN_FLIGHT_PER_CONN),
            outbox,
            tasks: [writer, reader],
        }
    }

    /// Whether the connection can still carry requests.
    pub fn is_open(&self) -> bool {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Sends one request and waits for its response until `deadline`.
    ///
    /// Errors: [`RpcError::Connect`] when the request certainly was not sent (connection already
    /// closed, or the in-flight cap stayed full until the deadline); [`RpcError::Codec`] when the
    /// request is too large; [`RpcError::Timeout`] or [`RpcError::Io`] when it may have been
    /// delivered; [`RpcError::Remote`] when the handler returned an error.
    /// `timeout_ms` is the caller's whole deadline, for the error message.
    pub async fn request(
        &self,
        method: &str,
        body: Vec<u8>,
        deadline: Instant,
        timeout_ms: u64,
    ) -> Result<Vec<u8>, RpcError> {
        let addr = self.shared.addr;
        let not_sent = |why: &str| RpcError::Connect { addr, source: std::io::Error::other(why.to_string()) };
        let _permit = match tokio::time::timeout_at(deadline, self.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(not_sent("connection closed")),
            Err(_) => return Err(not_sent("in-flight request limit reached until the deadline")),
        };
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let bytes = encode_frame(&Envelope::Request { id, method: method.to_string(), body }).map_err(|e| match e {
            WireError::Codec(c) => RpcError::Codec(c.to_string()),
            other => RpcError::Codec(other.to_string()),
        })?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.shared.pending();
            if !self.is_open() {
                return Err(not_sent("connection closed"));
            }
            let received_before = self.shared.received.load(Ordering::SeqCst);
            pending.insert(id, Pending { tx, deadline, received_before });
        }
        self.shared.registered.notify_one();
        if self.outbox.send((id, bytes)).is_err() {
            self.shared.pending().remove(&id);
            return Err(not_sent("connection closed"));
        }
        // On timeout (or if the reader expired the request at the same instant) the entry is
        // left to the reader, which also judges whether the connection is dead.
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Ok(body))) => Ok(body),
            Ok(Ok(Err(remote))) => Err(RpcError::Remote(remote)),
            Ok(Err(_)) if Instant::now() >= deadline => Err(RpcError::Timeout { addr, timeout_ms }),
            Ok(Err(_)) => Err(RpcError::Io { addr, source: std::io::Error::other("connection lost before the response") }),
            Err(_) => Err(RpcError::Timeout { addr, timeout_ms }),
        }
    }
}
