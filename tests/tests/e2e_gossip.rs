//! End-to-end: LAN gossip between three real `concord` servers on loopback. They join the pool
//! through `-retry-join` entries naming the others' LAN gossip ports, except s0's entry for s1,
//! which names its server RPC port (s1 reports its gossip port over RPC), and Raft bootstraps
//! from the pool; `concord members` lists all three alive; a SIGKILLed server is declared failed, its
//! `serfHealth` turns critical in `/v1/health/node/<n>` on the others, and a session bound to its
//! `serfHealth` (the default) is invalidated with it.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tests::cluster::Cluster;
use tests::http::{curl, must};
use tests::{run_with_timeout, serial, shape, wait_until};

/// Joining, then detecting a dead member (probe 1 s, suspicion ≈ 4 s) and reconciling the catalog.
const GOSSIP_TIMEOUT: Duration = Duration::from_secs(30);

/// `concord members` against server `i`'s HTTP API: (stdout, exit code).
fn members(cluster: &Cluster, i: usize, detailed: bool) -> (String, Option<i32>) {
    let mut cmd = Command::new(tests::concord_bin());
    cmd.args(["members", &format!("-http-addr=127.0.0.1:{}", cluster.servers[i].http_port)]);
    if detailed {
        cmd.arg("-detailed");
    }
    let out = run_with_timeout(&mut cmd, Duration::from_secs(20));
    (out.stdout, out.status.code())
}

/// The `Status` column of `node` in `concord members` output.
fn status_in(table: &str, node: &str) -> Option<String> {
    table.lines().find(|l| l.split_whitespace().next() == Some(node)).and_then(|l| l.split_whitespace().nth(2)).map(String::from)
}

/// The `serfHealth` check of `node` as server `i` answers `/v1/health/node/<node>`.
fn serf_health(cluster: &Cluster, i: usize, node: &str) -> Result<Value, String> {
    let r = curl("GET", &cluster.servers[i].url(&format!("/v1/health/node/{node}")), None)?;
    let checks: Value = serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {}", r.text()))?;
    checks
        .as_array()
        .and_then(|a| a.iter().find(|c| c["CheckID"] == "serfHealth"))
        .cloned()
        .ok_or_else(|| format!("no serfHealth for {node}: {}", r.text()))
}

#[test]
fn members_are_listed_and_a_killed_server_turns_serf_health_critical() {
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    let names: Vec<String> = cluster.servers.iter().map(|s| s.name.clone()).collect();

    let table = wait_until(GOSSIP_TIMEOUT, "concord members to list every server alive", || {
        let (out, code) = members(&cluster, 0, false);
        if code != Some(0) {
            return Err(format!("exit {code:?}: {out}"));
        }
        match names.iter().find(|n| status_in(&out, n).as_deref() != Some("alive")) {
            Some(n) => Err(format!("{n} not alive yet:\n{out}")),
            None => Ok(out),
        }
    });
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["Node", "Address", "Status", "Type", "Build", "Protocol", "DC", "Partition", "Segment"]);
    assert!(table.lines().skip(1).all(|l| l.contains(" server ") && l.contains(" dc1 ")), "{table}");
    let (detailed, _) = members(&cluster, 1, true);
    assert!(detailed.contains("role=consul") && detailed.contains("dc=dc1"), "{detailed}");

    let list = must("GET", &cluster.servers[2].url("/v1/agent/members"), None).json();
    insta::assert_json_snapshot!("agent_members_shape", shape(&list));
    assert_eq!(list.as_array().map(Vec::len), Some(3), "{list}");
    let me = list.as_array().and_then(|a| a.iter().find(|m| m["Name"] == names[2].as_str())).cloned().unwrap_or_default();
    assert_eq!(me["Status"], 1);
    assert_eq!(me["Tags"]["port"], cluster.servers[2].server_port.to_string(), "the server RPC port tag");

    // `concord join`: through a live member's gossip address it succeeds; through an address
    // where no agent listens it fails with Consul's texts, within the join wait.
    let gossip_addr = format!("{}:{}", me["Addr"].as_str().unwrap_or_default(), me["Port"]);
    let join = |addr: &str| {
        let mut cmd = Command::new(tests::concord_bin());
        cmd.args(["join", &format!("-http-addr=127.0.0.1:{}", cluster.servers[0].http_port), addr]);
        run_with_timeout(&mut cmd, Duration::from_secs(20))
    };
    let ok = join(&gossip_addr);
    assert_eq!((ok.status.code(), ok.stdout.trim()), (Some(0), "Successfully joined cluster by contacting 1 nodes."), "{}", ok.stderr);
    let nobody = join("127.0.0.1:9");
    assert_eq!(nobody.status.code(), Some(1), "{}{}", nobody.stdout, nobody.stderr);
    assert!(nobody.stderr.contains("Error joining address '127.0.0.1:9'") && nobody.stderr.contains("Failed to join any nodes."), "{}", nobody.stderr);

    // Every member gets a passing serfHealth from the leader.
    for n in &names {
        wait_until(GOSSIP_TIMEOUT, &format!("serfHealth passing for {n}"), || {
            let c = serf_health(&cluster, 0, n)?;
            (c["Status"] == "passing").then_some(()).ok_or_else(|| c.to_string())
        });
    }
    assert_eq!(serf_health(&cluster, 1, &names[0]).unwrap()["Name"], "Serf Health Status");

    // A session on the victim's node binds its serfHealth by default.
    let leader = cluster.leader_index();
    let victim = (leader + 1) % 3;
    let survivor = (leader + 2) % 3;
    let body = format!(r#"{{"Node":"{}","TTL":"3600s","Name":"bound"}}"#, names[victim]);
    let created = must("PUT", &cluster.servers[survivor].url("/v1/session/create"), Some(body.as_bytes())).json();
    let session = created["ID"].as_str().expect("session ID").to_string();
    let info = must("GET", &cluster.servers[survivor].url(&format!("/v1/session/info/{session}")), None).json();
    assert_eq!(info[0]["NodeChecks"], serde_json::json!(["serfHealth"]), "{info}");

    cluster.servers[victim].kill();
    for i in [leader, survivor] {
        wait_until(GOSSIP_TIMEOUT, &format!("server {i} to show the killed server's serfHealth critical"), || {
            let c = serf_health(&cluster, i, &names[victim])?;
            (c["Status"] == "critical" && c["Output"] == "Agent not live or unreachable").then_some(()).ok_or_else(|| c.to_string())
        });
    }
    wait_until(GOSSIP_TIMEOUT, "concord members to show the killed server failed", || {
        let (out, _) = members(&cluster, survivor, false);
        (status_in(&out, &names[victim]).as_deref() == Some("failed")).then_some(()).ok_or(out)
    });
    wait_until(GOSSIP_TIMEOUT, "the session bound to the dead node's serfHealth to be invalidated", || {
        let info = must("GET", &cluster.servers[survivor].url(&format!("/v1/session/info/{session}")), None).json();
        (info == serde_json::json!([])).then_some(()).ok_or_else(|| info.to_string())
    });
}

