//! `/v1/session`: create, destroy, renew, and the info, node and list reads.
//!
//! Source: Consul HTTP API, "Sessions" (`website/content/api-docs/session.mdx`) and
//! `agent/session_endpoint.go`. A create body may be empty; `LockDelay` is a Go duration string
//! or a number (seconds below 1000, nanoseconds from 1000 up, as Consul's `FixupLockDelay`);
//! `TTL` is a Go duration between `session_ttl_min` (10 s by default) and 24 h. Reads support blocking queries and the
//! consistency modes, and answer `[]` rather than `null` when nothing matches. Every endpoint
//! takes `?dc=`: another datacenter's sessions are created, destroyed, renewed and read there.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::Value;

use super::catalog::indexed_json;
use super::ApiError;
use crate::server::session::{SESSION_APPLY, SESSION_RENEW};
use crate::server::Server;
use crate::structs::duration::{format_go_duration, parse_go_duration};
use crate::structs::session::{ServiceCheck, DEFAULT_LOCK_DELAY_MS, MAX_LOCK_DELAY_MS, MAX_SESSION_TTL_MS};
use crate::structs::{CommandResult, QueryError, QueryOptions, Session, SessionBehavior, SessionOp, SessionQuery, SessionRequest};

/// The field names of a create body (Consul `structs.Session`), matched ignoring case.
/// How long a renew forwarded to another datacenter may take (its leader's answer, plus the hop).
const RENEW_FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

const SESSION_FIELDS: &[&str] = &["ID", "Name", "Node", "LockDelay", "Behavior", "TTL", "NodeChecks", "ServiceChecks", "Checks", "Namespace"];

/// Routes of `/v1/session`.
pub fn routes() -> axum::Router<Arc<Server>> {
    use axum::routing::{get, put};
    axum::Router::new()
        .route("/v1/session/create", put(create))
        .route("/v1/session/destroy/{id}", put(destroy))
        .route("/v1/session/renew/{id}", put(renew))
        .route("/v1/session/info/{id}", get(info))
        .route("/v1/session/node/{node}", get(node))
        .route("/v1/session/list", get(list))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// Parses a create body onto Consul's defaults: this agent's node, 15 s lock-delay, `release`,
/// no TTL, and the node check `serfHealth` when the node has one (Consul always binds it; this
/// agent has no gossip check until gossip lands, so a node without it gets no default check).
/// Errors (400): undecodable JSON, a bad field, a TTL or lock-delay out of range.
pub fn parse_create(body: &[u8], agent_node: &str, min_ttl_ms: u64, serf_check_on: impl Fn(&str) -> bool) -> Result<Session, ApiError> {
    let mut v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body).map_err(|e| bad(format!("Request decode failed: {e}")))?
    };
    super::json_keys::canonicalize(&mut v, SESSION_FIELDS);
    let obj = v.as_object().ok_or_else(|| bad("Request decode failed: body must be a JSON object"))?;
    let text = |k: &str| -> Result<String, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(bad(format!("Request decode failed: {k} must be a string, got {other}"))),
        }
    };
    let list = |k: &str| -> Result<Option<Vec<String>>, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| bad(format!("Request decode failed: {k}: {e}"))),
        }
    };
    let node = match text("Node")? {
        n if n.is_empty() => agent_node.to_string(),
        n => n,
    };
    let lock_delay_ms = match obj.get("LockDelay") {
        None | Some(Value::Null) => DEFAULT_LOCK_DELAY_MS,
        Some(Value::Number(n)) => {
            let n = n.as_f64().filter(|x| *x >= 0.0).ok_or_else(|| bad("Invalid LockDelay: must not be negative"))?;
            // Consul's FixupLockDelay: a small number is seconds, a large one nanoseconds.
            if n < 1000.0 { (n * 1000.0) as u64 } else { (n / 1e6) as u64 }
        }
        Some(Value::String(s)) => {
            parse_go_duration(s).ok_or_else(|| bad(format!("Request decode failed: invalid LockDelay {s:?}")))?.as_millis() as u64
        }
        Some(other) => return Err(bad(format!("Request decode failed: LockDelay must be a duration, got {other}"))),
    };
    if lock_delay_ms > MAX_LOCK_DELAY_MS {
        return Err(bad(format!("Lock delay must be at most {}", format_go_duration(Duration::from_millis(MAX_LOCK_DELAY_MS)))));
    }
    let ttl = text("TTL")?;
    if !ttl.is_empty() {
        let d = parse_go_duration(&ttl).ok_or_else(|| bad(format!("Session TTL '{ttl}' invalid")))?;
        let ms = d.as_millis() as u64;
        if ms != 0 && !(min_ttl_ms..=MAX_SESSION_TTL_MS).contains(&ms) {
            let (min, max) = (Duration::from_millis(min_ttl_ms), Duration::from_millis(MAX_SESSION_TTL_MS));
            return Err(bad(format!("Invalid Session TTL '{ms}', must be between [{}={}]", format_go_duration(min), format_go_duration(max))));
        }
    }
    let behavior = SessionBehavior::parse(&text("Behavior")?).map_err(bad)?;
    let service_checks: Option<Vec<ServiceCheck>> = match obj.get("ServiceChecks") {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| bad(format!("Request decode failed: ServiceChecks: {e}")))?),
    };
    // `Checks` (before Consul 1.7) are node checks; either list replaces the default.
    let node_checks = match (list("NodeChecks")?, list("Checks")?) {
        (None, None) if serf_check_on(&node) => vec![crate::local::state::SERF_CHECK_ID.to_string()],
        (None, None) => Vec::new(),
        (a, b) => {
            let mut all: Vec<String> = a.into_iter().flatten().chain(b.into_iter().flatten()).collect();
            all.dedup();
            all
        }
    };
    Ok(Session {
        id: String::new(),
        name: text("Name")?,
        node,
        lock_delay: lock_delay_ms * 1_000_000,
        behavior,
        ttl,
        node_checks,
        service_checks,
        create_index: 0,
        modify_index: 0,
    })
}

