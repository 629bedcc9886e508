//! End-to-end autopilot dead-server cleanup on real processes: three servers on loopback; a
//! SIGKILLed follower is removed from the Raft configuration once gossip declares it failed (one
//! of three may go: `(3 - 1) / 2`), and when it comes back the leader adds it back as a voter.

use std::time::Duration;

use serde_json::Value;
use tests::cluster::Cluster;
use tests::http::{curl, must};
use tests::{serial, wait_until};

/// Failure detection (probe 1 s, suspicion ≈ 4 s), an autopilot pass (2 s), the rejoin grace (5 s).
const AUTOPILOT_TIMEOUT: Duration = Duration::from_secs(40);

/// The (address, voter) pairs of the Raft configuration as server `url` reports it.
fn configuration(url: &str) -> Result<Vec<(String, bool)>, String> {
    let r = curl("GET", url, None)?;
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {}", r.text()))?;
    let servers = v["Servers"].as_array().ok_or_else(|| r.text())?;
    Ok(servers.iter().map(|s| (s["Address"].as_str().unwrap_or_default().to_string(), s["Voter"] == true)).collect())
}

#[test]
fn a_killed_follower_leaves_the_raft_configuration_and_rejoins_when_it_returns() {
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader_index();
    let victim = (leader + 1) % 3;
    let victim_addr = cluster.servers[victim].rpc_addr();
    let config_url = cluster.servers[leader].url("/v1/operator/raft/configuration");

    let autopilot = must("GET", &cluster.servers[leader].url("/v1/operator/autopilot/configuration"), None).json();
    assert_eq!(autopilot["CleanupDeadServers"], true, "{autopilot}");
    assert_eq!(configuration(&config_url).unwrap().len(), 3);

    cluster.servers[victim].kill();
    wait_until(AUTOPILOT_TIMEOUT, "the leader to remove the killed follower from raft", || {
        let c = configuration(&config_url)?;
        (c.len() == 2 && c.iter().all(|(a, voter)| *a != victim_addr && *voter)).then_some(()).ok_or_else(|| format!("{c:?}"))
    });
    // The two that remain still serve writes.
    assert_eq!(must("PUT", &cluster.servers[leader].url("/v1/kv/autopilot"), Some(b"2 of 3")).text(), "true");

    cluster.servers[victim].start();
    wait_until(AUTOPILOT_TIMEOUT, "the leader to add the returned server back as a voter", || {
        let c = configuration(&config_url)?;
        (c.len() == 3 && c.contains(&(victim_addr.clone(), true))).then_some(()).ok_or_else(|| format!("{c:?}"))
    });
    wait_until(AUTOPILOT_TIMEOUT, "the returned server to read the write made while it was out", || {
        let r = curl("GET", &cluster.servers[victim].url("/v1/kv/autopilot?raw&stale"), None)?;
        (r.text() == "2 of 3").then_some(()).ok_or_else(|| r.text())
    });
}
