//! The catalog and health endpoints (Consul `agent/consul/catalog_endpoint.go`,
//! `health_endpoint.go`): `Catalog.Register|Deregister|ListNodes|ListServices|ServiceNodes|
//! NodeServices` and `Health.NodeChecks|ServiceChecks|ChecksInState|ServiceNodes`.
//!
//! Writes go through the shared write path; reads through `route_read` and `blocking_query`, each
//! watching the narrowest scope it read: one service name, one node, or a whole table.

use super::Server;
use crate::state::{Store, Table, WatchKey};
use crate::structs::{
    CatalogQuery, CheckServiceNode, Command, CommandResult, DeregisterRequest, HealthCheck, HealthStatus, Indexed, Node,
    NodeServices, QueryError, QueryOptions, RegisterRequest, ServiceNode, WriteError,
};

pub const CATALOG_REGISTER: &str = "Catalog.Register";
pub const CATALOG_DEREGISTER: &str = "Catalog.Deregister";
pub const CATALOG_LIST_NODES: &str = "Catalog.ListNodes";
pub const CATALOG_LIST_SERVICES: &str = "Catalog.ListServices";
pub const CATALOG_SERVICE_NODES: &str = "Catalog.ServiceNodes";
pub const CATALOG_NODE_SERVICES: &str = "Catalog.NodeServices";
pub const HEALTH_NODE_CHECKS: &str = "Health.NodeChecks";
pub const HEALTH_SERVICE_CHECKS: &str = "Health.ServiceChecks";
pub const HEALTH_CHECKS_IN_STATE: &str = "Health.ChecksInState";
pub const HEALTH_SERVICE_NODES: &str = "Health.ServiceNodes";

/// Every catalog and health method name (for the RPC metrics' label set).
pub const CATALOG_METHODS: [&str; 10] = [
    CATALOG_REGISTER, CATALOG_DEREGISTER, CATALOG_LIST_NODES, CATALOG_LIST_SERVICES, CATALOG_SERVICE_NODES,
    CATALOG_NODE_SERVICES, HEALTH_NODE_CHECKS, HEALTH_SERVICE_CHECKS, HEALTH_CHECKS_IN_STATE, HEALTH_SERVICE_NODES,
];

/// Why a catalog write failed: refused as a bad request (nothing applied), or the write path's
/// own error.
#[derive(Debug, thiserror::Error)]
pub enum CatalogWriteError {
    /// Refused by validation or by the state store (e.g. "Missing service registration").
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// The state in `/v1/health/state/<state>`: `any` or a check status.
pub fn parse_check_state(s: &str) -> Result<Option<HealthStatus>, String> {
    match s {
        "any" => Ok(None),
        other => HealthStatus::parse(other).map(Some),
    }
}

/// `?near=_agent`: sort from the agent that received the request (Consul `structs.QuerySource`).
const NEAR_AGENT: &str = "_agent";

/// A catalog read: what it watches and what it computes from the store.
type ReadFn<T> = fn(&Store, &CatalogQuery) -> (T, u64);

impl Server {
    /// `Catalog.Register` in the datacenter `opts` names (`?dc=`; `QueryOptions::default()`: this
    /// one): validates (Consul's defaults and refusals) here, fills an empty `Datacenter` with
    /// that datacenter's name, then applies it there through Raft ([`Server::write_in`]).
    /// Errors: [`CatalogWriteError::Invalid`] (400 at the HTTP edge), or the write path's.
    pub async fn catalog_register(&self, opts: &QueryOptions, mut req: RegisterRequest) -> Result<CommandResult, CatalogWriteError> {
        req.normalize().map_err(CatalogWriteError::Invalid)?;
        if req.datacenter.is_empty() {
            req.datacenter = self.foreign_datacenter(opts).unwrap_or(&self.config.datacenter).to_string();
        }
        let result = self.write_in(opts, CATALOG_REGISTER, req, |req| self.apply_write(CATALOG_REGISTER, req, false, Command::register)).await?;
        refused(result)
    }

    /// `Catalog.Deregister` in the datacenter `opts` names, as [`Server::catalog_register`].
    /// Errors: no node name, or the write path's.
    pub async fn catalog_deregister(&self, opts: &QueryOptions, req: DeregisterRequest) -> Result<CommandResult, CatalogWriteError> {
        if req.node.is_empty() {
            return Err(CatalogWriteError::Invalid("Must provide node".into()));
        }
        let result = self.write_in(opts, CATALOG_DEREGISTER, req, |req| self.apply_write(CATALOG_DEREGISTER, req, false, Command::deregister)).await?;
        refused(result)
    }

    async fn catalog_read<T>(
        &self,
        method: &str,
        q: CatalogQuery,
        forwarded: bool,
        watch: WatchKey,
        read: ReadFn<T>,
    ) -> Result<Indexed<T>, QueryError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let opts = q.opts.clone();
        let mut q = q;
        if q.near == NEAR_AGENT {
            q.near = self.config.node_name.clone();
        }
        self.route_read(method, q, &opts, forwarded, |q| async move {
            let (value, meta) = self.blocking_query(&q.opts, watch, |s| read(s, &q)).await?;
            Ok(Indexed { value, meta })
        })
        .await
    }

