//! End-to-end: `PUT /v1/txn` against a real `concord agent -dev`, in Consul's shapes (pinned with
//! insta snapshots of their key/type structure): an atomic multi-key write (200), a read-only
//! transaction under each consistency mode, a failing check that rolls every write back (409 with
//! `OpIndex`/`What`), a lock through a transaction, Node/Service/Check get/set/delete, the
//! 400/413 refusals, and py-consul's `txn.put`.

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tests::dev::DevAgent;
use tests::http::{must, Response};
use tests::python::{python_with_py_consul, script};
use tests::{run_with_timeout, serial, shape, wait_until};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn txn(dev: &DevAgent, query: &str, ops: Value) -> Response {
    must("PUT", &dev.agent.url(&format!("/v1/txn{query}")), Some(ops.to_string().as_bytes()))
}

fn value(dev: &DevAgent, key: &str) -> String {
    must("GET", &dev.agent.url(&format!("/v1/kv/{key}?raw")), None).text()
}

#[test]
fn txn_applies_atomically_in_consuls_shapes() {
    let _serial = serial();
    let dev = DevAgent::start();

    // An atomic write: results are the stored entries without their values.
    let ok = txn(&dev, "", json!([
        {"KV": {"Verb": "set", "Key": "acct/a", "Value": b64("100"), "Flags": 7}},
        {"KV": {"Verb": "set", "Key": "acct/b", "Value": b64("50")}},
        {"KV": {"Verb": "delete", "Key": "acct/none"}},
    ]));
    assert_eq!(ok.status, 200, "{}", ok.text());
    let body = ok.json();
    insta::assert_json_snapshot!("txn_ok_shape", shape(&body));
    assert_eq!((body["Errors"].clone(), body["Results"].as_array().map(Vec::len)), (Value::Null, Some(2)));
    let a = &body["Results"][0]["KV"];
    assert_eq!((a["Key"].clone(), a["Value"].clone(), a["Flags"].clone()), (json!("acct/a"), Value::Null, json!(7)));
    let a_index = a["ModifyIndex"].as_u64().expect("a ModifyIndex");
    assert_eq!((value(&dev, "acct/a"), value(&dev, "acct/b")), ("100".to_string(), "50".to_string()));

    // Read-only transactions are reads in every consistency mode, and return values.
    for query in ["", "?stale", "?consistent"] {
        let read = txn(&dev, query, json!([
            {"KV": {"Verb": "get", "Key": "acct/a"}},
            {"KV": {"Verb": "check-index", "Key": "acct/a", "Index": a_index}},
            {"KV": {"Verb": "get-tree", "Key": "acct/"}},
        ]));
        assert_eq!(read.status, 200, "{query}: {}", read.text());
        assert_eq!(read.header("X-Consul-KnownLeader"), Some("true"));
        let results = read.json()["Results"].as_array().cloned().unwrap_or_default();
        let values: Vec<Value> = results.iter().map(|r| r["KV"]["Value"].clone()).collect();
        assert_eq!(values, [json!(b64("100")), Value::Null, json!(b64("100")), json!(b64("50"))], "{query}");
    }

    // A failing check as the last op rolls back every earlier write: 409, nothing applied.
    let conflict = txn(&dev, "", json!([
        {"KV": {"Verb": "set", "Key": "acct/a", "Value": b64("0")}},
        {"KV": {"Verb": "set", "Key": "acct/b", "Value": b64("150")}},
        {"KV": {"Verb": "check-index", "Key": "acct/a", "Index": a_index + 1000}},
    ]));
    assert_eq!(conflict.status, 409, "{}", conflict.text());
    let body = conflict.json();
    insta::assert_json_snapshot!("txn_conflict_shape", shape(&body));
    // The check sees the transaction's own earlier write to acct/a, so the current index is new.
    let what = body["Errors"][0]["What"].as_str().unwrap_or_default().to_string();
    assert_eq!((body["Results"].clone(), body["Errors"][0]["OpIndex"].clone()), (Value::Null, json!(2)));
    assert!(what.starts_with("failed index check for key \"acct/a\", current modify index ") && what.ends_with(&format!(" != {}", a_index + 1000)), "{what}");
    assert_eq!((value(&dev, "acct/a"), value(&dev, "acct/b")), ("100".to_string(), "50".to_string()));
    let missing = txn(&dev, "", json!([{"KV": {"Verb": "get", "Key": "acct/zzz"}}]));
    assert_eq!((missing.status, missing.json()["Errors"][0]["What"].clone()), (409, json!("key \"acct/zzz\" doesn't exist")));

    // A lock through a transaction counts LockIndex like ?acquire=.
    wait_until(Duration::from_secs(20), "the agent's node in the catalog", || {
        let nodes = must("GET", &dev.agent.url("/v1/catalog/nodes"), None).json();
        (nodes.as_array().map(Vec::len).unwrap_or(0) > 0).then_some(()).ok_or_else(|| "no node yet".to_string())
    });
    let session = must("PUT", &dev.agent.url("/v1/session/create"), Some(b"{\"LockDelay\":0}")).json()["ID"].clone();
    let lock = txn(&dev, "", json!([
        {"KV": {"Verb": "lock", "Key": "leader", "Value": b64("me"), "Session": session}},
        {"KV": {"Verb": "check-session", "Key": "leader", "Session": session}},
    ]));
    assert_eq!(lock.status, 200, "{}", lock.text());
    assert_eq!((lock.json()["Results"][0]["KV"]["LockIndex"].clone(), lock.json()["Results"][0]["KV"]["Session"].clone()), (json!(1), session.clone()));

    // A lock in a transaction respects the lock-delay of a destroyed holder, as ?acquire= does:
    // a 409 with Consul's pre-check error, and nothing applied.
    let holder = must("PUT", &dev.agent.url("/v1/session/create"), Some(b"{\"LockDelay\":\"10s\"}")).json()["ID"].clone();
    let took = txn(&dev, "", json!([{"KV": {"Verb": "lock", "Key": "delayed", "Value": b64("h"), "Session": holder}}]));
    assert_eq!(took.status, 200, "{}", took.text());
    let holder_id = holder.as_str().unwrap_or_default();
    assert_eq!(must("PUT", &dev.agent.url(&format!("/v1/session/destroy/{holder_id}")), None).text(), "true");
    let delayed = txn(&dev, "", json!([
        {"KV": {"Verb": "set", "Key": "side-effect", "Value": b64("x")}},
        {"KV": {"Verb": "lock", "Key": "delayed", "Value": b64("me"), "Session": session}},
    ]));
    assert_eq!(delayed.status, 409, "{}", delayed.text());
    assert_eq!(delayed.json()["Errors"], json!([{"OpIndex": 1, "What": "failed to lock key \"delayed\" due to lock delay"}]));
    assert_eq!(must("GET", &dev.agent.url("/v1/kv/side-effect"), None).status, 404, "nothing applied");

    // Refusals: 400 for bad input, 413 for too many operations.
    let bad = must("PUT", &dev.agent.url("/v1/txn"), Some(b"[{\"KV\":{\"Verb\":\"explode\",\"Key\":\"a\"}}]"));
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(must("PUT", &dev.agent.url("/v1/txn"), Some(b"{")).status, 400);
    let session_op = must("PUT", &dev.agent.url("/v1/txn"), Some(b"[{\"Session\":{\"Verb\":\"delete\",\"Session\":{\"ID\":\"x\"}}}]"));
    assert_eq!(session_op.status, 400, "{}", session_op.text());
    let many: Vec<Value> = (0..129).map(|i| json!({"KV": {"Verb": "get", "Key": format!("k{i}")}})).collect();
    let too_many = txn(&dev, "", Value::Array(many));
    assert_eq!((too_many.status, too_many.text()), (413, "Transaction contains too many operations (129 > 128)".to_string()));
}

