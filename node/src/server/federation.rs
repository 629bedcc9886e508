//! Other datacenters: `?dc=` forwarding and the list of datacenters (Consul
//! `agent/consul/rpc.go` `forwardDC`, `agent/router/router.go` `FindRoute`,
//! `catalog_endpoint.go` `ListDatacenters`).
//!
//! A request whose `?dc=` names another datacenter goes, unchanged and not marked forwarded, to
//! a live server of that datacenter picked from the WAN pool; that server handles it as a request
//! of its own datacenter (and forwards it to its own leader, one hop, as [`super::forward`]
//! bounds it). A server that certainly did not get the call (no connection) is skipped for the
//! next one of that datacenter; any other failure is the answer. No live server: Consul's
//! "No path to datacenter". A client agent has no WAN pool: it wraps the call in a
//! [`DcRequest`] and sends it to one of its own servers ([`Server::call_servers`]), which
//! forwards it. Never does: forward a request to its own datacenter through the WAN, or forward
//! a request it received from another datacenter again (it arrives naming the receiver's own).

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::forward::{ForwardError, Forwarded};
use super::Server;
use crate::codec::{decode, encode};
use crate::rpc::RpcHandler;
use crate::structs::{CommandResult, QueryOptions, WriteError};

/// A client agent's request that one of its servers forward `method` to datacenter `datacenter`
/// (Concord-only; Consul clients send the RPC itself, which carries its `Datacenter`).
pub const DC_FORWARD: &str = "Concord.ForwardDC";
/// `GET /v1/catalog/datacenters` asked of a server by a client agent.
pub const CATALOG_LIST_DATACENTERS: &str = "Catalog.ListDatacenters";

/// Extra time a cross-datacenter call gets beyond the remote server's own deadline (it may
/// itself forward to its leader), so its answer rather than a blind timeout comes back.
pub const DC_FORWARD_SLACK: Duration = Duration::from_secs(1);
/// How long a client agent waits for a server's list of datacenters.
const LIST_DATACENTERS_TIMEOUT: Duration = Duration::from_secs(2);

/// The body of [`DC_FORWARD`]: the RPC to make in another datacenter, already encoded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DcRequest {
    pub datacenter: String,
    pub method: String,
    /// The encoded `Forwarded { forwarded: false, args }` body of `method`.
    pub body: Vec<u8>,
    /// How long the forwarding server waits for the other datacenter's answer, in ms.
    pub timeout_ms: u64,
}

/// Why a server could not forward a [`DcRequest`]: the answer of [`DC_FORWARD`] is
/// `Result<Vec<u8>, DcError>` (the remote method's encoded answer on success).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DcError {
    /// No live server of that datacenter in the WAN pool.
    NoPath,
    /// The call failed; `not_delivered`: it certainly did not reach the other datacenter.
    Failed { message: String, not_delivered: bool },
}

impl From<DcError> for ForwardError {
    fn from(e: DcError) -> Self {
        match e {
            DcError::NoPath => ForwardError::NoPathToDatacenter,
            DcError::Failed { message, not_delivered } => ForwardError::Remote { message, not_delivered },
        }
    }
}

impl From<ForwardError> for DcError {
    fn from(e: ForwardError) -> Self {
        match e {
            ForwardError::NoPathToDatacenter => DcError::NoPath,
            e => DcError::Failed { not_delivered: e.not_delivered(), message: e.to_string() },
        }
    }
}