/// A refusal by the state store (Consul's RPC error): 500 with its text.
fn refused(result: CommandResult) -> Result<CommandResult, ApiError> {
    match result {
        CommandResult::Refused { error, .. } => {
            Err(ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: error, not_applied: true })
        }
        ok => Ok(ok),
    }
}

/// `PUT /v1/session/create[?dc=]` → `{"ID": "<uuid>"}`. With `?dc=` naming another datacenter
/// the session is created there (Consul forwards `Session.Apply`), where its node and checks
/// are validated; its default `NodeChecks` is then `serfHealth`, Consul's default, since only
/// that datacenter's catalog knows whether the node has one.
pub async fn create(State(server): State<Arc<Server>>, opts: QueryOptions, body: Bytes) -> Result<Json<Value>, ApiError> {
    let foreign = server.foreign_datacenter(&opts).is_some();
    let mut session = parse_create(&body, &server.config.node_name, server.config.session_ttl_min_ms, |node| foreign || server.node_has_serf_check(node))?;
    session.id = server.new_uuid();
    let id = session.id.clone();
    let req = SessionRequest { op: SessionOp::Create, session };
    refused(server.write_in(&opts, SESSION_APPLY, req, |req| server.session_apply(req, false)).await?)?;
    Ok(Json(serde_json::json!({ "ID": id })))
}

/// `PUT /v1/session/destroy/<id>[?dc=]` → `true` (also for an unknown session, as Consul).
pub async fn destroy(State(server): State<Arc<Server>>, Path(id): Path<String>, opts: QueryOptions) -> Result<Json<bool>, ApiError> {
    let req = SessionRequest { op: SessionOp::Destroy, session: Session { id, ..Session::default() } };
    refused(server.write_in(&opts, SESSION_APPLY, req, |req| server.session_apply(req, false)).await?)?;
    Ok(Json(true))
}

