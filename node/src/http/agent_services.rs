//! `/v1/agent/service*`, `/v1/agent/health/service/*` and the routes of the agent's local
//! services and checks ([`routes`]; the check endpoints are in [`super::agent_checks`]).
//!
//! Source: Consul HTTP API "Service - Agent" (`website/content/api-docs/agent/service.mdx`) and
//! `agent/agent_endpoint.go` (`AgentServices`, `AgentService`, `AgentRegisterService`,
//! `AgentDeregisterService`, `AgentServiceMaintenance`, `AgentHealthServiceByID|Name`). These
//! read and change the agent's local state ([`crate::local::Local`]); anti-entropy carries the
//! changes to the catalog.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use serde::Serialize;

use super::agent_checks::{self, check_json};
use super::params::Params;
use super::ApiError;
use crate::local::definition::parse_service;
use crate::local::state::LocalError;
use crate::server::Server;
use crate::structs::{HealthCheck, Meta, NodeService, Weights};

/// The agent's local-state routes, merged into [`super::router`].
pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/v1/agent/services", get(list_services))
        .route("/v1/agent/service/register", put(register_service))
        .route("/v1/agent/service/deregister/{*id}", put(deregister_service))
        .route("/v1/agent/service/maintenance/{*id}", put(service_maintenance))
        .route("/v1/agent/service/{*id}", get(get_service))
        .route("/v1/agent/health/service/name/{*name}", get(health_by_name))
        .route("/v1/agent/health/service/id/{*id}", get(health_by_id))
        .route("/v1/agent/checks", get(agent_checks::list_checks))
        .route("/v1/agent/check/register", put(agent_checks::register_check))
        .route("/v1/agent/check/deregister/{*id}", put(agent_checks::deregister_check))
        .route("/v1/agent/check/pass/{*id}", put(agent_checks::pass))
        .route("/v1/agent/check/warn/{*id}", put(agent_checks::warn))
        .route("/v1/agent/check/fail/{*id}", put(agent_checks::fail))
        .route("/v1/agent/check/update/{*id}", put(agent_checks::update))
        .route("/v1/agent/maintenance", put(agent_checks::node_maintenance))
}

impl From<LocalError> for ApiError {
    /// Bad input 400, unknown ids 404, a failed write to the data dir 500.
    fn from(e: LocalError) -> Self {
        let status = match e {
            LocalError::Invalid(_) => StatusCode::BAD_REQUEST,
            LocalError::UnknownService(_) | LocalError::UnknownCheck(_) => StatusCode::NOT_FOUND,
            LocalError::Persist(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self { status, message: e.to_string(), not_applied: true }
    }
}

/// A JSON answer.
pub(super) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|e| format!("\"encoding failed: {e}\"").into_bytes());
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// Consul's `api.AgentService`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AgentService<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    kind: &'a str,
    #[serde(rename = "ID")]
    id: &'a str,
    service: &'a str,
    tags: &'a [String],
    meta: &'a Meta,
    port: u16,
    address: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tagged_addresses: &'a Meta,
    weights: Weights,
    enable_tag_override: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_hash: Option<String>,
    datacenter: &'a str,
}

pub(super) fn agent_service<'a>(s: &'a NodeService, datacenter: &'a str) -> AgentService<'a> {
    AgentService {
        kind: &s.kind,
        id: &s.id,
        service: &s.service,
        tags: &s.tags,
        meta: &s.meta,
        port: s.port,
        address: &s.address,
        tagged_addresses: &s.tagged_addresses,
        weights: s.weights,
        enable_tag_override: s.enable_tag_override,
        content_hash: None,
        datacenter,
    }
}

/// A stable hash of a service definition (FNV-1a 64 over its JSON), Consul's `ContentHash`.
fn content_hash(s: &NodeService) -> String {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = serde_json::to_vec(s).unwrap_or_default();
    format!("{:016x}", bytes.iter().fold(FNV_OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)))
}

/// `GET /v1/agent/services`: every local service, by id.
async fn list_services(State(server): State<Arc<Server>>) -> Response {
    let services = server.local.services();
    let dc = server.config.datacenter.as_str();
    let out: BTreeMap<&str, AgentService> = services.iter().map(|(id, s)| (id.as_str(), agent_service(s, dc))).collect();
    json(StatusCode::OK, &out)
}

/// `GET /v1/agent/service/<id>`: one local service with its `ContentHash`; 404 when unknown.
async fn get_service(State(server): State<Arc<Server>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let services = server.local.services();
    let s = services.get(&id).ok_or(LocalError::UnknownService(id.clone()))?;
    let hash = content_hash(s);
    let mut out = agent_service(s, &server.config.datacenter);
    out.content_hash = Some(hash.clone());
    let mut resp = json(StatusCode::OK, &out);
    if let Ok(v) = HeaderValue::from_str(&hash) {
        resp.headers_mut().insert("X-Consul-ContentHash", v);
    }
    Ok(resp)
}