/// Issue 11's failover through gossip: `concord lock` held through server `s2`, a second
/// `concord lock` waiting through another server; SIGKILL of the holder's *agent* (not of the
/// lock process) turns its `serfHealth` critical, which invalidates the holder's session, and the
/// waiter gets the lock once the lock-delay (15 s by default) has passed.
#[test]
fn killing_the_lock_holders_agent_lets_the_waiter_in_after_the_lock_delay() {
    let _guard = serial();
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader_index();
    let holder_agent = (leader + 1) % 3;
    let waiter_agent = (leader + 2) % 3;
    let holder_node = cluster.servers[holder_agent].name.clone();
    for i in [holder_agent, waiter_agent] {
        let node = cluster.servers[i].name.clone();
        wait_until(GOSSIP_TIMEOUT, "the agent's serfHealth passing", || match serf_health(&cluster, leader, &node)?["Status"].as_str() {
            Some("passing") => Ok(()),
            other => Err(format!("{node}: {other:?}")),
        });
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("holders");
    let log = log.to_str().expect("utf-8 path");
    let lock = |agent: usize, name: &str| {
        Command::new(tests::concord_bin())
            .env("CONSUL_HTTP_ADDR", format!("127.0.0.1:{}", cluster.servers[agent].http_port))
            .args(["lock", "app", &format!("echo {name} >> {log}; sleep 120")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("concord lock runs")
    };
    let mut holder = lock(holder_agent, "holder");
    wait_until(GOSSIP_TIMEOUT, "the holder's child running", || {
        std::fs::read_to_string(log).ok().filter(|s| s.contains("holder")).ok_or_else(|| "not yet".to_string())
    });
    let mut waiter = lock(waiter_agent, "waiter");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!std::fs::read_to_string(log).unwrap_or_default().contains("waiter"), "mutual exclusion while the holder lives");

    let killed = std::time::Instant::now();
    cluster.servers[holder_agent].kill();
    wait_until(Duration::from_secs(60), "the waiter's child running", || {
        std::fs::read_to_string(log).ok().filter(|s| s.contains("waiter")).ok_or_else(|| "not yet".to_string())
    });
    let failover = killed.elapsed();
    eprintln!("lock failover after SIGKILL of the holder's agent {holder_node}: {failover:?}");
    assert!(failover >= Duration::from_secs(15), "not before the 15 s lock-delay: {failover:?}");
    for child in [&mut holder, &mut waiter] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn concord_event_reaches_every_agent() {
    let _serial = serial();
    let cluster = Cluster::start(3);
    wait_until(GOSSIP_TIMEOUT, "every server to see the others alive", || {
        let (out, code) = members(&cluster, 0, false);
        let alive = out.lines().filter(|l| l.contains("alive")).count();
        if code == Some(0) && alive == 3 { Ok(()) } else { Err(out) }
    });
    let mut cmd = Command::new(tests::concord_bin());
    cmd.args(["event", &format!("-http-addr=127.0.0.1:{}", cluster.servers[0].http_port), "-name=deploy", "v2"]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{} {}", out.stdout, out.stderr);
    let id = out.stdout.trim().strip_prefix("Event ID: ").unwrap_or_else(|| panic!("Consul's output: {}", out.stdout)).to_string();
    for s in &cluster.servers {
        let event = wait_until(GOSSIP_TIMEOUT, &format!("{} to list the event", s.name), || {
            let r = curl("GET", &s.url("/v1/event/list?name=deploy"), None)?;
            let list: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
            list.as_array().and_then(|a| a.iter().find(|e| e["ID"] == id.as_str()).cloned()).ok_or_else(|| r.text())
        });
        assert_eq!((event["Name"].as_str(), event["Payload"].as_str(), event["Version"].as_u64()), (Some("deploy"), Some("djI="), Some(1)), "{event}");
    }
    let bad = curl("PUT", &cluster.servers[1].url("/v1/event/fire/x?node=%5B"), None).expect("answer");
    assert_eq!(bad.status, 400, "an invalid node filter is refused: {}", bad.text());
}
