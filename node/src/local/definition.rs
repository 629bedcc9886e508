//! Service and check definitions as clients send them to `PUT /v1/agent/service/register` and
//! `PUT /v1/agent/check/register`, decoded and validated into what the local state holds.
//!
//! Source: Consul HTTP API "Service - Agent" and "Check - Agent"
//! (`website/content/api-docs/agent/service.mdx`, `check.mdx`), `agent/structs/service_definition.go`,
//! `agent/structs/check_type.go` (`CheckType.Validate`) and `agent/agent_endpoint.go`
//! (`AgentRegisterService`, which accepts PascalCase or snake_case keys). Decoding is
//! case-insensitive and ignores `_`, as Consul's is, except inside user maps (`Meta`, `Header`),
//! whose keys are kept as sent. Nothing here touches the local state: a definition is refused
//! whole, before anything is applied.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::structs::duration::{format_go_duration, parse_go_duration};
use crate::structs::{HealthCheck, HealthStatus, Meta, NodeService, Weights};

/// HTTP and TCP check timeout when none is given: 10 s (Consul "Health Checks" docs).
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// Most `Meta` pairs on one service (Consul `metaMaxKeyPairs`).
pub const META_MAX_PAIRS: usize = 64;
/// Longest `Meta` key and value, in bytes (Consul `metaKeyMaxLength`, `metaValueMaxLength`).
pub const META_KEY_MAX_BYTES: usize = 128;
pub const META_VALUE_MAX_BYTES: usize = 512;
/// Consul's refusal of script checks on an agent that did not enable them.
pub const SCRIPTS_DISABLED: &str =
    "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true";

/// What a check runs (Consul's `CheckType` kinds that Concord supports).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckKind {
    /// Updated by the application through `/v1/agent/check/{pass,warn,fail,update}`; critical
    /// when not updated within `ttl`.
    Ttl { ttl: Duration },
    /// An HTTP request every interval: 2xx passing, 429 warning, anything else critical.
    Http { url: String, method: String, header: BTreeMap<String, Vec<String>>, body: String },
    /// A TCP connect every interval: connected is passing.
    Tcp { addr: String },
    /// A command every interval (exit 0 passing, 1 warning, else critical).
    Script { args: Vec<String> },
    /// Mirrors the health of a service instance and/or a node (Consul `checks.CheckAlias`):
    /// `service` is a service *ID*; `node` defaults to this agent's node. See [`super::alias`].
    Alias { service: Option<String>, node: Option<String> },
    /// Set only by the agent itself (maintenance mode): never runs, never expires.
    Manual,
}

impl CheckKind {
    /// Consul's `Type` for the check.
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckKind::Ttl { .. } => "ttl",
            CheckKind::Http { .. } => "http",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Script { .. } => "script",
            CheckKind::Alias { .. } => "alias",
            CheckKind::Manual => "",
        }
    }
}

/// How a check runs and how its results count (Consul `structs.CheckType` minus identity).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    pub kind: CheckKind,
    /// Between runs (interval checks only).
    pub interval: Option<Duration>,
    /// Per run (HTTP, TCP, script); [`DEFAULT_CHECK_TIMEOUT`] when `None`.
    pub timeout: Option<Duration>,
    /// Status a new check starts in (default critical).
    pub initial_status: HealthStatus,
    /// Consecutive successes needed before passing is reported (0 and 1 mean at once).
    pub success_before_passing: u32,
    /// Consecutive failures needed before critical is reported (0 and 1 mean at once).
    pub failures_before_critical: u32,
    /// Consecutive failures before warning is reported; defaults to `failures_before_critical`.
    pub failures_before_warning: u32,
    /// Remove the check's service once the check stayed critical this long.
    pub deregister_critical_after: Option<Duration>,
}

impl CheckSpec {
    /// A check set by the agent itself (maintenance mode).
    pub fn manual() -> Self {
        Self {
            kind: CheckKind::Manual,
            interval: None,
            timeout: None,
            initial_status: HealthStatus::Critical,
            success_before_passing: 0,
            failures_before_critical: 0,
            failures_before_warning: 0,
            deregister_critical_after: None,
        }
    }

    /// The per-run timeout.
    pub fn timeout_or_default(&self) -> Duration {
        self.timeout.filter(|t| !t.is_zero()).unwrap_or(DEFAULT_CHECK_TIMEOUT)
    }
}

