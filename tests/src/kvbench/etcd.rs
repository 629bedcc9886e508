//! etcd for the side-by-side runs: members started on free 127.0.0.1 ports with data dirs in a
//! temp dir (removed on drop), and the JSON bodies of its v3 HTTP gateway (`/v3/kv/put`,
//! `/v3/kv/range`, `/v3/kv/txn`, `/v3/watch`), where keys and values are base64 and int64s are
//! JSON strings (grpc-gateway's proto3 JSON mapping).

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::http::curl;
use crate::{free_ports, wait_until};

/// How long a fresh etcd cluster may take to elect a leader.
const ETCD_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The `etcd` binary on PATH, if installed (tests/install-etcd.sh installs it).
pub fn etcd_binary() -> Option<String> {
    let out = Command::new("etcd").arg("--version").stdout(Stdio::piped()).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("etcd").to_string())
}

/// One etcd member process; SIGKILLed on drop.
pub struct EtcdMember {
    /// `e0`, `e1`, ...
    pub name: String,
    /// The HTTP (gateway) and gRPC client port on 127.0.0.1.
    pub client_port: u16,
    child: Child,
}

impl EtcdMember {
    /// The member's OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:<client-port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.client_port)
    }

    /// `(own member id, leader member id)` from `/v3/maintenance/status`.
    fn status(&self) -> Result<(String, String), String> {
        let r = curl("POST", &self.url("/v3/maintenance/status"), Some(b"{}"))?;
        let v = r.json();
        let me = v["header"]["member_id"].as_str().unwrap_or_default().to_string();
        let leader = v["leader"].as_str().unwrap_or_default().to_string();
        if r.status != 200 || me.is_empty() || leader.is_empty() || leader == "0" {
            return Err(format!("{}: no leader yet ({} {})", self.name, r.status, r.text()));
        }
        Ok((me, leader))
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` etcd members forming one cluster on loopback.
pub struct EtcdCluster {
    /// The members, in start order.
    pub members: Vec<EtcdMember>,
    // Dropped after the members (field order), so the data dirs outlive the processes.
    _dir: TempDir,
}

impl EtcdCluster {
    /// Starts `n` members (`--initial-cluster-state new`, default fsync and snapshot settings) and
    /// waits until all of them name the same leader. Errors: a member cannot start or no leader in
    /// time.
    pub fn start(n: usize) -> Result<Self, String> {
        let dir = tempfile::Builder::new().prefix("kvbench-etcd-").tempdir().map_err(|e| e.to_string())?;
        let ports = free_ports(2 * n);
        let peer = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i + 1]);
        let initial: Vec<String> = (0..n).map(|i| format!("e{i}={}", peer(i))).collect();
        let mut members = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("e{i}");
            let client = format!("http://127.0.0.1:{}", ports[2 * i]);
            let log = File::create(dir.path().join(format!("{name}.log"))).map_err(|e| e.to_string())?;
            let child = Command::new("etcd")
                .args(["--name", &name, "--data-dir"])
                .arg(dir.path().join(&name))
                .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer(i), "--initial-advertise-peer-urls", &peer(i)])
                .args(["--initial-cluster", &initial.join(","), "--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "kvbench", "--logger", "zap", "--log-level", "error"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot start etcd: {e}"))?;
            members.push(EtcdMember { name, client_port: ports[2 * i], child });
        }
        let cluster = Self { members, _dir: dir };
        let leader = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cluster.wait_for_leader()));
        leader.map(|_| cluster).map_err(|_| "etcd elected no leader in time".to_string())
    }

    /// Waits until every member names the same leader; returns the leader's index.
    pub fn wait_for_leader(&self) -> usize {
        wait_until(ETCD_READY_TIMEOUT, "etcd members to agree on a leader", || {
            let views: Vec<(String, String)> = self.members.iter().map(|m| m.status()).collect::<Result<_, _>>()?;
            let leader = &views[0].1;
            if views.iter().any(|(_, l)| l != leader) {
                return Err(format!("members disagree on the leader: {views:?}"));
            }
            views.iter().position(|(me, _)| me == leader).ok_or_else(|| format!("leader {leader} is not a member"))
        })
    }
}

/// `/v3/kv/put` body.
pub fn put_body(key: &str, value: &[u8]) -> String {
    json!({"key": B64.encode(key), "value": B64.encode(value)}).to_string()
}

/// `/v3/kv/range` body for one key: linearizable (a quorum read index), or `serializable` (the
/// member's local state, etcd's `?stale`).
pub fn range_body(key: &str, serializable: bool) -> String {
    if serializable {
        json!({"key": B64.encode(key), "serializable": true}).to_string()
    } else {
        json!({"key": B64.encode(key)}).to_string()
    }
}

/// `/v3/kv/txn` body: put `value` at `key` only if the key's mod_revision is still `mod_revision`
/// (0: the key does not exist), etcd's equivalent of Consul's `?cas=<ModifyIndex>`.
pub fn cas_txn_body(key: &str, value: &[u8], mod_revision: u64) -> String {
    let key = B64.encode(key);
    json!({
        "compare": [{"key": key, "result": "EQUAL", "target": "MOD", "mod_revision": mod_revision.to_string()}],
        "success": [{"request_put": {"key": key, "value": B64.encode(value)}}],
    })
    .to_string()
}

/// `/v3/watch` body: watch one key from now on.
pub fn watch_body(key: &str) -> String {
    json!({"create_request": {"key": B64.encode(key)}}).to_string()
}

/// The first key's `mod_revision` in a `/v3/kv/range` answer; 0 when the key does not exist
/// (`kvs` is omitted). Errors: not JSON, or a revision that is not an integer string.
pub fn range_mod_revision(body: &[u8]) -> Result<u64, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("range answer is not JSON: {e}"))?;
    match v["kvs"].get(0) {
        None => Ok(0),
        Some(kv) => kv["mod_revision"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("range answer without a mod_revision: {v}")),
    }
}

/// Whether a `/v3/kv/txn` answer says the comparison held (`succeeded` is omitted when false).
pub fn txn_succeeded(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v["succeeded"] == json!(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_bodies_base64_keys_and_values() {
        assert_eq!(put_body("foo", b"bar"), r#"{"key":"Zm9v","value":"YmFy"}"#);
        assert_eq!(range_body("foo", false), r#"{"key":"Zm9v"}"#);
        assert_eq!(range_body("foo", true), r#"{"key":"Zm9v","serializable":true}"#);
        assert_eq!(watch_body("foo"), r#"{"create_request":{"key":"Zm9v"}}"#);
    }

    #[test]
    fn cas_txn_compares_mod_revision_as_an_int64_string() {
        let v: Value = serde_json::from_str(&cas_txn_body("foo", b"baz", 7)).unwrap();
        assert_eq!(
            v,
            json!({
                "compare": [{"key": "Zm9v", "result": "EQUAL", "target": "MOD", "mod_revision": "7"}],
                "success": [{"request_put": {"key": "Zm9v", "value": "YmF6"}}],
            })
        );
    }

    #[test]
    fn range_and_txn_answers_parse_as_etcd_3_4_sends_them() {
        let found = br#"{"header":{"revision":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#;
        assert_eq!(range_mod_revision(found), Ok(2));
        assert_eq!(range_mod_revision(br#"{"header":{"revision":"2"}}"#), Ok(0));
        assert!(range_mod_revision(b"not json").is_err());
        assert!(range_mod_revision(br#"{"kvs":[{"mod_revision":2}]}"#).is_err());
        assert!(txn_succeeded(br#"{"header":{"revision":"3"},"succeeded":true,"responses":[]}"#));
        assert!(!txn_succeeded(br#"{"header":{"revision":"3"}}"#));
    }
}
