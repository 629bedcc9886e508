//! A watch plan (Consul `api/watch`): one blocking query, run again and again, that hands each
//! *changed* result to a handler. `concord watch` runs it with a process handler; the simulator
//! runs the same plan over its network with a handler that records each delivery.
//!
//! Index rules (Consul `api/watch/plan.go`, `WaitIndexVal.Next`): the first result is always
//! delivered; later, a result is delivered only when `X-Consul-Index` differs from the last one
//! delivered; an index that went *backwards* (a server restored, or a different server answered)
//! resets the plan to index 0, so the next query returns at once and is delivered. A failed query
//! is retried after a back-off that doubles from [`RETRY_MIN`] to [`RETRY_MAX`] (Consul:
//! `retryInterval` 5 s, `maxBackoffTime` 20 s; shorter here so a partition heals into a quick
//! delivery).

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::Value;

use super::http_client::{encode_path, encode_query_value, HttpClient};

/// First wait after a failed query.
pub const RETRY_MIN: Duration = Duration::from_millis(500);
/// Longest wait after failed queries.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// What to watch (Consul's watch types, `-type=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchType {
    /// `key`: one KV entry (`null` when absent).
    Key { key: String },
    /// `keyprefix`: every KV entry under a prefix (`null` when none).
    KeyPrefix { prefix: String },
    /// `services`: the catalog's service names and tags.
    Services,
    /// `nodes`: the catalog's nodes.
    Nodes,
    /// `service`: a service's instances with their health (`-tag`, `-passingonly`).
    Service { service: String, tag: Option<String>, passing_only: bool },
    /// `checks`: the checks of a service, or the checks in a state (`any` by default).
    Checks { service: Option<String>, state: Option<String> },
    /// `event`: user events, optionally of one name.
    Event { name: Option<String> },
}

impl WatchType {
    /// Builds a watch type from Consul's flags. Errors: an unknown type, or a required flag
    /// missing (Consul's texts: "Must specify a single key to watch", …).
    pub fn from_flags(kind: &str, f: &WatchFlags) -> Result<Self, String> {
        let need = |v: &Option<String>, what: &str| v.clone().filter(|s| !s.is_empty()).ok_or_else(|| what.to_string());
        Ok(match kind {
            "key" => Self::Key { key: need(&f.key, "Must specify a single key to watch")? },
            "keyprefix" => Self::KeyPrefix { prefix: need(&f.prefix, "Must specify a single prefix to watch")? },
            "services" => Self::Services,
            "nodes" => Self::Nodes,
            "service" => Self::Service {
                service: need(&f.service, "Must specify a single service to watch")?,
                tag: f.tag.clone(),
                passing_only: f.passing_only,
            },
            "checks" => {
                if f.service.is_some() && f.state.is_some() {
                    return Err("Cannot specify service and state".into());
                }
                Self::Checks { service: f.service.clone(), state: f.state.clone() }
            }
            "event" => Self::Event { name: f.name.clone() },
            other => Err(format!("Unsupported watch type: {other}"))?,
        })
    }

    /// The blocking endpoint and its fixed query parameters.
    pub fn path(&self) -> String {
        match self {
            Self::Key { key } => format!("/v1/kv/{}", encode_path(key)),
            Self::KeyPrefix { prefix } => format!("/v1/kv/{}?recurse", encode_path(prefix)),
            Self::Services => "/v1/catalog/services".into(),
            Self::Nodes => "/v1/catalog/nodes".into(),
            Self::Service { service, tag, passing_only } => {
                let mut q = Vec::new();
                if let Some(t) = tag {
                    q.push(format!("tag={}", encode_query_value(t)));
                }
                if *passing_only {
                    q.push("passing".into());
                }
                let q = if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) };
                format!("/v1/health/service/{}{q}", encode_path(service))
            }
            Self::Checks { service: Some(s), .. } => format!("/v1/health/checks/{}", encode_path(s)),
            Self::Checks { state, .. } => format!("/v1/health/state/{}", encode_path(state.as_deref().unwrap_or("any"))),
            Self::Event { name: Some(n) } => format!("/v1/event/list?name={}", encode_query_value(n)),
            Self::Event { name: None } => "/v1/event/list".into(),
        }
    }

    /// Whether a 404 means "nothing there" (`null`) rather than an error: KV reads.
    fn not_found_is_null(&self) -> bool {
        matches!(self, Self::Key { .. } | Self::KeyPrefix { .. })
    }
}

