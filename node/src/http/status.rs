//! `/v1/status/*`: the leader's and the voters' server RPC addresses (a client agent asks a
//! server: [`Server::status_leader`]).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::ApiError;
use crate::server::Server;

/// `GET /v1/status/leader`: the leader's server RPC address as a JSON string, `""` if none.
/// Errors: 500 when a client agent reaches no server.
pub async fn leader(State(agent): State<Arc<Server>>) -> Result<Json<String>, ApiError> {
    agent.status_leader().await.map(Json).map_err(|e| ApiError::server_error(e.to_string()))
}

/// `GET /v1/status/peers`: the Raft voters' server RPC addresses. Errors: as [`leader`].
pub async fn peers(State(agent): State<Arc<Server>>) -> Result<Json<Vec<String>>, ApiError> {
    agent.status_peers().await.map(Json).map_err(|e| ApiError::server_error(e.to_string()))
}