#[test]
fn txn_catalog_ops_register_and_read_nodes_services_and_checks() {
    let _serial = serial();
    let dev = DevAgent::start();
    let ok = txn(&dev, "", json!([
        {"Node": {"Verb": "set", "Node": {"Node": "ext1", "Address": "10.1.2.3"}}},
        {"Service": {"Verb": "set", "Node": "ext1", "Service": {"ID": "db1", "Service": "db", "Port": 5432, "Tags": ["primary"]}}},
        {"Check": {"Verb": "set", "Check": {"Node": "ext1", "CheckID": "db-up", "Name": "db up", "Status": "passing", "ServiceID": "db1"}}},
    ]));
    assert_eq!(ok.status, 200, "{}", ok.text());
    let body = ok.json();
    assert_eq!((body["Results"][0]["Node"]["Address"].clone(), body["Results"][0]["Node"]["Datacenter"].clone()), (json!("10.1.2.3"), json!("dc1")));
    assert_eq!(body["Results"][2]["Check"]["ServiceName"], json!("db"));
    let nodes = must("GET", &dev.agent.url("/v1/catalog/service/db"), None).json();
    assert_eq!((nodes[0]["Node"].clone(), nodes[0]["ServicePort"].clone()), (json!("ext1"), json!(5432)));
    let read = txn(&dev, "?stale", json!([{"Service": {"Verb": "get", "Node": "ext1", "Service": {"ID": "db1"}}}]));
    assert_eq!((read.status, read.json()["Results"][0]["Service"]["Service"].clone()), (200, json!("db")));
    let gone = txn(&dev, "", json!([
        {"Service": {"Verb": "delete", "Node": "ext1", "Service": {"ID": "db1"}}},
        {"Node": {"Verb": "get", "Node": {"Node": "nowhere"}}},
    ]));
    assert_eq!((gone.status, gone.json()["Errors"][0]["What"].clone()), (409, json!("node \"nowhere\" doesn't exist")));
    let nodes = must("GET", &dev.agent.url("/v1/catalog/service/db"), None).json();
    assert_eq!(nodes.as_array().map(Vec::len), Some(1), "the failed transaction's delete was rolled back");
}

#[test]
fn py_consul_txn_works() {
    let _serial = serial();
    let python = python_with_py_consul().expect("a Python with py-consul");
    let dev = DevAgent::start();
    let out = run_with_timeout(Command::new(python).arg(script("txn.py")).arg(dev.addr()), Duration::from_secs(90));
    assert!(out.status.success(), "py-consul: {}{}", out.stdout, out.stderr);
}
