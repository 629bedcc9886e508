//! `GET /v1/agent/members`: the LAN gossip pool as this agent sees it, in Consul's shape.
//!
//! Source: Consul HTTP API "List Members" (`website/content/api-docs/agent/index.mdx`) and
//! `agent/agent_endpoint.go` (`AgentMembers`), which renders serf's `Member`: `Name`, `Addr`,
//! `Port`, `Tags`, `Status` (1 alive, 2 leaving, 3 left, 4 failed), and the memberlist/serf
//! protocol ranges (`ProtocolMin/Max/Cur`, `DelegateMin/Max/Cur`). `?wan` lists the WAN pool
//! (servers of every datacenter, named `<node>.<dc>`; [`crate::gossip::wan`]); on a client agent,
//! which has no WAN pool, Consul's `WANMembers()` is nil: Concord answers `[]`. `?segment` and
//! `?partition` are accepted and ignored (one segment).
//!
//! `PUT /v1/agent/join/<address>` (Consul `AgentJoin`): asks the LAN pool to join through one
//! gossip address (`ip`, or `ip:port`, default port 8301), and answers once that member is seen
//! alive; `?wan` joins the WAN pool (default port 8302; a client agent answers Consul's 500
//! "Must be a server to join WAN cluster").
//!
//! `PUT /v1/agent/force-leave/<node>[?prune]` (Consul `AgentForceLeave`, `agent.ForceLeave`):
//! turns a failed member left on every agent, `?prune` erases it from the member list; see
//! [`crate::gossip::force_leave`]. `?wan` acts on the WAN pool (a client agent answers Consul's
//! 500 "Must be a server to force-leave a node from the WAN cluster").

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Value};

use super::ApiError;
use crate::gossip::Member;
use crate::server::Server;

/// memberlist's protocol range (1..5, speaking 2) and serf's delegate range (2..5, speaking 4),
/// as Consul 1.x reports them.
const PROTOCOL: (u8, u8, u8) = (1, 5, 2);
const DELEGATE: (u8, u8, u8) = (2, 5, 4);

/// How long a join waits for the contacted member to show up alive (probe and reply round trips).
const JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Consul's default LAN gossip port, for a join address given without one.
const DEFAULT_SERF_LAN_PORT: u16 = 8301;

/// Parses a join address: `ip:port`, or a bare `ip` (port 8301). Errors name the address.
pub fn parse_join_address(text: &str) -> Result<std::net::SocketAddr, String> {
    parse_join_address_on(text, DEFAULT_SERF_LAN_PORT)
}

/// Parses a join address: `ip:port`, or a bare `ip` (port `default_port`). Errors name the address.
fn parse_join_address_on(text: &str, default_port: u16) -> Result<std::net::SocketAddr, String> {
    text.parse::<std::net::SocketAddr>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| std::net::SocketAddr::new(ip, default_port)))
        .map_err(|_| format!("Error joining address '{text}': not an ip or ip:port"))
}

/// Consul's refusals of WAN operations on a client agent (`agent/agent.go` `JoinWAN`, `ForceLeaveWAN`).
const CLIENT_WAN_JOIN: &str = "Must be a server to join WAN cluster";
const CLIENT_WAN_FORCE_LEAVE: &str = "Must be a server to force-leave a node from the WAN cluster";

/// The pool a request names: the WAN pool with `?wan` (None on a client agent), else the LAN pool.
fn pool_of(server: &Server, wan: bool) -> Option<&Arc<crate::gossip::Pool>> {
    if wan {
        server.wan.as_ref()
    } else {
        Some(&server.gossip)
    }
}

/// `PUT /v1/agent/join/<address>[?wan]`: joins the LAN pool (the WAN pool with `?wan`, default
/// port 8302) through `address`; 200 once its member is alive in this agent's view (at once for
/// this agent's own address). Errors: a bad address (400); `?wan` on a client agent (500,
/// Consul's "Must be a server to join WAN cluster"); no live member at that address within 5 s
/// (500, Consul's "Error joining address" text).
pub async fn join(
    State(server): State<Arc<Server>>,
    axum::extract::Path(address): axum::extract::Path<String>,
    Query(p): Query<MembersParams>,
) -> Result<(), ApiError> {
    let wan = p.wan.is_some();
    let default_port = if wan { crate::gossip::wan::DEFAULT_SERF_WAN_PORT } else { DEFAULT_SERF_LAN_PORT };
    let addr = parse_join_address_on(&address, default_port).map_err(ApiError::bad_request)?;
    let Some(pool) = pool_of(&server, wan) else {
        return Err(ApiError::server_error(CLIENT_WAN_JOIN));
    };
    let alive_at = |pool: &crate::gossip::Pool| pool.members().iter().any(|m| m.addr == addr && m.status.is_live());
    if alive_at(pool) {
        return Ok(());
    }
    pool.announce(addr);
    let mut changes = pool.subscribe();
    let deadline = tokio::time::Instant::now() + JOIN_WAIT;
    while !alive_at(pool) {
        if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            return Err(ApiError::server_error(format!("Error joining address '{address}': no live member answered at {addr} within {}s", JOIN_WAIT.as_secs())));
        }
    }
    let which = if wan { "WAN" } else { "LAN" };
    tracing::info!(node = %server.config.node_name, %addr, pool = which, "joined the gossip pool through an operator's join");
    Ok(())
}

