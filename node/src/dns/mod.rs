//! The DNS interface (Consul's "DNS interface" docs; `agent/dns.go`): UDP and TCP on the DNS
//! port (8600), answering names in the configured domain (`consul.`) from this server's local
//! state store, forwarding other names to the configured recursors, and having a server answer
//! what this agent cannot: another datacenter's names, and on a client agent every name in the
//! domain ([`forward`]).
//!
//! Owns: the serve loops over [`crate::io::Net`] (one UDP socket; TCP connections with RFC 1035
//! two-byte length framing) and the glue [`handle_packet`]: parse → [`answer`] → [`trim`] →
//! bytes. What names mean and what is answered lives in [`answer`]; fitting a reply to UDP or TCP
//! in [`trim`]; recursion in [`recursor`]; asking a server in [`forward`]. The hickory-proto crate is only the wire format.
//!
//! Reads are stale reads of the local store, like Consul's default `dns_config.allow_stale`:
//! DNS never waits for the leader. Must never: panic or `unwrap` on network input (a malformed
//! packet is dropped or answered FORMERR), touch sockets other than through `io::Net`, or use
//! randomness other than the server's seeded RNG. Every loop and queue is bounded: recursions and
//! TCP connections in flight by semaphores, a TCP connection by an idle deadline.

pub mod answer;
pub mod cache;
pub mod forward;
pub mod recursor;
pub mod trim;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::io::{BoxStream, Listener, UdpSocket};
use crate::server::Server;
use answer::{Answer, Context, Rejected, Routing};
use cache::InstanceCache;
use trim::Transport;

/// Receive buffer for one UDP query. Queries are small; a longer datagram is cut here and then
/// fails to parse (FORMERR).
const UDP_QUERY_BUFFER_BYTES: usize = 4096;
/// Queries being forwarded to recursors or servers at once; beyond it a query is answered
/// SERVFAIL at once.
const MAX_RECURSIONS_IN_FLIGHT: usize = 64;
/// TCP connections served at once; beyond it new ones are closed.
const MAX_TCP_CONNECTIONS: usize = 128;
/// A TCP connection with no complete query for this long is closed (miekg/dns's read timeout
/// is 2 s per read; we allow an idle client a little longer between pipelined queries).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a socket error before reading again, so a persistent error cannot spin the loop.
const SOCKET_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// What to do with one received packet.
#[derive(Debug)]
pub enum Action {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Forward this query to the recursors, then answer with theirs (or SERVFAIL).
    Recurse(Message),
    /// Have a server answer this query (`packet`, parsed as `req`): one of `datacenter`, or
    /// (`None`) one of our own ([`forward::forward`]).
    Forward { req: Message, packet: Vec<u8>, datacenter: Option<String> },
    /// Send nothing.
    Drop,
}

/// Decides the answer to one packet from the store, without I/O: the whole pipeline the serve
/// loops run, and what the never-panics property test drives with random bytes.
/// `cache` holds the caller's service instances ([`InstanceCache`]).
pub fn handle_packet(packet: &[u8], store: &crate::state::Store, ctx: Context<'_>, transport: Transport, cache: &mut InstanceCache, rng: &mut impl rand::Rng) -> Action {
    let req = match answer::parse_request(packet) {
        Ok(req) => req,
        Err(Rejected::Drop) => return Action::Drop,
        Err(Rejected::Error(resp)) => return resp.to_vec().map_or(Action::Drop, Action::Reply),
    };
    let answer_cap = trim::answer_cap(&req, transport, ctx.config);
    match answer::answer(&req, store, ctx, answer_cap, cache, rng) {
        Answer::Reply { resp, omitted } => trim::encode_fitted(resp, omitted, &req, transport, ctx.config).map_or(Action::Drop, Action::Reply),
        Answer::Recurse => Action::Recurse(req),
        Answer::Forward { datacenter } => Action::Forward { req, packet: packet.to_vec(), datacenter },
    }
}

/// How this agent routes names: a client agent has a server answer them all; a server with a
/// WAN pool sends other datacenters' names there; other servers answer only their own.
fn routing(server: &Server) -> Routing {
    if server.is_client() {
        Routing::ClientAgent
    } else if server.wan.is_some() {
        Routing::Federated
    } else {
        Routing::Local
    }
}

/// [`handle_packet`] against this server's store. A poisoned store answers SERVFAIL.
fn handle(server: &Server, packet: &[u8], transport: Transport, cache: &mut InstanceCache, rng: &mut ChaCha8Rng) -> Action {
    handle_routed(server, packet, transport, routing(server), cache, rng)
}

/// [`handle`] with the given routing.
fn handle_routed(server: &Server, packet: &[u8], transport: Transport, routing: Routing, cache: &mut InstanceCache, rng: &mut ChaCha8Rng) -> Action {
    let ctx = Context { config: &server.config.dns, datacenter: &server.config.datacenter, routing };
    let Ok(applied) = server.state.read() else {
        return match answer::parse_request(packet) {
            Ok(req) => answer::reply_to(&req, ResponseCode::ServFail).to_vec().map_or(Action::Drop, Action::Reply),
            Err(_) => Action::Drop,
        };
    };
    handle_packet(packet, &applied.store, ctx, transport, cache, rng)
}

