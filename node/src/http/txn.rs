//! `PUT /v1/txn`: several KV operations applied atomically.
//!
//! Source: Consul HTTP API, "Transactions" (`website/content/api-docs/txn.mdx`) and
//! `agent/txn_endpoint.go`. The body is a JSON array of `{"KV": {"Verb", "Key", "Value" (base64),
//! "Flags", "Index", "Session"}}`, field names matched ignoring case as Go does. A transaction
//! with a write goes through Raft as one entry (`Txn.Apply`); one with only `get`, `get-or-empty`,
//! `get-tree` and `check-*` verbs is a read (`Txn.Read`) under `?stale` / `?consistent` / default,
//! never blocking. Answers: 200 `{"Results": [{"KV": entry}, ...], "Errors": null}`; 409
//! `{"Results": null, "Errors": [{"OpIndex": i, "What": "..."}]}` when any operation failed (then
//! nothing was applied). Node, Service and Check operations support `get`, `set`, `cas`, `delete`
//! and `delete-cas`.
//! Errors: 400 undecodable body, unknown verb, bad key, a Session or Intention operation or a
//! catalog `cas`/`delete-cas` (not supported yet); 413 a body over
//! 512 KiB or more than [`MAX_TXN_OPS`] operations; 500 no leader / outcome unknown.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Map, Value};

use super::kv::{entry_json, validate_key, MAX_VALUE_BYTES};
use super::query::meta_headers;
use super::ApiError;
use crate::server::Server;
use crate::structs::{
    CommandResult, DirEntry, QueryOptions, TxnCatalogVerb, TxnError, TxnKvOp, TxnKvVerb, TxnOp, TxnReadRequest, TxnRequest, TxnResult, MAX_TXN_OPS,
};

/// Largest accepted body (Consul `txn_max_req_len`, which defaults to `kv_max_value_size`).
pub const MAX_TXN_BODY_BYTES: usize = MAX_VALUE_BYTES;

/// Field names of a transaction body (Consul `api.TxnOp`, `api.KVTxnOp`), matched ignoring case.
const TXN_FIELDS: &[&str] = &[
    "KV", "Node", "Service", "Check", "Session", "Intention", "Verb", "Key", "Value", "Flags", "Index", "Namespace", "Partition", "ID",
    "Address", "Datacenter", "TaggedAddresses", "Meta", "Tags", "Port", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID",
    "ServiceName", "ServiceTags", "ModifyIndex",
];

/// Routes of `/v1/txn`.
pub fn routes() -> axum::Router<Arc<Server>> {
    axum::Router::new().route("/v1/txn", axum::routing::put(txn))
}

fn too_large(message: String) -> ApiError {
    ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, message, not_applied: true }
}

/// Parses a transaction body. Errors: 413 too big or too many operations, 400 anything else.
pub fn parse_ops(body: &[u8]) -> Result<Vec<TxnOp>, ApiError> {
    if body.len() > MAX_TXN_BODY_BYTES {
        return Err(too_large(format!("Request body too large, max size: {MAX_TXN_BODY_BYTES} bytes")));
    }
    let mut v: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Failed to parse body: {e}")))?;
    super::json_keys::canonicalize(&mut v, TXN_FIELDS);
    let items = match v {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => return Err(ApiError::bad_request(format!("Failed to parse body: expected a JSON array of operations, got {other}"))),
    };
    if items.len() > MAX_TXN_OPS {
        return Err(too_large(format!("Transaction contains too many operations ({} > {MAX_TXN_OPS})", items.len())));
    }
    items.iter().enumerate().map(|(i, item)| parse_op(i, item)).collect()
}

fn parse_op(i: usize, item: &Value) -> Result<TxnOp, ApiError> {
    let bad = |what: String| ApiError::bad_request(format!("Failed to parse body: operation {i}: {what}"));
    let obj = item.as_object().ok_or_else(|| bad(format!("expected an object, got {item}")))?;
    let present = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
    if let Some(kind) = ["Session", "Intention"].into_iter().find(|k| present(k)) {
        return Err(ApiError::bad_request(format!("Transaction operation {i}: {kind} operations are not supported yet")));
    }
    if let Some(kind) = ["Node", "Service", "Check"].into_iter().find(|k| present(k)) {
        return parse_catalog(i, kind, &obj[kind]);
    }
    let kv = match obj.get("KV") {
        Some(Value::Object(kv)) => kv,
        Some(other) if !other.is_null() => return Err(bad(format!("KV must be an object, got {other}"))),
        _ => return Err(bad("no operation specified".to_string())),
    };
    parse_kv(kv).map_err(bad).and_then(|op| {
        if !op.dir_ent.key.is_empty() {
            validate_key(&op.dir_ent.key)?;
        }
        Ok(TxnOp::Kv(op))
    })
}

