//! The agent's RPC endpoints: the server core's ([`crate::server::endpoints`]) plus those of the
//! layers above it, which the core cannot name without importing them (today one: a DNS query a
//! client agent or another datacenter forwards, [`crate::dns::forward`]).

use std::sync::Arc;

use async_trait::async_trait;

use crate::codec::{decode, encode};
use crate::dns::forward::{answer_forwarded, DnsQuery, DNS_QUERY};
use crate::rpc::RpcHandler;
use crate::server::forward::Forwarded;
use crate::server::Server;

/// Dispatches [`DNS_QUERY`] to the DNS layer and every other method to the server core.
pub struct AgentRpc(pub Arc<Server>);

#[async_trait]
impl RpcHandler for AgentRpc {
    async fn handle(&self, method: String, body: Vec<u8>) -> Result<Vec<u8>, String> {
        if method == DNS_QUERY {
            let query: Forwarded<DnsQuery> = decode(&body).map_err(|e| format!("bad request body: {e}"))?;
            return encode(&answer_forwarded(&self.0, query.args).await).map_err(|e| e.to_string());
        }
        self.0.handle(method, body).await
    }
}
