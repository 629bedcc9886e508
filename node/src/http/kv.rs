//! `/v1/kv`: Consul's KV endpoints.
//!
//! Source: Consul HTTP API, "KV Store" (`website/content/api-docs/kv.mdx`) and
//! `agent/kvs_endpoint.go`. Entries are JSON `{"LockIndex","Key","Flags","Value","CreateIndex",
//! "ModifyIndex"[,"Session"]}` with `Value` base64 (null when empty).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;

use super::params::Params;
use super::query::meta_headers;
use super::ApiError;
use crate::server::Server;
use crate::structs::{CommandResult, DirEntry, KeyListRequest, KeyRequest, KvsOp, KvsRequest, QueryOptions};

/// Largest accepted value: 512 KiB (Consul `kv_max_value_size`).
pub const MAX_VALUE_BYTES: usize = 512 * 1024;
/// A `?recurse` answer whose values total at least this many bytes is streamed (chunked transfer
/// encoding, as Go's net/http answers Consul's large responses) instead of built whole; smaller
/// ones keep a Content-Length. Issue 12: 5 concurrent reads of 54 MB built 5 whole answers.
pub const STREAM_MIN_VALUE_BYTES: usize = 256 * 1024;
/// Target size of one streamed chunk of JSON (a chunk ends after the entry that crosses it).
const STREAM_CHUNK_BYTES: usize = 64 * 1024;

/// Consul's JSON for one KV entry.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EntryJson<'a> {
    lock_index: u64,
    key: &'a str,
    flags: u64,
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    create_index: u64,
    modify_index: u64,
}

/// An entry in Consul's JSON shape (`Value` base64, null when empty).
pub(crate) fn entry_json(e: &DirEntry) -> EntryJson<'_> {
    EntryJson {
        lock_index: e.lock_index,
        key: &e.key,
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

fn json_response(status: StatusCode, mut headers: HeaderMap, body: Vec<u8>) -> Response {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    (status, headers, body).into_response()
}

fn bool_response(ok: bool) -> Response {
    json_response(StatusCode::OK, HeaderMap::new(), if ok { b"true".to_vec() } else { b"false".to_vec() })
}

/// `GET /v1/kv/<key>` with `?recurse`, `?keys[&separator=]`, `?raw`, blocking `?index=&wait=`,
/// and `?consistent` / `?stale`. 404 (with index headers) when nothing matches.
pub async fn get_kv(
    State(server): State<Arc<Server>>,
    uri: Uri,
    opts: QueryOptions,
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
    let mut opts = opts;
    // Deliberate bug (simulator only): a default-mode prefix read (`?recurse`, `?keys`) skips the leader.
    if (recurse || keys) && server.config.bugs.recurse_read_stale && opts.consistency == crate::structs::Consistency::Default {
        opts.consistency = crate::structs::Consistency::Stale;
    }
    if keys {
        let req = KeyListRequest { prefix: key, separator: params.get("separator").map(str::to_string), opts };
        let result = server.kvs_list_keys(req, false).await?;
        let headers = meta_headers(&result.meta);
        if result.keys.is_empty() {
            return Ok((StatusCode::NOT_FOUND, headers).into_response());
        }
        let body = serde_json::to_vec(&result.keys).map_err(|e| ApiError::bad_request(e.to_string()))?;
        return Ok(json_response(StatusCode::OK, headers, body));
    }
    let result = if recurse {
        server.kvs_list(KeyListRequest { prefix: key, separator: None, opts }, false).await?
    } else {
        server.kvs_get(KeyRequest { key, opts }, false).await?
    };
    let mut headers = meta_headers(&result.meta);
    if result.entries.is_empty() {
        return Ok((StatusCode::NOT_FOUND, headers).into_response());
    }
    if params.flag("raw") && !recurse {
        let value = result.entries.into_iter().next().map(|e| e.value).unwrap_or_default();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        headers.insert("X-Content-Type-Options", HeaderValue::from_static("nosniff"));
        headers.insert("Content-Security-Policy", HeaderValue::from_static("sandbox"));
        return Ok((StatusCode::OK, headers, value).into_response());
    }
    if recurse && result.entries.iter().map(|e| e.value.len()).sum::<usize>() >= STREAM_MIN_VALUE_BYTES {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let chunks = JsonArrayChunks { entries: result.entries.into_iter(), opened: false, first: true, done: false };
        return Ok((StatusCode::OK, headers, axum::body::Body::from_stream(futures::stream::iter(chunks))).into_response());
    }
    let list: Vec<EntryJson> = result.entries.iter().map(entry_json).collect();
    let body = serde_json::to_vec(&list).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(json_response(StatusCode::OK, headers, body))
}

/// The JSON array of `entries`, a chunk of about [`STREAM_CHUNK_BYTES`] at a time, byte for byte
/// what `serde_json::to_vec` of the whole list writes. Each chunk is encoded when the response
/// body asks for it, so an answer in flight holds its entries (whose values share the store's
/// bytes) and one chunk, never the whole text.
struct JsonArrayChunks {
    entries: std::vec::IntoIter<DirEntry>,
    /// `[` written.
    opened: bool,
    /// No entry written yet (no `,` before the next).
    first: bool,
    /// `]` written.
    done: bool,
}

impl Iterator for JsonArrayChunks {
    type Item = Result<Bytes, std::io::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut buf = Vec::with_capacity(STREAM_CHUNK_BYTES + STREAM_CHUNK_BYTES / 4);
        if !self.opened {
            buf.push(b'[');
            self.opened = true;
        }
        while buf.len() < STREAM_CHUNK_BYTES {
            let Some(e) = self.entries.next() else {
                buf.push(b']');
                self.done = true;
                break;
            };
            if !self.first {
                buf.push(b',');
            }
            self.first = false;
            if let Err(err) = serde_json::to_writer(&mut buf, &entry_json(&e)) {
                self.done = true;
                return Some(Err(std::io::Error::other(err)));
            }
        }
        Some(Ok(Bytes::from(buf)))
    }
}