impl Server {
    /// The datacenter `opts` names with `?dc=`, if it is not this agent's own. With the deliberate
    /// bug `dc_forward_ignores_dc`, never: every request is served in this datacenter.
    pub fn foreign_datacenter<'a>(&self, opts: &'a QueryOptions) -> Option<&'a str> {
        if self.config.bugs.dc_forward_ignores_dc {
            return None;
        }
        opts.datacenter.as_deref().filter(|dc| *dc != self.config.datacenter)
    }

    /// A Raft write `method` from the HTTP API, in the datacenter `opts` names with `?dc=`: sent
    /// to a server there when it is another one, which applies it as its own datacenter's write
    /// (Consul `forwardDC`), else `local(req)` here. Errors: "No path to datacenter" (certainly
    /// not applied), an unknown outcome when the call may have arrived, or the write's own.
    pub async fn write_in<Req, Fut>(
        &self,
        opts: &QueryOptions,
        method: &str,
        req: Req,
        local: impl FnOnce(Req) -> Fut,
    ) -> Result<CommandResult, WriteError>
    where
        Req: Serialize,
        Fut: std::future::Future<Output = Result<CommandResult, WriteError>>,
    {
        match self.foreign_datacenter(opts) {
            Some(dc) => {
                let timeout = super::write::RPC_HOLD_TIMEOUT + super::write::FORWARD_SLACK;
                let answer: Result<Result<CommandResult, WriteError>, _> = self.forward_dc(dc, method, req, timeout).await;
                answer.unwrap_or_else(|e| Err(e.into_write_error()))
            }
            None => local(req).await,
        }
    }

    /// Sends `args` to `method` on a server of datacenter `dc`, as a request of that
    /// datacenter's own (not marked forwarded), waiting up to `timeout` (plus
    /// [`DC_FORWARD_SLACK`] per hop). Errors: [`ForwardError::NoPathToDatacenter`] when no live
    /// server of `dc` is known; the call's failure otherwise.
    pub async fn forward_dc<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        dc: &str,
        method: &str,
        args: Req,
        timeout: Duration,
    ) -> Result<Resp, ForwardError> {
        let body = encode(&Forwarded { forwarded: false, args }).map_err(|e| ForwardError::Remote { message: e.to_string(), not_delivered: true })?;
        let raw = if self.is_client() {
            let timeout_ms = (timeout + DC_FORWARD_SLACK).as_millis() as u64;
            let req = DcRequest { datacenter: dc.to_string(), method: method.to_string(), body, timeout_ms };
            let answer: Result<Vec<u8>, DcError> =
                self.call_servers(DC_FORWARD, &req, timeout + 2 * DC_FORWARD_SLACK, false, |_: &Result<Vec<u8>, DcError>| false).await?;
            answer?
        } else {
            self.send_to_datacenter(dc, method, body, timeout + DC_FORWARD_SLACK).await?
        };
        decode(&raw).map_err(|e| ForwardError::Remote { message: format!("bad answer from datacenter {dc}: {e}"), not_delivered: false })
    }

    /// The RPC addresses of the live servers of `dc` in this server's WAN view, from a seeded
    /// random one on (Consul's router shuffles them), so load spreads and a run replays.
    fn servers_in(&self, dc: &str) -> Vec<SocketAddr> {
        let Some(wan) = &self.wan else { return Vec::new() };
        let mut servers = crate::gossip::wan::servers_of(&wan.members(), dc);
        if !servers.is_empty() {
            let start = self.rng().gen_range(0..servers.len());
            servers.rotate_left(start);
        }
        servers
    }

    /// Calls `method` with the encoded `body` on the live servers of `dc` in turn until one gets
    /// it. Errors: no live server (NoPathToDatacenter); the last failure.
    async fn send_to_datacenter(&self, dc: &str, method: &str, body: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, ForwardError> {
        let mut last = ForwardError::NoPathToDatacenter;
        for server in self.servers_in(dc) {
            match self.rpc.call_raw(server, method, body.clone(), timeout).await {
                Ok(answer) => return Ok(answer),
                Err(e) if e.not_delivered() => {
                    tracing::debug!(%server, datacenter = dc, method, error = %e, "server of another datacenter not reached; trying another");
                    last = e.into();
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last)
    }

    /// [`DC_FORWARD`]: a client agent's request for another datacenter. Forwarded there; one that
    /// names this datacenter is served here.
    pub async fn handle_dc_forward(&self, req: DcRequest) -> Result<Vec<u8>, DcError> {
        let timeout = Duration::from_millis(req.timeout_ms);
        if req.datacenter == self.config.datacenter {
            return self.handle(req.method, req.body).await.map_err(|message| DcError::Failed { message, not_delivered: false });
        }
        Ok(self.send_to_datacenter(&req.datacenter, &req.method, req.body, timeout).await?)
    }

    /// The datacenters this agent knows: from the WAN pool on a server
    /// ([`crate::gossip::wan::datacenters`]); a client agent asks one of its servers. Errors: a
    /// client agent that reaches no server.
    pub async fn datacenters(&self) -> Result<Vec<String>, ForwardError> {
        if self.is_client() {
            return self.call_servers(CATALOG_LIST_DATACENTERS, &(), LIST_DATACENTERS_TIMEOUT, false, |l: &Vec<String>| l.is_empty()).await;
        }
        Ok(self.local_datacenters())
    }

    /// This server's own answer to [`CATALOG_LIST_DATACENTERS`].
    pub fn local_datacenters(&self) -> Vec<String> {
        let members = self.wan.as_ref().map(|w| w.members()).unwrap_or_default();
        crate::gossip::wan::datacenters(&members, &self.config.datacenter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dc_errors_keep_whether_the_call_was_delivered() {
        let e: ForwardError = DcError::Failed { message: "x".into(), not_delivered: true }.into();
        assert!(e.not_delivered());
        let e: ForwardError = DcError::Failed { message: "x".into(), not_delivered: false }.into();
        assert!(!e.not_delivered());
        assert!(matches!(ForwardError::from(DcError::NoPath), ForwardError::NoPathToDatacenter));
        assert_eq!(DcError::from(ForwardError::NoPathToDatacenter), DcError::NoPath);
    }

    #[test]
    fn no_path_answers_consuls_text_for_reads_and_writes() {
        assert_eq!(ForwardError::NoPathToDatacenter.into_query_error().to_string(), "No path to datacenter");
        let w = ForwardError::NoPathToDatacenter.into_write_error();
        assert_eq!(w.to_string(), "No path to datacenter");
        assert!(w.certainly_not_applied());
        let unknown = ForwardError::Remote { message: "timed out".into(), not_delivered: false }.into_write_error();
        assert!(!unknown.certainly_not_applied(), "a call that may have arrived is an unknown outcome");
    }
}
