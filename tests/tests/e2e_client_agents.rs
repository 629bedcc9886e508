//! End-to-end, issue 10's "done when": three real `concord` servers and two client agents on
//! loopback, the clients started with only a `-retry-join` naming one server's LAN gossip
//! address. `concord members` lists all five alive; KV reads and writes through a client reach
//! the servers (and the other client); a service registered on a client reaches the catalog by
//! anti-entropy through it; SIGKILL of a client turns its `serfHealth` critical in
//! `/v1/health/node/<n>`. DNS on a client agent answers from the servers' catalog.

use std::process::Command;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;
use tests::cluster::Cluster;
use tests::http::{curl, must};
use tests::{run_with_timeout, serial, wait_until};

/// Joining, then detecting a dead member (probe 1 s, suspicion ≈ 4 s) and reconciling the catalog.
const GOSSIP_TIMEOUT: Duration = Duration::from_secs(30);

/// The `Status` and `Type` columns of `node` in `concord members` output.
fn row(table: &str, node: &str) -> Option<(String, String)> {
    let l = table.lines().find(|l| l.split_whitespace().next() == Some(node))?;
    let cols: Vec<&str> = l.split_whitespace().collect();
    Some((cols.get(2)?.to_string(), cols.get(3)?.to_string()))
}

#[test]
fn client_agents_join_by_gossip_forward_kv_and_turn_critical_when_killed() {
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    let c1 = cluster.add_client("c1", 0);
    let c2 = cluster.add_client("c2", 0);

    // `concord members` on a client lists all five alive, clients typed `client`.
    let http = cluster.clients[c1].http_port;
    let table = wait_until(GOSSIP_TIMEOUT, "concord members on c1 to list all five agents alive", || {
        let mut cmd = Command::new(tests::concord_bin());
        cmd.args(["members", &format!("-http-addr=127.0.0.1:{http}")]);
        let out = run_with_timeout(&mut cmd, Duration::from_secs(20));
        let want = [("s0", "server"), ("s1", "server"), ("s2", "server"), ("c1", "client"), ("c2", "client")];
        match want.iter().find(|(n, t)| row(&out.stdout, n) != Some(("alive".into(), t.to_string()))) {
            Some((n, _)) => Err(format!("{n} not listed alive with its type yet:\n{}{}", out.stdout, out.stderr)),
            None => Ok(out.stdout),
        }
    });
    assert_eq!(table.lines().count(), 6, "{table}");

    // The client knows the leader through a server, and serves no Raft of its own.
    let leader = wait_until(GOSSIP_TIMEOUT, "c1 to name the leader", || cluster.clients[c1].leader());
    assert_eq!(leader, cluster.servers[cluster.leader_index()].rpc_addr(), "the client names the servers' leader");
    let me = must("GET", &cluster.clients[c1].url("/v1/agent/self"), None).json();
    assert_eq!((me["Config"]["Server"].clone(), me["Stats"]["consul"]["server"].clone()), (Value::Bool(false), "false".into()));
    assert_eq!(me["Stats"]["consul"]["known_servers"], "3", "{me}");
    assert!(me["Stats"].get("raft").is_none(), "a client has no raft stats: {me}");

    // KV through a client: written via c1, read via c2 (default, ?stale, ?consistent) and via a server.
    let put = must("PUT", &cluster.clients[c1].url("/v1/kv/through/client"), Some(b"v1"));
    assert_eq!(put.text(), "true");
    for q in ["", "&stale", "&consistent"] {
        let r = must("GET", &cluster.clients[c2].url(&format!("/v1/kv/through/client?raw{q}")), None);
        assert_eq!(r.text(), "v1", "read {q} through c2");
    }
    assert_eq!(must("GET", &cluster.servers[1].url("/v1/kv/through/client?raw"), None).text(), "v1");
    let cas = must("PUT", &cluster.clients[c2].url("/v1/kv/through/client?cas=1"), Some(b"v2"));
    assert_eq!(cas.text(), "false", "a CAS with a stale index fails through a client as on a server");

    // A service registered on a client agent reaches the catalog through it (anti-entropy).
    let svc = br#"{"Name":"web","ID":"web-c2","Port":8080}"#;
    must("PUT", &cluster.clients[c2].url("/v1/agent/service/register"), Some(svc));
    wait_until(GOSSIP_TIMEOUT, "web-c2 in the catalog on s1", || {
        let r = curl("GET", &cluster.servers[1].url("/v1/catalog/service/web"), None)?;
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
        (v[0]["Node"] == "c2" && v[0]["ServiceID"] == "web-c2").then_some(()).ok_or_else(|| r.text())
    });

    // DNS on a client agent (which holds no catalog) is answered by a server, as Consul's is.
    let dns = std::net::SocketAddr::from(([127, 0, 0, 1], cluster.clients[c1].dns_port().expect("-dns-port")));
    let srv = tests::dns::ask_udp(dns, "web.service.consul.", RecordType::SRV, 1);
    let answers: Vec<(u16, String)> = srv.answers().iter().filter_map(|r| r.data().as_srv().map(|s| (s.port(), s.target().to_ascii()))).collect();
    assert_eq!(answers, [(8080, "c2.node.dc1.consul.".to_string())], "{srv:?}");
    let node = tests::dns::ask_tcp(dns, "s1.node.consul.", RecordType::A, 2);
    assert_eq!(node.answers().len(), 1, "{node:?}");
    assert_eq!(tests::dns::ask_udp(dns, "nope.service.consul.", RecordType::A, 3).response_code(), ResponseCode::NXDomain);

    // SIGKILL of a client: the leader turns its serfHealth critical.
    cluster.clients[c2].kill();
    wait_until(GOSSIP_TIMEOUT, "c2's serfHealth critical on s2", || {
        let r = curl("GET", &cluster.servers[2].url("/v1/health/node/c2"), None)?;
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
        let serf = v.as_array().and_then(|a| a.iter().find(|c| c["CheckID"] == "serfHealth")).cloned().unwrap_or_default();
        (serf["Status"] == "critical").then_some(()).ok_or_else(|| r.text())
    });
    // The surviving client still serves KV.
    assert_eq!(must("PUT", &cluster.clients[c1].url("/v1/kv/after/kill"), Some(b"ok")).text(), "true");
}