/// `PUT /v1/kv/<key>` with the raw value as body, `?flags=`, `?cas=`, `?acquire=<session>`,
/// `?release=<session>`. Answers `true`/`false` (`false`: a failed CAS, a lock held by another
/// session or under its lock-delay, a release by a non-holder).
/// Errors: 400 bad key or parameters, 413 value over 512 KiB, 500 no leader / outcome unknown /
/// an unknown session.
pub async fn put_kv(
    State(server): State<Arc<Server>>,
    uri: Uri,
    opts: QueryOptions,
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
    let flags = params.u64("flags")?.unwrap_or(0);
    if body.len() > MAX_VALUE_BYTES {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("Request body({} bytes) too large, max size: {MAX_VALUE_BYTES} bytes", body.len()),
            not_applied: true,
        });
    }
    let (op, session) = match (params.get("acquire"), params.get("release"), cas) {
        (Some(_), Some(_), _) => return Err(ApiError::bad_request("Conflicting flags: acquire can not be used with release")),
        (Some(s), None, _) => (KvsOp::Lock, Some(s.to_string())),
        (None, Some(s), _) => (KvsOp::Unlock, Some(s.to_string())),
        (None, None, Some(_)) => (KvsOp::Cas, None),
        (None, None, None) => (KvsOp::Set, None),
    };
    let dir_ent = DirEntry { flags, modify_index: cas.unwrap_or(0), session, ..DirEntry::new(key, body) };
    match server.kvs_apply_in(&opts, KvsRequest { op, dir_ent }).await? {
        // The state store refused it (an unknown session): Consul's RPC error, a 500.
        CommandResult::Refused { error, .. } => Err(ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: error, not_applied: true }),
        result => Ok(bool_response(result.ok())),
    }
}

/// `DELETE /v1/kv/<key>` with `?recurse` or `?cas=`. Answers `true`/`false`.
pub async fn delete_kv(
    State(server): State<Arc<Server>>,
    uri: Uri,
    opts: QueryOptions,
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
    let op = match (recurse, cas) {
        (true, _) => KvsOp::DeleteTree,
        (false, Some(_)) => KvsOp::DeleteCas,
        (false, None) => KvsOp::Delete,
    };
    let dir_ent = DirEntry { modify_index: cas.unwrap_or(0), ..DirEntry::new(key, bytes::Bytes::new()) };
    let result = server.kvs_apply_in(&opts, KvsRequest { op, dir_ent }).await?;
    Ok(bool_response(result.ok()))
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

    /// The streamed `?recurse` body must be the bytes the whole-answer path writes (clients and
    /// the insta snapshots pin that JSON), across chunk boundaries.
    #[test]
    fn streamed_json_is_byte_for_byte_the_whole_answer() {
        let entries: Vec<DirEntry> = (0..200)
            .map(|i| DirEntry {
                create_index: i,
                modify_index: i + 1,
                session: (i % 3 == 0).then(|| "s\"1".to_string()),
                ..DirEntry::new(format!("p/k{i}"), if i % 5 == 0 { Vec::new() } else { vec![i as u8; 1000] })
            })
            .collect();
        let whole = serde_json::to_vec(&entries.iter().map(entry_json).collect::<Vec<_>>()).unwrap();
        let chunks: Vec<Bytes> =
            JsonArrayChunks { entries: entries.clone().into_iter(), opened: false, first: true, done: false }.map(|c| c.unwrap()).collect();
        assert!(chunks.len() > 1, "the answer spans several chunks");
        assert_eq!(chunks.concat(), whole);
        let one: Vec<Bytes> =
            JsonArrayChunks { entries: entries[..1].to_vec().into_iter(), opened: false, first: true, done: false }.map(|c| c.unwrap()).collect();
        assert_eq!(one.concat(), serde_json::to_vec(&[entry_json(&entries[0])]).unwrap());
    }

    #[test]
    fn percent_decoding_handles_escapes_and_rejects_garbage() {
        assert_eq!(percent_decode("a%2Fb%20c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("a%zz"), None);
        assert_eq!(percent_decode("a%2"), None);
    }
}