/// A check, validated: what the catalog shows ([`HealthCheck`], without node) and how it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRegistration {
    pub check: HealthCheck,
    pub spec: CheckSpec,
    /// Whether the client gave `Status` (else a re-registration keeps the current status).
    pub status_given: bool,
}

/// A service registration, validated: the instance and its checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRegistration {
    pub service: NodeService,
    pub checks: Vec<CheckRegistration>,
}

/// A check as sent (Consul `CheckDefinition` / `CheckType`), after key canonicalisation.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCheck {
    id: Option<String>,
    #[serde(rename = "checkid")]
    check_id: Option<String>,
    name: Option<String>,
    notes: Option<String>,
    #[serde(rename = "serviceid")]
    service_id: Option<String>,
    status: Option<String>,
    args: Option<Vec<String>>,
    #[serde(rename = "scriptargs")]
    script_args: Option<Vec<String>>,
    http: Option<String>,
    method: Option<String>,
    header: Option<BTreeMap<String, Vec<String>>>,
    body: Option<String>,
    tcp: Option<String>,
    interval: Option<Value>,
    timeout: Option<Value>,
    ttl: Option<Value>,
    #[serde(rename = "deregistercriticalserviceafter")]
    deregister_critical_service_after: Option<Value>,
    #[serde(rename = "successbeforepassing")]
    success_before_passing: Option<u32>,
    #[serde(rename = "failuresbeforecritical")]
    failures_before_critical: Option<u32>,
    #[serde(rename = "failuresbeforewarning")]
    failures_before_warning: Option<u32>,
    grpc: Option<String>,
    h2ping: Option<String>,
    udp: Option<String>,
    #[serde(rename = "aliasservice")]
    alias_service: Option<String>,
    #[serde(rename = "aliasnode")]
    alias_node: Option<String>,
    #[serde(rename = "osservice")]
    os_service: Option<String>,
}

/// A service as sent (Consul `ServiceDefinition`), after key canonicalisation.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawService {
    kind: Option<String>,
    id: Option<String>,
    name: Option<String>,
    tags: Option<Vec<String>>,
    address: Option<String>,
    meta: Option<Meta>,
    port: Option<u16>,
    #[serde(rename = "enabletagoverride")]
    enable_tag_override: Option<bool>,
    weights: Option<RawWeights>,
    check: Option<RawCheck>,
    checks: Option<Vec<RawCheck>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawWeights {
    passing: Option<i32>,
    warning: Option<i32>,
}

/// Keys whose values are user maps: their own keys are data, not field names.
const USER_MAP_KEYS: [&str; 4] = ["meta", "header", "taggedaddresses", "nodemeta"];
/// Keys whose values hold nested definitions to canonicalise too.
const NESTED_KEYS: [&str; 3] = ["check", "checks", "weights"];

/// Lower-cases keys and drops `_`, so `EnableTagOverride`, `enable_tag_override` and
/// `enabletagoverride` all name one field (Consul decodes case-insensitively and translates
/// snake_case). User maps keep their keys.
fn canonical(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let ck: String = k.chars().filter(|c| *c != '_').collect::<String>().to_lowercase();
                    let v = if USER_MAP_KEYS.contains(&ck.as_str()) {
                        v
                    } else if NESTED_KEYS.contains(&ck.as_str()) {
                        match v {
                            Value::Array(a) => Value::Array(a.into_iter().map(canonical).collect()),
                            other => canonical(other),
                        }
                    } else {
                        v
                    };
                    (ck, v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// A duration field: a Go duration string, or a number of nanoseconds (Go's JSON form).
fn duration(field: &str, v: &Option<Value>) -> Result<Option<Duration>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => parse_go_duration(s).map(Some).ok_or_else(|| format!("Invalid {field}: {s:?} is not a duration")),
        Some(Value::Number(n)) => {
            n.as_u64().map(|ns| Some(Duration::from_nanos(ns))).ok_or_else(|| format!("Invalid {field}: {n} is not a duration"))
        }
        Some(other) => Err(format!("Invalid {field}: {other} is not a duration")),
    }
}

/// Parses a JSON body. Errors: not JSON, or a field of the wrong type (Consul answers 400
/// "Request decode failed: ...").
fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("Request decode failed: {e}"))?;
    if !v.is_object() {
        return Err("Request decode failed: body must be a JSON object".into());
    }
    serde_json::from_value(canonical(v)).map_err(|e| format!("Request decode failed: {e}"))
}

