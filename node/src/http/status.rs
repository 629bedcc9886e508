//! `/v1/status/*` and `/v1/agent/self`.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::server::Server;

/// `GET /v1/status/leader`: the leader's server RPC address as a JSON string, `""` if none.
pub async fn leader(State(agent): State<Arc<Server>>) -> Json<String> {
    Json(agent.leader().map(|(_, addr)| addr).unwrap_or_default())
}

/// `GET /v1/status/peers`: the Raft voters' server RPC addresses.
pub async fn peers(State(agent): State<Arc<Server>>) -> Json<Vec<String>> {
    Json(agent.voter_addrs())
}

/// `GET /v1/agent/self`: this agent's configuration and member record (a subset of Consul's).
pub async fn agent_self(State(agent): State<Arc<Server>>) -> Json<Value> {
    let c = &agent.config;
    let m = agent.raft.metrics();
    let (term, state, last_log, applied) = {
        let m = m.borrow();
        (m.current_term, format!("{:?}", m.state), m.last_log_index.unwrap_or(0), m.last_applied.map(|l| l.index).unwrap_or(0))
    };
    Json(json!({
        "Config": {
            "Datacenter": c.datacenter,
            "NodeName": c.node_name,
            "NodeID": format!("{:016x}", agent.id),
            "Server": c.server,
            "Version": env!("CARGO_PKG_VERSION"),
        },
        "Member": {
            "Name": c.node_name,
            "Addr": c.bind_addr.to_string(),
            "Port": c.ports.serf_lan,
            "Tags": { "role": "consul", "dc": c.datacenter, "port": c.ports.server.to_string() },
            "Status": 1,
        },
        "Stats": {
            "raft": {
                "term": term.to_string(),
                "state": state,
                "last_log_index": last_log.to_string(),
                "applied_index": applied.to_string(),
            }
        }
    }))
}
