//! End-to-end: services and checks registered on the agent (`/v1/agent/service*`,
//! `/v1/agent/check*`, `/v1/agent/health/service/*`), run by its check runners, carried to the
//! catalog by anti-entropy, and kept in the data dir across a restart. The JSON shapes of
//! `/v1/agent/services` and `/v1/agent/checks` are pinned with insta snapshots.

use std::time::Duration;

use serde_json::Value;
use tests::cluster::{AgentProcess, Cluster, LEADER_TIMEOUT};
use tests::dev::DevAgent;
use tests::http::must;
use tests::tiny_http::TinyServer;
use tests::{serial, wait_until};

/// How long a check or a sync may take to show (check intervals here are 1 s).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

const WEB: &[u8] = br#"{"Name":"web","ID":"web1","Tags":["v1"],"Port":8080,"Address":"10.0.0.5","Meta":{"version":"1"},
    "Weights":{"Passing":5,"Warning":1},"Check":{"CheckID":"web1-ttl","Name":"web ttl","TTL":"60s","Notes":"app heartbeat"}}"#;

fn put(agent: &AgentProcess, path: &str, body: Option<&[u8]>) -> u16 {
    must("PUT", &agent.url(path), body).status
}

fn get_json(agent: &AgentProcess, path: &str) -> Value {
    let r = must("GET", &agent.url(path), None);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.json()
}

/// Waits until the agent's log says anti-entropy synced `what` (e.g. "synced service").
fn wait_for_log(agent: &AgentProcess, what: &str, id: &str) {
    wait_until(SETTLE_TIMEOUT, &format!("{what} {id} in the log"), || {
        let log = agent.log_tail();
        log.lines().any(|l| l.contains(what) && l.contains(id)).then_some(()).ok_or_else(|| "not yet".to_string())
    });
}