/// Decodes and validates `PUT /v1/agent/service/register`. `default_check_id` numbering follows
/// Consul: `service:<id>` for one check, `service:<id>:<n>` (from 1) for several.
/// Errors (400): bad JSON, no name, bad meta or weights, an invalid check.
pub fn parse_service(body: &[u8], enable_script_checks: bool) -> Result<ServiceRegistration, String> {
    let raw: RawService = decode(body)?;
    let name = raw.name.unwrap_or_default();
    if name.is_empty() {
        return Err("Missing service name".into());
    }
    let id = raw.id.filter(|i| !i.is_empty()).unwrap_or_else(|| name.clone());
    let meta = raw.meta.unwrap_or_default();
    validate_meta(&meta).map_err(|e| format!("Invalid Service Meta: {e}"))?;
    let weights = match raw.weights {
        None => Weights::default(),
        Some(w) => {
            let w = Weights { passing: w.passing.unwrap_or(1), warning: w.warning.unwrap_or(1) };
            if w.passing < 1 {
                return Err("Invalid Weights: Passing must be greater than 0".into());
            }
            if w.warning < 0 {
                return Err("Invalid Weights: Warning must not be negative".into());
            }
            w
        }
    };
    let service = NodeService {
        kind: raw.kind.unwrap_or_default(),
        id: id.clone(),
        service: name.clone(),
        tags: raw.tags.unwrap_or_default(),
        meta,
        port: raw.port.unwrap_or(0),
        address: raw.address.unwrap_or_default(),
        weights,
        enable_tag_override: raw.enable_tag_override.unwrap_or(false),
        ..NodeService::default()
    };
    let mut raws: Vec<RawCheck> = raw.check.into_iter().collect();
    raws.extend(raw.checks.unwrap_or_default());
    let many = raws.len() > 1;
    let mut checks = Vec::with_capacity(raws.len());
    for (i, rc) in raws.into_iter().enumerate() {
        let default_id = if many { format!("service:{id}:{}", i + 1) } else { format!("service:{id}") };
        let check_id = rc.check_id.clone().or_else(|| rc.id.clone()).filter(|c| !c.is_empty()).unwrap_or(default_id);
        let check_name = rc.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| format!("Service '{name}' check"));
        let mut reg = check_registration(rc, check_id, check_name, enable_script_checks).map_err(|e| format!("Invalid check: {e}"))?;
        reg.check.service_id = id.clone();
        reg.check.service_name = name.clone();
        reg.check.service_tags = service.tags.clone();
        checks.push(reg);
    }
    Ok(ServiceRegistration { service, checks })
}

/// Decodes and validates `PUT /v1/agent/check/register`. The check's `ID` defaults to its name.
/// Errors (400): bad JSON, no name, an invalid check. Whether `ServiceID` exists is the local
/// state's question.
pub fn parse_check(body: &[u8], enable_script_checks: bool) -> Result<CheckRegistration, String> {
    let raw: RawCheck = decode(body)?;
    let name = raw.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err("Missing check name".into());
    }
    let id = raw.id.clone().or_else(|| raw.check_id.clone()).filter(|i| !i.is_empty()).unwrap_or_else(|| name.clone());
    let service_id = raw.service_id.clone().unwrap_or_default();
    let mut reg = check_registration(raw, id, name, enable_script_checks).map_err(|e| format!("Invalid check: {e}"))?;
    reg.check.service_id = service_id;
    Ok(reg)
}