/// `PUT /v1/session/renew/<id>[?dc=]` → `[session]`, or 404 "Session id '<id>' not found".
/// With `?dc=` naming another datacenter, renewed by that datacenter's leader.
pub async fn renew(State(server): State<Arc<Server>>, Path(id): Path<String>, opts: QueryOptions) -> Result<Json<Vec<Session>>, ApiError> {
    let renewed = match server.foreign_datacenter(&opts).map(str::to_string) {
        Some(dc) => {
            let q = SessionQuery { name: id.clone(), opts };
            let answer: Result<Result<Option<Session>, QueryError>, _> = server.forward_dc(&dc, SESSION_RENEW, q, RENEW_FORWARD_TIMEOUT).await;
            answer.unwrap_or_else(|e| Err(e.into_query_error()))?
        }
        None => server.session_renew(SessionQuery { name: id.clone(), opts }, false).await?,
    };
    match renewed {
        Some(s) => Ok(Json(vec![s])),
        None => Err(ApiError { status: StatusCode::NOT_FOUND, message: format!("Session id '{id}' not found"), not_applied: true }),
    }
}

/// `GET /v1/session/info/<id>` → `[session]` or `[]`.
pub async fn info(State(server): State<Arc<Server>>, Path(id): Path<String>, opts: QueryOptions) -> Result<Response, ApiError> {
    Ok(indexed_json(server.session_get(SessionQuery { name: id, opts }, false).await?))
}

/// `GET /v1/session/node/<node>` → the node's sessions.
pub async fn node(State(server): State<Arc<Server>>, Path(node): Path<String>, opts: QueryOptions) -> Result<Response, ApiError> {
    Ok(indexed_json(server.node_sessions(SessionQuery { name: node, opts }, false).await?))
}

/// `GET /v1/session/list` → every session.
pub async fn list(State(server): State<Arc<Server>>, opts: QueryOptions) -> Result<Response, ApiError> {
    Ok(indexed_json(server.session_list(SessionQuery { name: String::new(), opts }, false).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Session, String> {
        parse_create(body.as_bytes(), "agent1", crate::structs::session::MIN_SESSION_TTL_MS, |_| false).map_err(|e| e.message)
    }

    #[test]
    fn an_empty_body_gets_consuls_defaults() {
        let s = parse("").unwrap();
        assert_eq!((s.node.as_str(), s.lock_delay, s.behavior, s.ttl.as_str()), ("agent1", 15_000_000_000, SessionBehavior::Release, ""));
        assert!(s.node_checks.is_empty());
        let with_serf = parse_create(b"{}", "agent1", crate::structs::session::MIN_SESSION_TTL_MS, |_| true).unwrap();
        assert_eq!(with_serf.node_checks, vec!["serfHealth"]);
    }

    #[test]
    fn lock_delay_reads_strings_seconds_and_nanoseconds() {
        assert_eq!(parse(r#"{"LockDelay":"5s"}"#).unwrap().lock_delay, 5_000_000_000);
        assert_eq!(parse(r#"{"lockdelay":7}"#).unwrap().lock_delay, 7_000_000_000);
        assert_eq!(parse(r#"{"LockDelay":2000000000}"#).unwrap().lock_delay, 2_000_000_000);
        assert!(parse(r#"{"LockDelay":"61s"}"#).is_err());
    }

    #[test]
    fn bad_ttl_behavior_and_json_are_400s_with_consuls_text() {
        assert_eq!(parse(r#"{"TTL":"5s"}"#).unwrap_err(), "Invalid Session TTL '5000', must be between [10s=24h0m0s]");
        assert_eq!(parse(r#"{"Behavior":"explode"}"#).unwrap_err(), "Invalid Behavior setting 'explode'");
        assert!(parse("{").unwrap_err().starts_with("Request decode failed"));
        assert!(parse(r#"{"TTL":"soon"}"#).is_err());
        let s = parse(r#"{"TTL":"30s","Behavior":"delete","Name":"x","NodeChecks":["a"],"ServiceChecks":[{"ID":"b"}]}"#).unwrap();
        assert_eq!((s.ttl.as_str(), s.behavior, s.check_ids().collect::<Vec<_>>()), ("30s", SessionBehavior::Delete, vec!["a", "b"]));
    }
}
