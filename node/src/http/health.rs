//! `/v1/health`: checks by node, service and state, and service instances with their health.
//!
//! Source: Consul HTTP API, "Health" (`website/content/api-docs/health.mdx`) and
//! `agent/health_endpoint.go`. All support blocking queries, the consistency modes,
//! `?node-meta=`, `?filter=`; `/health/service` also `?tag=` and `?passing`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;

use super::catalog::{catalog_query, filtered, indexed_json, Pairs};
use super::ApiError;
use crate::server::catalog::parse_check_state;
use crate::server::Server;
use crate::structs::QueryOptions;

/// `GET /v1/health/node/<node>`: every check on the node.
pub async fn node(State(server): State<Arc<Server>>, Path(name): Path<String>, opts: QueryOptions, Query(pairs): Pairs) -> Result<Response, ApiError> {
    let filter = opts.filter.clone();
    let mut answer = server.health_node_checks(catalog_query(name, opts, &pairs)?, false).await?;
    answer.value = filtered(filter.as_deref(), answer.value)?;
    Ok(indexed_json(answer))
}

/// `GET /v1/health/checks/<service>`: the checks of every instance of the service.
pub async fn checks(State(server): State<Arc<Server>>, Path(name): Path<String>, opts: QueryOptions, Query(pairs): Pairs) -> Result<Response, ApiError> {
    let filter = opts.filter.clone();
    let mut answer = server.health_service_checks(catalog_query(name, opts, &pairs)?, false).await?;
    answer.value = filtered(filter.as_deref(), answer.value)?;
    Ok(indexed_json(answer))
}

/// `GET /v1/health/state/<any|passing|warning|critical>`. Errors: 400 for another state.
pub async fn state(State(server): State<Arc<Server>>, Path(name): Path<String>, opts: QueryOptions, Query(pairs): Pairs) -> Result<Response, ApiError> {
    parse_check_state(&name).map_err(|_| ApiError::bad_request(format!("Invalid check state {name:?}: want any, passing, warning or critical")))?;
    let filter = opts.filter.clone();
    let mut answer = server.health_checks_in_state(catalog_query(name, opts, &pairs)?, false).await?;
    answer.value = filtered(filter.as_deref(), answer.value)?;
    Ok(indexed_json(answer))
}

/// `GET /v1/health/service/<name>`: `[{"Node","Service","Checks"}]`; `?passing` keeps only
/// instances whose every check (node-level and the instance's own) passes.
pub async fn service(State(server): State<Arc<Server>>, Path(name): Path<String>, opts: QueryOptions, Query(pairs): Pairs) -> Result<Response, ApiError> {
    let filter = opts.filter.clone();
    let mut answer = server.health_service_nodes(catalog_query(name, opts, &pairs)?, false).await?;
    answer.value = filtered(filter.as_deref(), answer.value)?;
    Ok(indexed_json(answer))
}
