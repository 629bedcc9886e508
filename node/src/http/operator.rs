//! `/v1/operator/raft/*`: the Raft configuration and peer removal (Consul HTTP API, "Operator
//! Raft"), plus adding a server back (a Concord extension standing in for Consul's gossip join +
//! autopilot promotion, until gossip exists).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::params::Params;
use super::ApiError;
use crate::server::membership::MembershipError;
use crate::server::Server;
use crate::raft::node_id_for;

fn membership_error(e: MembershipError) -> ApiError {
    let status = match e {
        MembershipError::Unknown(_) | MembershipError::LastVoter => StatusCode::BAD_REQUEST,
        MembershipError::NotLeader | MembershipError::Raft(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError { status, message: e.to_string(), not_applied: !matches!(e, MembershipError::Raft(_)) }
}

/// `GET /v1/operator/raft/configuration` → `{"Servers":[{ID,Node,Address,Leader,Voter}],"Index"}`.
pub async fn configuration(State(agent): State<Arc<Server>>) -> Json<Value> {
    let (servers, index) = agent.raft_configuration();
    Json(json!({ "Servers": servers, "Index": index }))
}

/// `GET /v1/operator/autopilot/configuration`: Consul's autopilot configuration; Concord runs
/// the dead-server cleanup (`CleanupDeadServers`, on unless turned off) and reports Consul's defaults for the
/// rest (see [`crate::server::autopilot`]).
pub async fn autopilot_configuration(State(agent): State<Arc<Server>>) -> Json<crate::server::autopilot::AutopilotConfiguration> {
    let cleanup_dead_servers = agent.config.raft.cleanup_dead_servers;
    Json(crate::server::autopilot::AutopilotConfiguration { cleanup_dead_servers, ..Default::default() })
}

/// `DELETE /v1/operator/raft/peer?id=<id>` or `?address=<ip:port>`: removes a voter.
/// Errors: 400 neither or unknown, 500 not the leader.
pub async fn remove_peer(
    State(agent): State<Arc<Server>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<bool>, ApiError> {
    let p = Params::from_pairs(pairs);
    if p.get("id").is_none() && p.get("address").is_none() {
        return Err(ApiError::bad_request("Must specify either ?id with the server's ID or ?address with IP:port of peer to remove"));
    }
    let id = agent.find_server(p.get("id"), p.get("address")).map_err(membership_error)?;
    agent.remove_server(id).await.map_err(membership_error)?;
    Ok(Json(true))
}

/// `POST /v1/operator/raft/transfer-leader[?id=<id>]` → `{"Success":true}` once the target
/// (a voter's ID as list-peers prints it, or its node name; default: the most caught-up other
/// voter) has been elected. Forwarded to the leader from a follower. Errors: 400 an unknown
/// target, 500 a failed transfer (the old leader keeps leading).
pub async fn transfer_leader(
    State(agent): State<Arc<Server>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::from_pairs(pairs);
    let target = match p.get("id").filter(|id| !id.is_empty()) {
        None => None,
        Some(want) => {
            let by_name = agent.peers.lock().unwrap_or_else(|e| e.into_inner()).values().find(|peer| peer.name == want).map(|peer| peer.node_id);
            match by_name {
                Some(id) => Some(id),
                None => Some(agent.find_server(Some(want), None).map_err(|_| {
                    ApiError::bad_request(format!("cannot transfer leadership to {want:?}: no such server in the raft configuration"))
                })?),
            }
        }
    };
    agent.transfer_leadership_via_leader(target).await.map_err(|message| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message,
        not_applied: true,
    })?;
    Ok(Json(json!({ "Success": true })))
}

/// `PUT /v1/operator/raft/peer?node=<name>&address=<ip:port>` (Concord extension): adds the
/// server named `node` at its server RPC `address` as a voter.
pub async fn add_peer(
    State(agent): State<Arc<Server>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<bool>, ApiError> {
    let p = Params::from_pairs(pairs);
    let (Some(node), Some(address)) = (p.get("node"), p.get("address")) else {
        return Err(ApiError::bad_request("Must specify ?node with the server's name and ?address with its IP:port"));
    };
    if address.parse::<std::net::SocketAddr>().is_err() {
        return Err(ApiError::bad_request(format!("Invalid address {address:?}: want IP:port")));
    }
    agent.add_server(node_id_for(node), address.to_string()).await.map_err(membership_error)?;
    Ok(Json(true))
}
