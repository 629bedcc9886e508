//! End-to-end: `/v1/session/*` and KV locks (`?acquire=`, `?release=`) against a real
//! `concord agent -dev`, in Consul's shapes (pinned with insta snapshots of their key/type
//! structure): create with defaults, info, renew (404 when unknown), a lock with LockIndex, a
//! second session refused while it is held, destroy releasing it, the lock-delay that follows,
//! `behavior=delete`, py-consul's session and locking calls, and `concord lock` (a lock, and a
//! semaphore with `-n`).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::dev::DevAgent;
use tests::http::{curl, must};
use tests::python::{python_with_py_consul, script};
use tests::{run_with_timeout, serial, shape, wait_until};

fn create(dev: &DevAgent, body: Value) -> String {
    let r = must("PUT", &dev.agent.url("/v1/session/create"), Some(body.to_string().as_bytes()));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["ID"].as_str().expect("an ID").to_string()
}

fn put(dev: &DevAgent, path: &str, value: &str) -> String {
    must("PUT", &dev.agent.url(path), Some(value.as_bytes())).text()
}

#[test]
fn sessions_and_locks_behave_as_consuls() {
    let _serial = serial();
    let dev = DevAgent::start();
    let get = |path: &str| must("GET", &dev.agent.url(path), None);
    // The agent registers its own node through anti-entropy; sessions need it. The leader gives
    // it a serfHealth check (gossip), which new sessions bind by default, as Consul's do.
    wait_until(Duration::from_secs(20), "the agent's node and its serfHealth in the catalog", || {
        let checks = get("/v1/health/state/any").json();
        checks.as_array().is_some_and(|a| a.iter().any(|c| c["CheckID"] == "serfHealth")).then_some(()).ok_or_else(|| checks.to_string())
    });

    let a = create(&dev, json!({"Name": "a", "LockDelay": "1s"}));
    let b = create(&dev, json!({"Name": "b", "TTL": "30s"}));
    let info = get(&format!("/v1/session/info/{a}")).json();
    insta::assert_json_snapshot!("session_info_shape", shape(&info));
    assert_eq!(info[0]["NodeChecks"], json!(["serfHealth"]), "a session binds its node's serfHealth by default");
    assert_eq!((info[0]["Name"].clone(), info[0]["LockDelay"].clone(), info[0]["Behavior"].clone()), (json!("a"), json!(1_000_000_000u64), json!("release")));
    assert_eq!(get("/v1/session/info/00000000-0000-4000-8000-000000000000").text(), "[]");
    assert_eq!(get("/v1/session/list").json().as_array().map(Vec::len), Some(2));
    let node = info[0]["Node"].as_str().expect("a node").to_string();
    assert_eq!(get(&format!("/v1/session/node/{node}")).json().as_array().map(Vec::len), Some(2));
    let renewed = must("PUT", &dev.agent.url(&format!("/v1/session/renew/{b}")), None);
    assert_eq!((renewed.status, renewed.json()[0]["TTL"].clone()), (200, json!("30s")));
    let missing = must("PUT", &dev.agent.url("/v1/session/renew/00000000-0000-4000-8000-000000000000"), None);
    assert_eq!((missing.status, missing.text()), (404, "Session id '00000000-0000-4000-8000-000000000000' not found".to_string()));

    // a takes the lock; b cannot; a's re-acquire keeps the LockIndex.
    assert_eq!(put(&dev, &format!("/v1/kv/lock?acquire={a}"), "a1"), "true");
    assert_eq!(put(&dev, &format!("/v1/kv/lock?acquire={b}"), "b1"), "false");
    assert_eq!(put(&dev, &format!("/v1/kv/lock?acquire={a}"), "a2"), "true");
    let entry = get("/v1/kv/lock").json();
    assert_eq!((entry[0]["LockIndex"].clone(), entry[0]["Session"].clone()), (json!(1), json!(a)));
    assert_eq!(put(&dev, &format!("/v1/kv/lock?release={b}"), ""), "false", "only the holder releases");
    let conflict = must("PUT", &dev.agent.url(&format!("/v1/kv/lock?acquire={a}&release={a}")), Some(b""));
    assert_eq!(conflict.status, 400);
    let ghost = must("PUT", &dev.agent.url("/v1/kv/other?acquire=ghost"), Some(b""));
    assert_eq!((ghost.status, ghost.text()), (500, "invalid session \"ghost\"".to_string()));

    // Destroying a releases the key, and its 1 s lock-delay holds b off for a while.
    let destroyed_at = Instant::now();
    assert_eq!(must("PUT", &dev.agent.url(&format!("/v1/session/destroy/{a}")), None).text(), "true");
    let entry = get("/v1/kv/lock").json();
    assert_eq!((entry[0]["Session"].clone(), entry[0]["LockIndex"].clone()), (Value::Null, json!(1)), "released, not deleted");
    let first_try = put(&dev, &format!("/v1/kv/lock?acquire={b}"), "b2");
    if destroyed_at.elapsed() < Duration::from_millis(800) {
        assert_eq!(first_try, "false", "the lock-delay blocks re-acquisition");
    }
    wait_until(Duration::from_secs(10), "b acquires after the lock-delay", || {
        (put(&dev, &format!("/v1/kv/lock?acquire={b}"), "b3") == "true").then_some(()).ok_or_else(|| "still refused".to_string())
    });
    assert!(destroyed_at.elapsed() >= Duration::from_secs(1), "not before the lock-delay ended");
    assert_eq!(get("/v1/kv/lock").json()[0]["LockIndex"], json!(2));

    // behavior=delete: the key goes with the session.
    let d = create(&dev, json!({"Behavior": "delete", "LockDelay": 0}));
    assert_eq!(put(&dev, &format!("/v1/kv/doomed?acquire={d}"), "x"), "true");
    must("PUT", &dev.agent.url(&format!("/v1/session/destroy/{d}")), None);
    assert_eq!(curl("GET", &dev.agent.url("/v1/kv/doomed"), None).map(|r| r.status), Ok(404));

    // Bad input is a 400 with Consul's text, and creates nothing.
    let bad = must("PUT", &dev.agent.url("/v1/session/create"), Some(br#"{"TTL":"1s"}"#));
    assert_eq!((bad.status, bad.text()), (400, "Invalid Session TTL '1000', must be between [10s=24h0m0s]".to_string()));
    let bad = must("PUT", &dev.agent.url("/v1/session/create"), Some(br#"{"Node":"nowhere"}"#));
    assert_eq!((bad.status, bad.text()), (500, "Missing node registration".to_string()));
    assert_eq!(get("/v1/session/list").json().as_array().map(Vec::len), Some(1), "only b is left");
}

#[test]
fn py_consul_sessions_and_locks_work() {
    let _serial = serial();
    let python = python_with_py_consul().expect("a Python with py-consul");
    let dev = DevAgent::start();
    let out = run_with_timeout(Command::new(python).arg(script("sessions.py")).arg(dev.addr()), Duration::from_secs(90));
    assert!(out.status.success(), "py-consul: {}{}", out.stdout, out.stderr);
}

#[test]
fn concord_lock_gives_mutual_exclusion_and_a_semaphore_admits_n() {
    let _serial = serial();
    let dev = DevAgent::start();
    wait_until(Duration::from_secs(20), "the agent's node in the catalog", || {
        let nodes = must("GET", &dev.agent.url("/v1/catalog/nodes"), None).json();
        (nodes.as_array().map(Vec::len).unwrap_or(0) > 0).then_some(()).ok_or_else(|| "no node yet".to_string())
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("order");
    let log = log.to_str().expect("utf-8 path");
    let first = Command::new(tests::concord_bin())
        .env("CONSUL_HTTP_ADDR", dev.addr())
        .args(["lock", "app", &format!("echo A-start >> {log}; sleep 2; echo A-end >> {log}")])
        .spawn()
        .expect("concord lock runs");
    wait_until(Duration::from_secs(10), "the first holder's child started", || {
        std::fs::read_to_string(log).ok().filter(|s| s.contains("A-start")).ok_or_else(|| "not yet".to_string())
    });
    let second = dev.cli(&["lock", "-child-exit-code", "app", &format!("echo B >> {log}; [ \"$CONSUL_LOCK_HELD\" = true ]")]);
    assert_eq!(second.status.code(), Some(0), "{}{}", second.stdout, second.stderr);
    let mut first = first;
    assert!(first.wait().expect("first lock exits").success());
    let order = std::fs::read_to_string(log).expect("order file");
    assert_eq!(order.lines().collect::<Vec<_>>(), vec!["A-start", "A-end", "B"], "B ran only after A released");
    let entry = must("GET", &dev.agent.url("/v1/kv/app/.lock"), None).json();
    assert_eq!(entry[0]["Session"], Value::Null, "released on exit");
    assert_eq!(must("GET", &dev.agent.url("/v1/session/list"), None).text(), "[]", "sessions destroyed on exit");

    // A semaphore of two: three contenders, never more than two children at once, and all run.
    let sem_log = dir.path().join("sem");
    let sem_log = sem_log.to_str().expect("utf-8 path");
    let children: Vec<_> = (1..=3)
        .map(|i| {
            Command::new(tests::concord_bin())
                .env("CONSUL_HTTP_ADDR", dev.addr())
                .args(["lock", "-n", "2", "sem", &format!("echo +{i} >> {sem_log}; sleep 1.5; echo -{i} >> {sem_log}")])
                .spawn()
                .expect("concord lock -n 2 runs")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("exits").success());
    }
    let events = std::fs::read_to_string(sem_log).expect("semaphore log");
    let (mut now, mut most) = (0i32, 0i32);
    for e in events.lines() {
        now += if e.starts_with('+') { 1 } else { -1 };
        most = most.max(now);
    }
    assert_eq!((most, events.lines().count()), (2, 6), "two holders at most, all three ran:\n{events}");
    let doc = must("GET", &dev.agent.url("/v1/kv/sem/.lock?raw"), None).json();
    assert_eq!(doc, serde_json::json!({"Limit": 2, "Holders": {}}), "every holder left the semaphore");
}