/// The flags a watch type is built from (`concord watch`'s).
#[derive(Clone, Debug, Default)]
pub struct WatchFlags {
    pub key: Option<String>,
    pub prefix: Option<String>,
    pub service: Option<String>,
    pub tag: Option<String>,
    pub passing_only: bool,
    pub state: Option<String>,
    pub name: Option<String>,
}

/// One result of a watch: `X-Consul-Index` and the JSON body (`null` for an absent key).
#[derive(Clone, Debug, PartialEq)]
pub struct WatchResult {
    pub index: u64,
    pub value: Value,
}

/// A running watch: the last index it delivered.
pub struct Plan {
    client: HttpClient,
    kind: WatchType,
    /// `?stale`: any server may answer.
    stale: bool,
    /// `?wait=` of each blocking query.
    wait: Duration,
    last_index: Option<u64>,
    /// The last result, kept for the deliberate bug below.
    last_result: Option<WatchResult>,
    /// Deliberate bug (simulator only): deliver the *previous* changed result instead of the new one.
    deliver_previous: bool,
}

impl Plan {
    /// A plan that has delivered nothing yet.
    pub fn new(client: HttpClient, kind: WatchType, stale: bool, wait: Duration) -> Self {
        Self { client, kind, stale, wait, last_index: None, last_result: None, deliver_previous: false }
    }

    /// Deliberate bug (`--bug watch-delivers-previous`): the handler gets the result before the
    /// change, as a plan that swapped "last" and "new" would.
    pub fn delivering_previous(mut self, on: bool) -> Self {
        self.deliver_previous = on;
        self
    }

    /// One blocking query from the last delivered index (none at first). Errors: the request
    /// failed, or the agent answered anything but 200 (or 404 on a KV watch), or a body that
    /// is not JSON.
    pub async fn fetch(&self) -> Result<WatchResult, String> {
        let base = self.kind.path();
        let mut q = Vec::new();
        if let Some(i) = self.last_index.filter(|i| *i > 0) {
            q.push(format!("index={i}"));
            q.push(format!("wait={}ms", self.wait.as_millis()));
        }
        if self.stale {
            q.push("stale".into());
        }
        let sep = if base.contains('?') { '&' } else { '?' };
        let path = if q.is_empty() { base } else { format!("{base}{sep}{}", q.join("&")) };
        let r = self.client.request(Method::GET, &path, Vec::new()).await?;
        let index = r.index;
        let value = match r.status {
            StatusCode::OK => serde_json::from_slice(&r.body).map_err(|e| format!("watch: bad JSON from {path}: {e}"))?,
            StatusCode::NOT_FOUND if self.kind.not_found_is_null() => Value::Null,
            _ => return Err(r.unexpected()),
        };
        let index = index.ok_or_else(|| format!("watch: no X-Consul-Index from {path}"))?;
        Ok(WatchResult { index, value })
    }

    /// Applies the index rules to a fresh result: `Some(result to deliver)` when it changed.
    pub fn observe(&mut self, result: WatchResult) -> Option<WatchResult> {
        let next = match self.last_index {
            Some(old) if result.index < old => 0,
            _ => result.index,
        };
        if self.last_index == Some(next) {
            return None;
        }
        self.last_index = Some(next);
        let previous = self.last_result.replace(result.clone());
        if self.deliver_previous {
            if let Some(p) = previous {
                return Some(p);
            }
        }
        Some(result)
    }

