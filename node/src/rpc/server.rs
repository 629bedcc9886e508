//! The RPC server: accepts connections on the server port and serves each connection's requests
//! concurrently (one task per request), writing responses through one writer task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Semaphore};

use super::conn::MAX_IN_FLIGHT_PER_CONN;
use super::wire::{encode_frame, Envelope, FrameReader};
use super::RpcHandler;
use crate::io::{BoxStream, Listener};

/// A connection with no request in flight that sends nothing for this long is closed: 5 min.
/// (Frees connections whose client vanished without a FIN; clients reconnect on demand.)
pub const SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Accepts connections forever, one task per connection.
pub async fn serve(handler: Arc<dyn RpcHandler>, mut listener: Box<dyn Listener>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(serve_conn(handler.clone(), stream, peer));
            }
            Err(e) => {
                tracing::warn!(error = %e, "rpc accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// Serves one connection until the peer closes it, sends a bad frame, or idles out. At most
/// [`MAX_IN_FLIGHT_PER_CONN`] requests run at once; past that the connection is not read.
async fn serve_conn(handler: Arc<dyn RpcHandler>, stream: BoxStream, peer: SocketAddr) {
    let (rd, mut wr) = tokio::io::split(stream);
    let (outbox, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = queue.recv().await {
            if async { wr.write_all(&bytes).await?; wr.flush().await }.await.is_err() {
                return;
            }
        }
    });
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_CONN));
    let mut frames = FrameReader::new(rd);
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let env = match tokio::time::timeout(SERVER_IDLE_TIMEOUT, frames.next()).await {
            Ok(Ok(env)) => env,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "rpc connection ends");
                break;
            }
            // Reading is cancel-safe, so an idle check that finds work in flight just resumes.
            Err(_) if permits.available_permits() + 1 < MAX_IN_FLIGHT_PER_CONN => continue,
            Err(_) => {
                tracing::debug!(%peer, "rpc connection idle; closing");
                break;
            }
        };
        let Envelope::Request { id, method, body } = env else {
            tracing::warn!(%peer, "rpc protocol error: a response sent to the server; closing");
            break;
        };
        let (handler, outbox) = (handler.clone(), outbox.clone());
        tokio::spawn(async move {
            let label = method.clone();
            let reply = match handler.handle(method, body).await {
                Ok(body) => Envelope::Ok { id, body },
                Err(error) => Envelope::Err { id, error },
            };
            handler.observe(&label, matches!(reply, Envelope::Ok { .. }));
            let bytes = encode_frame(&reply).or_else(|e| encode_frame(&Envelope::Err { id, error: e.to_string() }));
            if let Ok(bytes) = bytes {
                let _ = outbox.send(bytes);
            }
            drop(permit);
        });
    }
    // Requests still running finish, but their answers have nowhere to go.
    writer.abort();
}
