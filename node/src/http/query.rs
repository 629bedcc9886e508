//! The blocking-query edge: `QueryOptions` parsed once from the request by an axum extractor,
//! and `QueryMeta` written back as Consul's `X-Consul-*` headers.
//!
//! Source: Consul HTTP API, "Blocking Queries", "Consistency Modes", "Authentication"
//! (`X-Consul-Token`, `Authorization: Bearer`, `?token=`), and `agent/http.go`
//! (`parseConsistency`, `parseWait`, `setMeta`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use rand::Rng;

use super::params::Params;
use super::ApiError;
use crate::server::Server;
use crate::structs::{QueryMeta, QueryOptions};

/// Consul adds up to wait/16 of jitter so many watchers do not return in lockstep.
const WAIT_JITTER_FRACTION: u64 = 16;

/// The decoded query parameters of a request (a flag without a value maps to `""`).
pub fn params_of(parts: &Parts) -> Result<Params, ApiError> {
    let query = parts.uri.query().unwrap_or("");
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad_request(format!("Invalid query string: {e}")))?;
    Ok(Params::from_pairs(pairs))
}

fn token(parts: &Parts, params: &Params) -> Option<String> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    header("X-Consul-Token")
        .or_else(|| header("Authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_string)))
        .or_else(|| params.get("token").map(str::to_string))
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<Arc<Server>> for QueryOptions {
    type Rejection = ApiError;

    /// Errors (400): `?stale` with `?consistent`, a bad `?index` or `?wait`.
    async fn from_request_parts(parts: &mut Parts, server: &Arc<Server>) -> Result<Self, Self::Rejection> {
        let params = params_of(parts)?;
        let wait = params.wait()?;
        let jitter_ms = wait.as_millis() as u64 / WAIT_JITTER_FRACTION;
        let jitter = if jitter_ms > 0 { server.rng().gen_range(0..=jitter_ms) } else { 0 };
        Ok(QueryOptions {
            datacenter: params.get("dc").filter(|dc| !dc.is_empty()).map(str::to_string),
            token: token(parts, &params),
            min_query_index: params.u64("index")?.unwrap_or(0),
            max_query_time_ms: (wait + Duration::from_millis(jitter)).as_millis() as u64,
            consistency: params.consistency()?,
            filter: params.get("filter").map(str::to_string),
        })
    }
}

/// Consul's blocking-query headers. `X-Consul-Index` is never 0 (Consul clamps it to 1, since a
/// client passing `?index=0` would not block).
pub fn meta_headers(meta: &QueryMeta) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("X-Consul-Index", HeaderValue::from(meta.index.max(1)));
    h.insert("X-Consul-KnownLeader", HeaderValue::from_static(if meta.known_leader { "true" } else { "false" }));
    h.insert("X-Consul-LastContact", HeaderValue::from(meta.last_contact_ms));
    h.insert("X-Consul-Effective-Consistency", HeaderValue::from_static(meta.consistency.header_value()));
    h
}