/// Query parameters of `/v1/agent/force-leave/<node>`: `?prune` and `?wan` count by presence.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ForceLeaveParams {
    prune: Option<String>,
    wan: Option<String>,
}

/// `PUT /v1/agent/force-leave/<node>[?prune][&wan]`: 200 with an empty body once this agent
/// applied it (the pool spreads it; a live member is left unchanged, as Serf's refutation leaves
/// it). `?wan` acts on the WAN pool, where members are named `<node>.<dc>`. Errors: `?wan` on a
/// client agent (500, Consul's text), no member of that name (500, Consul's "agent: No node found
/// with name '<node>'").
pub async fn force_leave(
    State(server): State<Arc<Server>>,
    axum::extract::Path(node): axum::extract::Path<String>,
    Query(p): Query<ForceLeaveParams>,
) -> Result<(), ApiError> {
    let Some(pool) = pool_of(&server, p.wan.is_some()) else {
        return Err(ApiError::server_error(CLIENT_WAN_FORCE_LEAVE));
    };
    let outcome = pool.force_leave(&node, p.prune.is_some()).await.map_err(|e| {
        tracing::warn!(member = %node, error = %e, "Failed to remove node");
        ApiError::server_error(e)
    })?;
    tracing::debug!(member = %node, ?outcome, "force-leave applied");
    Ok(())
}

/// One member in Consul's `/v1/agent/members` shape.
pub fn member_json(m: &Member) -> Value {
    json!({
        "Name": m.name,
        "Addr": m.addr.ip().to_string(),
        "Port": m.addr.port(),
        "Tags": m.tags,
        "Status": m.status.consul_code(),
        "ProtocolMin": PROTOCOL.0, "ProtocolMax": PROTOCOL.1, "ProtocolCur": PROTOCOL.2,
        "DelegateMin": DELEGATE.0, "DelegateMax": DELEGATE.1, "DelegateCur": DELEGATE.2,
    })
}

/// Query parameters of `/v1/agent/members`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct MembersParams {
    wan: Option<String>,
}

/// `GET /v1/agent/members[?wan]`: every member of the LAN pool (the WAN pool with `?wan`) this
/// agent knows, itself included, by name. A client agent has no WAN pool: `?wan` answers `[]`
/// (Consul's `WANMembers()` is nil there).
pub async fn members(State(server): State<Arc<Server>>, Query(p): Query<MembersParams>) -> Result<Json<Value>, ApiError> {
    let members = pool_of(&server, p.wan.is_some()).map(|pool| pool.members()).unwrap_or_default();
    Ok(Json(Value::Array(members.iter().map(member_json).collect())))
}

#[cfg(test)]
mod join_tests {
    use super::parse_join_address;

    #[test]
    fn join_addresses_default_to_the_lan_gossip_port() {
        assert_eq!(parse_join_address("10.0.0.7").unwrap().to_string(), "10.0.0.7:8301");
        assert_eq!(parse_join_address("10.0.0.7:9301").unwrap().to_string(), "10.0.0.7:9301");
        assert!(parse_join_address("nowhere:x").unwrap_err().contains("Error joining address 'nowhere:x'"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::MemberStatus;

    fn member(status: MemberStatus) -> Member {
        let tags = [("role", "consul"), ("dc", "dc1"), ("port", "8300"), ("build", "1.20.0:abc"), ("vsn", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Member { name: "s1".into(), addr: "10.0.0.1:8301".parse().unwrap(), tags, status, generation: 1 }
    }

    #[test]
    fn member_has_consuls_shape() {
        insta::assert_json_snapshot!("agent_member", member_json(&member(MemberStatus::Alive)));
    }

    #[test]
    fn wan_member_has_consuls_shape() {
        let m = Member { name: "s1.dc2".into(), addr: "10.0.0.1:8302".parse().unwrap(), ..member(MemberStatus::Alive) };
        insta::assert_json_snapshot!("agent_member_wan", member_json(&m));
    }

    #[test]
    fn failed_and_left_members_carry_serfs_status_codes() {
        assert_eq!(member_json(&member(MemberStatus::Suspect))["Status"], 1);
        assert_eq!(member_json(&member(MemberStatus::Left))["Status"], 3);
        assert_eq!(member_json(&member(MemberStatus::Failed))["Status"], 4);
    }
}
