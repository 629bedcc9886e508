//! The HTTP API (`/v1`, port 8500), served by axum over connections from [`crate::io::Net`].
//!
//! Owns: routing, Consul's query-parameter conventions ([`params`]), the `QueryOptions`
//! extractor and `QueryMeta` headers ([`query`]), the KV endpoints ([`kv`]), the catalog
//! ([`catalog`]) and health ([`health`]) endpoints, network coordinates ([`coordinate`]), sessions ([`session`]), transactions ([`txn`]), status/agent
//! endpoints ([`status`]) and operator endpoints ([`operator`]). Handlers call the server core
//! ([`crate::server::Server`]) and never reach past it. Errors become Consul's status codes and
//! plain-text bodies here, at the edge, and nowhere else.

pub mod agent_checks;
pub mod agent_members;
pub mod agent_self;
pub mod agent_services;
pub mod catalog;
pub mod coordinate;
pub mod event;
pub mod health;
pub mod json_keys;
pub mod keyring;
pub mod kv;
pub mod metrics;
pub mod monitor;
pub mod operator;
pub mod params;
pub mod query;
pub mod session;
pub mod snapshot;
pub mod status;
pub mod txn;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;

use crate::io::Listener;
use crate::server::Server;
use crate::structs::{QueryError, WriteError};

/// Builds the `/v1` router.
pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/v1/kv", get(kv::get_kv).put(kv::put_kv).delete(kv::delete_kv))
        .route("/v1/kv/", get(kv::get_kv).put(kv::put_kv).delete(kv::delete_kv))
        .route("/v1/kv/{*key}", get(kv::get_kv).put(kv::put_kv).delete(kv::delete_kv))
        .route("/v1/catalog/register", axum::routing::put(catalog::register))
        .route("/v1/catalog/deregister", axum::routing::put(catalog::deregister))
        .route("/v1/catalog/datacenters", get(catalog::datacenters))
        .route("/v1/catalog/nodes", get(catalog::nodes))
        .route("/v1/catalog/services", get(catalog::services))
        .route("/v1/catalog/service/{name}", get(catalog::service))
        .route("/v1/catalog/node/{name}", get(catalog::node))
        .route("/v1/health/node/{name}", get(health::node))
        .route("/v1/health/checks/{name}", get(health::checks))
        .route("/v1/health/state/{name}", get(health::state))
        .route("/v1/health/service/{name}", get(health::service))
        .route("/v1/status/leader", get(status::leader))
        .route("/v1/status/peers", get(status::peers))
        .route("/v1/agent/self", get(agent_self::agent_self))
        .route("/v1/agent/members", get(agent_members::members))
        .route("/v1/event/fire/{name}", axum::routing::put(event::fire))
        .route("/v1/event/list", get(event::list))
        .route("/v1/agent/join/{*address}", axum::routing::put(agent_members::join))
        .route("/v1/agent/force-leave/{node}", axum::routing::put(agent_members::force_leave))
        .route("/v1/agent/version", get(agent_self::version))
        .route("/v1/agent/host", get(agent_self::host))
        .route("/v1/agent/metrics", get(metrics::metrics))
        .route("/v1/agent/monitor", get(monitor::monitor))
        .route("/v1/agent/leave", axum::routing::put(monitor::leave))
        .route("/v1/agent/reload", axum::routing::put(agent_self::reload))
        .route("/v1/operator/raft/configuration", get(operator::configuration))
        .route("/v1/operator/raft/peer", axum::routing::delete(operator::remove_peer).put(operator::add_peer))
        .route("/v1/operator/autopilot/configuration", get(operator::autopilot_configuration))
        .route("/v1/operator/raft/transfer-leader", axum::routing::post(operator::transfer_leader))
        .merge(agent_services::routes())
        .merge(session::routes())
        .merge(snapshot::routes())
        .merge(txn::routes())
        .merge(keyring::routes())
        .merge(coordinate::routes())
        .route_layer(axum::middleware::from_fn_with_state(server.clone(), metrics::track))
        .with_state(server)
}

/// Serves HTTP/1.1 on `listener` forever, one task per connection.
pub async fn serve(server: Arc<Server>, mut listener: Box<dyn Listener>) {
    let app = router(server);
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "http connection ended");
            }
        });
    }
}

/// An error answered as Consul does: a status code and a plain-text message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// For write errors: whether the write certainly was not applied. Sent as
    /// `X-Concord-Write-Applied: false` (else `unknown` on a 5xx) so a client or a history
    /// recorder can tell `fail` from `info`.
    pub not_applied: bool,
}

impl From<QueryError> for ApiError {
    /// Consul answers read failures with 500 and the error text ("No cluster leader",
    /// "No path to datacenter").
    fn from(e: QueryError) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: e.to_string(), not_applied: true }
    }
}

impl From<WriteError> for ApiError {
    /// 500 with the error text; an unknown outcome says the write may have been applied.
    fn from(e: WriteError) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: e.to_string(), not_applied: e.certainly_not_applied() }
    }
}

impl ApiError {
    /// 400 Bad Request with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into(), not_applied: true }
    }

    /// 500 Internal Server Error with `message`, for a request that changed nothing.
    pub fn server_error(message: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into(), not_applied: true }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        if self.not_applied {
            headers.insert("X-Concord-Write-Applied", HeaderValue::from_static("false"));
        } else if self.status.is_server_error() {
            headers.insert("X-Concord-Write-Applied", HeaderValue::from_static("unknown"));
        }
        (self.status, headers, self.message).into_response()
    }
}
