//! End-to-end: `concord snapshot save`, a fresh agent (every data dir wiped), `concord snapshot
//! restore` brings back every key and session; `inspect` prints the archive's tables; a
//! truncated or tampered archive is refused with a 400 and changes nothing.

use std::time::Duration;

use serde_json::{json, Value};
use tests::dev::DevAgent;
use tests::http::must;
use tests::{serial, wait_until};

fn wait_for_node(dev: &DevAgent) {
    wait_until(Duration::from_secs(20), "the agent's node in the catalog", || {
        let nodes = must("GET", &dev.agent.url("/v1/catalog/nodes"), None).json();
        (nodes.as_array().map(Vec::len).unwrap_or(0) > 0).then_some(()).ok_or_else(|| "no node yet".to_string())
    });
}

#[test]
fn save_wipe_restore_brings_back_keys_and_sessions() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("backup.snap");
    let file = file.to_str().expect("utf-8 path");
    let (session, before) = {
        let dev = DevAgent::start();
        wait_for_node(&dev);
        for i in 0..20 {
            assert_eq!(must("PUT", &dev.agent.url(&format!("/v1/kv/app/k{i}")), Some(format!("v{i}").as_bytes())).text(), "true");
        }
        let created = must("PUT", &dev.agent.url("/v1/session/create"), Some(json!({"Name": "keeper", "LockDelay": "0s"}).to_string().as_bytes()));
        let session = created.json()["ID"].as_str().expect("ID").to_string();
        assert_eq!(must("PUT", &dev.agent.url(&format!("/v1/kv/app/lock?acquire={session}")), Some(b"held")).text(), "true");
        let before = must("GET", &dev.agent.url("/v1/kv/app/?recurse"), None).json();
        let saved = dev.cli(&["snapshot", "save", file]);
        assert!(saved.status.success(), "{}{}", saved.stdout, saved.stderr);
        assert!(saved.stdout.starts_with("Saved and verified snapshot to index "), "{}", saved.stdout);
        (session, before)
    };
    let inspected = tests::dev::cli(&["snapshot", "inspect", file], None);
    assert!(inspected.status.success(), "{}", inspected.stderr);
    for want in ["ID", "Index", "Term", "Version", "kvs", "sessions"] {
        assert!(inspected.stdout.contains(want), "inspect shows {want}:\n{}", inspected.stdout);
    }

    // A new agent: nothing survives from the first (in-memory data).
    let dev = DevAgent::start();
    wait_for_node(&dev);
    assert_eq!(must("GET", &dev.agent.url("/v1/kv/app/k0"), None).status, 404);
    let bytes = std::fs::read(file).expect("archive");
    let truncated = must("PUT", &dev.agent.url("/v1/snapshot"), Some(&bytes[..bytes.len() / 2]));
    assert_eq!(truncated.status, 400, "{}", truncated.text());
    let mut tampered = bytes.clone();
    let at = tampered.len() - 10;
    tampered[at] ^= 1;
    let refused = must("PUT", &dev.agent.url("/v1/snapshot"), Some(&tampered));
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(must("GET", &dev.agent.url("/v1/kv/app/k0"), None).status, 404, "a refused archive changes nothing");

    let restored = dev.cli(&["snapshot", "restore", file]);
    assert!(restored.status.success(), "{}{}", restored.stdout, restored.stderr);
    let after = must("GET", &dev.agent.url("/v1/kv/app/?recurse"), None).json();
    let strip = |v: &Value| v.as_array().map(|a| a.iter().map(|e| (e["Key"].clone(), e["Value"].clone(), e["Session"].clone())).collect::<Vec<_>>());
    assert_eq!(strip(&after), strip(&before), "every key, value and lock holder is back");
    let info = must("GET", &dev.agent.url(&format!("/v1/session/info/{session}")), None).json();
    assert_eq!(info[0]["Name"], json!("keeper"), "the session is back");
}

#[test]
fn a_wiped_three_server_cluster_restored_from_a_snapshot_serves_every_key_and_session_everywhere() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cluster.snap");
    let file = file.to_str().expect("utf-8 path");
    let mut cluster = tests::cluster::Cluster::start(3);
    let leader = cluster.leader_index();
    let addr = |c: &tests::cluster::Cluster, i: usize| format!("127.0.0.1:{}", c.servers[i].http_port);
    let node = cluster.servers[leader].name.clone();
    wait_until(Duration::from_secs(30), "the leader's node in the catalog", || {
        let r = must("GET", &cluster.servers[leader].url(&format!("/v1/catalog/node/{node}")), None).json();
        (!r.is_null()).then_some(()).ok_or_else(|| "not registered yet".to_string())
    });
    for i in 0..10 {
        assert_eq!(must("PUT", &cluster.servers[leader].url(&format!("/v1/kv/app/k{i}")), Some(format!("v{i}").as_bytes())).text(), "true");
    }
    let created = must("PUT", &cluster.servers[leader].url("/v1/session/create"), Some(json!({"Name": "keeper", "Node": node}).to_string().as_bytes()));
    let session = created.json()["ID"].as_str().expect("ID").to_string();
    assert_eq!(must("PUT", &cluster.servers[leader].url(&format!("/v1/kv/app/lock?acquire={session}")), Some(b"held")).text(), "true");
    let saved = tests::dev::cli(&["snapshot", "save", file], Some(&addr(&cluster, leader)));
    assert!(saved.status.success(), "{}{}", saved.stdout, saved.stderr);

    // Every server killed and its data dir wiped: a brand-new cluster bootstraps.
    for i in 0..3 {
        cluster.servers[i].kill();
        std::fs::remove_dir_all(cluster.data_dir(i)).expect("wipe the data dir");
    }
    for i in 0..3 {
        cluster.servers[i].start();
    }
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    assert_eq!(must("GET", &cluster.servers[leader].url("/v1/kv/app/k0"), None).status, 404, "nothing survived the wipe");

    let restored = tests::dev::cli(&["snapshot", "restore", file], Some(&addr(&cluster, leader)));
    assert!(restored.status.success(), "{}{}", restored.stdout, restored.stderr);
    // Every server converges on the archive (read its own applied state with ?stale).
    for s in &cluster.servers {
        wait_until(Duration::from_secs(20), "the restored state on every server", || {
            let keys = must("GET", &s.url("/v1/kv/app/?recurse&stale"), None).json();
            let n = keys.as_array().map(Vec::len).unwrap_or(0);
            let lock = keys.as_array().and_then(|a| a.iter().find(|e| e["Key"] == "app/lock")).map(|e| e["Session"].clone());
            let info = must("GET", &s.url(&format!("/v1/session/info/{session}?stale")), None).json();
            match (n, lock, info[0]["Name"].clone()) {
                (11, Some(Value::String(holder)), Value::String(name)) if holder == session && name == "keeper" => Ok(()),
                other => Err(format!("{}: {other:?}", s.name)),
            }
        });
    }
}
