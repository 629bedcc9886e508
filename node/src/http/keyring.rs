//! `/v1/operator/keyring`: the gossip encryption keyring (Consul HTTP API "Operator Keyring",
//! `agent/operator_endpoint.go`).
//!
//! - `GET`: the keys every live member of the LAN pool reported, as Consul's list: an array of
//!   `{"WAN":false,"Datacenter","Segment":"","Keys":{key:count},"PrimaryKeys":{key:count},"NumNodes"}`.
//! - `POST` install, `PUT` use, `DELETE` remove, each with the body `{"Key":"<base64>"}`: applied
//!   on this agent at once, then spread to every member by gossip
//!   ([`crate::gossip::keyring_sync`]); answers 200 with no body. Consul answers once the members
//!   replied; here `GET` shows when every member holds the change.
//!
//! Errors: 400 a body that is not `{"Key":..}` or a key that is not base64 of 16, 24 or 32 bytes;
//! 500 with memberlist's message for `use` of a key not installed and removing the primary key,
//! and when the agent runs without `-encrypt`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::ApiError;
use crate::gossip::keyring::GossipKey;
use crate::gossip::keyring_sync::{KeyOpKind, KeyringResponse};
use crate::server::Server;

/// Routes under `/v1/operator/keyring`.
pub fn routes() -> axum::Router<Arc<Server>> {
    axum::Router::new().route("/v1/operator/keyring", axum::routing::get(list).post(install).put(use_key).delete(remove))
}

#[derive(Deserialize)]
struct KeyBody {
    #[serde(rename = "Key")]
    key: String,
}

/// `GET /v1/operator/keyring`.
async fn list(State(server): State<Arc<Server>>) -> Result<Json<Vec<KeyringResponse>>, ApiError> {
    server.gossip.keyring_list(&server.config.datacenter).map(Json).map_err(ApiError::server_error)
}

async fn install(State(server): State<Arc<Server>>, body: Bytes) -> Result<(), ApiError> {
    operate(&server, KeyOpKind::Install, &body)
}

async fn use_key(State(server): State<Arc<Server>>, body: Bytes) -> Result<(), ApiError> {
    operate(&server, KeyOpKind::Use, &body)
}

async fn remove(State(server): State<Arc<Server>>, body: Bytes) -> Result<(), ApiError> {
    operate(&server, KeyOpKind::Remove, &body)
}

fn operate(server: &Server, kind: KeyOpKind, body: &[u8]) -> Result<(), ApiError> {
    let body: KeyBody = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Request decode failed: {e}")))?;
    GossipKey::parse(&body.key).map_err(|e| ApiError::bad_request(e.to_string()))?;
    server.gossip.keyring_op(kind, &body.key).map_err(ApiError::server_error)
}
