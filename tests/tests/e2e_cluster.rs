//! End-to-end: three real `concord` servers on loopback, bootstrapped with `-bootstrap-expect=3`
//! and `-retry-join`, driven with curl and with py-consul.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use tests::cluster::Cluster;
use tests::http::{curl, must};
use tests::{python, run_with_timeout, serial, wait_until};

/// How long a follower's `?stale` view may take to catch up with a committed write.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a new leader may take after the old one is killed (election timeout is ≤ 1 s).
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);
/// Deadline for the py-consul script.
const PY_TIMEOUT: Duration = Duration::from_secs(60);

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// PUTs `value` at `key` through `base`, retrying (bounded) while a new leader settles: a set is
/// idempotent, so a retry after an unknown outcome is harmless.
fn put_retrying(base: &str, key: &str, value: &str) {
    wait_until(FAILOVER_TIMEOUT, &format!("PUT {key} through {base}"), || {
        let r = curl("PUT", &format!("{base}/v1/kv/{key}"), Some(value.as_bytes()))?;
        match (r.status, r.text().trim()) {
            (200, "true") => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        }
    })
}

/// Polls `url` until it answers 200 with a JSON entry list whose values decode to `expected`.
fn wait_for_entry(url: &str, expected: &str) -> Value {
    wait_until(CATCH_UP_TIMEOUT, &format!("{url} to hold {expected:?}"), || {
        let r = curl("GET", url, None)?;
        if r.status != 200 {
            return Err(format!("status {} {}", r.status, r.text()));
        }
        let entry = r.json()[0].clone();
        if entry["Value"] == b64(expected).as_str() {
            Ok(entry)
        } else {
            Err(format!("entry {entry}"))
        }
    })
}

/// Total size of the files under `dir`, recursively.
fn dir_size_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn three_servers_elect_a_leader_and_replicate_kv() {
    let _serial = serial();
    let c = Cluster::start(3);
    let leader = c.leader_index();
    let (f1, f2) = ((leader + 1) % 3, (leader + 2) % 3);
    let (l, a, b) = (&c.servers[leader], &c.servers[f1], &c.servers[f2]);

    // Every server knows all three voters.
    for s in &c.servers {
        let mut peers: Vec<String> = serde_json::from_value(must("GET", &s.url("/v1/status/peers"), None).json()).unwrap();
        peers.sort();
        let mut expected: Vec<String> = c.servers.iter().map(|s| s.rpc_addr()).collect();
        expected.sort();
        assert_eq!(peers, expected, "{} /v1/status/peers", s.name);
    }

    // A write through a follower is forwarded to the leader.
    let r = must("PUT", &a.url("/v1/kv/app/config?flags=42"), Some(b"hello"));
    assert_eq!((r.status, r.text().trim()), (200, "true"), "{r:?}");

    // Consistent read through the other follower (forwarded, quorum-checked).
    let r = must("GET", &b.url("/v1/kv/app/config?consistent"), None);
    assert_eq!(r.status, 200, "{r:?}");
    let entry = &r.json()[0];
    assert_eq!(entry["Key"], "app/config");
    assert_eq!(entry["Value"], b64("hello").as_str());
    assert_eq!(entry["Flags"], 42);
    let modify_index = entry["ModifyIndex"].as_u64().expect("ModifyIndex");
    assert!(r.consul_index() >= 1 && r.consul_index() >= modify_index, "{r:?}");
    assert_eq!(r.header("X-Consul-KnownLeader"), Some("true"));

    // Stale reads on every server converge.
    for s in &c.servers {
        wait_for_entry(&s.url("/v1/kv/app/config?stale"), "hello");
    }
    // Default-mode read and ?raw on the leader.
    let r = must("GET", &l.url("/v1/kv/app/config?raw"), None);
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));

    // Recurse and keys (with separator).
    for (key, value) in [("app/other", "2"), ("app/sub/x", "3")] {
        let r = must("PUT", &b.url(&format!("/v1/kv/{key}")), Some(value.as_bytes()));
        assert_eq!(r.text().trim(), "true");
    }
    let r = must("GET", &a.url("/v1/kv/app?recurse&consistent"), None);
    assert_eq!(r.status, 200);
    let keys: Vec<Value> = r.json().as_array().expect("entry list").iter().map(|e| e["Key"].clone()).collect();
    assert_eq!(keys, ["app/config", "app/other", "app/sub/x"]);
    assert!(r.consul_index() >= 1);
    let r = must("GET", &a.url("/v1/kv/app/?keys&separator=/&consistent"), None);
    assert_eq!(r.json(), serde_json::json!(["app/config", "app/other", "app/sub/"]));

    // CAS: succeeds with the current ModifyIndex, fails with a stale one or with 0 on a live key.
    let r = must("PUT", &a.url(&format!("/v1/kv/app/config?cas={modify_index}")), Some(b"v2"));
    assert_eq!(r.text().trim(), "true", "cas with current index");
    let r = must("PUT", &b.url(&format!("/v1/kv/app/config?cas={modify_index}")), Some(b"v3"));
    assert_eq!(r.text().trim(), "false", "cas with stale index");
    let r = must("PUT", &l.url("/v1/kv/app/config?cas=0"), Some(b"v4"));
    assert_eq!(r.text().trim(), "false", "cas=0 on an existing key");
    let entry = wait_for_entry(&b.url("/v1/kv/app/config?consistent"), "v2");
    assert!(entry["ModifyIndex"].as_u64().unwrap() > modify_index);

    // Delete one key, then the rest of the prefix; a missing key is 404 with an index.
    let r = must("DELETE", &a.url("/v1/kv/app/config"), None);
    assert_eq!((r.status, r.text().trim()), (200, "true"));
    let r = must("GET", &b.url("/v1/kv/app/config?consistent"), None);
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.consul_index() >= 1);
    let r = must("DELETE", &b.url("/v1/kv/app?recurse"), None);
    assert_eq!(r.text().trim(), "true");
    let r = must("GET", &l.url("/v1/kv/app?recurse"), None);
    assert_eq!(r.status, 404, "{r:?}");
    for s in &c.servers {
        wait_until(CATCH_UP_TIMEOUT, &format!("{} to apply the recursive delete", s.name), || {
            let r = curl("GET", &s.url("/v1/kv/app?recurse&stale"), None)?;
            if r.status == 404 { Ok(()) } else { Err(r.text()) }
        });
    }
}

