//! End-to-end: `/v1/catalog/*` and `/v1/health/*` against a real `concord agent -dev`, in Consul's
//! shapes (pinned with insta snapshots of their key/type structure), with `?filter=`, `?passing`,
//! `?tag=`, blocking queries that wake only for their own service, the catalog CLI, and py-consul.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use tests::dev::DevAgent;
use tests::http::{curl, must};
use tests::python::{python_with_py_consul, script};
use tests::{run_with_timeout, serial, shape, wait_until};

const PYTHON_TIMEOUT: Duration = Duration::from_secs(90);

fn register(dev: &DevAgent, node: &str, service: &str, status: &str) {
    let body = json!({
        "Node": node, "Address": "10.0.0.9", "NodeMeta": {"rack": "r1"}, "TaggedAddresses": {"lan": "10.0.0.9"},
        "Service": {"Service": service, "ID": format!("{service}-{node}"), "Port": 8080, "Tags": ["v1"], "Meta": {"env": "prod"}},
        "Checks": [
            {"CheckID": format!("{service}-{node}-alive"), "Name": "alive", "ServiceID": format!("{service}-{node}"), "Status": status},
            {"CheckID": "mem", "Name": "memory", "Status": "passing"},
        ],
    });
    let r = must("PUT", &dev.agent.url("/v1/catalog/register"), Some(body.to_string().as_bytes()));
    assert_eq!(r.text(), "true");
}

#[test]
fn catalog_and_health_answer_in_consuls_shapes() {
    let _serial = serial();
    let dev = DevAgent::start();
    let get = |path: &str| must("GET", &dev.agent.url(path), None);
    // The agent's own gossip member gets a serfHealth check from the leader's reconcile; wait for
    // it so the counts below are not racing it.
    wait_until(Duration::from_secs(20), "the dev agent's serfHealth", || {
        let checks = get("/v1/health/node/concord-dev").json();
        checks.as_array().is_some_and(|a| a.iter().any(|c| c["CheckID"] == "serfHealth")).then_some(()).ok_or(checks.to_string())
    });
    register(&dev, "n1", "web", "passing");
    register(&dev, "n2", "web", "critical");

    // The agent's own node is in the catalog too (anti-entropy registers it); the node-meta filter
    // keeps the two registered here.
    let nodes = get("/v1/catalog/nodes?node-meta=rack:r1").json();
    insta::assert_json_snapshot!("catalog_nodes_shape", shape(&nodes));
    assert_eq!(nodes.as_array().map(|a| a.iter().map(|n| n["Node"].clone()).collect::<Vec<_>>()), Some(vec![json!("n1"), json!("n2")]));
    let services = get("/v1/catalog/services").json();
    assert_eq!(services["web"], json!(["v1"]));
    let instances = get("/v1/catalog/service/web").json();
    insta::assert_json_snapshot!("catalog_service_shape", shape(&instances));
    assert_eq!(instances.as_array().map(Vec::len), Some(2));
    let node = get("/v1/catalog/node/n1").json();
    insta::assert_json_snapshot!("catalog_node_shape", shape(&node));
    assert_eq!(get("/v1/catalog/node/nope").text(), "null", "Consul answers null for an unknown node");
    assert_eq!(get("/v1/catalog/datacenters").json(), json!(["dc1"]));

    let health = get("/v1/health/service/web").json();
    insta::assert_json_snapshot!("health_service_shape", shape(&health));
    let checks = health[0]["Checks"].as_array().map(|c| c.iter().map(|c| c["CheckID"].clone()).collect::<Vec<_>>());
    assert_eq!(checks, Some(vec![json!("mem"), json!("web-n1-alive")]), "node checks, then the instance's");
    let passing = get("/v1/health/service/web?passing").json();
    assert_eq!(passing.as_array().map(|a| a.iter().map(|e| e["Node"]["Node"].clone()).collect::<Vec<_>>()), Some(vec![json!("n1")]));
    let node_checks = get("/v1/health/node/n2").json();
    insta::assert_json_snapshot!("health_node_shape", shape(&node_checks));
    assert_eq!(get("/v1/health/checks/web").json().as_array().map(Vec::len), Some(2));
    assert_eq!(get("/v1/health/state/critical").json().as_array().map(Vec::len), Some(1));
    assert_eq!(get("/v1/health/state/any").json().as_array().map(Vec::len), Some(5), "4 registered here and the agent's serfHealth");

    let filtered = get("/v1/health/service/web?filter=Checks.Status%20%3D%3D%20critical").json();
    assert_eq!(filtered.as_array().map(|a| a.iter().map(|e| e["Node"]["Node"].clone()).collect::<Vec<_>>()), Some(vec![json!("n2")]));
    let by_meta = get("/v1/catalog/service/web?filter=ServiceMeta.env%20%3D%3D%20prod%20and%20Node%20%3D%3D%20n2").json();
    assert_eq!(by_meta.as_array().map(Vec::len), Some(1));
    assert_eq!(get("/v1/catalog/nodes?node-meta=rack:r2").json(), json!([]));
}

