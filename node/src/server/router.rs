//! Which server a client agent sends its RPCs to (Consul `agent/router.Manager` and the
//! retry loop of `agent/consul/client.go` `Client.RPC`).
//!
//! A client agent holds no Raft: every read and write goes to one server of its datacenter, found
//! through LAN gossip (alive members tagged `role=consul` with this `dc`; the RPC address is the
//! member's gossip IP and its `port` tag). The client keeps using the server that answered last
//! (Consul keeps one server until it fails), starting from a seeded random one, so clients spread
//! over the servers and a run replays. A server that could not be reached, or that answered that
//! it has no leader, is set aside and the next one is tried, up to every known server once:
//! a request is retried only when it certainly was not applied. A server whose call failed in any
//! way (a timeout too) is tried last by the next request.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::forward::{ForwardError, Forwarded};
use super::Server;
use crate::gossip::Member;
use crate::structs::{QueryError, WriteError};

/// An answer a server gave that says the request was not served and certainly not applied, so
/// another server may be asked (Consul `canRetry`: `ErrNoLeader`, and any error for reads).
pub trait RetryElsewhere {
    /// True when another server should be tried.
    fn try_another_server(&self) -> bool;
    /// True when the request may or may not have been applied (never retried elsewhere, except
    /// by the deliberate bug `client_retries_unknown`).
    fn outcome_unknown(&self) -> bool {
        false
    }
}

impl<T> RetryElsewhere for Result<T, WriteError> {
    fn try_another_server(&self) -> bool {
        matches!(self, Err(WriteError::NoLeader))
    }
    fn outcome_unknown(&self) -> bool {
        matches!(self, Err(WriteError::Unknown(_)))
    }
}

impl<T> RetryElsewhere for Result<T, QueryError> {
    fn try_another_server(&self) -> bool {
        matches!(self, Err(QueryError::NoLeader | QueryError::Rpc(_)))
    }
}

impl<T> RetryElsewhere for Result<T, String> {
    fn try_another_server(&self) -> bool {
        false
    }
}

/// The server a client agent prefers (the one that answered last), and the one that failed it
/// last (tried last, Consul's `NotifyFailedServer`).
#[derive(Default)]
pub struct Router {
    preferred: Mutex<Option<SocketAddr>>,
    failed: Mutex<Option<SocketAddr>>,
}

impl Router {
    fn answered(&self, server: SocketAddr) {
        *self.preferred.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
    }

    fn failed(&self, server: SocketAddr) {
        let mut preferred = self.preferred.lock().unwrap_or_else(|e| e.into_inner());
        if *preferred == Some(server) {
            *preferred = None;
        }
        *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
    }
}

/// A gossip member's server RPC address, if it is a live server of datacenter `dc`.
pub fn server_rpc_addr(m: &Member, dc: &str) -> Option<SocketAddr> {
    if !m.is_server_of(dc) {
        return None;
    }
    if !m.status.is_live() {
        return None;
    }
    let port: u16 = m.tags.get("port")?.parse().ok()?;
    Some(SocketAddr::new(m.addr.ip(), port))
}

impl Server {
    /// Whether this agent is a client (no Raft of its own: it forwards every RPC to a server).
    pub fn is_client(&self) -> bool {
        !self.config.server
    }

    /// RPC addresses of the live servers of this datacenter that LAN gossip knows, by node name.
    pub fn known_servers(&self) -> Vec<SocketAddr> {
        let dc = &self.config.datacenter;
        self.gossip.members().iter().filter_map(|m| server_rpc_addr(m, dc)).collect()
    }

    /// The servers to try, in order: the preferred one first, then the rest from a seeded random
    /// offset (so clients spread their load).
    fn servers_to_try(&self) -> Vec<SocketAddr> {
        let mut servers = self.known_servers();
        if servers.is_empty() {
            return servers;
        }
        let start = self.rng().gen_range(0..servers.len());
        servers.rotate_left(start);
        let failed = *self.router.failed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = failed.and_then(|f| servers.iter().position(|s| *s == f)) {
            let f = servers.remove(pos);
            servers.push(f);
        }
        let preferred = *self.router.preferred.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = preferred.and_then(|p| servers.iter().position(|s| *s == p)) {
            let p = servers.remove(pos);
            servers.insert(0, p);
        }
        servers
    }

    /// Sends `args` to a server's `method` as a client's request (not yet forwarded: the server
    /// routes it to its leader), each attempt waiting up to `timeout`. Tries the next known
    /// server when one cannot be reached or answers with a retryable error
    /// ([`RetryElsewhere`]). Errors: [`ForwardError::NoServers`] when gossip knows no live
    /// server; the last attempt's RPC error otherwise.
    pub async fn forward_to_server<Req: Serialize, Resp: DeserializeOwned + RetryElsewhere>(
        &self,
        method: &str,
        args: Req,
        timeout: Duration,
    ) -> Result<Resp, ForwardError> {
        let body = Forwarded { forwarded: false, args };
        // Deliberate bug `client_retries_unknown`: "it failed, so try the next server", even
        // when the request may have been applied.
        let bug = self.config.bugs.client_retries_unknown;
        self.call_servers(method, &body, timeout, bug, |r: &Resp| r.try_another_server() || (bug && r.outcome_unknown())).await
    }

