//! `concord rtt NODE1 [NODE2]`: the estimated round-trip time between two nodes from their
//! network coordinates (`GET /v1/coordinate/nodes`).
//!
//! Source: Consul `command/rtt/rtt.go`. With one node the other is the agent's own (its
//! `Config.NodeName` from `/v1/agent/self`). Prints `Estimated A <-> B rtt: 0.610 ms (using LAN
//! coordinates)`; the distance is serf's ([`crate::gossip::coordinate::Coordinate::distance_to`]).
//! `-wan` is not offered: there is no WAN pool yet.

use clap::Args;
use hyper::Method;
use serde::Deserialize;

use super::common::{line, HttpArgs, Outcome};
use crate::structs::CoordinateEntry;

/// `concord rtt [options] node1 [node2]`.
#[derive(Debug, Args)]
pub struct RttArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// One or two node names.
    pub nodes: Vec<String>,
}

#[derive(Deserialize)]
struct AgentSelf {
    #[serde(rename = "Config")]
    config: AgentSelfConfig,
}

#[derive(Deserialize)]
struct AgentSelfConfig {
    #[serde(rename = "NodeName")]
    node_name: String,
}

pub(super) async fn rtt(a: RttArgs) -> Outcome {
    if a.nodes.is_empty() || a.nodes.len() > 2 {
        return Err("One or two node names must be specified".into());
    }
    let client = a.http.client()?;
    let mut nodes = a.nodes.clone();
    if nodes.len() == 1 {
        let resp = client.request(Method::GET, "/v1/agent/self", Vec::new()).await.map_err(|e| format!("Unable to look up agent info: {e}"))?;
        if !resp.status.is_success() {
            return Err(format!("Unable to look up agent info: {}", resp.unexpected()));
        }
        let me: AgentSelf = serde_json::from_slice(&resp.body).map_err(|e| format!("Unable to look up agent info: bad JSON: {e}"))?;
        nodes.push(me.config.node_name);
    }
    let resp = client.request(Method::GET, "/v1/coordinate/nodes", Vec::new()).await.map_err(|e| format!("Error getting coordinates: {e}"))?;
    if !resp.status.is_success() {
        return Err(format!("Error getting coordinates: {}", resp.unexpected()));
    }
    let coords: Vec<CoordinateEntry> = serde_json::from_slice(&resp.body).map_err(|e| format!("Error getting coordinates: bad JSON: {e}"))?;
    render(&coords, &nodes[0], &nodes[1]).map(line)
}

/// Consul's line for the pair. Errors: a node without a coordinate (Consul's wording).
fn render(coords: &[CoordinateEntry], a: &str, b: &str) -> Result<String, String> {
    let find = |n: &str| coords.iter().find(|c| c.node == n).ok_or_else(|| format!("Could not find a coordinate for node {n:?}"));
    let (ca, cb) = (find(a)?, find(b)?);
    let d = ca.coord.distance_to(&cb.coord).ok_or("Error computing distance: coordinate dimensionality does not match")?;
    Ok(format!("Estimated {a} <-> {b} rtt: {:.3} ms (using LAN coordinates)", d.as_secs_f64() * 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::coordinate::{Config, Coordinate};

    fn at(node: &str, x: f64) -> CoordinateEntry {
        let mut coord = Coordinate::new(&Config { height_min_s: 0.0, ..Config::default() });
        coord.vec[0] = x;
        CoordinateEntry { node: node.into(), segment: String::new(), coord }
    }

    #[test]
    fn prints_consuls_line_in_milliseconds() {
        let coords = [at("s1", 0.0), at("s2", 0.000610)];
        assert_eq!(render(&coords, "s1", "s2").unwrap(), "Estimated s1 <-> s2 rtt: 0.610 ms (using LAN coordinates)");
        assert_eq!(render(&coords, "s1", "s9").unwrap_err(), "Could not find a coordinate for node \"s9\"");
    }
}