/// Validates one check (Consul `CheckType.Validate`) and builds it.
fn check_registration(rc: RawCheck, check_id: String, name: String, scripts: bool) -> Result<CheckRegistration, String> {
    for (given, what) in [
        (&rc.grpc, "GRPC"),
        (&rc.h2ping, "H2PING"),
        (&rc.udp, "UDP"),
        (&rc.os_service, "OSService"),
    ] {
        if given.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(format!("{what} checks are not supported by Concord yet"));
        }
    }
    let interval = duration("Interval", &rc.interval)?.filter(|d| !d.is_zero());
    let timeout = duration("Timeout", &rc.timeout)?.filter(|d| !d.is_zero());
    let ttl = duration("TTL", &rc.ttl)?.filter(|d| !d.is_zero());
    let dereg = duration("DeregisterCriticalServiceAfter", &rc.deregister_critical_service_after)?.filter(|d| !d.is_zero());
    let args = rc.args.or(rc.script_args).filter(|a| !a.is_empty());
    let http = rc.http.filter(|h| !h.is_empty());
    let tcp = rc.tcp.filter(|t| !t.is_empty());
    let interval_check = args.is_some() || http.is_some() || tcp.is_some();
    let alias_service = rc.alias_service.filter(|s| !s.is_empty());
    let alias_node = rc.alias_node.filter(|n| !n.is_empty());
    let is_alias = alias_service.is_some() || alias_node.is_some();
    if interval.is_some() && ttl.is_some() {
        return Err("Interval and TTL cannot both be specified".into());
    }
    if interval_check && interval.is_none() {
        return Err("Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks".into());
    }
    if interval_check && is_alias {
        return Err("Interval cannot be set for Alias checks".into());
    }
    if is_alias && ttl.is_some() {
        return Err("TTL must be not be set for Alias checks".into());
    }
    if !interval_check && !is_alias && ttl.is_none() {
        return Err("TTL must be > 0 for TTL checks".into());
    }
    let kind = if is_alias {
        CheckKind::Alias { service: alias_service, node: alias_node }
    } else if let Some(args) = args {
        if !scripts {
            return Err(SCRIPTS_DISABLED.into());
        }
        CheckKind::Script { args }
    } else if let Some(url) = http {
        validate_http_url(&url)?;
        let method = rc.method.filter(|m| !m.is_empty()).unwrap_or_else(|| "GET".into()).to_uppercase();
        if !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("Invalid HTTP method {method:?}"));
        }
        CheckKind::Http { url, method, header: rc.header.unwrap_or_default(), body: rc.body.unwrap_or_default() }
    } else if let Some(addr) = tcp {
        CheckKind::Tcp { addr }
    } else {
        CheckKind::Ttl { ttl: ttl.unwrap_or_default() }
    };
    let status_given = rc.status.as_deref().is_some_and(|s| !s.is_empty());
    let initial_status = match rc.status.as_deref() {
        None | Some("") => HealthStatus::Critical,
        Some(s) => HealthStatus::parse(s)?,
    };
    let failures_before_critical = rc.failures_before_critical.unwrap_or(0);
    let spec = CheckSpec {
        interval,
        timeout,
        initial_status,
        success_before_passing: rc.success_before_passing.unwrap_or(0),
        failures_before_critical,
        failures_before_warning: rc.failures_before_warning.unwrap_or(failures_before_critical),
        deregister_critical_after: dereg,
        kind,
    };
    let check = HealthCheck {
        check_id,
        name,
        status: initial_status,
        notes: rc.notes.unwrap_or_default(),
        check_type: spec.kind.type_name().to_string(),
        interval: interval.map(format_go_duration).unwrap_or_default(),
        timeout: timeout.map(format_go_duration).unwrap_or_default(),
        ..HealthCheck::default()
    };
    Ok(CheckRegistration { check, spec, status_given })
}

/// HTTP checks speak plain `http://host[:port]/path`; TLS is not in the I/O abstraction yet.
fn validate_http_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Err(format!("HTTPS checks are not supported by Concord yet: {url:?}"));
    }
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("HTTP check URL {url:?} must start with http://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("HTTP check URL {url:?} has no host"));
    }
    Ok(())
}

