//! `/v1/kv`: Consul's KV endpoints.
//!
//! Source: Consul HTTP API, "KV Store" (`website/content/api-docs/kv.mdx`) and
//! `agent/kvs_endpoint.go`. Entries are JSON `{"LockIndex","Key","Flags","Value","CreateIndex",
//! "ModifyIndex"[,"Session"]}` with `Value` base64 (null when empty).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rand::Rng;
use serde::Serialize;

use super::params::Params;
use super::ApiError;
use crate::agent::query::{KvQuery, KvRead, QueryError, QueryResult};
use crate::agent::Agent;
use crate::rpc::WriteError;
use crate::state::{Command, KvEntry};

/// Largest accepted value: 512 KiB (Consul `kv_max_value_size`).
pub const MAX_VALUE_BYTES: usize = 512 * 1024;

/// Consul's JSON for one KV entry.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EntryJson<'a> {
    lock_index: u64,
    key: &'a str,
    flags: u64,
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    create_index: u64,
    modify_index: u64,
}

fn entry_json<'a>(key: &'a str, e: &'a KvEntry) -> EntryJson<'a> {
    EntryJson {
        lock_index: e.lock_index,
        key,
        flags: e.flags,
        value: (!e.value.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(&e.value)),
        session: e.session.as_deref(),
        create_index: e.create_index,
        modify_index: e.modify_index,
    }
}

/// Extracts and percent-decodes the key from `/v1/kv/<key>`.
fn key_from_uri(uri: &Uri) -> Result<String, ApiError> {
    let path = uri.path();
    let raw = path.strip_prefix("/v1/kv").unwrap_or(path);
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    percent_decode(raw).ok_or_else(|| ApiError::bad_request("Invalid key: bad percent-encoding or not UTF-8"))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Rejects keys Consul rejects (CVE-2025-11392): a leading `/`, `..` path segments, or leading
/// or trailing whitespace.
pub fn validate_key(key: &str) -> Result<(), ApiError> {
    if key.starts_with('/') {
        return Err(ApiError::bad_request(format!("Invalid key {key:?}: must not begin with '/'")));
    }
    if key.split('/').any(|seg| seg == "..") {
        return Err(ApiError::bad_request(format!("Invalid key {key:?}: must not contain '..' segments")));
    }
    if key.trim() != key {
        return Err(ApiError::bad_request(format!("Invalid key {key:?}: leading or trailing whitespace")));
    }
    Ok(())
}

fn query_error(e: QueryError) -> ApiError {
    ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: e.to_string(), not_applied: true }
}

fn write_error(e: WriteError) -> ApiError {
    let not_applied = matches!(e, WriteError::NoLeader | WriteError::Rejected(_));
    ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: e.to_string(), not_applied }
}

/// Blocking-query and consistency headers (Consul: `X-Consul-Index` is never 0).
fn meta_headers(result: &QueryResult, consistency: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("X-Consul-Index", HeaderValue::from(result.index.max(1)));
    h.insert("X-Consul-KnownLeader", HeaderValue::from_static(if result.known_leader { "true" } else { "false" }));
    h.insert("X-Consul-LastContact", HeaderValue::from(result.last_contact_ms));
    if let Ok(v) = HeaderValue::from_str(consistency) {
        h.insert("X-Consul-Effective-Consistency", v);
    }
    h
}

fn json_response(status: StatusCode, mut headers: HeaderMap, body: Vec<u8>) -> Response {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    (status, headers, body).into_response()
}

