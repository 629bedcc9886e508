//! Catalog and health shapes (Consul `agent/structs`: `Node`, `NodeService`, `HealthCheck`,
//! `RegisterRequest`, `DeregisterRequest`, `ServiceNode`, `NodeServices`, `CheckServiceNode`).
//!
//! Source: Consul HTTP API, "Catalog" and "Health" (`website/content/api-docs/catalog.mdx`,
//! `health.mdx`). Field names are Consul's JSON names (PascalCase), used both on the wire and in
//! the binary encoding, so what the store holds is what the API shows. Indexes are Raft log
//! indexes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::query::{QueryMeta, QueryOptions};

/// A string map as Consul sends it (`Meta`, `TaggedAddresses`): `null` reads as empty.
pub type Meta = BTreeMap<String, String>;

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A node in the catalog (Consul `structs.Node`; `/v1/catalog/nodes` rows).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    /// Consul's NodeID (a UUID), may be empty.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Node name, unique in the datacenter.
    pub node: String,
    /// Address other nodes and DNS use for it.
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub datacenter: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tagged_addresses: Meta,
    #[serde(default, deserialize_with = "null_as_default")]
    pub meta: Meta,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
}

/// Service weights for DNS SRV answers (Consul `structs.Weights`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Weights {
    /// Weight while every check passes (default 1).
    pub passing: i32,
    /// Weight while some check warns (default 1).
    pub warning: i32,
}

impl Default for Weights {
    fn default() -> Self {
        Self { passing: 1, warning: 1 }
    }
}

/// A service instance on a node (Consul `structs.NodeService`; `/v1/agent/services` values and
/// `Service` in health answers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeService {
    /// `""` for a typical service (Consul's `ServiceKind`).
    #[serde(default)]
    pub kind: String,
    /// Instance id, unique on its node (defaults to the service name).
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Service name.
    #[serde(default)]
    pub service: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub meta: Meta,
    #[serde(default)]
    pub port: u16,
    /// `""` means the node's address.
    #[serde(default)]
    pub address: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tagged_addresses: Meta,
    #[serde(default)]
    pub weights: Weights,
    #[serde(default)]
    pub enable_tag_override: bool,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
}

impl NodeService {
    /// Whether two registrations say the same thing (indexes aside): re-registering an unchanged
    /// service must not move an index or wake a watcher (anti-entropy re-syncs all the time).
    pub fn same_as(&self, other: &NodeService) -> bool {
        Self { create_index: 0, modify_index: 0, ..self.clone() } == Self { create_index: 0, modify_index: 0, ..other.clone() }
    }
}

/// A check's state (Consul `api.HealthPassing|HealthWarning|HealthCritical`). Maintenance mode is
/// a critical check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Passing,
    Warning,
    /// The default for a new check (Consul registers checks critical until proven otherwise).
    #[default]
    Critical,
}

impl HealthStatus {
    /// Consul's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Passing => "passing",
            HealthStatus::Warning => "warning",
            HealthStatus::Critical => "critical",
        }
    }

    /// Parses Consul's spelling. Errors: anything else.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "passing" => Ok(HealthStatus::Passing),
            "warning" => Ok(HealthStatus::Warning),
            "critical" => Ok(HealthStatus::Critical),
            other => Err(format!("Invalid check status: {other:?} (want passing, warning or critical)")),
        }
    }
}

/// A health check as the catalog holds it (Consul `structs.HealthCheck`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCheck {
    #[serde(default)]
    pub node: String,
    #[serde(rename = "CheckID", default)]
    pub check_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: HealthStatus,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub output: String,
    /// `""` for a node-level check.
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
    /// Filled in by the store from the service registration.
    #[serde(default)]
    pub service_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub service_tags: Vec<String>,
    /// `http`, `tcp`, `ttl`, `script`, `alias`, `serf`, or `""` for a catalog-only check.
    #[serde(rename = "Type", default)]
    pub check_type: String,
    /// Interval between runs, as Consul prints durations (`"10s"`), `""` when none.
    #[serde(default)]
    pub interval: String,
    #[serde(default)]
    pub timeout: String,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
}

impl HealthCheck {
    /// Whether two registrations say the same thing (indexes aside).
    pub fn same_as(&self, other: &HealthCheck) -> bool {
        Self { create_index: 0, modify_index: 0, ..self.clone() } == Self { create_index: 0, modify_index: 0, ..other.clone() }
    }
}

/// `PUT /v1/catalog/register` (Consul `structs.RegisterRequest`): a node, optionally one service,
/// and checks, registered in one Raft entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterRequest {
    #[serde(default)]
    pub datacenter: String,
    #[serde(rename = "ID", default)]
    pub id: String,
    pub node: String,
    #[serde(default)]
    pub address: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tagged_addresses: Meta,
    #[serde(default, deserialize_with = "null_as_default")]
    pub node_meta: Meta,
    #[serde(default)]
    pub service: Option<NodeService>,
    #[serde(default)]
    pub check: Option<HealthCheck>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub checks: Vec<HealthCheck>,
    /// Register services and checks without touching the node row.
    #[serde(default)]
    pub skip_node_update: bool,
}

