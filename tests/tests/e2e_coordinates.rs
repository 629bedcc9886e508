//! End-to-end: Vivaldi network coordinates between three real `concord` servers on loopback
//! (Consul `/v1/coordinate/*`, `consul rtt`). Each agent pings a random live member every second
//! and sends its coordinate through Raft every 15 s plus a stagger; once every server's is stored,
//! `/v1/coordinate/nodes` lists all three with 8-dimensional vectors, `/v1/coordinate/node/<n>`
//! one, `/v1/coordinate/datacenters` the datacenter, `?near=_agent` sorts nodes by the estimate
//! `concord rtt` gives, and `concord rtt A B` prints Consul's line with a loopback-sized estimate.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tests::cluster::Cluster;
use tests::http::must;
use tests::{run_with_timeout, serial, wait_until};

/// Joining plus the first coordinate update of every server (15 s and a stagger of up to 15 s,
/// Consul's `SyncCoordinateRateTarget` scaled for a small cluster).
const COORDINATE_TIMEOUT: Duration = Duration::from_secs(60);

/// The `Coord` of each entry in a `/v1/coordinate/nodes` answer, by node name.
fn coords_by_node(answer: &Value) -> Vec<(String, Value)> {
    answer
        .as_array()
        .map(|a| a.iter().filter_map(|e| Some((e["Node"].as_str()?.to_string(), e["Coord"].clone()))).collect())
        .unwrap_or_default()
}

#[test]
fn coordinates_are_stored_for_every_server_and_rtt_estimates_loopback() {
    let _serial = serial();
    let cluster = Cluster::start(3);
    let names: Vec<String> = cluster.servers.iter().map(|s| s.name.clone()).collect();

    let nodes = wait_until(COORDINATE_TIMEOUT, "/v1/coordinate/nodes to list every server", || {
        let answer = must("GET", &cluster.servers[0].url("/v1/coordinate/nodes"), None).json();
        let listed = coords_by_node(&answer);
        match names.iter().find(|n| !listed.iter().any(|(name, _)| name == *n)) {
            Some(n) => Err(format!("{n} has no coordinate yet: {answer}")),
            None => Ok(answer),
        }
    });
    for (node, coord) in coords_by_node(&nodes) {
        let vec = coord["Vec"].as_array().unwrap_or_else(|| panic!("{node}: no Vec in {coord}"));
        assert_eq!(vec.len(), 8, "{node}: Consul's 8 dimensions: {coord}");
        for key in ["Error", "Adjustment", "Height"] {
            assert!(coord[key].is_number(), "{node}: {key} missing from {coord}");
        }
    }

    let one = must("GET", &cluster.servers[1].url(&format!("/v1/coordinate/node/{}", names[2])), None).json();
    assert_eq!(one.as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one[0]["Node"], names[2].as_str());

    let dcs = must("GET", &cluster.servers[0].url("/v1/coordinate/datacenters"), None).json();
    assert_eq!(dcs[0]["Datacenter"], "dc1", "{dcs}");
    assert!(dcs[0]["Coordinates"].as_array().is_some_and(|c| c.len() == 3), "every server's coordinate: {dcs}");

    // Sorted by estimated round trip from the asking agent's coordinate, by the same maths as
    // `concord rtt` (serf's: a node's distance to itself is its height and adjustment twice, not
    // zero, so its own node need not come first). Retried: a coordinate update may land between
    // the two reads.
    for (i, server) in cluster.servers.iter().enumerate() {
        wait_until(Duration::from_secs(30), &format!("?near=_agent on {} sorted by rtt", names[i]), || {
            let sorted = must("GET", &server.url("/v1/catalog/nodes?near=_agent"), None).json();
            let order: Vec<String> = sorted.as_array().map(|a| a.iter().filter_map(|n| n["Node"].as_str().map(String::from)).collect()).unwrap_or_default();
            if order.len() != names.len() {
                return Err(format!("not every node: {sorted}"));
            }
            let ms: Vec<f64> = order.iter().map(|n| rtt_ms(&cluster, &names[i], n)).collect::<Result<_, _>>()?;
            match ms.windows(2).all(|w| w[0] <= w[1]) {
                true => Ok(()),
                false => Err(format!("{order:?} at {ms:?} ms")),
            }
        });
    }

    let ms = rtt_ms(&cluster, &names[1], &names[2]).unwrap_or_else(|e| panic!("{e}"));
    // Loopback round trips are well under a millisecond; Vivaldi's estimate after a few samples
    // is of that order, never seconds.
    assert!(ms > 0.0 && ms < 100.0, "estimated {ms} ms between two loopback servers");
}

/// `concord rtt a b` against the first server: the estimate in ms from Consul's line, or why not.
fn rtt_ms(cluster: &Cluster, a: &str, b: &str) -> Result<f64, String> {
    let mut rtt = Command::new(tests::concord_bin());
    rtt.args(["rtt", &format!("-http-addr=127.0.0.1:{}", cluster.servers[0].http_port), a, b]);
    let out = run_with_timeout(&mut rtt, Duration::from_secs(20));
    if out.status.code() != Some(0) {
        return Err(format!("concord rtt {a} {b}: exit {:?}: {}", out.status.code(), out.stdout));
    }
    let line = out.stdout.trim();
    line.strip_prefix(&format!("Estimated {a} <-> {b} rtt: "))
        .and_then(|rest| rest.strip_suffix(" ms (using LAN coordinates)"))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("not Consul's rtt line: {line:?}"))
}
