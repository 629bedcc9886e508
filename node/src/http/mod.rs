//! The HTTP API (`/v1`, port 8500), served by axum over connections from [`crate::io::Net`].
//!
//! Owns: routing, Consul's query-parameter conventions ([`params`]), the KV endpoints ([`kv`]) and
//! status/agent endpoints ([`status`]). Errors become Consul's status codes and plain-text bodies
//! here, at the edge, and nowhere else.

pub mod agent_self;
pub mod kv;
pub mod metrics;
pub mod monitor;
pub mod operator;
pub mod params;
pub mod status;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;

use crate::agent::Agent;
use crate::io::Listener;

/// Builds the `/v1` router.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/v1/kv", get(kv::get_kv).put(kv::put_kv).delete(kv::delete_kv))
        .route("/v1/kv/", get(kv::get_kv).put(kv::put_kv).delete(kv::delete_kv))
        .route("/v1/kv/{*key}", get(kv::get_kv).put(kv::put_kv).delete(kv::delete_kv))
        .route("/v1/status/leader", get(status::leader))
        .route("/v1/status/peers", get(status::peers))
        .route("/v1/agent/self", get(agent_self::agent_self))
        .route("/v1/agent/version", get(agent_self::version))
        .route("/v1/agent/host", get(agent_self::host))
        .route("/v1/agent/metrics", get(metrics::metrics))
        .route("/v1/agent/monitor", get(monitor::monitor))
        .route("/v1/agent/leave", axum::routing::put(monitor::leave))
        .route("/v1/operator/raft/configuration", get(operator::configuration))
        .route("/v1/operator/raft/peer", axum::routing::delete(operator::remove_peer).put(operator::add_peer))
        .route_layer(axum::middleware::from_fn_with_state(agent.clone(), metrics::track))
        .with_state(agent)
}

/// Serves HTTP/1.1 on `listener` forever, one task per connection.
pub async fn serve(agent: Arc<Agent>, mut listener: Box<dyn Listener>) {
    let app = router(agent);
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
    /// `X-Concord-Write-Applied: false` so a history recorder can tell `fail` from `info`.
    pub not_applied: bool,
}

impl ApiError {
    /// 400 Bad Request with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into(), not_applied: true }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        if self.not_applied {
            headers.insert("X-Concord-Write-Applied", HeaderValue::from_static("false"));
        }
        (self.status, headers, self.message).into_response()
    }
}
