//! `GET /v1/agent/members`: the LAN gossip pool as this agent sees it, in Consul's shape.
//!
//! Source: Consul HTTP API "List Members" (`website/content/api-docs/agent/index.mdx`) and
//! `agent/agent_endpoint.go` (`AgentMembers`), which renders serf's `Member`: `Name`, `Addr`,
//! `Port`, `Tags`, `Status` (1 alive, 2 leaving, 3 left, 4 failed), and the memberlist/serf
//! protocol ranges (`ProtocolMin/Max/Cur`, `DelegateMin/Max/Cur`). `?wan` is refused: Concord
//! has no WAN pool yet. `?segment` and `?partition` are accepted and ignored (one segment).
//!
//! `PUT /v1/agent/join/<address>` (Consul `AgentJoin`): asks the LAN pool to join through one
//! gossip address (`ip`, or `ip:port`, default port 8301), and answers once that member is seen
//! alive.
//!
//! `PUT /v1/agent/force-leave/<node>[?prune]` (Consul `AgentForceLeave`, `agent.ForceLeave`):
//! turns a failed member left on every agent, `?prune` erases it from the member list; see
//! [`crate::gossip::force_leave`].

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
    text.parse::<std::net::SocketAddr>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| std::net::SocketAddr::new(ip, DEFAULT_SERF_LAN_PORT)))
        .map_err(|_| format!("Error joining address '{text}': not an ip or ip:port"))
}

/// `PUT /v1/agent/join/<address>[?wan]`: joins the LAN pool through `address`; 200 once its member
/// is alive in this agent's view (at once for this agent's own address). Errors: `?wan` or a bad
/// address (400); no live member at that address within 5 s (500, Consul's "Error joining
/// address" text).
pub async fn join(
    State(server): State<Arc<Server>>,
    axum::extract::Path(address): axum::extract::Path<String>,
    Query(p): Query<MembersParams>,
) -> Result<(), ApiError> {
    if p.wan.is_some() {
        return Err(ApiError::bad_request("Concord has no WAN gossip pool yet"));
    }
    let addr = parse_join_address(&address).map_err(ApiError::bad_request)?;
    let alive_at = |server: &Server| server.gossip.members().iter().any(|m| m.addr == addr && m.status.is_live());
    if alive_at(&server) {
        return Ok(());
    }
    server.gossip.announce(addr);
    let mut changes = server.gossip.subscribe();
    let deadline = tokio::time::Instant::now() + JOIN_WAIT;
    while !alive_at(&server) {
        if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            return Err(ApiError::server_error(format!("Error joining address '{address}': no live member answered at {addr} within {}s", JOIN_WAIT.as_secs())));
        }
    }
    tracing::info!(node = %server.config.node_name, %addr, "joined the LAN gossip pool through an operator's join");
    Ok(())
}

/// Query parameters of `/v1/agent/force-leave/<node>`: `?prune` and `?wan` count by presence.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ForceLeaveParams {
    prune: Option<String>,
    wan: Option<String>,
}

/// `PUT /v1/agent/force-leave/<node>[?prune]`: 200 with an empty body once this agent applied it
/// (the pool spreads it; a live member is left unchanged, as Serf's refutation leaves it).
/// Errors: `?wan` (400: no WAN pool), no member of that name (500, Consul's "agent: No node
/// found with name '<node>'").
pub async fn force_leave(
    State(server): State<Arc<Server>>,
    axum::extract::Path(node): axum::extract::Path<String>,
    Query(p): Query<ForceLeaveParams>,
) -> Result<(), ApiError> {
    if p.wan.is_some() {
        return Err(ApiError::bad_request("Concord has no WAN gossip pool yet"));
    }
    let outcome = server.gossip.force_leave(&node, p.prune.is_some()).await.map_err(|e| {
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

/// `GET /v1/agent/members[?wan]`: every member this agent knows, itself included, by name.
/// Errors: `?wan` (400: no WAN pool yet).
pub async fn members(State(server): State<Arc<Server>>, Query(p): Query<MembersParams>) -> Result<Json<Value>, ApiError> {
    if p.wan.is_some() {
        return Err(ApiError::bad_request("Concord has no WAN gossip pool yet"));
    }
    Ok(Json(Value::Array(server.gossip.members().iter().map(member_json).collect())))
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
    fn failed_and_left_members_carry_serfs_status_codes() {
        assert_eq!(member_json(&member(MemberStatus::Suspect))["Status"], 1);
        assert_eq!(member_json(&member(MemberStatus::Left))["Status"], 3);
        assert_eq!(member_json(&member(MemberStatus::Failed))["Status"], 4);
    }
}