/// `PUT /v1/agent/service/register[?replace-existing-checks]`: 200 with an empty body.
async fn register_service(
    State(server): State<Arc<Server>>,
    Query(pairs): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::from_pairs(pairs);
    let reg = parse_service(&body, server.local.enable_script_checks()).map_err(ApiError::bad_request)?;
    server.local.register_service(reg, params.flag("replace-existing-checks")).await?;
    Ok(StatusCode::OK.into_response())
}

/// `PUT /v1/agent/service/deregister/<id>`: 404 when unknown.
async fn deregister_service(State(server): State<Arc<Server>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    server.local.deregister_service(&id).await?;
    Ok(StatusCode::OK.into_response())
}

/// `?enable=true|false` (required) and `?reason=`. Errors (400): missing or not a boolean.
pub(super) fn maintenance_params(params: &Params) -> Result<(bool, String), ApiError> {
    let enable = match params.get("enable") {
        None | Some("") => return Err(ApiError::bad_request("Missing value for enable")),
        Some("true") => true,
        Some("false") => false,
        Some(other) => return Err(ApiError::bad_request(format!("Invalid value for enable: {other:?}"))),
    };
    Ok((enable, params.get("reason").unwrap_or_default().to_string()))
}

/// `PUT /v1/agent/service/maintenance/<id>?enable=&reason=`: 404 for an unknown service.
async fn service_maintenance(
    State(server): State<Arc<Server>>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (enable, reason) = maintenance_params(&Params::from_pairs(pairs))?;
    server.local.service_maintenance(&id, enable, &reason).await?;
    Ok(StatusCode::OK.into_response())
}

/// Consul's `api.AgentServiceChecksInfo`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceChecksInfo<'a> {
    aggregated_status: &'static str,
    service: AgentService<'a>,
    checks: Vec<serde_json::Value>,
}

/// The HTTP status for an aggregated status: 200 passing, 429 warning, 503 critical or
/// maintenance.
fn health_code(status: &str) -> StatusCode {
    match status {
        "passing" => StatusCode::OK,
        "warning" => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The worst of several aggregated statuses (maintenance worst, as Consul ranks them).
fn worst(a: &'static str, b: &'static str) -> &'static str {
    let rank = |s: &str| match s {
        "passing" => 0,
        "warning" => 1,
        "critical" => 2,
        _ => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))], body).into_response()
}

/// `GET /v1/agent/health/service/id/<id>[?format=text]`: the instance, its checks and their
/// aggregate; 404 when unknown.
async fn health_by_id(
    State(server): State<Arc<Server>>,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let as_text = Params::from_pairs(pairs).get("format") == Some("text");
    let Some((svc, checks, status)) = server.local.service_health(&id) else {
        return text(StatusCode::NOT_FOUND, format!("ServiceId {id} not found"));
    };
    let code = health_code(status);
    if as_text {
        return text(code, status.to_string());
    }
    let info = ServiceChecksInfo {
        aggregated_status: status,
        service: agent_service(&svc, &server.config.datacenter),
        checks: checks.iter().map(check_json).collect(),
    };
    json(code, &info)
}

/// `GET /v1/agent/health/service/name/<name>[?format=text]`: every local instance of the
/// service; the status code is the worst instance's; 404 when there is none.
async fn health_by_name(
    State(server): State<Arc<Server>>,
    Path(name): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let as_text = Params::from_pairs(pairs).get("format") == Some("text");
    let found: Vec<(NodeService, Vec<HealthCheck>, &'static str)> =
        server.local.service_ids_named(&name).iter().filter_map(|id| server.local.service_health(id)).collect();
    if found.is_empty() {
        return text(StatusCode::NOT_FOUND, format!("ServiceName {name} Not Found"));
    }
    let overall = found.iter().fold("passing", |acc, (_, _, s)| worst(acc, s));
    let code = health_code(overall);
    if as_text {
        return text(code, overall.to_string());
    }
    let dc = server.config.datacenter.as_str();
    let infos: Vec<ServiceChecksInfo> = found
        .iter()
        .map(|(svc, checks, status)| ServiceChecksInfo {
            aggregated_status: status,
            service: agent_service(svc, dc),
            checks: checks.iter().map(check_json).collect(),
        })
        .collect();
    json(code, &infos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routes_do_not_conflict() {
        let _ = routes();
    }

    #[test]
    fn health_codes_and_ranking_follow_consul() {
        assert_eq!(health_code("passing"), StatusCode::OK);
        assert_eq!(health_code("warning"), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(health_code("critical"), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(health_code("maintenance"), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(worst("warning", "critical"), "critical");
        assert_eq!(worst("maintenance", "critical"), "maintenance");
        assert_eq!(worst("passing", "passing"), "passing");
    }

    #[test]
    fn maintenance_needs_a_boolean_enable() {
        let p = |q: &[(&str, &str)]| Params::from_pairs(q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        assert!(maintenance_params(&p(&[])).is_err());
        assert!(maintenance_params(&p(&[("enable", "yes")])).is_err());
        assert_eq!(maintenance_params(&p(&[("enable", "true"), ("reason", "r")])).unwrap(), (true, "r".to_string()));
    }
}
