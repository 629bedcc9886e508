//! Per-agent metrics (Prometheus data model, `prometheus-client`), one [`Metrics`] per agent.
//!
//! Names follow Consul's telemetry where it has one (`consul.raft.commitTime` becomes
//! `consul_raft_commit_time_seconds`, `consul.kvs.apply` becomes `consul_kvs_apply_total`), in
//! Prometheus' conventions (snake case, unit suffix, `_total` on counters). Durations are seconds.
//! Every hook is one call and never fails; label values are bounded sets (route templates, not raw
//! paths; verbs; RPC endpoint names), so a family cannot grow without bound.

use std::sync::Mutex;

use openraft::{BasicNode, RaftMetrics, ServerState};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::raft::NodeId;
use crate::structs::Request;

/// Latency buckets: 0.1 ms doubling up to ~6.5 s (17 buckets), for fsync, apply, commit, HTTP.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

type Labels = Vec<(String, String)>;

/// One agent's metrics.
pub struct Metrics {
    registry: Registry,
    raft_commit_time: Histogram,
    raft_fsm_apply_time: Histogram,
    raft_fsync_time: Histogram,
    raft_leader_changes: Counter,
    raft_term: Gauge,
    raft_last_index: Gauge,
    raft_applied_index: Gauge,
    raft_is_leader: Gauge,
    raft_voters: Gauge,
    rpc_requests: Family<Labels, Counter>,
    rpc_errors: Family<Labels, Counter>,
    http_requests: Family<Labels, Counter>,
    http_latency: Family<Labels, Histogram, fn() -> Histogram>,
    kvs_apply: Family<Labels, Counter>,
    blocking_queries: Gauge,
    gossip_decrypt_failed: Counter,
    /// Serialises encoding (the registry is read-only after construction; this only orders
    /// concurrent scrapes).
    encode_lock: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Records a duration into a histogram when dropped.
pub struct Timer {
    histogram: Histogram,
    start: tokio::time::Instant,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

/// Counts one blocking query in flight until dropped.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// A fresh registry with every metric registered (all zero).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("consul");
        let raft_commit_time = latency_histogram();
        let raft_fsm_apply_time = latency_histogram();
        let raft_fsync_time = latency_histogram();
        let raft_leader_changes = Counter::default();
        let (raft_term, raft_last_index, raft_applied_index, raft_is_leader, raft_voters) =
            (Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default());
        let rpc_requests = Family::<Labels, Counter>::default();
        let rpc_errors = Family::<Labels, Counter>::default();
        let http_requests = Family::<Labels, Counter>::default();
        let http_latency = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let kvs_apply = Family::<Labels, Counter>::default();
        let blocking_queries = Gauge::default();
        let gossip_decrypt_failed = Counter::default();

        let r = &mut registry;
        r.register_with_unit("raft_commit_time", "Leader: time from proposing a write to its commit and apply", Unit::Seconds, raft_commit_time.clone());
        r.register_with_unit("raft_fsm_apply_time", "Time to apply a batch of committed entries to the state machine", Unit::Seconds, raft_fsm_apply_time.clone());
        r.register_with_unit("raft_fsync_time", "Time to fsync the Raft log after an append", Unit::Seconds, raft_fsync_time.clone());
        r.register("raft_state_leader", "Times this server saw a new leader (itself or another)", raft_leader_changes.clone());
        r.register("raft_term", "Current Raft term", raft_term.clone());
        r.register("raft_last_index", "Index of the last entry in this server's Raft log", raft_last_index.clone());
        r.register("raft_applied_index", "Index of the last entry applied to the state machine", raft_applied_index.clone());
        r.register("server_isLeader", "1 if this server is the leader, else 0", raft_is_leader.clone());
        r.register("raft_peers", "Voters in the Raft configuration", raft_voters.clone());
        r.register("rpc_request", "Server RPC requests served, by endpoint", rpc_requests.clone());
        r.register("rpc_request_error", "Server RPC requests that failed, by endpoint", rpc_errors.clone());
        r.register("http_requests", "HTTP API requests, by method, route and status code", http_requests.clone());
        r.register_with_unit("http_request_duration", "HTTP API latency, by method and route", Unit::Seconds, http_latency.clone());
        r.register("kvs_apply", "KV writes applied to the state machine, by verb", kvs_apply.clone());
        r.register("rpc_queries_blocking", "Blocking queries currently waiting", blocking_queries.clone());
        // Concord's own: memberlist only logs these ("Decrypt packet failed").
        r.register("memberlist_decrypt_failed", "Gossip datagrams dropped because no installed key authenticated them", gossip_decrypt_failed.clone());

        Self {
            registry,
            raft_commit_time,
            raft_fsm_apply_time,
            raft_fsync_time,
            raft_leader_changes,
            raft_term,
            raft_last_index,
            raft_applied_index,
            raft_is_leader,
            raft_voters,
            rpc_requests,
            rpc_errors,
            http_requests,
            http_latency,
            kvs_apply,
            blocking_queries,
            gossip_decrypt_failed,
            encode_lock: Mutex::new(()),
        }
    }

