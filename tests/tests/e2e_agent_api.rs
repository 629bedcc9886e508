//! End-to-end: `/v1/agent/self`, `/v1/agent/version`, `/v1/agent/host` and `/v1/agent/metrics`
//! in Consul's shapes (pinned with insta snapshots of their key/type structure), read by real
//! clients: py-consul and a Prometheus text-format parser.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tests::dev::DevAgent;
use tests::http::must;
use tests::python::{python_with_py_consul, script};
use tests::{run_with_timeout, serial, shape};

/// Deadline for the py-consul script.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn agent_self_version_and_host_have_consuls_shape() {
    let _serial = serial();
    let dev = DevAgent::start();
    let me = must("GET", &dev.agent.url("/v1/agent/self"), None).json();
    insta::assert_json_snapshot!("agent_self_shape", shape(&me));
    assert_eq!(me["Config"]["Version"], "1.20.0", "the Consul API level, for clients that gate on it");
    assert_eq!(me["Stats"]["build"]["version"], env!("CARGO_PKG_VERSION"), "Concord's own version");
    assert_eq!(me["Stats"]["consul"]["leader"], "true");
    assert_eq!(me["Stats"]["consul"]["leader_addr"], Value::String(dev.agent.rpc_addr()));
    assert_eq!(me["Stats"]["raft"]["state"], "Leader");
    let node_id = me["Config"]["NodeID"].as_str().unwrap_or_default();
    assert!(node_id.len() == 36 && node_id.matches('-').count() == 4, "NodeID is a UUID: {node_id:?}");

    let other = DevAgent::start();
    let other_id = must("GET", &other.agent.url("/v1/agent/self"), None).json()["Config"]["NodeID"].clone();
    assert_ne!(other_id, me["Config"]["NodeID"], "each -dev agent gets its own NodeID");

    let version = must("GET", &dev.agent.url("/v1/agent/version"), None).json();
    insta::assert_json_snapshot!("agent_version_shape", shape(&version));
    assert_eq!(version["HumanVersion"], "1.20.0");
    let host = must("GET", &dev.agent.url("/v1/agent/host"), None).json();
    insta::assert_json_snapshot!("agent_host_shape", shape(&host));
}

#[test]
fn node_id_survives_a_restart_from_the_same_data_dir() {
    let _serial = serial();
    let mut cluster = tests::cluster::Cluster::start(1);
    let url = cluster.servers[0].url("/v1/agent/self");
    let before = must("GET", &url, None).json()["Config"]["NodeID"].clone();
    cluster.servers[0].kill();
    cluster.servers[0].start();
    cluster.wait_for_leader(tests::cluster::LEADER_TIMEOUT);
    let after = must("GET", &url, None).json()["Config"]["NodeID"].clone();
    assert_eq!(before, after, "NodeID is kept in the data dir");
}

#[test]
fn metrics_are_consul_json_and_prometheus_text_that_a_parser_accepts() {
    let _serial = serial();
    let dev = DevAgent::start();
    for i in 0..3 {
        must("PUT", &dev.agent.url(&format!("/v1/kv/m/{i}")), Some(b"v"));
    }
    must("GET", &dev.agent.url("/v1/kv/m/0"), None);
    let r = must("GET", &dev.agent.url("/v1/agent/metrics?format=prometheus"), None);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/plain; version=0.0.4"), "{:?}", r.header("content-type"));
    let text = r.text();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("a Prometheus parser accepts it");
    let names: std::collections::BTreeSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for name in [
        "consul_raft_commit_time_seconds", "consul_raft_fsm_apply_time_seconds", "consul_raft_fsync_time_seconds",
        "consul_raft_state_leader_total", "consul_raft_term", "consul_raft_last_index", "consul_http_requests_total",
        "consul_http_request_duration_seconds", "consul_kvs_apply_total", "consul_rpc_queries_blocking",
    ] {
        assert!(names.contains(name), "{name} missing from\n{text}");
    }
    let set = scrape.samples.iter().find(|s| s.metric == "consul_kvs_apply_total" && s.labels.get("verb") == Some("set"));
    assert!(matches!(set.map(|s| &s.value), Some(prometheus_parse::Value::Counter(v)) if *v >= 3.0), "{text}");
    let put_ok = scrape.samples.iter().any(|s| {
        s.metric == "consul_http_requests_total" && s.labels.get("method") == Some("PUT") && s.labels.get("code") == Some("200")
    });
    assert!(put_ok, "PUTs are counted by route and status:\n{text}");

    let json = must("GET", &dev.agent.url("/v1/agent/metrics"), None).json();
    for key in ["Timestamp", "Gauges", "Points", "Counters", "Samples"] {
        assert!(json.get(key).is_some(), "Consul's JSON has {key}: {json}");
    }
    let counter = json["Counters"].as_array().and_then(|c| c.iter().find(|c| c["Name"] == "consul.kvs.apply"));
    assert!(counter.is_some_and(|c| c["Labels"]["verb"] == "set"), "{json}");
}

#[test]
fn py_consul_agent_self_and_status_calls_work() {
    let _serial = serial();
    let python = python_with_py_consul().expect("a Python with py-consul");
    let dev = DevAgent::start();
    let out = run_with_timeout(Command::new(python).arg(script("agent_self.py")).arg(dev.addr()), PYTHON_TIMEOUT);
    assert!(out.status.success(), "py-consul: {}{}", out.stdout, out.stderr);
}