    /// Runs until `handler` returns `false` or `until` (tokio time) passes: fetches, delivers each
    /// changed result, backs off after failures (each reported to `on_error`).
    pub async fn run<F, Fut>(
        &mut self,
        until: Option<tokio::time::Instant>,
        mut handler: F,
        mut on_error: impl FnMut(&str),
    ) where
        F: FnMut(WatchResult) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let mut backoff = RETRY_MIN;
        while until.is_none_or(|u| tokio::time::Instant::now() < u) {
            match self.fetch().await {
                Ok(result) => {
                    backoff = RETRY_MIN;
                    if let Some(changed) = self.observe(result) {
                        if !handler(changed).await {
                            return;
                        }
                    }
                }
                Err(e) => {
                    on_error(&e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::new(HttpClient::new("127.0.0.1:1").unwrap(), WatchType::Nodes, false, Duration::from_secs(1))
    }

    fn r(index: u64, v: u64) -> WatchResult {
        WatchResult { index, value: Value::from(v) }
    }

    #[test]
    fn delivers_the_first_result_then_only_index_changes() {
        let mut p = plan();
        assert_eq!(p.observe(r(5, 1)), Some(r(5, 1)));
        assert_eq!(p.observe(r(5, 1)), None, "a wait that ran out with the same index");
        assert_eq!(p.observe(r(7, 2)), Some(r(7, 2)));
    }

    #[test]
    fn an_index_that_goes_back_resets_to_zero_and_is_delivered() {
        let mut p = plan();
        p.observe(r(9, 1));
        assert_eq!(p.observe(r(4, 2)), Some(r(4, 2)));
        assert_eq!(p.last_index, Some(0), "the next query does not block");
        assert_eq!(p.observe(r(4, 2)), Some(r(4, 2)), "then index 4 differs from 0 again, as in Consul");
        assert_eq!(p.observe(r(4, 2)), None);
    }

    #[test]
    fn the_deliberate_bug_delivers_the_previous_result() {
        let mut p = plan().delivering_previous(true);
        assert_eq!(p.observe(r(5, 1)), Some(r(5, 1)));
        assert_eq!(p.observe(r(7, 2)), Some(r(5, 1)));
    }

    #[test]
    fn types_map_to_consuls_endpoints_and_check_their_flags() {
        let f = |k: &str, flags: WatchFlags| WatchType::from_flags(k, &flags).map(|t| t.path());
        assert_eq!(f("key", WatchFlags { key: Some("a b".into()), ..Default::default() }).unwrap(), "/v1/kv/a%20b");
        assert_eq!(f("keyprefix", WatchFlags { prefix: Some("app/".into()), ..Default::default() }).unwrap(), "/v1/kv/app/?recurse");
        assert_eq!(f("services", WatchFlags::default()).unwrap(), "/v1/catalog/services");
        assert_eq!(f("nodes", WatchFlags::default()).unwrap(), "/v1/catalog/nodes");
        let svc = WatchFlags { service: Some("web".into()), tag: Some("v1".into()), passing_only: true, ..Default::default() };
        assert_eq!(f("service", svc).unwrap(), "/v1/health/service/web?tag=v1&passing");
        assert_eq!(f("checks", WatchFlags::default()).unwrap(), "/v1/health/state/any");
        assert_eq!(f("checks", WatchFlags { state: Some("critical".into()), ..Default::default() }).unwrap(), "/v1/health/state/critical");
        assert_eq!(f("event", WatchFlags { name: Some("deploy".into()), ..Default::default() }).unwrap(), "/v1/event/list?name=deploy");
        assert_eq!(f("key", WatchFlags::default()).unwrap_err(), "Must specify a single key to watch");
        assert_eq!(f("service", WatchFlags::default()).unwrap_err(), "Must specify a single service to watch");
        let both = WatchFlags { service: Some("web".into()), state: Some("any".into()), ..Default::default() };
        assert_eq!(f("checks", both).unwrap_err(), "Cannot specify service and state");
        assert_eq!(f("connect_roots", WatchFlags::default()).unwrap_err(), "Unsupported watch type: connect_roots");
    }
}
