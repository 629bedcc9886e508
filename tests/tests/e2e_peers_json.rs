//! End-to-end: Consul's `peers.json` outage recovery on real processes. A three-server cluster
//! loses a server for good while another is down, so no quorum is left; the operator stops the
//! two survivors, writes the same `peers.json` naming them into both data dirs, and starts them.
//! They form a two-server cluster with every acknowledged key, and accept writes again.

use std::time::Duration;

use tests::cluster::Cluster;
use tests::http::curl;
use tests::{serial, wait_until};

const TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn peers_json_recovers_a_cluster_that_lost_its_quorum_for_good() {
    let _guard = serial();
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader_index();
    let r = curl("PUT", &cluster.servers[leader].url("/v1/kv/before"), Some(b"kept")).expect("write");
    assert_eq!((r.status, r.text().as_str()), (200, "true"));
    let config = curl("GET", &cluster.servers[leader].url("/v1/operator/raft/configuration"), None).expect("configuration").json();
    let id_of = |name: &str| -> String {
        let servers = config["Servers"].as_array().expect("Servers");
        let s = servers.iter().find(|s| s["Node"] == name).unwrap_or_else(|| panic!("{name} in {config}"));
        s["ID"].as_str().expect("ID").to_string()
    };

    // s2 is gone for good and s1 is down: s0 alone has no quorum.
    cluster.servers[2].kill();
    cluster.servers[1].kill();
    cluster.servers[0].kill();

    let survivors = [0usize, 1];
    let peers: Vec<serde_json::Value> = survivors
        .iter()
        .map(|&i| serde_json::json!({"id": id_of(&format!("s{i}")), "address": cluster.servers[i].rpc_addr(), "non_voter": false}))
        .collect();
    for &i in &survivors {
        std::fs::write(cluster.data_dir(i).join("peers.json"), serde_json::to_vec(&peers).unwrap()).expect("write peers.json");
    }
    for &i in &survivors {
        cluster.servers[i].start();
    }
    let leader = cluster.wait_for_leader(TIMEOUT);
    assert!(survivors.contains(&leader));
    for &i in &survivors {
        assert!(!cluster.data_dir(i).join("peers.json").exists(), "s{i} consumed peers.json");
    }

    // The recovered cluster: exactly the two survivors, every acknowledged key, writes accepted.
    let config = curl("GET", &cluster.servers[leader].url("/v1/operator/raft/configuration"), None).expect("configuration").json();
    let mut ids: Vec<&str> = config["Servers"].as_array().unwrap().iter().map(|s| s["ID"].as_str().unwrap_or("")).collect();
    ids.sort();
    let mut want = [id_of("s0"), id_of("s1")];
    want.sort();
    assert_eq!(ids, want, "{config}");
    for &i in &survivors {
        let url = cluster.servers[i].url("/v1/kv/after");
        wait_until(TIMEOUT, "a write through each survivor", || {
            let r = curl("PUT", &url, Some(b"ok"))?;
            if r.status == 200 && r.text() == "true" {
                Ok(())
            } else {
                Err(format!("{} {}", r.status, r.text()))
            }
        });
        let r = curl("GET", &cluster.servers[i].url("/v1/kv/before?raw"), None).expect("read");
        assert_eq!((r.status, r.text().as_str()), (200, "kept"));
    }
}