#[test]
fn writes_continue_after_leader_sigkill_and_restarted_leader_catches_up_from_disk() {
    let _serial = serial();
    let mut c = Cluster::start(3);
    let old = c.leader_index();
    let old_base = c.servers[old].base_url();
    for i in 0..5 {
        put_retrying(&old_base, &format!("before/{i}"), &format!("b{i}"));
    }
    // Every server holds the early writes before the crash.
    for s in &c.servers {
        wait_for_entry(&s.url("/v1/kv/before/4?stale"), "b4");
    }

    let raft_term = |url: String| -> u64 {
        let me = must("GET", &url, None).json();
        me["Stats"]["raft"]["term"].as_str().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("no raft term in {me}"))
    };
    let old_term = raft_term(c.servers[old].url("/v1/agent/self"));
    c.servers[old].kill();
    // The kill is real: the old leader no longer answers (so the survivors had to elect anew)...
    assert!(curl("GET", &c.servers[old].url("/v1/status/leader"), None).is_err(), "the killed leader still answers HTTP");
    let persisted_bytes = dir_size_bytes(&c.data_dir(old));
    assert!(persisted_bytes > 0, "the killed server left nothing in its data dir");
    let new = c.wait_for_leader(FAILOVER_TIMEOUT);
    // ... and the leader the survivors agree on won a later election than the killed one.
    let new_term = raft_term(c.servers[new].url("/v1/agent/self"));
    assert!(new_term > old_term, "new leader {new} is in term {new_term}, not after the killed leader's term {old_term}");
    let survivor = (0..3).find(|&i| i != old && i != new).expect("a follower survives");
    let survivor_base = c.servers[survivor].base_url();
    for i in 0..5 {
        put_retrying(&survivor_base, &format!("after/{i}"), &format!("a{i}"));
    }
    let r = must("GET", &c.servers[new].url("/v1/kv/?recurse&consistent"), None);
    assert_eq!(r.json().as_array().map(Vec::len), Some(10), "{}", r.text());

    // Same data dir, same flags: it restarts from its persisted log and vote, rejoins as the same
    // member (no second bootstrap, membership unchanged) and catches up on what it missed.
    c.servers[old].start();
    for (key, value) in [("before/0", "b0"), ("before/4", "b4"), ("after/0", "a0"), ("after/4", "a4")] {
        wait_for_entry(&c.servers[old].url(&format!("/v1/kv/{key}?stale")), value);
    }
    let r = must("GET", &c.servers[old].url("/v1/kv/?recurse&stale"), None);
    assert_eq!(r.json().as_array().map(Vec::len), Some(10), "{}", r.text());
    c.wait_for_leader(FAILOVER_TIMEOUT);
    let peers = must("GET", &c.servers[old].url("/v1/status/peers"), None).json();
    assert_eq!(peers.as_array().map(Vec::len), Some(3), "restart must not change membership: {peers}");
    // And the whole cluster still takes writes.
    put_retrying(&c.servers[old].base_url(), "after/restart", "r");
    wait_for_entry(&c.servers[survivor].url("/v1/kv/after/restart?consistent"), "r");
}

#[test]
fn py_consul_client_works_against_three_servers() {
    // Set up Python before taking the cluster lock: a first-time pip install can be slow.
    let python = python::python_with_py_consul()
        .unwrap_or_else(|e| panic!("py-consul is required for this test and could not be set up: {e}"));
    let _serial = serial();
    let c = Cluster::start(3);
    let leader = c.leader_index();
    // Write through a follower (forwarding); read through all three.
    let order = [(leader + 1) % 3, leader, (leader + 2) % 3];
    let addrs: Vec<String> = order.iter().map(|&i| format!("127.0.0.1:{}", c.servers[i].http_port)).collect();
    let out = run_with_timeout(Command::new(&python).arg(python::script("kv_smoke.py")).args(&addrs), PY_TIMEOUT);
    assert!(out.status.success(), "kv_smoke.py failed ({}):\n{}{}", out.status, out.stdout, out.stderr);
    assert!(out.stdout.contains("kv_smoke: OK"), "{}", out.stdout);
}
