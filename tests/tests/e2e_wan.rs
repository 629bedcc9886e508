//! End-to-end: two datacenters federated over WAN gossip, as Consul's. dc1 and dc2 have one real
//! `concord` server each (`-bootstrap-expect=1`); dc2's server `-retry-join-wan`s dc1's WAN port.
//! `concord members -wan` lists both as `<node>.<dc>` alive on each, `/v1/catalog/datacenters`
//! lists both (own first), and a KV write sent to dc1 with `?dc=dc2` lands in dc2's own KV store
//! only (Consul `forwardDC`); so do a catalog registration and deregistration and a transaction,
//! and catalog, health and session reads with `?dc=dc2` answer from dc2's store (session writes
//! go there too), as do DNS
//! queries for `<svc>.service.dc2.consul` on dc1's DNS port.

use std::process::Command;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tests::cluster::Cluster;
use tests::http::{curl, must};
use tests::{run_with_timeout, serial, wait_until};

/// WAN join and one WAN probe round (memberlist's WAN profile probes every 5 s).
const WAN_TIMEOUT: Duration = Duration::from_secs(40);

/// `concord members -wan` against `cluster`'s first server: stdout, or why not.
fn wan_members(cluster: &Cluster) -> Result<String, String> {
    let mut cmd = Command::new(tests::concord_bin());
    cmd.args(["members", "-wan", &format!("-http-addr=127.0.0.1:{}", cluster.servers[0].http_port)]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(20));
    match out.status.code() {
        Some(0) => Ok(out.stdout),
        code => Err(format!("exit {code:?}: {}", out.stdout)),
    }
}

/// The `Status` column of `node` in `concord members` output.
fn status_in(table: &str, node: &str) -> Option<String> {
    table.lines().find(|l| l.split_whitespace().next() == Some(node)).and_then(|l| l.split_whitespace().nth(2)).map(String::from)
}

