//! `/v1/agent/check*` and `/v1/agent/maintenance`: the agent's local checks.
//!
//! Source: Consul HTTP API "Check - Agent" (`website/content/api-docs/agent/check.mdx`) and
//! `agent/agent_endpoint.go` (`AgentChecks`, `AgentRegisterCheck`, `AgentDeregisterCheck`,
//! `AgentCheckPass|Warn|Fail`, `AgentCheckUpdate`, `AgentNodeMaintenance`). Routed by
//! [`super::agent_services::routes`].

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::agent_services::{json, maintenance_params};
use super::params::Params;
use super::ApiError;
use crate::local::definition::parse_check;
use crate::server::Server;
use crate::structs::{HealthCheck, HealthStatus};

/// A check as `/v1/agent/checks` shows it: Consul's `structs.HealthCheck` JSON, with
/// `ExposedPort` and an empty `Definition` (Concord keeps the definition to itself).
pub(super) fn check_json(c: &HealthCheck) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("ExposedPort".into(), Value::from(0));
        m.insert("Definition".into(), Value::Object(Default::default()));
    }
    v
}

/// `GET /v1/agent/checks`: every local check, by id.
pub async fn list_checks(State(server): State<Arc<Server>>) -> Response {
    let checks: BTreeMap<String, Value> = server.local.checks().iter().map(|(id, c)| (id.clone(), check_json(c))).collect();
    json(StatusCode::OK, &checks)
}

/// `PUT /v1/agent/check/register`. Errors: 400 for a bad definition or unknown `ServiceID`.
pub async fn register_check(State(server): State<Arc<Server>>, body: Bytes) -> Result<Response, ApiError> {
    let reg = parse_check(&body, server.local.enable_script_checks()).map_err(ApiError::bad_request)?;
    server.local.register_check(reg).await?;
    Ok(StatusCode::OK.into_response())
}

/// `PUT /v1/agent/check/deregister/<id>`: 404 when unknown.
pub async fn deregister_check(State(server): State<Arc<Server>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    server.local.deregister_check(&id).await?;
    Ok(StatusCode::OK.into_response())
}

async fn set_ttl(server: &Server, id: &str, status: HealthStatus, pairs: Vec<(String, String)>) -> Result<Response, ApiError> {
    let params = Params::from_pairs(pairs);
    server.local.update_ttl(id, status, params.get("note").unwrap_or_default()).await?;
    Ok(StatusCode::OK.into_response())
}

/// `PUT /v1/agent/check/pass/<id>?note=`.
pub async fn pass(
    State(server): State<Arc<Server>>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    set_ttl(&server, &id, HealthStatus::Passing, pairs).await
}

/// `PUT /v1/agent/check/warn/<id>?note=`.
pub async fn warn(
    State(server): State<Arc<Server>>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    set_ttl(&server, &id, HealthStatus::Warning, pairs).await
}

/// `PUT /v1/agent/check/fail/<id>?note=`.
pub async fn fail(
    State(server): State<Arc<Server>>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    set_ttl(&server, &id, HealthStatus::Critical, pairs).await
}

/// Parses `{"Status": "...", "Output": "..."}` (any key case, as Consul decodes).
/// Errors (400): not a JSON object, or a status other than passing, warning, critical.
fn parse_update(body: &[u8]) -> Result<(HealthStatus, String), ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Request decode failed: {e}")))?;
    let Value::Object(m) = v else {
        return Err(ApiError::bad_request("Request decode failed: body must be a JSON object"));
    };
    let field = |name: &str| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
    let status = field("status").and_then(Value::as_str).unwrap_or_default();
    let status = HealthStatus::parse(status).map_err(|_| ApiError::bad_request(format!("Invalid check status: '{status}'")))?;
    let output = field("output").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok((status, output))
}

/// `PUT /v1/agent/check/update/<id>` with `{"Status","Output"}` (output capped at 4 KiB).
pub async fn update(State(server): State<Arc<Server>>, Path(id): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    let (status, output) = parse_update(&body)?;
    server.local.update_ttl(&id, status, &output).await?;
    Ok(StatusCode::OK.into_response())
}

/// `PUT /v1/agent/maintenance?enable=&reason=`: the critical `_node_maintenance` check.
pub async fn node_maintenance(State(server): State<Arc<Server>>, Query(pairs): Query<Vec<(String, String)>>) -> Result<Response, ApiError> {
    let (enable, reason) = maintenance_params(&Params::from_pairs(pairs))?;
    server.local.node_maintenance(enable, &reason).await?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_bodies_need_a_known_status() {
        assert_eq!(parse_update(br#"{"Status":"warning","Output":"hot"}"#).unwrap(), (HealthStatus::Warning, "hot".into()));
        assert_eq!(parse_update(br#"{"status":"passing"}"#).unwrap(), (HealthStatus::Passing, String::new()));
        assert_eq!(parse_update(br#"{"Status":"meh"}"#).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(parse_update(b"[]").unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