#[test]
fn a_ttl_service_registers_passes_and_is_synced_to_the_catalog() {
    let _serial = serial();
    let dev = DevAgent::start();
    let a = &dev.agent;
    assert_eq!(put(a, "/v1/agent/service/register", Some(WEB)), 200);
    let health = must("GET", &a.url("/v1/agent/health/service/id/web1"), None);
    assert_eq!((health.status, health.json()["AggregatedStatus"].as_str()), (503, Some("critical")), "checks start critical");
    wait_for_log(a, "synced service", "web1");

    assert_eq!(put(a, "/v1/agent/check/pass/web1-ttl?note=all%20good", None), 200);
    insta::assert_json_snapshot!("agent_services", get_json(a, "/v1/agent/services"));
    insta::assert_json_snapshot!("agent_checks", get_json(a, "/v1/agent/checks"));
    let by_name = must("GET", &a.url("/v1/agent/health/service/name/web"), None);
    assert_eq!(by_name.status, 200, "{}", by_name.text());
    assert_eq!(by_name.json()[0]["Checks"][0]["Output"], "all good");
    assert_eq!(must("GET", &a.url("/v1/agent/health/service/name/web?format=text"), None).text(), "passing");
    wait_for_log(a, "synced check", "web1-ttl");

    // Warning answers 429; service maintenance makes the instance unavailable (503) until lifted.
    assert_eq!(put(a, "/v1/agent/check/update/web1-ttl", Some(br#"{"Status":"warning","Output":"slow"}"#)), 200);
    assert_eq!(must("GET", &a.url("/v1/agent/health/service/id/web1"), None).status, 429);
    assert_eq!(put(a, "/v1/agent/service/maintenance/web1?enable=true&reason=deploy", None), 200);
    let maint = must("GET", &a.url("/v1/agent/health/service/id/web1?format=text"), None);
    assert_eq!((maint.status, maint.text().as_str()), (503, "maintenance"));
    assert_eq!(get_json(a, "/v1/agent/checks")["_service_maintenance:web1"]["Notes"], "deploy");
    assert_eq!(put(a, "/v1/agent/service/maintenance/web1?enable=false", None), 200);
    assert_eq!(must("GET", &a.url("/v1/agent/health/service/id/web1"), None).status, 429);

    // Bad input is 400 and unknown ids 404, and neither changes anything.
    assert_eq!(put(a, "/v1/agent/service/register", Some(br#"{"Tags":["x"]}"#)), 400);
    assert_eq!(put(a, "/v1/agent/service/register", Some(br#"{"Name":"bad","Check":{"HTTP":"http://127.0.0.1:1/"}}"#)), 400);
    assert_eq!(put(a, "/v1/agent/service/register", Some(b"{not json")), 400);
    assert_eq!(put(a, "/v1/agent/check/pass/nope", None), 404);
    assert_eq!(put(a, "/v1/agent/check/update/web1-ttl", Some(br#"{"Status":"bogus"}"#)), 400);
    assert_eq!(put(a, "/v1/agent/service/deregister/nope", None), 404);
    assert_eq!(put(a, "/v1/agent/service/maintenance/nope?enable=true", None), 404);
    assert_eq!(put(a, "/v1/agent/maintenance", None), 400, "enable is required");
    assert_eq!(must("GET", &a.url("/v1/agent/service/nope"), None).status, 404);
    assert_eq!(must("GET", &a.url("/v1/agent/health/service/name/nope"), None).status, 404);
    let services = get_json(a, "/v1/agent/services");
    assert_eq!(services.as_object().map(|m| m.len()), Some(1), "{services}");

    let one = get_json(a, "/v1/agent/service/web1");
    assert!(one["ContentHash"].as_str().is_some_and(|h| h.len() == 16), "{one}");
    assert_eq!(put(a, "/v1/agent/service/deregister/web1", None), 200);
    assert_eq!(get_json(a, "/v1/agent/services"), serde_json::json!({}));
    assert_eq!(get_json(a, "/v1/agent/checks"), serde_json::json!({}), "a service's checks go with it");
    wait_for_log(a, "deregistered service", "web1");
}

fn check_status(agent: &AgentProcess, id: &str) -> (String, String) {
    let c = &get_json(agent, "/v1/agent/checks")[id];
    (c["Status"].as_str().unwrap_or_default().to_string(), c["Output"].as_str().unwrap_or_default().to_string())
}

#[test]
fn an_http_check_passes_while_its_target_answers_and_turns_critical_when_it_stops() {
    let _serial = serial();
    let dev = DevAgent::start();
    let a = &dev.agent;
    let mut target = TinyServer::start();
    let body = format!(r#"{{"Name":"web-http","HTTP":"http://127.0.0.1:{}/health","Interval":"1s","Timeout":"1s"}}"#, target.port);
    assert_eq!(put(a, "/v1/agent/check/register", Some(body.as_bytes())), 200);
    let (_, output) = wait_until(SETTLE_TIMEOUT, "the HTTP check to pass", || {
        let (status, output) = check_status(a, "web-http");
        (status == "passing").then_some((status, output.clone())).ok_or(output)
    });
    assert!(output.contains(": 200 OK Output: healthy"), "{output}");
    assert_eq!(get_json(a, "/v1/agent/checks")["web-http"]["Type"], "http");
    wait_for_log(a, "synced check", "web-http");
    target.stop();
    wait_until(SETTLE_TIMEOUT, "the HTTP check to turn critical", || {
        let (status, output) = check_status(a, "web-http");
        (status == "critical").then_some(()).ok_or(format!("{status}: {output}"))
    });
}

#[test]
fn registered_services_and_ttl_status_survive_an_agent_restart() {
    let _serial = serial();
    let mut cluster = Cluster::start(1);
    let a = &cluster.servers[0];
    assert_eq!(put(a, "/v1/agent/service/register", Some(WEB)), 200);
    assert_eq!(put(a, "/v1/agent/check/pass/web1-ttl?note=up", None), 200);
    let before = get_json(a, "/v1/agent/services");
    cluster.servers[0].kill();
    cluster.servers[0].start();
    cluster.wait_for_leader(LEADER_TIMEOUT);
    let a = &cluster.servers[0];
    assert_eq!(get_json(a, "/v1/agent/services"), before, "the service is reloaded from the data dir");
    assert_eq!(check_status(a, "web1-ttl"), ("passing".to_string(), "up".to_string()), "TTL status is persisted");
}

#[test]
fn an_alias_check_follows_the_ttl_check_of_the_service_it_aliases() {
    let _serial = serial();
    let dev = DevAgent::start();
    let a = &dev.agent;
    assert_eq!(put(a, "/v1/agent/service/register", Some(WEB)), 200);
    let alias = br#"{"Name":"web alias","CheckID":"web1-alias","AliasService":"web1"}"#;
    assert_eq!(put(a, "/v1/agent/check/register", Some(alias)), 200);
    assert_eq!(get_json(a, "/v1/agent/checks")["web1-alias"]["Type"], "alias");
    let wait_for = |want: &str, want_output: &str| {
        wait_until(SETTLE_TIMEOUT, &format!("the alias to turn {want}"), || {
            let (status, output) = check_status(a, "web1-alias");
            (status == want && output == want_output).then_some(()).ok_or(format!("{status}: {output}"))
        })
    };
    wait_for("critical", r#"Aliased check "web ttl" failing: "#);
    assert_eq!(put(a, "/v1/agent/check/pass/web1-ttl", None), 200);
    wait_for("passing", "All checks passing.");
    assert_eq!(put(a, "/v1/agent/check/warn/web1-ttl?note=slow", None), 200);
    wait_for("warning", r#"Aliased check "web ttl" failing: slow"#);
    assert_eq!(put(a, "/v1/agent/check/fail/web1-ttl?note=down", None), 200);
    wait_for("critical", r#"Aliased check "web ttl" failing: down"#);
    assert_eq!(put(a, "/v1/agent/check/pass/web1-ttl", None), 200);
    wait_for("passing", "All checks passing.");
    wait_for_log(a, "synced check", "web1-alias");

    let ghost = br#"{"Name":"ghost alias","AliasService":"ghost"}"#;
    assert_eq!(put(a, "/v1/agent/check/register", Some(ghost)), 200);
    wait_until(SETTLE_TIMEOUT, "the alias of a missing service to be critical", || {
        let (status, output) = check_status(a, "ghost alias");
        (status == "critical" && output == "Service ghost could not be found on node ").then_some(()).ok_or(format!("{status}: {output}"))
    });
    let ttl_alias = must("PUT", &a.url("/v1/agent/check/register"), Some(br#"{"Name":"x","AliasService":"web1","TTL":"5s"}"#));
    assert_eq!(ttl_alias.status, 400, "{}", ttl_alias.text());
}
