//! End-to-end `concord force-leave` on real processes: three servers and two client agents on
//! loopback. A SIGKILLed client is `failed` everywhere; `force-leave` through the other client
//! turns it `left` (Status 3) on every agent and the leader deregisters its node; `-prune` erases it
//! from every member list. Forcing a live member changes nothing; an unknown name and a missing
//! name fail with Consul's texts.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tests::cluster::Cluster;
use tests::http::curl;
use tests::{run_with_timeout, serial, wait_until, Finished};

/// Joining, detecting a dead member (probe 1 s, suspicion ≈ 4 s) and spreading a change.
const GOSSIP_TIMEOUT: Duration = Duration::from_secs(30);

/// `node`'s `Status` code in an agent's `/v1/agent/members`, if listed.
fn status(url: &str, node: &str) -> Result<Option<u64>, String> {
    let r = curl("GET", url, None)?;
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    let list = v.as_array().ok_or_else(|| r.text())?;
    Ok(list.iter().find(|m| m["Name"] == node).and_then(|m| m["Status"].as_u64()))
}

fn force_leave(http: u16, args: &[&str]) -> Finished {
    let mut cmd = Command::new(tests::concord_bin());
    cmd.arg("force-leave").arg(format!("-http-addr=127.0.0.1:{http}")).args(args);
    run_with_timeout(&mut cmd, Duration::from_secs(20))
}

#[test]
fn force_leave_turns_a_killed_client_left_everywhere_deregisters_it_and_prune_erases_it() {
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    let c1 = cluster.add_client("c1", 0);
    let c2 = cluster.add_client("c2", 1);
    let members_urls: Vec<String> = cluster
        .servers
        .iter()
        .chain(std::iter::once(&cluster.clients[c1]))
        .map(|a| a.url("/v1/agent/members"))
        .collect();
    let everywhere = |node: &str, want: Option<u64>| {
        for url in &members_urls {
            let got = status(url, node)?;
            if got != want {
                return Err(format!("{url}: {node} has status {got:?}, want {want:?}"));
            }
        }
        Ok(())
    };
    wait_until(GOSSIP_TIMEOUT, "every agent to see c2 alive", || everywhere("c2", Some(1)));
    let http = cluster.clients[c1].http_port;

    // Usage and unknown names: Consul's texts, exit 1.
    let none = force_leave(http, &[]);
    assert_eq!(none.status.code(), Some(1));
    assert!(none.stderr.contains("A single node name must be specified to force leave."), "{}", none.stderr);
    let unknown = force_leave(http, &["nobody"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(unknown.stderr.contains("Error force leaving: Unexpected response code: 500 (agent: No node found with name 'nobody')"), "{}", unknown.stderr);

    // A live member is not changed.
    let live = force_leave(http, &["s1"]);
    assert_eq!((live.status.code(), live.stdout.as_str()), (Some(0), ""), "{}", live.stderr);
    std::thread::sleep(Duration::from_secs(2));
    everywhere("s1", Some(1)).expect("s1 stays alive everywhere");

    // SIGKILL c2: failed everywhere, then forced left everywhere and out of the catalog.
    cluster.clients[c2].kill();
    wait_until(GOSSIP_TIMEOUT, "every agent to see c2 failed", || everywhere("c2", Some(4)));
    let forced = force_leave(http, &["c2"]);
    assert_eq!((forced.status.code(), forced.stdout.as_str()), (Some(0), ""), "{}", forced.stderr);
    wait_until(GOSSIP_TIMEOUT, "every agent to see c2 left", || everywhere("c2", Some(3)));
    wait_until(GOSSIP_TIMEOUT, "c2 deregistered from the catalog", || {
        let r = curl("GET", &cluster.servers[0].url("/v1/catalog/nodes"), None)?;
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
        let listed = v.as_array().is_some_and(|a| a.iter().any(|n| n["Node"] == "c2"));
        (!listed).then_some(()).ok_or_else(|| r.text())
    });
    assert_eq!(status(&cluster.clients[c1].url("/v1/agent/members"), "c1").unwrap(), Some(1));

    // -prune erases it from every member list.
    let pruned = force_leave(http, &["-prune", "c2"]);
    assert_eq!(pruned.status.code(), Some(0), "{}", pruned.stderr);
    wait_until(GOSSIP_TIMEOUT, "every agent to forget c2", || everywhere("c2", None));
    everywhere("s2", Some(1)).expect("the others stay alive");
}
