//! `GET /v1/agent/metrics` (Consul's JSON, or `?format=prometheus`) and the middleware that counts
//! every HTTP request by method, route template and status, with its latency.

use std::sync::Arc;

use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::params::Params;
use crate::server::Server;
use crate::telemetry::consul_json::{from_prometheus, go_utc};

/// Prometheus' text exposition content type (format 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /v1/agent/metrics[?format=prometheus]`.
pub async fn metrics(State(agent): State<Arc<Server>>, Query(pairs): Query<Vec<(String, String)>>) -> Response {
    let text = agent.telemetry.metrics.prometheus_text();
    if Params::from_pairs(pairs).get("format") == Some("prometheus") {
        let mut resp = text.into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE));
        return resp;
    }
    Json(from_prometheus(&text, &go_utc(agent.io.clock.wall_now()))).into_response()
}

/// Route middleware (`route_layer`): counts the request under its route template (e.g.
/// `/v1/kv/*key`, never the raw path, so the label set stays bounded; axum's braces are dropped,
/// as some text-format parsers mishandle braces inside label values) and times it until the
/// response head is ready.
pub async fn track(State(agent): State<Arc<Server>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().replace(['{', '}'], ""))
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let start = tokio::time::Instant::now();
    let resp = next.run(req).await;
    agent.telemetry.metrics.http(method.as_str(), &route, resp.status().as_u16(), start.elapsed().as_secs_f64());
    resp
}
