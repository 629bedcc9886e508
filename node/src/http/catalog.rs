//! `/v1/catalog`: register and deregister, and the node and service listings.
//!
//! Source: Consul HTTP API, "Catalog" (`website/content/api-docs/catalog.mdx`) and
//! `agent/catalog_endpoint.go`. Lists support blocking queries, the consistency modes,
//! `?node-meta=key:value` (repeatable), `?tag=` (repeatable, on service listings), `?filter=` and
//! `?near=<node>|_agent` (sorted by estimated round-trip time, [`crate::state::coordinate`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::query::meta_headers;
use super::ApiError;
use crate::server::catalog::CatalogWriteError;
use crate::server::Server;
use crate::structs::{CatalogQuery, DeregisterRequest, Indexed, Meta, QueryOptions, RegisterRequest};

/// Raw query pairs, in order (repeatable parameters keep every value).
pub type Pairs = Query<Vec<(String, String)>>;

/// Every value of a repeatable parameter.
fn all<'a>(pairs: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    pairs.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Whether a flag is present and not `false`/`0` (`?passing`, `?passing=true`).
pub fn flag(pairs: &[(String, String)], name: &str) -> bool {
    all(pairs, name).last().is_some_and(|v| v != "false" && v != "0")
}

/// `?node-meta=key:value` filters. Errors (400): a value without `:`.
fn node_meta(pairs: &[(String, String)]) -> Result<Meta, ApiError> {
    let mut meta = Meta::new();
    for v in all(pairs, "node-meta") {
        let (k, val) = v.split_once(':').ok_or_else(|| ApiError::bad_request(format!("Invalid node-meta {v:?}: want key:value")))?;
        meta.insert(k.to_string(), val.to_string());
    }
    Ok(meta)
}

/// Builds the query every catalog and health read carries.
pub fn catalog_query(name: String, opts: QueryOptions, pairs: &[(String, String)]) -> Result<CatalogQuery, ApiError> {
    Ok(CatalogQuery {
        name,
        tags: all(pairs, "tag").map(str::to_string).collect(),
        node_meta: node_meta(pairs)?,
        passing_only: flag(pairs, "passing"),
        opts,
        near: all(pairs, "near").last().unwrap_or_default().to_string(),
    })
}

/// The field names of catalog request bodies (Consul `structs.RegisterRequest`,
/// `DeregisterRequest`, `NodeService`, `HealthCheck`, `Weights`).
const CATALOG_FIELDS: &[&str] = &[
    "ID", "Node", "Address", "Datacenter", "TaggedAddresses", "NodeMeta", "Service", "Check", "Checks", "SkipNodeUpdate",
    "Kind", "Tags", "Meta", "Port", "Weights", "Passing", "Warning", "EnableTagOverride", "CheckID", "Name", "Status",
    "Notes", "Output", "ServiceID", "ServiceName", "ServiceTags", "Type", "Interval", "Timeout", "CreateIndex",
    "ModifyIndex",
];

/// Decodes a JSON request body whose field names Consul's Go decoder would match ignoring case
/// ([`super::json_keys`]), whatever its Content-Type (Consul's clients do not all send one).
/// Errors (400): Consul's "Request decode failed: …".
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let bad = |e: serde_json::Error| ApiError::bad_request(format!("Request decode failed: {e}"));
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(bad)?;
    super::json_keys::canonicalize(&mut value, CATALOG_FIELDS);
    serde_json::from_value(value).map_err(bad)
}

/// Applies `?filter=` to a list. Errors (400): a bad expression, with Consul's prefix.
pub fn filtered<T: Serialize>(filter: Option<&str>, items: Vec<T>) -> Result<Vec<T>, ApiError> {
    crate::filter::apply(filter, items).map_err(filter_error)
}

/// Consul's 400 for a bad `?filter=` expression (500 if an answer could not be serialised).
pub fn filter_error(e: crate::filter::FilterError) -> ApiError {
    let mut err = ApiError::bad_request(e.consul_message());
    if !e.is_bad_request() {
        err.status = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    }
    err
}