/// A Node, Service or Check operation (`get`, `set`, `cas`, `delete`, `delete-cas`).
fn parse_catalog(i: usize, kind: &str, v: &Value) -> Result<TxnOp, ApiError> {
    let bad = |what: String| ApiError::bad_request(format!("Failed to parse body: operation {i}: {what}"));
    let obj = v.as_object().ok_or_else(|| bad(format!("{kind} must be an object, got {v}")))?;
    let verb_text = obj.get("Verb").and_then(Value::as_str).unwrap_or("");
    let verb = TxnCatalogVerb::parse(verb_text).ok_or_else(|| bad(format!("unknown {kind} verb {verb_text:?}")))?;
    let inner = |field: &str| obj.get(field).cloned().filter(|v| !v.is_null()).unwrap_or_else(|| json!({}));
    let decode_err = |e: serde_json::Error| bad(format!("{kind}: {e}"));
    Ok(match kind {
        "Node" => TxnOp::Node { verb, node: serde_json::from_value(inner("Node")).map_err(decode_err)? },
        "Service" => TxnOp::Service {
            verb,
            node: obj.get("Node").and_then(Value::as_str).unwrap_or("").to_string(),
            service: serde_json::from_value(inner("Service")).map_err(decode_err)?,
        },
        _ => TxnOp::Check { verb, check: serde_json::from_value(inner("Check")).map_err(decode_err)? },
    })
}

fn parse_kv(kv: &Map<String, Value>) -> Result<TxnKvOp, String> {
    let text = |k: &str| -> Result<String, String> {
        match kv.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("{k} must be a string, got {other}")),
        }
    };
    let number = |k: &str| -> Result<u64, String> {
        match kv.get(k) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v.as_u64().ok_or_else(|| format!("{k} must be a non-negative integer, got {v}")),
        }
    };
    let verb_text = text("Verb")?;
    let verb = TxnKvVerb::parse(&verb_text).ok_or_else(|| format!("unknown KV verb {verb_text:?}"))?;
    let value = match text("Value")? {
        s if s.is_empty() => Vec::new(),
        s => base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_err(|e| format!("failed to decode value: {e}"))?,
    };
    let session = Some(text("Session")?).filter(|s| !s.is_empty());
    let dir_ent = DirEntry { flags: number("Flags")?, modify_index: number("Index")?, session, ..DirEntry::new(text("Key")?, value) };
    Ok(TxnKvOp { verb, dir_ent })
}

fn result_json(r: &TxnResult) -> Value {
    match r {
        TxnResult::Kv(e) => json!({ "KV": entry_json(e) }),
        TxnResult::Node(n) => json!({ "Node": n }),
        TxnResult::Service(svc) => json!({ "Service": svc }),
        TxnResult::Check(c) => json!({ "Check": c }),
    }
}

