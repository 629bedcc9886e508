//! End-to-end durability under group commit (issue 12): many clients write at once through every
//! server, so the leader puts many writes in one Raft entry and one fsync; then every server is
//! SIGKILLed at once (no shutdown code runs, nothing is flushed on the way out) and restarted
//! from its data dir. Every write that was acknowledged must still be there, with its value.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use tests::cluster::Cluster;
use tests::http::{curl, must};
use tests::serial;

/// Concurrent writers: enough that writes queue behind one another and share entries.
const WRITERS: usize = 16;
/// Each writer stops after this many writes or [`WRITE_PHASE`], whichever comes first.
const WRITES_PER_WRITER: usize = 150;
const WRITE_PHASE: Duration = Duration::from_secs(4);
/// How long the restarted cluster may take to elect a leader.
const RESTART_TIMEOUT: Duration = Duration::from_secs(30);

/// The Raft log index on server `url` (`/v1/agent/self`'s `Stats.raft.last_log_index`).
fn last_log_index(url: &str) -> u64 {
    let me = must("GET", url, None).json();
    me["Stats"]["raft"]["last_log_index"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn acknowledged_writes_survive_kill_9_of_every_server() {
    let _serial = serial();
    let mut c = Cluster::start(3);
    let bases: Vec<String> = c.servers.iter().map(|s| s.base_url()).collect();
    let index_before = last_log_index(&c.servers[c.leader_index()].url("/v1/agent/self"));
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop_at = Instant::now() + WRITE_PHASE;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            // Writers spread over all three servers: followers forward to the leader.
            let base = bases[w % bases.len()].clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                for i in 0..WRITES_PER_WRITER {
                    if Instant::now() >= stop_at {
                        break;
                    }
                    let (key, value) = (format!("durable/{w}/{i}"), format!("w{w}-{i}"));
                    let ok = curl("PUT", &format!("{base}/v1/kv/{key}"), Some(value.as_bytes()))
                        .is_ok_and(|r| r.status == 200 && r.text().trim() == "true");
                    if ok {
                        acked.lock().unwrap().push((key, value));
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer thread");
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.len() >= WRITERS, "only {} writes were acknowledged", acked.len());
    let entries = last_log_index(&c.servers[c.leader_index()].url("/v1/agent/self")) - index_before;
    eprintln!("{} writes acknowledged in {entries} Raft entries", acked.len());

    for s in c.servers.iter_mut() {
        s.kill();
    }
    for s in c.servers.iter_mut() {
        s.start();
    }
    let leader = c.wait_for_leader(RESTART_TIMEOUT);
    let r = tests::wait_until(RESTART_TIMEOUT, "a consistent read after the restart", || {
        let r = curl("GET", &c.servers[leader].url("/v1/kv/durable/?recurse&consistent"), None)?;
        if r.status == 200 { Ok(r) } else { Err(format!("{} {}", r.status, r.text())) }
    });
    let stored: std::collections::BTreeMap<String, String> = r
        .json()
        .as_array()
        .expect("a JSON array of entries")
        .iter()
        .map(|e| {
            let value = e["Value"].as_str().unwrap_or_default();
            let value = base64::engine::general_purpose::STANDARD.decode(value).expect("base64 value");
            (e["Key"].as_str().unwrap_or_default().to_string(), String::from_utf8(value).expect("utf-8 value"))
        })
        .collect();
    let lost: Vec<&(String, String)> = acked.iter().filter(|(k, v)| stored.get(k) != Some(v)).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged writes lost after kill -9 of every server, e.g. {:?}", lost.len(), acked.len(), &lost[..lost.len().min(5)]);
}
