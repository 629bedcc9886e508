//! `GET /v1/agent/self`, `/v1/agent/version` and `/v1/agent/host`, in Consul's shapes.
//!
//! Source: Consul HTTP API "Agent" (`website/content/api-docs/agent/index.mdx`) and
//! `agent/agent_endpoint.go` (`AgentSelf`, `AgentVersion`, `AgentHost`). `Config.Version` is the
//! Consul API level Concord implements ([`crate::version::CONSUL_API_VERSION`]); Concord's own
//! version is in `Stats.build`. `Stats` values are strings, as in Consul. Concord has no Vivaldi
//! coordinates yet: `Coord` is Consul's origin coordinate, the value a new agent starts from.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use openraft::ServerState;
use serde_json::{json, Value};

use crate::server::membership::server_id;
use crate::server::Server;
use crate::version::{CONCORD_VERSION, CONSUL_API_VERSION, RAFT_PROTOCOL_VERSION, REVISION};

/// Consul's initial Vivaldi coordinate (`lib.GenerateCoordinate` origin, dimensionality 8).
fn origin_coordinate() -> Value {
    json!({ "Vec": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "Error": 1.5, "Adjustment": 0.0, "Height": 1.0e-5 })
}

/// Consul's `Stats.raft.state` spelling.
fn raft_state(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "Leader",
        ServerState::Candidate => "Candidate",
        ServerState::Follower => "Follower",
        ServerState::Learner => "Learner",
        ServerState::Shutdown => "Shutdown",
    }
}

/// The agent's node meta (Consul adds `consul-version` and `consul-network-segment`).
fn node_meta() -> Value {
    json!({ "consul-network-segment": "", "consul-version": CONSUL_API_VERSION })
}

/// The agent's `Member` record, as `/v1/agent/members` lists it (from the LAN pool's view).
pub fn member(agent: &Server) -> Value {
    let me = agent.gossip.members().into_iter().find(|m| m.name == agent.config.node_name);
    let me = me.unwrap_or_else(|| crate::gossip::Member {
        name: agent.config.node_name.clone(),
        addr: agent.config.serf_lan_addr(),
        tags: agent.gossip.identity().tags.clone(),
        status: crate::gossip::MemberStatus::Alive,
        generation: 0,
    });
    super::agent_members::member_json(&me)
}

/// The `Stats` object: agent, build, consul, raft, runtime.
pub fn stats(agent: &Server) -> Value {
    let c = &agent.config;
    let m = agent.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let is_leader = m.state == ServerState::Leader;
    let leader_addr = agent.leader().map(|(_, addr)| addr).unwrap_or_default();
    let configuration: Vec<Value> = membership
        .nodes()
        .map(|(id, node)| json!({ "ID": server_id(*id), "Address": node.addr, "Suffrage": if voters.contains(id) { "Voter" } else { "Nonvoter" } }))
        .collect();
    let s = |v: u64| v.to_string();
    if agent.is_client() {
        // Consul's client agent: no `raft` section, and `consul` says how many servers it knows.
        return json!({
            "agent": { "check_monitors": "0", "check_ttls": "0", "checks": "0", "services": "0" },
            "build": { "prerelease": "", "revision": REVISION, "version": CONCORD_VERSION, "version_metadata": "",
                       "product": "concord", "consul_api_version": CONSUL_API_VERSION },
            "consul": { "acl": "disabled", "known_datacenters": "1", "known_servers": s(agent.known_servers().len() as u64), "server": "false" },
            "runtime": runtime_stats(),
        });
    }
    let mut out = json!({
        "agent": { "check_monitors": "0", "check_ttls": "0", "checks": "0", "services": "0" },
        "build": { "prerelease": "", "revision": REVISION, "version": CONCORD_VERSION, "version_metadata": "",
                   "product": "concord", "consul_api_version": CONSUL_API_VERSION },
        "consul": {
            "acl": "disabled",
            "bootstrap": (c.bootstrap_expect == 1).to_string(),
            "known_datacenters": s(agent.local_datacenters().len() as u64),
            "leader": is_leader.to_string(),
            "leader_addr": leader_addr,
            "server": c.server.to_string(),
        },
        "raft": {
            "applied_index": s(m.last_applied.map(|l| l.index).unwrap_or(0)),
            "commit_index": s(m.last_applied.map(|l| l.index).unwrap_or(0)),
            "fsm_pending": "0",
            "last_contact": if is_leader { "0".to_string() } else { format!("{}ms", agent.last_contact_ms()) },
            "last_log_index": s(m.last_log_index.unwrap_or(0)),
            "last_snapshot_index": s(m.snapshot.map(|l| l.index).unwrap_or(0)),
            "last_snapshot_term": s(m.snapshot.map(|l| l.leader_id.term).unwrap_or(0)),
            "latest_configuration": serde_json::to_string(&configuration).unwrap_or_default(),
            "latest_configuration_index": s(m.membership_config.log_id().map(|l| l.index).unwrap_or(0)),
            "num_peers": s(voters.iter().filter(|id| **id != agent.id).count() as u64),
            "protocol_version": RAFT_PROTOCOL_VERSION.to_string(),
            "protocol_version_max": "3",
            "protocol_version_min": "0",
            "state": raft_state(m.state),
            "term": s(m.current_term),
        },
        "runtime": runtime_stats(),
    });
    if let (Some(wan), Some(obj)) = (&agent.wan, out.as_object_mut()) {
        obj.insert("serf_wan".into(), pool_stats(wan));
    }
    out
}

