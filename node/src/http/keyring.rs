//! `/v1/operator/keyring`: the gossip encryption keyring (Consul HTTP API "Operator Keyring",
//! `agent/operator_endpoint.go`).
//!
//! - `GET`: the keys every live member of each pool reported, as Consul's list: an array of
//!   `{"WAN","Datacenter","Segment":"","Keys":{key:count},"PrimaryKeys":{key:count},"NumNodes"}`,
//!   on a server the WAN pool's entry (`"WAN":true`, counted over every datacenter's servers)
//!   first, then the LAN pool's.
//! - `POST` install, `PUT` use, `DELETE` remove, each with the body `{"Key":"<base64>"}`: applied
//!   on this agent at once, to the WAN pool first on a server (as Consul's `keyringProcess`),
//!   then to the LAN pool, and spread to every member of each by gossip
//!   ([`crate::gossip::keyring_sync`]); answers 200 with no body. Consul answers once the members
//!   replied; here `GET` shows when every member holds the change. Consul also forwards the
//!   operation to every other datacenter's LAN pool; here an operator runs it in each datacenter
//!   (the WAN pool needs it once).
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
    let dc = &server.config.datacenter;
    let mut entries = Vec::new();
    if let Some(wan) = &server.wan {
        entries.push(wan.keyring_list(dc, true).map_err(ApiError::server_error)?);
    }
    entries.push(server.gossip.keyring_list(dc, false).map_err(ApiError::server_error)?);
    Ok(Json(entries))
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
    // WAN first: a refusal there (say, `use` of a key only the LAN pool holds) leaves both
    // pools as they were.
    if let Some(wan) = &server.wan {
        wan.keyring_op(kind, &body.key).map_err(|e| ApiError::server_error(format!("WAN pool: {e}")))?;
    }
    server.gossip.keyring_op(kind, &body.key).map_err(ApiError::server_error)
}