/// Forwards `req` to the recursors; the bytes to send back (their answer, or SERVFAIL).
async fn recurse(server: &Server, req: &Message) -> Option<Vec<u8>> {
    let cfg = &server.config.dns;
    let packet = req.to_vec().ok()?;
    let timeout = Duration::from_millis(cfg.recursor_timeout_ms);
    if let Some(reply) = recursor::forward(server.io.net.as_ref(), &cfg.recursors, req, &packet, timeout).await {
        return Some(reply);
    }
    tracing::warn!(question = ?req.query().map(|q| q.to_string()), "all DNS recursors failed");
    servfail(req)
}

/// The bytes to send for `action` (none for a dropped query), recursing or asking a server
/// first when it needs that.
async fn finish(server: &Server, action: Action, transport: Transport) -> Option<Vec<u8>> {
    match action {
        Action::Reply(bytes) => Some(bytes),
        Action::Drop => None,
        Action::Recurse(req) => recurse(server, &req).await,
        Action::Forward { req, packet, datacenter } => forward::forward(server, &req, packet, transport, datacenter).await,
    }
}

fn servfail(req: &Message) -> Option<Vec<u8>> {
    let mut resp = answer::reply_to(req, ResponseCode::ServFail);
    resp.set_recursion_available(true);
    resp.to_vec().ok()
}

/// The answer shuffler of one receive loop or TCP connection, seeded from the server's RNG (so
/// simulated runs replay) but owned, so concurrent queries do not contend for the server's lock.
fn shuffle_rng(server: &Server) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(server.rng().gen())
}

/// Receive loops sharing the UDP socket: on a multi-threaded runtime each answers on its own
/// worker, so one slow answer does not hold up the next datagram.
const UDP_RECEIVERS: usize = 4;

/// Serves DNS over UDP on `socket` until the task is aborted (which also stops its receive loops:
/// they live in a `JoinSet` owned by this future).
pub async fn serve_udp(server: Arc<Server>, socket: Box<dyn UdpSocket>) {
    let socket: Arc<dyn UdpSocket> = Arc::from(socket);
    let recursions = Arc::new(Semaphore::new(MAX_RECURSIONS_IN_FLIGHT));
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..UDP_RECEIVERS {
        loops.spawn(receive_loop(server.clone(), socket.clone(), recursions.clone()));
    }
    while loops.join_next().await.is_some() {}
}

/// Receives and answers datagrams until aborted.
async fn receive_loop(server: Arc<Server>, socket: Arc<dyn UdpSocket>, recursions: Arc<Semaphore>) {
    let mut buf = vec![0u8; UDP_QUERY_BUFFER_BYTES];
    let mut rng = shuffle_rng(&server);
    let mut cache = InstanceCache::default();
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(error = %e, "DNS UDP receive failed");
                tokio::time::sleep(SOCKET_ERROR_BACKOFF).await;
                continue;
            }
        };
        match handle(&server, &buf[..len], Transport::Udp, &mut cache, &mut rng) {
            Action::Reply(bytes) => send_udp(socket.as_ref(), &bytes, from).await,
            Action::Drop => {}
            // Recursions and forwards wait on the network: each on its own task, bounded.
            action @ (Action::Recurse(_) | Action::Forward { .. }) => match recursions.clone().try_acquire_owned() {
                Ok(permit) => {
                    let (server, socket) = (server.clone(), socket.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        if let Some(bytes) = finish(&server, action, Transport::Udp).await {
                            send_udp(socket.as_ref(), &bytes, from).await;
                        }
                    });
                }
                Err(_) => {
                    let (Action::Recurse(req) | Action::Forward { req, .. }) = &action else { continue };
                    if let Some(bytes) = servfail(req) {
                        send_udp(socket.as_ref(), &bytes, from).await;
                    }
                }
            },
        }
    }
}

async fn send_udp(socket: &dyn UdpSocket, bytes: &[u8], to: SocketAddr) {
    if let Err(e) = socket.send_to(bytes, to).await {
        tracing::debug!(%to, error = %e, "DNS UDP reply not sent");
    }
}

/// Serves DNS over TCP on `listener` until the task is aborted.
pub async fn serve_tcp(server: Arc<Server>, mut listener: Box<dyn Listener>) {
    let connections = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(error = %e, "DNS TCP accept failed");
                tokio::time::sleep(SOCKET_ERROR_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "DNS TCP connection refused: too many open");
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_tcp_connection(&server, stream).await;
        });
    }
}

/// Answers length-framed queries on one connection in turn, until the client closes it, sends
/// a zero length, errs, or idles past [`TCP_IDLE_TIMEOUT`].
async fn serve_tcp_connection(server: &Server, mut stream: BoxStream) {
    let mut rng = shuffle_rng(server);
    let mut cache = InstanceCache::default();
    loop {
        let query = match tokio::time::timeout(TCP_IDLE_TIMEOUT, read_frame(&mut stream)).await {
            Ok(Ok(Some(query))) => query,
            _ => return,
        };
        let action = handle(server, &query, Transport::Tcp, &mut cache, &mut rng);
        let Some(reply) = finish(server, action, Transport::Tcp).await else { continue };
        let Ok(len) = u16::try_from(reply.len()) else {
            continue; // the fitting in `trim` keeps replies under 64 KiB; a recursor's UDP answer is too
        };
        let mut frame = Vec::with_capacity(reply.len() + 2);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&reply);
        if stream.write_all(&frame).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

/// One RFC 1035 §4.2.2 frame: a two-byte big-endian length, then the message. `None` on a clean
/// end of stream or a zero length.
async fn read_frame(stream: &mut BoxStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = usize::from(u16::from_be_bytes(len));
    if len == 0 {
        return Ok(None);
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok(Some(body))
}