#[test]
fn two_datacenters_federate_over_wan_and_forward_dc_requests() {
    let _serial = serial();
    let dc1 = Cluster::start_datacenter(&["s1".to_string()], Some("dc1"), &[]);
    let join = format!("-retry-join-wan=127.0.0.1:{}", dc1.serf_wan_ports[0]);
    let dc2 = Cluster::start_datacenter(&["s2".to_string()], Some("dc2"), &[join]);

    for (dc, cluster) in [("dc1", &dc1), ("dc2", &dc2)] {
        wait_until(WAN_TIMEOUT, &format!("{dc}'s `members -wan` to list both servers alive"), || {
            let out = wan_members(cluster)?;
            for node in ["s1.dc1", "s2.dc2"] {
                if status_in(&out, node).as_deref() != Some("alive") {
                    return Err(format!("{node} not alive yet:\n{out}"));
                }
            }
            Ok(())
        });
    }
    let table = wan_members(&dc1).unwrap();
    assert!(table.lines().any(|l| l.starts_with("s2.dc2") && l.contains("server") && l.contains("dc2")), "{table}");

    let dcs = |c: &Cluster| must("GET", &c.servers[0].url("/v1/catalog/datacenters"), None).json();
    assert_eq!(dcs(&dc1), serde_json::json!(["dc1", "dc2"]), "own datacenter first, then by name");
    assert_eq!(dcs(&dc2), serde_json::json!(["dc2", "dc1"]));

    let wan = must("GET", &dc2.servers[0].url("/v1/agent/members?wan"), None).json();
    let names: Vec<&str> = wan.as_array().unwrap().iter().filter_map(|m| m["Name"].as_str()).collect();
    assert!(names.contains(&"s1.dc1") && names.contains(&"s2.dc2"), "{wan}");

    // A write sent to dc1 naming dc2 is applied by dc2's Raft, not dc1's.
    let put = must("PUT", &dc1.servers[0].url("/v1/kv/fed/key?dc=dc2"), Some(b"in-dc2"));
    assert_eq!(put.text().trim(), "true");
    let on_dc2 = must("GET", &dc2.servers[0].url("/v1/kv/fed/key?raw"), None);
    assert_eq!(on_dc2.text(), "in-dc2", "readable in dc2 without ?dc");
    let via_dc1 = must("GET", &dc1.servers[0].url("/v1/kv/fed/key?raw&dc=dc2"), None);
    assert_eq!(via_dc1.text(), "in-dc2", "readable through dc1 with ?dc=dc2");
    let local = curl("GET", &dc1.servers[0].url("/v1/kv/fed/key"), None).unwrap();
    assert_eq!(local.status, 404, "dc1's own KV store does not have it: {}", local.text());

    // A catalog registration sent to dc1 naming dc2 lands in dc2's catalog, with dc2 as its
    // datacenter; dc1's catalog does not have it.
    let reg = r#"{"Node":"web-dc2","Address":"10.2.0.1","Service":{"Service":"web","Port":80}}"#;
    let put = must("PUT", &dc1.servers[0].url("/v1/catalog/register?dc=dc2"), Some(reg.as_bytes()));
    assert_eq!(put.text().trim(), "true");
    let on_dc2 = must("GET", &dc2.servers[0].url("/v1/catalog/service/web"), None).json();
    assert_eq!(on_dc2[0]["Node"], "web-dc2", "{on_dc2}");
    assert_eq!(on_dc2[0]["Datacenter"], "dc2", "{on_dc2}");
    let via_dc1 = must("GET", &dc1.servers[0].url("/v1/health/service/web?dc=dc2"), None).json();
    assert_eq!(via_dc1[0]["Node"]["Node"], "web-dc2", "health read through dc1 with ?dc=dc2: {via_dc1}");
    let local = must("GET", &dc1.servers[0].url("/v1/catalog/service/web"), None).json();
    assert_eq!(local, serde_json::json!([]), "dc1's own catalog does not have it");
    // DNS: dc1's server asks dc2 for dc2's names; a datacenter nobody knows is NXDOMAIN.
    let dns = std::net::SocketAddr::from(([127, 0, 0, 1], dc1.servers[0].dns_port().expect("-dns-port")));
    let a = tests::dns::ask_udp(dns, "web.service.dc2.consul.", RecordType::A, 1);
    let addrs: Vec<String> = a.answers().iter().filter_map(|r| r.data().as_a().map(|a| a.0.to_string())).collect();
    assert_eq!(addrs, ["10.2.0.1"], "{a:?}");
    let srv = tests::dns::ask_tcp(dns, "web.service.dc2.consul.", RecordType::SRV, 2);
    let targets: Vec<String> = srv.answers().iter().filter_map(|r| r.data().as_srv().map(|s| s.target().to_ascii())).collect();
    assert_eq!(targets, ["web-dc2.node.dc2.consul."], "{srv:?}");
    assert_eq!(tests::dns::ask_udp(dns, "web.service.consul.", RecordType::A, 3).response_code(), ResponseCode::NXDomain, "not in dc1");
    let nowhere = tests::dns::ask_udp(dns, "web.service.dc9.consul.", RecordType::A, 4);
    assert_eq!(nowhere.response_code(), ResponseCode::NXDomain, "{nowhere:?}");
    // A bad registration is refused in the datacenter that received it, whatever ?dc= names.
    let bad = curl("PUT", &dc1.servers[0].url("/v1/catalog/register?dc=dc2"), Some(b"{\"Address\":\"10.2.0.9\"}")).unwrap();
    assert_eq!(bad.status, 400, "{}", bad.text());
    let dereg = must("PUT", &dc1.servers[0].url("/v1/catalog/deregister?dc=dc2"), Some(br#"{"Node":"web-dc2"}"#));
    assert_eq!(dereg.text().trim(), "true");
    let gone = must("GET", &dc2.servers[0].url("/v1/catalog/service/web"), None).json();
    assert_eq!(gone, serde_json::json!([]), "deregistered in dc2");

    // A transaction through dc1 naming dc2 runs in dc2.
    let txn = r#"[{"KV":{"Verb":"set","Key":"fed/txn","Value":"aW4tZGMy"}}]"#;
    let answer = must("PUT", &dc1.servers[0].url("/v1/txn?dc=dc2"), Some(txn.as_bytes())).json();
    assert_eq!(answer["Errors"], serde_json::Value::Null, "{answer}");
    assert_eq!(must("GET", &dc2.servers[0].url("/v1/kv/fed/txn?raw"), None).text(), "in-dc2");
    assert_eq!(curl("GET", &dc1.servers[0].url("/v1/kv/fed/txn"), None).unwrap().status, 404);

    // Session reads forward; dc2 has none of dc1's sessions.
    // (A session binds its node, which the leader registers from gossip shortly after it starts.)
    let sid = wait_until(WAN_TIMEOUT, "a session created in dc1", || {
        let r = curl("PUT", &dc1.servers[0].url("/v1/session/create"), Some(b"{}"))?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|_| r.text())?;
        v["ID"].as_str().map(String::from).ok_or_else(|| r.text())
    });
    let in_dc1 = must("GET", &dc1.servers[0].url(&format!("/v1/session/info/{sid}")), None).json();
    assert_eq!(in_dc1[0]["ID"], sid.as_str());
    let in_dc2 = must("GET", &dc1.servers[0].url(&format!("/v1/session/info/{sid}?dc=dc2")), None).json();
    assert_eq!(in_dc2, serde_json::json!([]), "dc2's session table is its own");

    // Session writes forward too: created in dc2 through dc1 for dc2's node s2, renewed and
    // destroyed there; validated against dc2's catalog (dc1's node is unknown there).
    let rid = wait_until(WAN_TIMEOUT, "a session created in dc2 through dc1", || {
        let r = curl("PUT", &dc1.servers[0].url("/v1/session/create?dc=dc2"), Some(br#"{"Node":"s2","TTL":"30s"}"#))?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|_| r.text())?;
        v["ID"].as_str().map(String::from).ok_or_else(|| r.text())
    });
    let there = must("GET", &dc2.servers[0].url(&format!("/v1/session/info/{rid}")), None).json();
    assert_eq!((there[0]["Node"].as_str(), there[0]["NodeChecks"].clone()), (Some("s2"), serde_json::json!(["serfHealth"])), "{there}");
    assert_eq!(must("GET", &dc1.servers[0].url(&format!("/v1/session/info/{rid}")), None).json(), serde_json::json!([]), "not in dc1");
    let renewed = must("PUT", &dc1.servers[0].url(&format!("/v1/session/renew/{rid}?dc=dc2")), None).json();
    assert_eq!(renewed[0]["ID"], rid.as_str());
    let unknown = curl("PUT", &dc1.servers[0].url("/v1/session/renew/00000000-0000-0000-0000-000000000000?dc=dc2"), None).unwrap();
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let wrong_node = curl("PUT", &dc1.servers[0].url("/v1/session/create?dc=dc2"), Some(br#"{"Node":"s1"}"#)).unwrap();
    assert_eq!(wrong_node.status, 500, "dc1's node is not in dc2's catalog: {}", wrong_node.text());
    assert!(wrong_node.text().contains("Missing node registration"), "{}", wrong_node.text());
    assert_eq!(must("PUT", &dc1.servers[0].url(&format!("/v1/session/destroy/{rid}?dc=dc2")), None).text().trim(), "true");
    assert_eq!(must("GET", &dc2.servers[0].url(&format!("/v1/session/info/{rid}")), None).json(), serde_json::json!([]), "destroyed in dc2");

    // A datacenter the WAN pool does not know: Consul's 500 "No path to datacenter".
    let nowhere = curl("GET", &dc1.servers[0].url("/v1/kv/fed/key?dc=dc9"), None).unwrap();
    assert_eq!((nowhere.status, nowhere.text().trim().to_string()), (500, "No path to datacenter".to_string()));
    let nowhere = curl("PUT", &dc1.servers[0].url("/v1/kv/fed/key?dc=dc9"), Some(b"x")).unwrap();
    assert_eq!((nowhere.status, nowhere.text().trim().to_string()), (500, "No path to datacenter".to_string()));
}
