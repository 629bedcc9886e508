//! `GET /v1/agent/members`: the LAN gossip pool as this agent sees it, in Consul's shape.
//!
//! Source: Consul HTTP API "List Members" (`website/content/api-docs/agent/index.mdx`) and
//! `agent/agent_endpoint.go` (`AgentMembers`), which renders serf's `Member`: `Name`, `Addr`,
//! `Port`, `Tags`, `Status` (1 alive, 2 leaving, 3 left, 4 failed), and the memberlist/serf
//! protocol ranges (`ProtocolMin/Max/Cur`, `DelegateMin/Max/Cur`). `?wan` is refused: Concord
//! has no WAN pool yet. `?segment` and `?partition` are accepted and ignored (one segment).

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