/// A read's answer as JSON with Consul's `X-Consul-*` headers.
pub fn indexed_json<T: Serialize>(answer: Indexed<T>) -> Response {
    (meta_headers(&answer.meta), Json(answer.value)).into_response()
}

impl From<CatalogWriteError> for ApiError {
    /// A refused registration is a 400 naming the reason; the write path's errors as usual.
    fn from(e: CatalogWriteError) -> Self {
        match e {
            CatalogWriteError::Invalid(m) => ApiError::bad_request(m),
            CatalogWriteError::Write(w) => w.into(),
        }
    }
}

/// `PUT /v1/catalog/register` → `true`. Errors: 400 undecodable or invalid registration.
pub async fn register(State(server): State<Arc<Server>>, opts: QueryOptions, body: Bytes) -> Result<Json<bool>, ApiError> {
    let req: RegisterRequest = decode_body(&body)?;
    server.catalog_register(&opts, req).await?;
    Ok(Json(true))
}

/// `PUT /v1/catalog/deregister` → `true` (also when there was nothing to remove).
pub async fn deregister(State(server): State<Arc<Server>>, opts: QueryOptions, body: Bytes) -> Result<Json<bool>, ApiError> {
    let req: DeregisterRequest = decode_body(&body)?;
    server.catalog_deregister(&opts, req).await?;
    Ok(Json(true))
}

/// `GET /v1/catalog/datacenters`: the datacenters the WAN pool knows, this agent's own first,
/// then the others by name (see [`crate::gossip::wan::datacenters`]; Consul sorts by estimated
/// RTT). A client agent asks a server (Consul forwards `Catalog.ListDatacenters`). Errors: a
/// client agent that reaches no server (500).
pub async fn datacenters(State(server): State<Arc<Server>>) -> Result<Json<Vec<String>>, ApiError> {
    server.datacenters().await.map(Json).map_err(|e| ApiError::server_error(e.to_string()))
}

/// `GET /v1/catalog/nodes`.
pub async fn nodes(State(server): State<Arc<Server>>, opts: QueryOptions, Query(pairs): Pairs) -> Result<Response, ApiError> {
    let filter = opts.filter.clone();
    let mut answer = server.catalog_list_nodes(catalog_query(String::new(), opts, &pairs)?, false).await?;
    answer.value = filtered(filter.as_deref(), answer.value)?;
    Ok(indexed_json(answer))
}

/// `GET /v1/catalog/services`: `{"name": [tags]}`.
pub async fn services(State(server): State<Arc<Server>>, opts: QueryOptions, Query(pairs): Pairs) -> Result<Response, ApiError> {
    let answer = server.catalog_list_services(catalog_query(String::new(), opts, &pairs)?, false).await?;
    Ok(indexed_json(answer))
}

/// `GET /v1/catalog/service/<name>`: flat `ServiceNode` rows.
pub async fn service(
    State(server): State<Arc<Server>>,
    Path(name): Path<String>,
    opts: QueryOptions,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let filter = opts.filter.clone();
    let mut answer = server.catalog_service_nodes(catalog_query(name, opts, &pairs)?, false).await?;
    answer.value = filtered(filter.as_deref(), answer.value)?;
    Ok(indexed_json(answer))
}

/// `GET /v1/catalog/node/<node>`: `{"Node": …, "Services": {id: …}}`, or `null` (200) for an
/// unknown node, as Consul answers.
pub async fn node(
    State(server): State<Arc<Server>>,
    Path(name): Path<String>,
    opts: QueryOptions,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let filter = opts.filter.clone();
    let mut answer = server.catalog_node_services(catalog_query(name, opts, &pairs)?, false).await?;
    if let Some(ns) = &mut answer.value {
        ns.services = crate::filter::apply_map(filter.as_deref(), std::mem::take(&mut ns.services)).map_err(filter_error)?;
    }
    Ok(indexed_json(answer))
}
