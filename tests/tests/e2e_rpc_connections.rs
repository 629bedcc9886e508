//! End-to-end: an idle 3-server cluster keeps a few long-lived server RPC connections instead of
//! opening one per Raft message (issue 6, item 5). Counted from the kernel's socket table
//! (`/proc/net/tcp`), so it measures what the binary does, not what it reports.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tests::cluster::Cluster;
use tests::serial;

/// How long the cluster idles while connections are counted.
const IDLE_WINDOW: Duration = Duration::from_secs(60);
/// How often the socket table is sampled. Well under Linux's 60 s TIME_WAIT, so a connection
/// that opens and closes between two samples is still seen in TIME_WAIT.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// "A handful": one connection per ordered pair of servers is 6; allow a few reconnects.
const MAX_NEW_CONNECTIONS: usize = 12;

/// One TCP connection, named by (server side `ip:port` hex, client side `ip:port` hex) as
/// `/proc/net/tcp` prints them.
type Conn = (String, String);

/// Every connection in the kernel's table (any state but LISTEN) with one end on `server_ports`.
fn rpc_connections(server_ports: &[u16]) -> BTreeSet<Conn> {
    let mut out = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(state)) = (cols.get(1), cols.get(2), cols.get(3)) else { continue };
            if *state == "0A" {
                continue; // LISTEN
            }
            let port = |a: &str| a.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if port(remote).is_some_and(|p| server_ports.contains(&p)) {
                out.insert((remote.to_string(), local.to_string()));
            } else if port(local).is_some_and(|p| server_ports.contains(&p)) {
                out.insert((local.to_string(), remote.to_string()));
            }
        }
    }
    out
}

#[test]
fn idle_three_server_cluster_opens_a_handful_of_rpc_connections_per_minute() {
    if !std::path::Path::new("/proc/net/tcp").exists() {
        eprintln!("skipped: needs Linux /proc/net/tcp");
        return;
    }
    let _serial = serial();
    let c = Cluster::start(3);
    let ports: Vec<u16> = c.servers.iter().map(|s| s.server_port).collect();
    // Let bootstrap traffic settle, then count only connections that appear during the window.
    std::thread::sleep(Duration::from_secs(2));
    let before = rpc_connections(&ports);
    let mut seen = before.clone();
    let start = Instant::now();
    while start.elapsed() < IDLE_WINDOW {
        std::thread::sleep(SAMPLE_EVERY);
        seen.extend(rpc_connections(&ports));
    }
    let opened = seen.difference(&before).count();
    eprintln!(
        "server RPC connections: {} at the start of the window, {opened} opened during {} s idle",
        before.len(),
        IDLE_WINDOW.as_secs()
    );
    assert!(
        opened <= MAX_NEW_CONNECTIONS,
        "an idle 3-server cluster opened {opened} server RPC connections in {IDLE_WINDOW:?} (expected ≤ {MAX_NEW_CONNECTIONS})"
    );
    // The cluster still works over the long-lived connections.
    c.wait_for_leader(Duration::from_secs(10));
}
