//! End-to-end: services and checks defined in config files (`-config-dir`, `-config-file`) are
//! registered at start and synced to the catalog; `concord reload`, SIGHUP and
//! `PUT /v1/agent/reload` replace them with the files' new content while API-registered services
//! stay; a broken file keeps the running config (500 with the error) and, at start, makes the
//! agent exit 1 naming the file.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tests::cluster::AgentProcess;
use tests::dev::DevAgent;
use tests::http::must;
use tests::{concord_bin, free_ports, run_with_timeout, serial, wait_until};

/// How long a registration, a sync or a check result may take to show.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Deadline for an agent that must refuse to start.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(20);

fn write(dir: &Path, name: &str, json: &str) {
    std::fs::write(dir.join(name), json).expect("write config file");
}

fn get_json(agent: &AgentProcess, path: &str) -> Value {
    let r = must("GET", &agent.url(path), None);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.json()
}

/// Waits until `probe` holds on `GET path`.
fn wait_for(agent: &AgentProcess, path: &str, what: &str, probe: impl Fn(&Value) -> bool) -> Value {
    wait_until(SETTLE_TIMEOUT, what, || {
        let v = get_json(agent, path);
        if probe(&v) {
            Ok(v)
        } else {
            Err(format!("GET {path}: {v}"))
        }
    })
}

/// The catalog's instances of `name` as (ServiceID, ServicePort, ServiceTags).
fn catalog_instances(v: &Value) -> Vec<(String, u64, Value)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|i| (i["ServiceID"].as_str().unwrap_or("").to_string(), i["ServicePort"].as_u64().unwrap_or(0), i["ServiceTags"].clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn config_dir_services_register_and_a_reload_replaces_them_but_keeps_api_ones() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "web.json", r#"{"service":{"name":"web","id":"web1","port":8080,"tags":["v1"],
        "check":{"id":"web-ttl","name":"web ttl","ttl":"60s"}}}"#);
    write(dir.path(), "notes.txt", "not a config file: ignored");
    let dev = DevAgent::start_with(&[&format!("-config-dir={}", dir.path().display())]);
    let a = &dev.agent;

    let services = get_json(a, "/v1/agent/services");
    assert_eq!((services["web1"]["Port"].as_u64(), services["web1"]["Tags"].clone()), (Some(8080), serde_json::json!(["v1"])));
    assert_eq!(get_json(a, "/v1/agent/checks")["web-ttl"]["Status"], "critical");
    wait_for(a, "/v1/catalog/service/web", "web1 in the catalog", |v| {
        catalog_instances(v) == [("web1".to_string(), 8080, serde_json::json!(["v1"]))]
    });
    let api = must("PUT", &a.url("/v1/agent/service/register"), Some(br#"{"Name":"api-svc","Port":1}"#));
    assert_eq!(api.status, 200, "{}", api.text());

    // The new definition replaces the old one: new port and tags, a TCP check (against the
    // agent's own HTTP port) instead of the TTL check.
    write(dir.path(), "web.json", &format!(r#"{{"services":[{{"name":"web","id":"web1","port":9090,"tags":["v2"],
        "check":{{"id":"web-tcp","tcp":"127.0.0.1:{}","interval":"1s"}}}}]}}"#, a.http_port));
    let out = dev.cli(&["reload"]);
    assert!(out.status.success(), "concord reload: {out:?}");
    assert_eq!(out.stdout, "Configuration reload triggered\n");
    let services = get_json(a, "/v1/agent/services");
    assert_eq!((services["web1"]["Port"].as_u64(), services["web1"]["Tags"].clone()), (Some(9090), serde_json::json!(["v2"])));
    assert!(services.get("api-svc").is_some(), "the API-registered service survives the reload: {services}");
    wait_for(a, "/v1/agent/checks", "web-tcp passing and web-ttl gone", |v| {
        v["web-tcp"]["Status"] == "passing" && v.get("web-ttl").is_none()
    });
    wait_for(a, "/v1/catalog/service/web", "the new web1 in the catalog", |v| {
        catalog_instances(v) == [("web1".to_string(), 9090, serde_json::json!(["v2"]))]
    });
    wait_for(a, "/v1/health/checks/web", "web-ttl gone from the catalog", |v| {
        v.as_array().is_some_and(|c| c.len() == 1 && c[0]["CheckID"] == "web-tcp")
    });

    // SIGHUP reloads too: a new file adds a service, removing it takes the service away.
    write(dir.path(), "db.json", r#"{"service":{"name":"db","port":5432}}"#);
    a.signal("HUP");
    wait_for(a, "/v1/agent/services", "db after SIGHUP", |v| v.get("db").is_some());
    std::fs::remove_file(dir.path().join("db.json")).expect("remove db.json");
    a.signal("HUP");
    wait_for(a, "/v1/agent/services", "db gone after SIGHUP", |v| v.get("db").is_none() && v.get("web1").is_some());

    // A broken file: 500 naming it, and the running services are unchanged.
    write(dir.path(), "zz-broken.json", r#"{"service":{"name":"x"}"#);
    let before = get_json(a, "/v1/agent/services");
    let r = must("PUT", &a.url("/v1/agent/reload"), None);
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("zz-broken.json"), "the error names the file: {}", r.text());
    assert_eq!(get_json(a, "/v1/agent/services"), before);
    let out = dev.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("Error reloading") && out.stderr.contains("zz-broken.json"), "{:?}", out.stderr);
    assert!(a.log_tail().contains("configuration reload failed"), "logged: {}", a.log_tail());
    write(dir.path(), "zz-broken.json", r#"{"ui":true}"#);
    let r = must("PUT", &a.url("/v1/agent/reload"), None);
    assert_eq!(r.status, 500);
    assert!(r.text().contains("zz-broken.json") && r.text().contains("\"ui\""), "{}", r.text());
    assert_eq!(get_json(a, "/v1/agent/services"), before);
}

/// Runs `concord agent -dev` on free ports with `extra` flags, expecting it to refuse to start.
fn agent_refusing(extra: &[String]) -> tests::Finished {
    let p = free_ports(5);
    let mut cmd = Command::new(concord_bin());
    cmd.args(["agent", "-dev"])
        .arg(format!("-http-port={}", p[0]))
        .arg(format!("-server-port={}", p[1]))
        .arg(format!("-dns-port={}", p[2]))
        .arg(format!("-serf-lan-port={}", p[3]))
        .arg(format!("-serf-wan-port={}", p[4]))
        .args(extra);
    run_with_timeout(&mut cmd, REFUSE_TIMEOUT)
}

#[test]
fn an_agent_started_with_a_bad_config_file_exits_1_naming_the_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, body, says) in [
        ("broken.json", r#"{"service": "#, "invalid JSON"),
        ("unknown.json", r#"{"service":{"name":"web"},"bogus_key":1}"#, "bogus_key"),
        ("badcheck.json", r#"{"service":{"name":"web","check":{"http":"http://127.0.0.1:1/"}}}"#, "Interval must be > 0"),
        ("agent.hcl", "datacenter = \"dc1\"", "HCL is not supported"),
    ] {
        write(dir.path(), name, body);
        let path = dir.path().join(name);
        let out = agent_refusing(&[format!("-config-file={}", path.display())]);
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
        assert!(out.stderr.contains(&path.display().to_string()), "{name}: stderr names the file: {:?}", out.stderr);
        assert!(out.stderr.contains(says), "{name}: stderr says {says:?}: {:?}", out.stderr);
    }
}