/// `GET /v1/kv/<key>` with `?recurse`, `?keys[&separator=]`, `?raw`, blocking `?index=&wait=`,
/// and `?consistent` / `?stale`. 404 (with index headers) when nothing matches.
pub async fn get_kv(
    State(agent): State<Arc<Agent>>,
    uri: Uri,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::from_pairs(pairs);
    let key = key_from_uri(&uri)?;
    let recurse = params.flag("recurse");
    let keys = params.flag("keys");
    if !key.is_empty() || !(recurse || keys) {
        validate_key(&key)?;
    }
    if key.is_empty() && !(recurse || keys) {
        return Err(ApiError::bad_request("Missing key name"));
    }
    let consistency = params.consistency()?;
    let min_index = params.u64("index")?.unwrap_or(0);
    let wait = params.wait()?;
    // Consul adds up to wait/16 of jitter so many watchers do not return in lockstep.
    let jitter_ms = (wait.as_millis() as u64) / 16;
    let jitter = if jitter_ms > 0 { agent.rng().gen_range(0..=jitter_ms) } else { 0 };
    let read = if keys {
        KvRead::Keys { separator: params.get("separator").map(str::to_string) }
    } else if recurse {
        KvRead::Recurse
    } else {
        KvRead::Get
    };
    let q = KvQuery {
        key,
        read: read.clone(),
        consistency,
        min_index,
        wait_ms: (wait + Duration::from_millis(jitter)).as_millis() as u64,
    };
    let _blocking = (min_index > 0).then(|| agent.telemetry.metrics.blocking_query());
    let result = agent.query(q).await.map_err(query_error)?;
    let mut headers = meta_headers(&result, consistency.header_value());
    let not_found = match read {
        KvRead::Keys { .. } => result.keys.is_empty(),
        _ => result.entries.is_empty(),
    };
    if not_found {
        return Ok((StatusCode::NOT_FOUND, headers).into_response());
    }
    if let KvRead::Keys { .. } = read {
        let body = serde_json::to_vec(&result.keys).map_err(|e| ApiError::bad_request(e.to_string()))?;
        return Ok(json_response(StatusCode::OK, headers, body));
    }
    if params.flag("raw") && read == KvRead::Get {
        let value = result.entries.into_iter().next().map(|(_, e)| e.value).unwrap_or_default();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        headers.insert("X-Content-Type-Options", HeaderValue::from_static("nosniff"));
        headers.insert("Content-Security-Policy", HeaderValue::from_static("sandbox"));
        return Ok((StatusCode::OK, headers, value).into_response());
    }
    let list: Vec<EntryJson> = result.entries.iter().map(|(k, e)| entry_json(k, e)).collect();
    let body = serde_json::to_vec(&list).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(json_response(StatusCode::OK, headers, body))
}

/// `PUT /v1/kv/<key>` with the raw value as body, `?flags=`, `?cas=`. Answers `true`/`false`.
/// Errors: 400 bad key or parameters, 413 value over 512 KiB, 500 no leader / outcome unknown.
pub async fn put_kv(
    State(agent): State<Arc<Agent>>,
    uri: Uri,
    Query(pairs): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::from_pairs(pairs);
    let key = key_from_uri(&uri)?;
    if key.is_empty() {
        return Err(ApiError::bad_request("Missing key name"));
    }
    validate_key(&key)?;
    let cas = params.u64("cas")?;
    let locking = params.get("acquire").is_some() || params.get("release").is_some();
    if cas.is_some() && locking {
        return Err(ApiError::bad_request("Conflicting flags: cas can not be used with acquire/release"));
    }
    if locking {
        return Err(ApiError::bad_request("Sessions are not supported yet: ?acquire and ?release are unavailable"));
    }
    let flags = params.u64("flags")?.unwrap_or(0);
    if body.len() > MAX_VALUE_BYTES {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("Request body({} bytes) too large, max size: {MAX_VALUE_BYTES} bytes", body.len()),
            not_applied: true,
        });
    }
    let cmd = Command::KvSet { key, value: body.to_vec(), flags, cas };
    let result = agent.write(cmd).await.map_err(write_error)?;
    Ok(json_response(StatusCode::OK, HeaderMap::new(), if result.ok { b"true".to_vec() } else { b"false".to_vec() }))
}

/// `DELETE /v1/kv/<key>` with `?recurse` or `?cas=`. Answers `true`/`false`.
pub async fn delete_kv(
    State(agent): State<Arc<Agent>>,
    uri: Uri,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::from_pairs(pairs);
    let key = key_from_uri(&uri)?;
    let recurse = params.flag("recurse");
    let cas = params.u64("cas")?;
    if recurse && cas.is_some() {
        return Err(ApiError::bad_request("Conflicting flags: cas can not be used with recurse"));
    }
    if key.is_empty() && !recurse {
        return Err(ApiError::bad_request("Missing key name"));
    }
    if !key.is_empty() {
        validate_key(&key)?;
    }
    let result = agent.write(Command::KvDelete { key, recurse, cas }).await.map_err(write_error)?;
    Ok(json_response(StatusCode::OK, HeaderMap::new(), if result.ok { b"true".to_vec() } else { b"false".to_vec() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_dotdot_or_spaces_are_rejected() {
        assert!(validate_key("a/../b").is_err());
        assert!(validate_key("/a").is_err());
        assert!(validate_key(" a").is_err());
        assert!(validate_key("a ").is_err());
        assert!(validate_key("a/..b/c").is_ok());
    }

    #[test]
    fn percent_decoding_handles_escapes_and_rejects_garbage() {
        assert_eq!(percent_decode("a%2Fb%20c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("a%zz"), None);
        assert_eq!(percent_decode("a%2"), None);
    }
}