    /// The Prometheus text exposition, format 0.0.4 (what `?format=prometheus` serves).
    pub fn prometheus_text(&self) -> String {
        let _guard = self.encode_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            return String::new();
        }
        openmetrics_to_text_004(&out)
    }

    /// Times a leader write until the returned guard drops (`consul.raft.commitTime`).
    pub fn raft_commit_timer(&self) -> Timer {
        Timer { histogram: self.raft_commit_time.clone(), start: tokio::time::Instant::now() }
    }

    /// Times a state-machine apply batch (`consul.raft.fsm.apply`).
    pub fn fsm_apply_timer(&self) -> Timer {
        Timer { histogram: self.raft_fsm_apply_time.clone(), start: tokio::time::Instant::now() }
    }

    /// Times a Raft log fsync.
    pub fn fsync_timer(&self) -> Timer {
        Timer { histogram: self.raft_fsync_time.clone(), start: tokio::time::Instant::now() }
    }

    /// Counts a leader change seen by this server.
    pub fn leader_changed(&self) {
        self.raft_leader_changes.inc();
    }

    /// Updates the Raft gauges from openraft's metrics.
    pub fn observe_raft(&self, m: &RaftMetrics<NodeId, BasicNode>) {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.raft_term.set(clamp(m.current_term));
        self.raft_last_index.set(clamp(m.last_log_index.unwrap_or(0)));
        self.raft_applied_index.set(clamp(m.last_applied.map(|l| l.index).unwrap_or(0)));
        self.raft_is_leader.set(i64::from(m.state == ServerState::Leader));
        self.raft_voters.set(clamp(m.membership_config.membership().voter_ids().count() as u64));
    }

    /// Counts one served server RPC, and whether it failed.
    pub fn rpc(&self, endpoint: &'static str, failed: bool) {
        let labels = vec![("endpoint".to_string(), endpoint.to_string())];
        if failed {
            self.rpc_errors.get_or_create(&labels).inc();
        }
        self.rpc_requests.get_or_create(&labels).inc();
    }

    /// Counts one HTTP request and records its latency. `route` is the route template.
    pub fn http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let base = vec![("method".to_string(), method.to_string()), ("path".to_string(), route.to_string())];
        self.http_latency.get_or_create(&base).observe(seconds);
        let mut with_code = base;
        with_code.push(("code".to_string(), status.to_string()));
        self.http_requests.get_or_create(&with_code).inc();
    }

    /// Counts one applied KV command by Consul's verb name (`set`, `cas`, `delete`,
    /// `delete-cas`, `delete-tree`); other requests are not KV applies.
    pub fn kv_apply(&self, req: &Request) {
        if let Request::Kvs(r) = req {
            self.kvs_apply.get_or_create(&vec![("verb".to_string(), r.op.as_str().to_string())]).inc();
        }
    }

    /// The counter of gossip datagrams that failed authentication (the gossip driver increments
    /// it: `consul_memberlist_decrypt_failed_total`).
    pub fn gossip_decrypt_failures(&self) -> Counter {
        self.gossip_decrypt_failed.clone()
    }

    /// Counts a blocking query until the returned guard drops.
    pub fn blocking_query(&self) -> InFlight {
        self.blocking_queries.inc();
        InFlight(self.blocking_queries.clone())
    }
}

/// Rewrites prometheus-client's OpenMetrics text as Prometheus text format 0.0.4: `# EOF` and
/// `# UNIT` lines are OpenMetrics-only (0.0.4 parsers reject or ignore them), and a counter's
/// `# TYPE`/`# HELP` must name the sample (`x_total`), not the OpenMetrics family (`x`).
pub fn openmetrics_to_text_004(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# TYPE ", "# HELP "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_is_accepted_by_a_prometheus_parser() {
        let m = Metrics::new();
        m.http("GET", "/v1/kv/*key", 200, 0.002);
        m.http("PUT", "/v1/kv/*key", 500, 0.2);
        m.rpc("Raft.AppendEntries", false);
        m.rpc("KVS.Apply", true);
        let cas = crate::structs::KvsRequest { op: crate::structs::KvsOp::Cas, dir_ent: crate::structs::DirEntry::new("k", bytes::Bytes::new()) };
        m.kv_apply(&Request::Kvs(cas));
        drop(m.raft_commit_timer());
        let _blocking = m.blocking_query();
        m.gossip_decrypt_failures().inc();
        let text = m.prometheus_text();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("prometheus-parse accepts the exposition");
        let find = |name: &str| scrape.samples.iter().find(|s| s.metric == name).unwrap_or_else(|| panic!("{name} missing in\n{text}"));
        assert!(matches!(find("consul_kvs_apply_total").value, prometheus_parse::Value::Counter(v) if v == 1.0), "typed as a counter: {text}");
        assert!(matches!(find("consul_rpc_queries_blocking").value, prometheus_parse::Value::Gauge(v) if v == 1.0), "{text}");
        assert!(matches!(find("consul_memberlist_decrypt_failed_total").value, prometheus_parse::Value::Counter(v) if v == 1.0), "the gossip driver's counter is the registered one: {text}");
        assert!(matches!(find("consul_raft_commit_time_seconds").value, prometheus_parse::Value::Histogram(_)), "{text}");
        let http = scrape.samples.iter().find(|s| s.metric == "consul_http_requests_total" && s.labels.get("code") == Some("500"));
        assert_eq!(http.and_then(|s| s.labels.get("path")), Some("/v1/kv/*key"));
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
    }
}
