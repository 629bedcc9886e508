//! Having a server answer a DNS query this agent cannot: a name of another datacenter (Consul's
//! DNS asks a server there, `agent/dns.go` with the query's `Datacenter`), or, on a client agent,
//! any name in the domain (a client holds no catalog; Consul's client agents ask their servers).
//!
//! The query travels whole: [`DNS_QUERY`] carries its bytes to a server, of our datacenter
//! ([`Server::call_servers`], the next server when one is not reached) or of the named one
//! ([`Server::forward_dc`], through one of our servers on a client agent), which answers it as if
//! it had arrived on its own DNS port ([`answer_forwarded`]), fitted to the original transport.
//! A datacenter no server can reach is answered here, NXDOMAIN with our SOA (as before
//! federation); any other failure is SERVFAIL.

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::Message;
use serde::{Deserialize, Serialize};

use super::cache::InstanceCache;
use super::trim::Transport;
use super::{finish, handle, handle_routed, servfail, shuffle_rng, Action, Routing};
use crate::server::forward::{ForwardError, Forwarded};
use crate::server::Server;

/// The RPC that asks a server to answer a DNS query (Concord-only; Consul's agents send the
/// catalog RPC behind the query instead). Body: `Forwarded<DnsQuery>`; answer:
/// `Option<Vec<u8>>`, the reply's bytes (`None`: the query is not worth a reply).
pub const DNS_QUERY: &str = "Concord.DnsQuery";

/// How long a forwarded query may take (Consul's default `dns_config.recursor_timeout` is 2 s).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// The body of [`DNS_QUERY`]: the query as received, and whether it came over TCP (the reply is
/// fitted to that transport).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DnsQuery {
    pub packet: Vec<u8>,
    pub tcp: bool,
}

/// Asks a server (of `datacenter`, or of ours) to answer `packet` (parsed as `req`); the bytes to
/// send back. No path to that datacenter: NXDOMAIN with our SOA. Other failures: SERVFAIL.
pub async fn forward(server: &Server, req: &Message, packet: Vec<u8>, transport: Transport, datacenter: Option<String>) -> Option<Vec<u8>> {
    let query = DnsQuery { packet, tcp: transport == Transport::Tcp };
    let answer: Result<Option<Vec<u8>>, ForwardError> = match datacenter.as_deref() {
        Some(dc) => server.forward_dc(dc, DNS_QUERY, &query, FORWARD_TIMEOUT).await,
        None => {
            let body = Forwarded { forwarded: false, args: &query };
            server.call_servers(DNS_QUERY, &body, FORWARD_TIMEOUT, false, |_: &Option<Vec<u8>>| false).await
        }
    };
    match answer {
        Ok(reply) => reply,
        Err(ForwardError::NoPathToDatacenter) => {
            let (mut cache, mut rng) = (InstanceCache::default(), shuffle_rng(server));
            match handle_routed(server, &query.packet, transport, Routing::Local, &mut cache, &mut rng) {
                Action::Reply(bytes) => Some(bytes),
                _ => servfail(req),
            }
        }
        Err(e) => {
            tracing::debug!(datacenter = ?datacenter, error = %e, "DNS query not answered by a server");
            servfail(req)
        }
    }
}

/// Serves [`DNS_QUERY`]: answers `query` as if it had arrived on this agent's DNS port (a name
/// of yet another datacenter goes there in turn; a forwarded query never comes back here, since
/// it names the receiver's own datacenter or another one).
pub async fn answer_forwarded(server: &Arc<Server>, query: DnsQuery) -> Option<Vec<u8>> {
    let transport = if query.tcp { Transport::Tcp } else { Transport::Udp };
    let (mut cache, mut rng) = (InstanceCache::default(), shuffle_rng(server));
    let action = handle(server, &query.packet, transport, &mut cache, &mut rng);
    if let Action::Forward { req, datacenter: None, .. } = &action {
        // Only a client agent routes to its own servers, and servers are what answer this RPC.
        return servfail(req);
    }
    finish(server, action, transport).await
}