    /// Calls `method` with `body` on the known servers in turn until one is reached and its answer
    /// is not `retry`-able; remembers that server as the preferred one. A failed call goes on to
    /// the next server only when it certainly was not delivered (or, with `retry_any_error`,
    /// always). Errors: as [`Server::forward_to_server`].
    pub async fn call_servers<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        method: &str,
        body: &Req,
        timeout: Duration,
        retry_any_error: bool,
        retry: impl Fn(&Resp) -> bool,
    ) -> Result<Resp, ForwardError> {
        let mut last = Err(ForwardError::NoServers);
        for server in self.servers_to_try() {
            let answer: Result<Resp, _> = self.rpc.call(server, method, body, timeout).await;
            let try_next = match &answer {
                Ok(resp) => retry(resp),
                Err(e) => retry_any_error || e.not_delivered(),
            };
            // Any failure moves the next request elsewhere; only a certain non-delivery or a
            // retryable answer moves this one.
            match &answer {
                Ok(_) if !try_next => self.router.answered(server),
                _ => self.router.failed(server),
            }
            if !try_next {
                return Ok(answer?);
            }
            tracing::debug!(%server, method, "server did not serve the request; trying another");
            last = answer.map_err(ForwardError::from);
        }
        last
    }

    /// `/v1/status/leader`: the leader's RPC address (`""` when none is known). A client agent
    /// asks a server (Consul forwards `Status.Leader`).
    pub async fn status_leader(&self) -> Result<String, ForwardError> {
        if !self.is_client() {
            return Ok(self.leader().map(|(_, addr)| addr).unwrap_or_default());
        }
        self.call_servers(super::endpoints::STATUS_LEADER, &(), STATUS_TIMEOUT, false, |a: &String| a.is_empty()).await
    }

    /// `/v1/status/peers`: the Raft voters' RPC addresses. A client agent asks a server.
    pub async fn status_peers(&self) -> Result<Vec<String>, ForwardError> {
        if !self.is_client() {
            return Ok(self.voter_addrs());
        }
        self.call_servers(super::endpoints::STATUS_PEERS, &(), STATUS_TIMEOUT, false, |p: &Vec<String>| p.is_empty()).await
    }
}

/// How long a client agent waits for a server's `Status.*` answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::MemberStatus;
    use std::collections::BTreeMap;

    fn member(role: &str, dc: &str, port: Option<&str>, status: MemberStatus) -> Member {
        let mut tags = BTreeMap::from([("role".to_string(), role.to_string()), ("dc".to_string(), dc.to_string())]);
        if let Some(p) = port {
            tags.insert("port".into(), p.into());
        }
        Member { name: "n".into(), addr: "10.0.0.7:8301".parse().unwrap(), tags, status, generation: 1 }
    }

    #[test]
    fn only_live_servers_of_this_datacenter_with_a_port_are_rpc_targets() {
        let want: SocketAddr = "10.0.0.7:8300".parse().unwrap();
        assert_eq!(server_rpc_addr(&member("consul", "dc1", Some("8300"), MemberStatus::Alive), "dc1"), Some(want));
        assert_eq!(server_rpc_addr(&member("consul", "dc1", Some("8300"), MemberStatus::Suspect), "dc1"), Some(want));
        assert_eq!(server_rpc_addr(&member("consul", "dc1", Some("8300"), MemberStatus::Failed), "dc1"), None);
        assert_eq!(server_rpc_addr(&member("consul", "dc1", Some("8300"), MemberStatus::Left), "dc1"), None);
        assert_eq!(server_rpc_addr(&member("node", "dc1", Some("8300"), MemberStatus::Alive), "dc1"), None);
        assert_eq!(server_rpc_addr(&member("consul", "dc2", Some("8300"), MemberStatus::Alive), "dc1"), None);
        assert_eq!(server_rpc_addr(&member("consul", "dc1", None, MemberStatus::Alive), "dc1"), None);
        assert_eq!(server_rpc_addr(&member("consul", "dc1", Some("x"), MemberStatus::Alive), "dc1"), None);
    }

    #[test]
    fn only_answers_that_were_certainly_not_applied_go_to_another_server() {
        assert!(Err::<(), _>(WriteError::NoLeader).try_another_server());
        assert!(!Err::<(), _>(WriteError::Unknown("x".into())).try_another_server());
        assert!(!Ok::<(), WriteError>(()).try_another_server());
        assert!(Err::<(), _>(QueryError::NoLeader).try_another_server());
        assert!(!Err::<(), _>(QueryError::NoPathToDatacenter).try_another_server());
        assert!(!Err::<(), String>("x".into()).try_another_server());
    }
}