/// Consul's service meta rules (`structs.ValidateServiceMetadata`).
fn validate_meta(meta: &Meta) -> Result<(), String> {
    if meta.len() > META_MAX_PAIRS {
        return Err(format!("Node metadata cannot contain more than {META_MAX_PAIRS} key/value pairs"));
    }
    for (k, v) in meta {
        if k.is_empty() {
            return Err("Key cannot be blank".into());
        }
        if !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(format!("Key contains invalid characters: {k}"));
        }
        if k.len() > META_KEY_MAX_BYTES {
            return Err(format!("Key is too long (limit: {META_KEY_MAX_BYTES} characters)"));
        }
        if k.starts_with("consul-") {
            return Err(format!("Key prefix 'consul-' is reserved for internal use: {k}"));
        }
        if v.len() > META_VALUE_MAX_BYTES {
            return Err(format!("Value is too long (limit: {META_VALUE_MAX_BYTES} characters)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pascal_and_snake_case_service_bodies_decode_alike() {
        let pascal = br#"{"Name":"web","ID":"web1","Tags":["a"],"Port":80,"Meta":{"Some_Key":"v"},"EnableTagOverride":true,
            "Weights":{"Passing":3,"Warning":2},"Check":{"TTL":"10s","DeregisterCriticalServiceAfter":"90s"}}"#;
        let snake = br#"{"name":"web","id":"web1","tags":["a"],"port":80,"meta":{"Some_Key":"v"},"enable_tag_override":true,
            "weights":{"passing":3,"warning":2},"check":{"ttl":"10s","deregister_critical_service_after":"90s"}}"#;
        let (a, b) = (parse_service(pascal, false).unwrap(), parse_service(snake, false).unwrap());
        assert_eq!(a, b);
        assert_eq!(a.service.meta.get("Some_Key").map(String::as_str), Some("v"), "meta keys are data, kept as sent");
        assert_eq!(a.checks[0].check.check_id, "service:web1");
        assert_eq!(a.checks[0].check.name, "Service 'web' check");
        assert_eq!(a.checks[0].spec.kind, CheckKind::Ttl { ttl: Duration::from_secs(10) });
        assert_eq!(a.checks[0].spec.deregister_critical_after, Some(Duration::from_secs(90)));
        assert_eq!(a.service.weights, Weights { passing: 3, warning: 2 });
    }

    #[test]
    fn several_service_checks_are_numbered_from_one() {
        let body = br#"{"Name":"db","Checks":[{"TTL":"5s"},{"TCP":"127.0.0.1:5432","Interval":"10s"}]}"#;
        let reg = parse_service(body, false).unwrap();
        let ids: Vec<_> = reg.checks.iter().map(|c| c.check.check_id.as_str()).collect();
        assert_eq!(ids, ["service:db:1", "service:db:2"]);
        assert_eq!(reg.checks[1].check.interval, "10s");
        assert_eq!(reg.checks[1].check.check_type, "tcp");
    }

    #[test]
    fn invalid_checks_are_refused_with_consuls_messages() {
        let cases: [(&[u8], &str); 6] = [
            (br#"{"Name":"w","Check":{"HTTP":"http://x/"}}"#, "Invalid check: Interval must be > 0"),
            (br#"{"Name":"w","Check":{"Notes":"n"}}"#, "Invalid check: TTL must be > 0 for TTL checks"),
            (br#"{"Name":"w","Check":{"TTL":"1s","Interval":"1s"}}"#, "Invalid check: Interval and TTL cannot both be specified"),
            (br#"{"Name":"w","Check":{"Args":["true"],"Interval":"1s"}}"#, "Invalid check: Scripts are disabled"),
            (br#"{"Tags":["x"]}"#, "Missing service name"),
            (br#"{"Name":"w","Port":70000}"#, "Request decode failed"),
        ];
        for (body, want) in cases {
            let err = parse_service(body, false).unwrap_err();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
        assert!(parse_service(br#"{"Name":"w","Check":{"Args":["true"],"Interval":"1s"}}"#, true).is_ok());
    }

    #[test]
    fn check_register_defaults_id_to_name_and_reads_status() {
        let reg = parse_check(br#"{"Name":"mem","TTL":"15s","Status":"passing","ServiceID":"web"}"#, false).unwrap();
        assert_eq!((reg.check.check_id.as_str(), reg.check.status, reg.check.service_id.as_str()), ("mem", HealthStatus::Passing, "web"));
        assert!(reg.status_given);
        assert_eq!(parse_check(br#"{"TTL":"15s"}"#, false).unwrap_err(), "Missing check name");
        assert!(parse_check(br#"{"Name":"x","TTL":"15s","Status":"bogus"}"#, false).is_err());
        let id_alias = parse_check(br#"{"name":"x","check_id":"cx","ttl":"1s","failures_before_critical":3}"#, false).unwrap();
        assert_eq!((id_alias.check.check_id.as_str(), id_alias.spec.failures_before_warning), ("cx", 3));
    }

    #[test]
    fn alias_checks_need_no_ttl_and_refuse_one_as_consul_does() {
        let reg = parse_check(br#"{"Name":"a","AliasService":"web1"}"#, false).unwrap();
        assert_eq!(reg.spec.kind, CheckKind::Alias { service: Some("web1".into()), node: None });
        assert_eq!(reg.check.check_type, "alias");
        let snake = parse_check(br#"{"name":"a","alias_node":"n2","alias_service":""}"#, false).unwrap();
        assert_eq!(snake.spec.kind, CheckKind::Alias { service: None, node: Some("n2".into()) });
        let ttl = parse_check(br#"{"Name":"a","AliasService":"web1","TTL":"5s"}"#, false).unwrap_err();
        assert_eq!(ttl, "Invalid check: TTL must be not be set for Alias checks");
        let tcp = parse_check(br#"{"Name":"a","AliasService":"web1","TCP":"x:1","Interval":"1s"}"#, false).unwrap_err();
        assert_eq!(tcp, "Invalid check: Interval cannot be set for Alias checks");
    }
}
