//! End-to-end: gossip encryption between three real `concord` servers on loopback. `concord
//! keygen` makes the keys; the servers start with `-encrypt` and form their pool encrypted; the
//! key is rotated with `concord keyring` (install, use, remove) through one server while
//! `-list` on another shows every step reach all three; membership holds throughout, the
//! keyring files in each data dir (the LAN pool's `local.keyring`, the WAN pool's
//! `remote.keyring`) end with the new key only, and removing the primary key or a
//! bad `-encrypt` key is refused with Consul's texts.

use std::process::Command;
use std::time::Duration;

use tests::cluster::Cluster;
use tests::http::must;
use tests::{run_with_timeout, serial, wait_until};

/// Gossip join plus a keyring change spreading (re-broadcast every 3 s) and being reported.
const GOSSIP_TIMEOUT: Duration = Duration::from_secs(30);

fn concord(args: &[&str]) -> tests::Finished {
    run_with_timeout(Command::new(tests::concord_bin()).args(args), Duration::from_secs(20))
}

fn keygen() -> String {
    let out = concord(&["keygen"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let key = out.stdout.trim().to_string();
    assert_eq!(key.len(), 44, "32 bytes in base64: {key}");
    key
}

/// `concord keyring -list` on server `i`.
fn list(cluster: &Cluster, i: usize) -> String {
    concord(&["keyring", "-list", &format!("-http-addr=127.0.0.1:{}", cluster.servers[i].http_port)]).stdout
}

fn keyring(cluster: &Cluster, i: usize, action: &str, key: &str) -> tests::Finished {
    concord(&["keyring", &format!("-{action}={key}"), &format!("-http-addr=127.0.0.1:{}", cluster.servers[i].http_port)])
}

fn all_alive(cluster: &Cluster, i: usize) -> Result<(), String> {
    let list = must("GET", &cluster.servers[i].url("/v1/agent/members"), None).json();
    let alive = list.as_array().map(|a| a.iter().filter(|m| m["Status"] == 1).count()).unwrap_or(0);
    if alive == 3 { Ok(()) } else { Err(format!("{alive} of 3 alive: {list}")) }
}

#[test]
fn an_encrypted_pool_rotates_its_key_with_keyring_commands() {
    let _serial = serial();
    let (old, new) = (keygen(), keygen());
    assert_ne!(old, new);
    let cluster = Cluster::start_with_args(3, &[format!("-encrypt={old}")]);
    wait_until(GOSSIP_TIMEOUT, "all three members alive over encrypted gossip", || all_alive(&cluster, 0));
    // The WAN pool (encrypted with the same key): no -retry-join-wan is given, so the servers
    // find each other there by flood join, from the LAN pool (Consul `FloodJoins`).
    wait_until(GOSSIP_TIMEOUT, "all three servers alive in the WAN pool", || {
        let list = must("GET", &cluster.servers[0].url("/v1/agent/members?wan"), None).json();
        let alive = list.as_array().map(|a| a.iter().filter(|m| m["Status"] == 1).count()).unwrap_or(0);
        if alive == 3 { Ok(()) } else { Err(format!("{alive} of 3 alive in the WAN pool: {list}")) }
    });
    wait_until(GOSSIP_TIMEOUT, "-list to show the start key on all three", || {
        let out = list(&cluster, 1);
        if out.contains(&format!("{old} [3/3]")) { Ok(()) } else { Err(out) }
    });

    let step = |action: &str, key: &str, done: &dyn Fn(&serde_json::Value) -> bool| {
        let out = keyring(&cluster, 0, action, key);
        assert_eq!(out.status.code(), Some(0), "keyring -{action}: {} {}", out.stdout, out.stderr);
        wait_until(GOSSIP_TIMEOUT, &format!("keyring -{action} on every member"), || {
            // Servers answer for both pools, the WAN pool's entry first: each must show the step.
            let pools = must("GET", &cluster.servers[2].url("/v1/operator/keyring"), None).json();
            let entries = pools.as_array().cloned().unwrap_or_default();
            let kinds: Vec<bool> = entries.iter().map(|p| p["WAN"] == true).collect();
            assert_eq!(kinds, [true, false], "a server lists its WAN pool, then its LAN pool: {pools}");
            if entries.iter().all(done) { Ok(()) } else { Err(pools.to_string()) }
        });
    };
    step("install", &new, &|p| p["Keys"][&new] == 3 && p["NumNodes"] == 3);
    step("use", &new, &|p| p["PrimaryKeys"][&new] == 3);
    let refused = keyring(&cluster, 1, "remove", &new);
    assert_eq!(refused.status.code(), Some(1));
    assert!(refused.stderr.contains("Removing the primary key is not allowed"), "{}", refused.stderr);
    step("remove", &old, &|p| p["Keys"].get(&old).is_none() && p["Keys"][&new] == 3);

    assert!(list(&cluster, 0).contains(&format!("{new} [3/3]")));
    std::thread::sleep(Duration::from_secs(3));
    for i in 0..3 {
        all_alive(&cluster, i).unwrap_or_else(|e| panic!("server {i} after the rotation: {e}"));
        for name in ["local.keyring", "remote.keyring"] {
            let file = std::fs::read_to_string(cluster.data_dir(i).join(name)).expect("keyring file");
            assert_eq!(serde_json::from_str::<Vec<String>>(&file).unwrap(), vec![new.clone()], "server {i}, {name}");
        }
    }
}

#[test]
fn a_bad_encrypt_key_is_a_config_error() {
    let out = concord(&["agent", "-dev", "-encrypt=AAAA"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("-encrypt: key size must be 16, 24 or 32 bytes"), "{}", out.stderr);
}
