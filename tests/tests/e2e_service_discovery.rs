//! End-to-end, the service-discovery path as an operator runs it: `concord agent -dev
//! -config-dir=DIR` with a JSON service definition whose HTTP check probes a live target; the
//! service is found by DNS SRV (what `dig @127.0.0.1 -p <dns-port> web.service.consul SRV` asks)
//! and by `/v1/health/service/web?passing`; when the target stops, the failing check removes the
//! instance from both within a few check intervals.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;
use tests::dev::DevAgent;
use tests::dns::ask_udp;
use tests::http::must;
use tests::tiny_http::TinyServer;
use tests::{serial, wait_until};

/// The HTTP check's interval; everything must settle within a few of them (plus the agent's
/// anti-entropy sync, which runs at once on a change).
const INTERVAL: Duration = Duration::from_secs(1);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

fn passing(dev: &DevAgent) -> Vec<(String, u64)> {
    let v: Value = must("GET", &dev.agent.url("/v1/health/service/web?passing"), None).json();
    v.as_array()
        .map(|a| a.iter().map(|e| (e["Service"]["ID"].as_str().unwrap_or_default().to_string(), e["Service"]["Port"].as_u64().unwrap_or(0))).collect())
        .unwrap_or_default()
}

#[test]
fn a_config_dir_service_is_found_by_dns_and_passing_until_its_http_check_fails() {
    let _serial = serial();
    let mut target = TinyServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let def = format!(
        r#"{{"service": {{"name": "web", "id": "web1", "port": 8080, "tags": ["v1"],
            "check": {{"id": "web1-http", "http": "http://127.0.0.1:{}/health", "interval": "{}s", "timeout": "1s"}}}}}}"#,
        target.port,
        INTERVAL.as_secs()
    );
    std::fs::write(dir.path().join("web.json"), def).expect("write the service definition");
    let config_dir = format!("-config-dir={}", dir.path().display());
    let dev = DevAgent::start_with(&[&config_dir]);
    let dns: SocketAddr = ([127, 0, 0, 1], dev.dns_port).into();

    // Registered from the file, passing once its first probe succeeds, and synced to the catalog.
    wait_until(SETTLE_TIMEOUT, "web1 passing in /v1/health/service/web?passing", || {
        let p = passing(&dev);
        (p == [("web1".to_string(), 8080)]).then_some(()).ok_or(format!("{p:?}"))
    });
    let srv = ask_udp(dns, "web.service.consul.", RecordType::SRV, 1);
    assert_eq!(srv.response_code(), ResponseCode::NoError);
    let answers: Vec<(u16, String)> = srv.answers().iter().filter_map(|r| r.data().as_srv().map(|s| (s.port(), s.target().to_ascii()))).collect();
    assert_eq!(answers, [(8080, "concord-dev.node.dc1.consul.".to_string())], "the instance on this agent's node");
    let extra: Vec<String> = srv.additionals().iter().filter_map(|r| r.data().as_a().map(|a| a.0.to_string())).collect();
    assert_eq!(extra, ["127.0.0.1"], "the target's address in the additional section");

    // The target goes away: the check fails on its next probe and the instance leaves both views.
    target.stop();
    wait_until(SETTLE_TIMEOUT, "web1 gone from ?passing", || {
        let p = passing(&dev);
        p.is_empty().then_some(()).ok_or(format!("{p:?}"))
    });
    wait_until(SETTLE_TIMEOUT, "web.service.consul to answer NXDOMAIN", || {
        let r = ask_udp(dns, "web.service.consul.", RecordType::SRV, 2);
        (r.response_code() == ResponseCode::NXDomain).then_some(()).ok_or(format!("{:?} with {} answers", r.response_code(), r.answers().len()))
    });
    let all: Value = must("GET", &dev.agent.url("/v1/health/service/web"), None).json();
    assert_eq!(all[0]["Checks"].as_array().and_then(|c| c.iter().find(|c| c["CheckID"] == "web1-http")).map(|c| c["Status"].clone()), Some("critical".into()));
}