    /// `Catalog.ListNodes` (`/v1/catalog/nodes`).
    pub async fn catalog_list_nodes(&self, q: CatalogQuery, fwd: bool) -> Result<Indexed<Vec<Node>>, QueryError> {
        self.catalog_read(CATALOG_LIST_NODES, q, fwd, WatchKey::Table(Table::Nodes), |s, q| {
            let (mut nodes, index) = s.catalog_nodes(&q.node_meta);
            s.sort_by_distance_from(&q.near, &mut nodes, |n| &n.node);
            (nodes, index)
        })
        .await
    }

    /// `Catalog.ListServices` (`/v1/catalog/services`): name → tags.
    pub async fn catalog_list_services(
        &self,
        q: CatalogQuery,
        fwd: bool,
    ) -> Result<Indexed<std::collections::BTreeMap<String, Vec<String>>>, QueryError> {
        self.catalog_read(CATALOG_LIST_SERVICES, q, fwd, WatchKey::Table(Table::Services), |s, q| s.catalog_services(&q.node_meta))
            .await
    }

    /// `Catalog.ServiceNodes` (`/v1/catalog/service/<name>`).
    pub async fn catalog_service_nodes(&self, q: CatalogQuery, fwd: bool) -> Result<Indexed<Vec<ServiceNode>>, QueryError> {
        let watch = WatchKey::Row(Table::Services, q.name.clone());
        self.catalog_read(CATALOG_SERVICE_NODES, q, fwd, watch, |s, q| {
            let (mut rows, index) = s.catalog_service_nodes(&q.name, &q.tags, &q.node_meta);
            s.sort_by_distance_from(&q.near, &mut rows, |r| &r.node);
            (rows, index)
        })
        .await
    }

    /// `Catalog.NodeServices` (`/v1/catalog/node/<node>`): `None` for an unknown node.
    pub async fn catalog_node_services(&self, q: CatalogQuery, fwd: bool) -> Result<Indexed<Option<NodeServices>>, QueryError> {
        let watch = WatchKey::Row(Table::Nodes, q.name.clone());
        self.catalog_read(CATALOG_NODE_SERVICES, q, fwd, watch, |s, q| s.catalog_node_services(&q.name)).await
    }

    /// `Health.NodeChecks` (`/v1/health/node/<node>`).
    pub async fn health_node_checks(&self, q: CatalogQuery, fwd: bool) -> Result<Indexed<Vec<HealthCheck>>, QueryError> {
        let watch = WatchKey::Row(Table::Nodes, q.name.clone());
        self.catalog_read(HEALTH_NODE_CHECKS, q, fwd, watch, |s, q| s.health_node_checks(&q.name)).await
    }

    /// `Health.ServiceChecks` (`/v1/health/checks/<service>`).
    pub async fn health_service_checks(&self, q: CatalogQuery, fwd: bool) -> Result<Indexed<Vec<HealthCheck>>, QueryError> {
        let watch = WatchKey::Row(Table::Services, q.name.clone());
        self.catalog_read(HEALTH_SERVICE_CHECKS, q, fwd, watch, |s, q| s.health_service_checks(&q.name, &q.node_meta)).await
    }

    /// `Health.ChecksInState` (`/v1/health/state/<state>`). Errors: an unknown state (as
    /// [`QueryError::Internal`]; the HTTP edge checks the state first and answers 400).
    pub async fn health_checks_in_state(&self, q: CatalogQuery, fwd: bool) -> Result<Indexed<Vec<HealthCheck>>, QueryError> {
        parse_check_state(&q.name).map_err(QueryError::Internal)?;
        self.catalog_read(HEALTH_CHECKS_IN_STATE, q, fwd, WatchKey::Table(Table::Checks), |s, q| {
            s.health_checks_in_state(parse_check_state(&q.name).unwrap_or(None), &q.node_meta)
        })
        .await
    }

    /// `Health.ServiceNodes` (`/v1/health/service/<name>`, `?passing`).
    pub async fn health_service_nodes(&self, q: CatalogQuery, fwd: bool) -> Result<Indexed<Vec<CheckServiceNode>>, QueryError> {
        let watch = WatchKey::Row(Table::Services, q.name.clone());
        self.catalog_read(HEALTH_SERVICE_NODES, q, fwd, watch, |s, q| {
            let (mut rows, index) = s.health_service_nodes(&q.name, &q.tags, &q.node_meta, q.passing_only);
            s.sort_by_distance_from(&q.near, &mut rows, |r| &r.node.node);
            (rows, index)
        })
        .await
    }
}

/// A catalog entry the state store refused is a bad request, not a server failure.
fn refused(result: CommandResult) -> Result<CommandResult, CatalogWriteError> {
    match result {
        CommandResult::Catalog { error: Some(e), .. } => Err(CatalogWriteError::Invalid(e)),
        ok => Ok(ok),
    }
}
