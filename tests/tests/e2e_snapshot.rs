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