/// A gossip pool's `Stats.serf_*` section (Consul's keys that Concord knows: member counts by
/// status and whether gossip is encrypted).
fn pool_stats(pool: &crate::gossip::Pool) -> Value {
    use crate::gossip::MemberStatus;
    let members = pool.members();
    let count = |st: MemberStatus| members.iter().filter(|m| m.status == st).count().to_string();
    json!({
        "encrypted": pool.keyring.enabled().to_string(),
        "failed": count(MemberStatus::Failed),
        "left": count(MemberStatus::Left),
        "members": members.len().to_string(),
    })
}

/// `Stats.runtime`.
fn runtime_stats() -> Value {
    json!({
        "arch": std::env::consts::ARCH,
        "os": std::env::consts::OS,
        "cpu_count": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string(),
        "version": "rust",
    })
}

/// The `DebugConfig` object: the agent's effective runtime configuration (Consul's
/// `RuntimeConfig` names for the settings Concord has).
fn debug_config(agent: &Server) -> Value {
    let c = &agent.config;
    json!({
        "Datacenter": c.datacenter,
        "PrimaryDatacenter": c.datacenter,
        "NodeName": c.node_name,
        "NodeID": agent.node_uuid,
        "ServerMode": c.server,
        "DevMode": c.dev,
        "BootstrapExpect": c.bootstrap_expect,
        "Bootstrap": c.bootstrap_expect == 1,
        "BindAddr": c.bind_addr.to_string(),
        "AdvertiseAddrLAN": c.bind_addr.to_string(),
        "ClientAddrs": [c.client_addr.to_string()],
        "DataDir": c.data_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
        "HTTPPort": c.ports.http,
        "DNSPort": c.ports.dns,
        "ServerPort": c.ports.server,
        "SerfPortLAN": c.ports.serf_lan,
        "SerfPortWAN": c.ports.serf_wan,
        "RetryJoinLAN": c.retry_join,
        "RaftHeartbeatTimeout": format!("{}ms", c.raft.heartbeat_ms),
        "RaftElectionTimeout": format!("{}ms", c.raft.election_timeout_min_ms),
        "RaftSnapshotThreshold": c.raft.snapshot_threshold,
        "RaftTrailingLogs": c.raft.trailing_logs,
        "Revision": REVISION,
        "Version": CONSUL_API_VERSION,
    })
}

/// The whole `/v1/agent/self` document.
pub fn agent_self_json(agent: &Server) -> Value {
    let c = &agent.config;
    json!({
        "Config": {
            "Datacenter": c.datacenter,
            "PrimaryDatacenter": c.datacenter,
            "NodeName": c.node_name,
            "NodeID": agent.node_uuid,
            "Partition": "",
            "Revision": REVISION,
            "Server": c.server,
            "Version": CONSUL_API_VERSION,
            "BuildDate": "",
        },
        "DebugConfig": debug_config(agent),
        "Coord": origin_coordinate(),
        "Member": member(agent),
        "Stats": stats(agent),
        "Meta": node_meta(),
        "xDS": null,
    })
}

/// `GET /v1/agent/self`.
pub async fn agent_self(State(agent): State<Arc<Server>>) -> Json<Value> {
    Json(agent_self_json(&agent))
}

/// `GET /v1/agent/version` (Consul 1.15+): `{SHA, BuildDate, HumanVersion, FIPS}`, plus
/// Concord's own version.
pub async fn version(State(_agent): State<Arc<Server>>) -> Json<Value> {
    Json(json!({
        "SHA": REVISION,
        "BuildDate": "",
        "HumanVersion": CONSUL_API_VERSION,
        "FIPS": "",
        "ConcordVersion": CONCORD_VERSION,
    }))
}

/// `GET /v1/agent/host`: Consul's host report. Concord's agent reads nothing from the OS outside
/// its I/O layer, so it reports what it knows without asking the OS (architecture, OS, CPU
/// count) and says in `Errors` what it does not collect.
pub async fn host(State(agent): State<Arc<Server>>) -> Json<Value> {
    let collected_ns = agent
        .io
        .clock
        .wall_now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    Json(json!({
        "Host": {
            "hostname": agent.config.node_name,
            "os": std::env::consts::OS,
            "platform": std::env::consts::OS,
            "kernelArch": std::env::consts::ARCH,
        },
        "CPU": (0..cpus).map(|i| json!({ "cpu": i })).collect::<Vec<_>>(),
        "Memory": null,
        "Disk": null,
        "CollectionTime": collected_ns,
        "Errors": ["memory, disk and uptime are not collected by Concord"],
    }))
}

/// `PUT /v1/agent/reload`: re-reads the agent's config files and applies their services and
/// checks (Consul `AgentReload`). 200 with no body; a bad file keeps the running config and
/// answers 500 with the error, as Consul does.
pub async fn reload(State(server): State<Arc<Server>>) -> Result<(), super::ApiError> {
    server.local.reload().await.map_err(|message| super::ApiError {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        message,
        not_applied: true,
    })
}
