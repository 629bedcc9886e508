//! Forwarding names outside our domain to upstream resolvers (Consul's `recursors`).
//!
//! Source: Consul's DNS docs ("recursors", `dns_config.recursor_timeout`) and `agent/dns.go`
//! `handleRecurse`. The query goes to each recursor in the configured order over UDP, from a
//! fresh socket bound through [`crate::io::Net`], with a deadline per recursor. A recursor that
//! does not answer in time, answers garbage, or answers with any code other than NOERROR or
//! NXDOMAIN is skipped for the next (Consul #3640: recursors must fall through). When all fail the
//! client gets SERVFAIL with RA set. Never called without recursors: the answer core answers
//! REFUSED then.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};

use crate::io::Net;

/// The largest datagram a recursor's answer may be (the whole UDP payload range).
const MAX_RECURSOR_REPLY_BYTES: usize = 65_535;
/// Stray datagrams (wrong id or sender) read and ignored per recursor before giving up on it.
const MAX_STRAY_DATAGRAMS: usize = 16;

/// Why one recursor gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RecursorError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("undecodable answer: {0}")]
    Malformed(String),
    #[error("answered {0}")]
    Rcode(ResponseCode),
    #[error("only stray datagrams arrived")]
    Stray,
}

/// Forwards `req` (already encoded as `packet`) to `recursors` in order; returns the first
/// usable answer's bytes as received, or `None` when every recursor failed (each failure is
/// logged). The caller answers SERVFAIL then.
pub async fn forward(net: &dyn Net, recursors: &[SocketAddr], req: &Message, packet: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    for &recursor in recursors {
        match tokio::time::timeout(timeout, exchange(net, recursor, req.id(), packet)).await {
            Ok(Ok(reply)) => return Some(reply),
            Ok(Err(e)) => tracing::warn!(%recursor, error = %e, "DNS recursor failed"),
            Err(_) => tracing::warn!(%recursor, error = %RecursorError::Timeout(timeout), "DNS recursor failed"),
        }
    }
    None
}

/// One query to one recursor: the first datagram from it with our id that decodes and has an
/// acceptable response code.
async fn exchange(net: &dyn Net, recursor: SocketAddr, id: u16, packet: &[u8]) -> Result<Vec<u8>, RecursorError> {
    let local = match recursor.ip() {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let socket = net.bind_udp(local).await?;
    socket.send_to(packet, recursor).await?;
    let mut buf = vec![0u8; MAX_RECURSOR_REPLY_BYTES];
    for _ in 0..MAX_STRAY_DATAGRAMS {
        let (len, from) = socket.recv_from(&mut buf).await?;
        if from != recursor {
            continue;
        }
        let bytes = &buf[..len];
        let reply = Message::from_vec(bytes).map_err(|e| RecursorError::Malformed(e.to_string()))?;
        if reply.id() != id {
            continue;
        }
        return match reply.response_code() {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(bytes.to_vec()),
            code => Err(RecursorError::Rcode(code)),
        };
    }
    Err(RecursorError::Stray)
}
