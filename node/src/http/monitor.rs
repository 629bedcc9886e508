//! `GET /v1/agent/monitor?loglevel=<level>`: streams this agent's log lines as they are written
//! (Consul's endpoint; one line per log event, plain text or JSON with `?logjson`). Lines come from the process's log hub
//! ([`crate::telemetry::logs::hub`]), which only the `concord` binary feeds.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::params::Params;
use super::ApiError;
use crate::server::Server;
use crate::telemetry::logs::{hub, LogLevel};

/// `GET /v1/agent/monitor[?loglevel=info][&logjson]`: one line per event, as text or, with
/// `logjson`, as one JSON object per line (Consul's `-log-json` keys). Errors: 400 for an unknown
/// level (Consul's message).
pub async fn monitor(
    State(_agent): State<Arc<Server>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::from_pairs(pairs);
    let raw = params.get("loglevel").unwrap_or("info");
    let level = LogLevel::parse(raw).map_err(|_| ApiError::bad_request(format!("Unknown log level: {raw}")))?;
    let json = params.flag("logjson");
    let subscription = hub().subscribe(level, json);
    tracing::debug!(?level, "monitor stream opened");
    let stream = futures::stream::unfold(subscription, |mut sub| async move {
        let line = sub.next().await?;
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(format!("{line}\n"))), sub))
    });
    let mut resp = Body::from_stream(stream).into_response();
    let content_type = if json { "application/x-ndjson" } else { "text/plain; charset=utf-8" };
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}

/// `PUT /v1/agent/leave`: leaves the cluster gracefully (see [`crate::server::leave`]); the agent
/// process exits after answering. Errors: 500 with the reason (the agent keeps running).
pub async fn leave(State(agent): State<Arc<Server>>) -> Result<Response, ApiError> {
    agent.leave_cluster().await.map_err(|e| ApiError {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        message: e.to_string(),
        not_applied: true,
    })?;
    Ok(().into_response())
}