/// Consul's `TxnResponse` JSON: 200 with the results, or 409 with the errors.
fn answer(mut headers: HeaderMap, results: &[TxnResult], errors: &[TxnError]) -> Result<Response, ApiError> {
    let (status, body) = if errors.is_empty() {
        (StatusCode::OK, json!({ "Results": results.iter().map(result_json).collect::<Vec<_>>(), "Errors": null }))
    } else {
        let errors: Vec<Value> = errors.iter().map(|e| json!({ "OpIndex": e.op_index, "What": e.what })).collect();
        (StatusCode::CONFLICT, json!({ "Results": null, "Errors": errors }))
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok((status, headers, bytes).into_response())
}

/// `PUT /v1/txn`.
pub async fn txn(State(server): State<Arc<Server>>, opts: QueryOptions, body: Bytes) -> Result<Response, ApiError> {
    let mut ops = parse_ops(&body)?;
    // Consul fills a node's datacenter with the one the transaction runs in (`?dc=`, else the
    // agent's).
    let dc = server.foreign_datacenter(&opts).unwrap_or(&server.config.datacenter).to_string();
    for op in &mut ops {
        if let TxnOp::Node { node, .. } = op {
            if node.datacenter.is_empty() {
                node.datacenter = dc.clone();
            }
        }
    }
    if !ops.iter().any(TxnOp::is_write) {
        let read = server.txn_read(TxnReadRequest { ops, opts }, false).await?;
        return answer(meta_headers(&read.meta), &read.results, &read.errors);
    }
    match server.write_in(&opts, crate::server::txn::TXN_APPLY, TxnRequest { ops }, |req| server.txn_apply(req, false)).await? {
        CommandResult::Txn { results, errors, .. } => answer(HeaderMap::new(), &results, &errors),
        CommandResult::Refused { error, .. } => {
            Err(ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: error, not_applied: true })
        }
        _ => answer(HeaderMap::new(), &[], &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Vec<TxnOp>, (u16, String)> {
        parse_ops(body.as_bytes()).map_err(|e| (e.status.as_u16(), e.message))
    }

    #[test]
    fn kv_ops_parse_with_base64_values_and_any_case() {
        let ops = parse(r#"[{"KV":{"Verb":"cas","Key":"a","Value":"aGk=","Flags":3,"Index":7}},{"kv":{"verb":"lock","key":"b","session":"s"}}]"#).unwrap();
        let TxnOp::Kv(a) = &ops[0] else { panic!("not KV") };
        assert_eq!((a.verb, &a.dir_ent.value[..], a.dir_ent.flags, a.dir_ent.modify_index), (TxnKvVerb::Cas, &b"hi"[..], 3, 7));
        let TxnOp::Kv(b) = &ops[1] else { panic!("not KV") };
        assert_eq!((b.verb, b.dir_ent.session.as_deref()), (TxnKvVerb::Lock, Some("s")));
    }

    #[test]
    fn bad_bodies_are_400s_and_big_ones_413s() {
        assert_eq!(parse("{").unwrap_err().0, 400);
        assert_eq!(parse(r#"{"KV":{}}"#).unwrap_err().0, 400);
        assert!(parse(r#"[{"KV":{"Verb":"explode","Key":"a"}}]"#).unwrap_err().1.contains(r#"unknown KV verb "explode""#));
        assert_eq!(parse(r#"[{"KV":{"Verb":"set","Key":"a","Value":"%%%"}}]"#).unwrap_err().0, 400);
        assert_eq!(parse(r#"[{"KV":{"Verb":"set","Key":"a","Flags":-1}}]"#).unwrap_err().0, 400);
        assert_eq!(parse(r#"[{"KV":{"Verb":"set","Key":"a/../b"}}]"#).unwrap_err().0, 400);
        assert!(parse(r#"[{"Session":{"Verb":"delete","Session":{"ID":"x"}}}]"#).unwrap_err().1.contains("not supported yet"));
        let cas = parse(r#"[{"Node":{"Verb":"cas","Node":{"Node":"n","modifyindex":7}}}]"#).unwrap();
        assert!(matches!(&cas[0], TxnOp::Node { verb: TxnCatalogVerb::Cas, node } if node.modify_index == 7));
        assert_eq!(parse(r#"[{"Check":{"Verb":"nope"}}]"#).unwrap_err().0, 400);
        assert_eq!(parse("[{}]").unwrap_err().0, 400);
        let many = format!("[{}]", vec![r#"{"KV":{"Verb":"get","Key":"a"}}"#; MAX_TXN_OPS + 1].join(","));
        assert_eq!(parse(&many).unwrap_err(), (413, format!("Transaction contains too many operations ({} > {MAX_TXN_OPS})", MAX_TXN_OPS + 1)));
        assert_eq!(parse(&format!("\"{}\"", "x".repeat(MAX_TXN_BODY_BYTES))).unwrap_err().0, 413);
        assert_eq!(parse("[]").unwrap(), Vec::new());
    }

    #[test]
    fn catalog_ops_parse() {
        let ops = parse(r#"[{"Node":{"Verb":"set","Node":{"Node":"n1","address":"10.0.0.1"}}},{"Service":{"Verb":"get","Node":"n1","Service":{"ID":"web"}}},{"check":{"verb":"delete","check":{"Node":"n1","CheckID":"c"}}}]"#).unwrap();
        assert!(matches!(&ops[0], TxnOp::Node { verb: TxnCatalogVerb::Set, node } if node.address == "10.0.0.1"));
        assert!(matches!(&ops[1], TxnOp::Service { verb: TxnCatalogVerb::Get, node, service } if node == "n1" && service.id == "web"));
        assert!(matches!(&ops[2], TxnOp::Check { verb: TxnCatalogVerb::Delete, check } if check.check_id == "c"));
    }
}