#[test]
fn bad_requests_are_400s_that_name_the_problem_and_change_nothing() {
    let _serial = serial();
    let dev = DevAgent::start();
    let put = |path: &str, body: &str| curl("PUT", &dev.agent.url(path), Some(body.as_bytes())).expect("curl");
    let r = put("/v1/catalog/register", "{not json");
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("Request decode failed"), "{}", r.text());
    let r = put("/v1/catalog/register", r#"{"Node":"n1","Address":"10.0.0.1","Check":{"CheckID":"c","ServiceID":"missing"}}"#);
    assert_eq!((r.status, r.text()), (400, "Missing service registration".to_string()));
    let node = must("GET", &dev.agent.url("/v1/catalog/node/n1"), None);
    assert_eq!(node.text(), "null", "the refused registration left no node behind");
    let r = put("/v1/catalog/register", r#"{"Node":"","Address":"10.0.0.1"}"#);
    assert_eq!((r.status, r.text()), (400, "Must provide node".to_string()));
    let r = curl("GET", &dev.agent.url("/v1/health/service/web?filter=Service.Port%20%3D%3D"), None).expect("curl");
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("Failed to create boolean expression evaluator: filter:") && r.text().contains("column"), "{}", r.text());
    let r = curl("GET", &dev.agent.url("/v1/health/state/sideways"), None).expect("curl");
    assert_eq!(r.status, 400);
}

#[test]
fn a_blocking_health_query_wakes_for_its_own_service_only() {
    let _serial = serial();
    let dev = DevAgent::start();
    register(&dev, "n1", "web", "passing");
    register(&dev, "n1", "db", "passing");
    let index = must("GET", &dev.agent.url("/v1/health/service/web"), None).consul_index();
    let url = dev.agent.url(&format!("/v1/health/service/web?index={index}&wait=2s"));
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let r = must("GET", &url, None);
        (started.elapsed(), r.consul_index())
    });
    std::thread::sleep(Duration::from_millis(300));
    // Changes to another service's health must not wake the web watcher.
    register(&dev, "n1", "db", "critical");
    register(&dev, "n1", "db", "passing");
    let (elapsed, after) = waiter.join().expect("waiter");
    assert!(elapsed >= Duration::from_millis(1_900), "woke after {elapsed:?} for a change to db");
    assert_eq!(after, index, "web's index did not move");

    // A change to web's own health wakes it at once.
    let url = dev.agent.url(&format!("/v1/health/service/web?index={index}&wait=20s"));
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let r = must("GET", &url, None);
        (started.elapsed(), r.consul_index())
    });
    std::thread::sleep(Duration::from_millis(300));
    register(&dev, "n1", "web", "critical");
    let (elapsed, after) = waiter.join().expect("waiter");
    assert!(elapsed < Duration::from_secs(5) && after > index, "woke after {elapsed:?} with index {after}");
}

#[test]
fn catalog_cli_lists_datacenters_nodes_and_services() {
    let _serial = serial();
    let dev = DevAgent::start();
    register(&dev, "n1", "web", "passing");
    let out = dev.cli(&["catalog", "datacenters"]);
    assert_eq!(out.stdout, "dc1\n", "{}", out.stderr);
    let out = dev.cli(&["catalog", "nodes", "-node-meta=rack=r1"]);
    assert_eq!(out.stdout, "Node  ID  Address   DC\nn1        10.0.0.9  dc1\n", "{}", out.stderr);
    // Unfiltered, the agent's own node (registered by anti-entropy, with its ID's first 8 characters) is listed too.
    let id = must("GET", &dev.agent.url("/v1/agent/self"), None).json()["Config"]["NodeID"].as_str().map(|s| s[..8].to_string());
    let own = wait_until(Duration::from_secs(10), "the agent's own node in the catalog", || {
        let out = dev.cli(&["catalog", "nodes"]);
        let line = out.stdout.lines().find(|l| l.starts_with("concord-dev ")).map(str::to_string);
        line.ok_or(out.stdout)
    });
    assert!(id.is_some_and(|id| own.contains(&id)) && own.contains("127.0.0.1") && own.ends_with("dc1"), "{own}");
    let out = dev.cli(&["catalog", "services", "-tags"]);
    assert_eq!(out.stdout, "web  v1\n", "{}", out.stderr);
    let out = dev.cli(&["catalog", "nodes", "-service=nope"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("No nodes match"), "{}", out.stderr);
}

#[test]
fn py_consul_catalog_and_health_calls_work() {
    let _serial = serial();
    let python = python_with_py_consul().expect("a Python with py-consul");
    let dev = DevAgent::start();
    let out = run_with_timeout(Command::new(python).arg(script("catalog_health.py")).arg(dev.addr()), PYTHON_TIMEOUT);
    assert!(out.status.success(), "py-consul: {}{}", out.stdout, out.stderr);
}