impl RegisterRequest {
    /// Fills Consul's defaults and rejects what Consul's `Catalog.Register` rejects, before the
    /// request reaches Raft. Errors (the HTTP edge answers 400): no node name, no address, a
    /// service without a name, a check for another node.
    pub fn normalize(&mut self) -> Result<(), String> {
        if self.node.is_empty() {
            return Err("Must provide node".into());
        }
        if self.address.is_empty() && !self.skip_node_update {
            return Err("Must provide address if SkipNodeUpdate is not set".into());
        }
        if let Some(svc) = &mut self.service {
            if svc.service.is_empty() {
                return Err("Must provide service name with ID".into());
            }
            if svc.id.is_empty() {
                svc.id = svc.service.clone();
            }
        }
        if let Some(c) = self.check.take() {
            self.checks.insert(0, c);
        }
        for c in &mut self.checks {
            if c.node.is_empty() {
                c.node = self.node.clone();
            }
            if c.node != self.node {
                return Err(format!("Check node {:?} does not match registration node {:?}", c.node, self.node));
            }
            if c.check_id.is_empty() {
                c.check_id = c.name.clone();
            }
            if c.check_id.is_empty() {
                return Err("Must provide a check ID or name".into());
            }
        }
        Ok(())
    }
}

/// `PUT /v1/catalog/deregister` (Consul `structs.DeregisterRequest`): removes a node (with its
/// services and checks), one service (with its checks) or one check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeregisterRequest {
    #[serde(default)]
    pub datacenter: String,
    pub node: String,
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
    #[serde(rename = "CheckID", default)]
    pub check_id: String,
}

/// A service instance joined with its node, flat (Consul `structs.ServiceNode`;
/// `/v1/catalog/service/<name>` rows). Indexes are the service row's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceNode {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: Meta,
    pub node_meta: Meta,
    pub service_kind: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub service_name: String,
    pub service_tags: Vec<String>,
    pub service_address: String,
    pub service_tagged_addresses: Meta,
    pub service_weights: Weights,
    pub service_meta: Meta,
    pub service_port: u16,
    pub service_enable_tag_override: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

impl ServiceNode {
    /// Joins an instance with its node.
    pub fn new(node: &Node, s: &NodeService) -> Self {
        Self {
            id: node.id.clone(),
            node: node.node.clone(),
            address: node.address.clone(),
            datacenter: node.datacenter.clone(),
            tagged_addresses: node.tagged_addresses.clone(),
            node_meta: node.meta.clone(),
            service_kind: s.kind.clone(),
            service_id: s.id.clone(),
            service_name: s.service.clone(),
            service_tags: s.tags.clone(),
            service_address: s.address.clone(),
            service_tagged_addresses: s.tagged_addresses.clone(),
            service_weights: s.weights,
            service_meta: s.meta.clone(),
            service_port: s.port,
            service_enable_tag_override: s.enable_tag_override,
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }
}

/// A node with its services by id (Consul `structs.NodeServices`; `/v1/catalog/node/<node>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeServices {
    pub node: Node,
    pub services: BTreeMap<String, NodeService>,
}

/// A service instance with its node and every check that bears on it: the node's own checks and
/// the instance's (Consul `structs.CheckServiceNode`; `/v1/health/service/<name>` rows).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckServiceNode {
    pub node: Node,
    pub service: NodeService,
    pub checks: Vec<HealthCheck>,
}

impl CheckServiceNode {
    /// The instance's worst check status (passing when it has no checks).
    pub fn aggregate_status(&self) -> HealthStatus {
        self.checks.iter().map(|c| c.status).max().unwrap_or(HealthStatus::Passing)
    }
}

/// What a catalog or health read asks for (Consul's `DCSpecificRequest`, `ServiceSpecificRequest`,
/// `NodeSpecificRequest`, `ChecksInStateRequest`, folded into one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogQuery {
    /// Service name, node name or check state, by endpoint.
    pub name: String,
    /// `?tag=` filters (all must match).
    pub tags: Vec<String>,
    /// `?node-meta=key:value` filters (all must match).
    pub node_meta: Meta,
    /// `?passing` (health/service only).
    pub passing_only: bool,
    pub opts: QueryOptions,
    /// `?near=<node>` (`_agent`: the answering agent): sort node lists by estimated round-trip
    /// time from that node (Consul `QuerySource.Node`); empty: no sorting.
    #[serde(default)]
    pub near: String,
}

/// A read's answer with its metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indexed<T> {
    pub value: T,
    pub meta: QueryMeta,
}
