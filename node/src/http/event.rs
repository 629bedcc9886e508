//! User events over HTTP (Consul HTTP API "Events", `agent/event_endpoint.go`).
//!
//! - `PUT /v1/event/fire/<name>[?node=&service=&tag=]`: the body is the payload (empty: none);
//!   answers the event as fired (ID, Lamport time). Errors (400): no name, a filter that is not a
//!   regular expression, a payload too large.
//! - `GET /v1/event/list[?name=]`: the events this agent received, oldest first, at most 256; a
//!   blocking query (`?index=&wait=`) returns when a new event arrives. `X-Consul-Index` counts
//!   the events this agent kept (Consul derives it from the newest event's ID; either way it is
//!   opaque to clients and grows with every new event).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::Value;

use super::query::params_of;
use super::ApiError;
use crate::gossip::events::UserEvent;
use crate::server::Server;
use crate::structs::{QueryMeta, QueryOptions};

/// `PUT /v1/event/fire/<name>`.
pub async fn fire(State(server): State<Arc<Server>>, Path(name): Path<String>, parts: axum::http::request::Parts, body: Bytes) -> Result<axum::Json<Value>, ApiError> {
    if name.is_empty() {
        return Err(ApiError::bad_request("Missing name"));
    }
    let params = params_of(&parts)?;
    // A filter is a regular expression; one that does not compile would match nothing anywhere.
    let filter = |what: &str| -> Result<String, ApiError> {
        let re = params.get(what).unwrap_or_default();
        if !re.is_empty() {
            regex::Regex::new(re).map_err(|e| ApiError::bad_request(format!("Invalid {what} filter: {e}")))?;
        }
        Ok(re.to_string())
    };
    let event = UserEvent {
        id: server.new_uuid(),
        name,
        payload: (!body.is_empty()).then(|| body.to_vec()),
        node_filter: filter("node")?,
        service_filter: filter("service")?,
        tag_filter: filter("tag")?,
        version: 1,
        ltime: 0,
    };
    let fired = server.gossip.fire(event).map_err(ApiError::bad_request)?;
    tracing::info!(node = %server.config.node_name, name = %fired.name, id = %fired.id, "user event fired");
    serde_json::to_value(&fired).map(axum::Json).map_err(|e| ApiError::server_error(e.to_string()))
}

/// `GET /v1/event/list[?name=]`, blocking on `?index=`.
pub async fn list(State(server): State<Arc<Server>>, opts: QueryOptions, parts: axum::http::request::Parts) -> Result<Response, ApiError> {
    let params = params_of(&parts)?;
    let name = params.get("name").filter(|n| !n.is_empty());
    let log = server.gossip.events.clone();
    let mut changes = log.subscribe();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(opts.max_query_time_ms);
    loop {
        let (events, index) = log.list(name);
        let blocking = opts.min_query_index > 0 && index <= opts.min_query_index;
        if !blocking || tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            let meta = QueryMeta { index, known_leader: true, ..QueryMeta::default() };
            return Ok(super::catalog::indexed_json(crate::structs::Indexed { value: events, meta }));
        }
    }
}
