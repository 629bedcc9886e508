//! `/v1/status/*`: the leader's and the voters' server RPC addresses.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use crate::server::Server;

/// `GET /v1/status/leader`: the leader's server RPC address as a JSON string, `""` if none.
pub async fn leader(State(agent): State<Arc<Server>>) -> Json<String> {
    Json(agent.leader().map(|(_, addr)| addr).unwrap_or_default())
}

/// `GET /v1/status/peers`: the Raft voters' server RPC addresses.
pub async fn peers(State(agent): State<Arc<Server>>) -> Json<Vec<String>> {
    Json(agent.voter_addrs())
}
