//! Anti-entropy's diff and its application: what the catalog must be told so that this node's
//! entries match the agent's local state, and telling it (Consul `agent/local.State`:
//! `updateSyncState`, `SyncChanges`, `SyncFull`, `syncService`, `syncCheck`, `syncNodeInfo`,
//! `deleteService`, `deleteCheck`).
//!
//! Source: Consul "Anti-Entropy" docs: the agent's local state wins; services and checks the
//! agent does not know are removed from the catalog for its node, except `serfHealth`, which
//! the servers own (and the `consul` service of a server). With `EnableTagOverride`, tags changed
//! in the catalog are kept (and copied into the local state) instead of being overwritten.
//!
//! [`plan`] is pure: local view and catalog view in, operations out. A sync after a local
//! change ([`SyncMode::Changes`]) deregisters only what the agent itself removed; a full sync
//! also removes what it never knew (Consul's `SyncChanges` vs `SyncFull`).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use crate::structs::{DeregisterRequest, HealthCheck, HealthStatus, Node, NodeService, RegisterRequest};

use super::state::SERF_CHECK_ID;

/// The service id Consul servers register for themselves; anti-entropy leaves it alone.
pub const CONSUL_SERVICE_ID: &str = "consul";

/// What one sync may remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// After a local change: remove only what the agent removed.
    Changes,
    /// Periodic: also remove entries on this node that the agent does not know.
    Full,
}

/// This node's entries as the catalog has them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogView {
    pub node: Option<Node>,
    pub services: BTreeMap<String, NodeService>,
    pub checks: BTreeMap<String, HealthCheck>,
}

/// What the agent wants the catalog to hold for its node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalView {
    /// The node row (name, id, address, datacenter, tagged addresses, meta).
    pub node: Node,
    pub services: BTreeMap<String, NodeService>,
    /// Checks with `node` filled in.
    pub checks: BTreeMap<String, HealthCheck>,
    pub deleted_services: BTreeSet<String>,
    pub deleted_checks: BTreeSet<String>,
}

/// One catalog write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncOp {
    DeregisterService(String),
    DeregisterCheck(String),
    /// Only the node row (nothing else needed registering).
    RegisterNode,
    /// A service with every check of it (Consul `syncService`).
    RegisterService { service: NodeService, checks: Vec<HealthCheck> },
    RegisterCheck(HealthCheck),
}

/// The operations, in the order to apply them, and tags to adopt from the catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncPlan {
    pub ops: Vec<SyncOp>,
    /// `EnableTagOverride` services whose catalog tags differ: (service id, catalog tags).
    pub adopt_tags: Vec<(String, Vec<String>)>,
}

fn same_node(a: &Node, b: &Node) -> bool {
    Node { create_index: 0, modify_index: 0, ..a.clone() } == Node { create_index: 0, modify_index: 0, ..b.clone() }
}

/// Whether a catalog check says what the local one says. The store fills `ServiceName` and
/// `ServiceTags` itself and stamps indexes, so those are not compared.
fn same_check(local: &HealthCheck, remote: &HealthCheck) -> bool {
    type Key<'a> = (&'a str, &'a str, HealthStatus, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str);
    fn key(c: &HealthCheck) -> Key<'_> {
        (&c.check_id, &c.name, c.status, &c.notes, &c.output, &c.service_id, &c.check_type, &c.interval, &c.timeout)
    }
    key(local) == key(remote)
}

/// Diffs local against catalog. Order: deregister services, deregister checks, then register
/// (node row first when nothing else carries it), services with their checks, lone checks.
pub fn plan(local: &LocalView, catalog: &CatalogView, mode: SyncMode) -> SyncPlan {
    let mut out = SyncPlan::default();
    let removable = |id: &str, deleted: &BTreeSet<String>| mode == SyncMode::Full || deleted.contains(id);
    let mut gone_services = BTreeSet::new();
    for id in catalog.services.keys() {
        if !local.services.contains_key(id) && id != CONSUL_SERVICE_ID && removable(id, &local.deleted_services) {
            out.ops.push(SyncOp::DeregisterService(id.clone()));
            gone_services.insert(id.clone());
        }
    }
    for (id, c) in &catalog.checks {
        if local.checks.contains_key(id) || id == SERF_CHECK_ID || gone_services.contains(&c.service_id) {
            continue;
        }
        if c.service_id == CONSUL_SERVICE_ID && !local.services.contains_key(CONSUL_SERVICE_ID) {
            continue;
        }
        if removable(id, &local.deleted_checks) {
            out.ops.push(SyncOp::DeregisterCheck(id.clone()));
        }
    }
    let mut registers = Vec::new();
    let mut carried = BTreeSet::new();
    for (id, svc) in &local.services {
        let remote = catalog.services.get(id);
        let mut want = svc.clone();
        if let Some(r) = remote.filter(|r| svc.enable_tag_override && r.tags != svc.tags) {
            want.tags = r.tags.clone();
            out.adopt_tags.push((id.clone(), r.tags.clone()));
        }
        if remote.is_some_and(|r| r.same_as(&want)) {
            continue;
        }
        let checks: Vec<HealthCheck> = local.checks.values().filter(|c| c.service_id == *id).cloned().collect();
        carried.extend(checks.iter().map(|c| c.check_id.clone()));
        registers.push(SyncOp::RegisterService { service: want, checks });
    }
    for (id, c) in &local.checks {
        if carried.contains(id) || catalog.checks.get(id).is_some_and(|r| same_check(c, r)) {
            continue;
        }
        registers.push(SyncOp::RegisterCheck(c.clone()));
    }
    let node_stale = !catalog.node.as_ref().is_some_and(|n| same_node(n, &local.node));
    if node_stale && registers.is_empty() {
        registers.push(SyncOp::RegisterNode);
    }
    out.ops.extend(registers);
    out
}

/// The catalog as anti-entropy uses it (the server core in production; a fake in tests).
#[async_trait]
pub trait CatalogPort: Send + Sync + 'static {
    /// This node's row, services and checks. Errors: no leader, unreachable, ...
    async fn node_entries(&self, node: &str) -> Result<CatalogView, String>;
    /// `Catalog.Register`.
    async fn register(&self, req: RegisterRequest) -> Result<(), String>;
    /// `Catalog.Deregister`.
    async fn deregister(&self, req: DeregisterRequest) -> Result<(), String>;
    /// Nodes in the cluster, to scale the full-sync interval.
    fn cluster_size(&self) -> usize;
}

/// Applies a plan in order. One failed write does not hold back the others (each op is a whole
/// service with its checks, a lone check or a removal, independent of the rest): a write whose
/// reply was lost has often been applied, and stopping there would leave every later op to wait
/// a retry interval each (found by the simulator: agent-restart seed 24 took over 75 s to
/// converge, one op per 15 s retry). Two failures in a row mean the catalog is out of reach, and
/// the sync stops. Logs each write at INFO ("synced service", "synced check", "deregistered
/// service", ...), naming the node and the id. Errors: the first failed write's, naming it.
pub async fn apply(catalog: &dyn CatalogPort, node: &Node, ops: &[SyncOp]) -> Result<(), String> {
    let register = |service: Option<NodeService>, checks: Vec<HealthCheck>| RegisterRequest {
        datacenter: node.datacenter.clone(),
        id: node.id.clone(),
        node: node.node.clone(),
        address: node.address.clone(),
        tagged_addresses: node.tagged_addresses.clone(),
        node_meta: node.meta.clone(),
        service,
        check: None,
        checks,
        skip_node_update: false,
    };
    let deregister = |service_id: &str, check_id: &str| DeregisterRequest {
        datacenter: node.datacenter.clone(),
        node: node.node.clone(),
        service_id: service_id.to_string(),
        check_id: check_id.to_string(),
    };
    let n = node.node.as_str();
    let mut first_error = None;
    let mut failures_in_a_row = 0;
    for op in ops {
        let result = match op {
            SyncOp::DeregisterService(id) => catalog
                .deregister(deregister(id, ""))
                .await
                .map(|()| tracing::info!(node = n, service = %id, "deregistered service"))
                .map_err(|e| format!("deregistering service {id:?}: {e}")),
            SyncOp::DeregisterCheck(id) => catalog
                .deregister(deregister("", id))
                .await
                .map(|()| tracing::info!(node = n, check = %id, "deregistered check"))
                .map_err(|e| format!("deregistering check {id:?}: {e}")),
            SyncOp::RegisterNode => catalog
                .register(register(None, Vec::new()))
                .await
                .map(|()| tracing::info!(node = n, "synced node info"))
                .map_err(|e| format!("syncing node info: {e}")),
            SyncOp::RegisterService { service, checks } => {
                let id = service.id.clone();
                let ids: Vec<String> = checks.iter().map(|c| c.check_id.clone()).collect();
                catalog
                    .register(register(Some(service.clone()), checks.clone()))
                    .await
                    .map(|()| {
                        tracing::info!(node = n, service = %id, "synced service");
                        for check in ids {
                            tracing::info!(node = n, check = %check, "synced check");
                        }
                    })
                    .map_err(|e| format!("syncing service {id:?}: {e}"))
            }
            SyncOp::RegisterCheck(check) => {
                let id = check.check_id.clone();
                catalog
                    .register(register(None, vec![check.clone()]))
                    .await
                    .map(|()| tracing::info!(node = n, check = %id, "synced check"))
                    .map_err(|e| format!("syncing check {id:?}: {e}"))
            }
        };
        match result {
            Ok(()) => failures_in_a_row = 0,
            Err(e) => {
                tracing::debug!(node = n, error = %e, "anti-entropy write failed");
                first_error.get_or_insert(e);
                failures_in_a_row += 1;
                if failures_in_a_row >= 2 {
                    break;
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        Node { id: "uuid".into(), node: "n1".into(), address: "10.0.0.1".into(), datacenter: "dc1".into(), ..Node::default() }
    }

    fn service(id: &str, tags: &[&str]) -> NodeService {
        NodeService { id: id.into(), service: id.into(), tags: tags.iter().map(|t| t.to_string()).collect(), ..NodeService::default() }
    }

    fn check(id: &str, service_id: &str, status: HealthStatus) -> HealthCheck {
        HealthCheck { node: "n1".into(), check_id: id.into(), name: id.into(), status, service_id: service_id.into(), ..HealthCheck::default() }
    }

    fn in_catalog(c: &HealthCheck, svc: &NodeService) -> HealthCheck {
        HealthCheck { service_name: svc.service.clone(), service_tags: svc.tags.clone(), create_index: 7, modify_index: 9, ..c.clone() }
    }

    #[test]
    fn an_empty_catalog_gets_the_node_and_each_service_with_its_checks() {
        let mut local = LocalView { node: node(), ..LocalView::default() };
        local.services.insert("web".into(), service("web", &["a"]));
        local.checks.insert("c1".into(), check("c1", "web", HealthStatus::Passing));
        local.checks.insert("mem".into(), check("mem", "", HealthStatus::Warning));
        let p = plan(&local, &CatalogView::default(), SyncMode::Changes);
        assert_eq!(
            p.ops,
            vec![
                SyncOp::RegisterService { service: service("web", &["a"]), checks: vec![check("c1", "web", HealthStatus::Passing)] },
                SyncOp::RegisterCheck(check("mem", "", HealthStatus::Warning)),
            ]
        );
        let bare = plan(&LocalView { node: node(), ..LocalView::default() }, &CatalogView::default(), SyncMode::Changes);
        assert_eq!(bare.ops, vec![SyncOp::RegisterNode], "the node row alone when nothing else carries it");
    }

    #[test]
    fn an_in_sync_catalog_needs_nothing_and_a_changed_check_alone_is_resent() {
        let svc = service("web", &["a"]);
        let c1 = check("c1", "web", HealthStatus::Passing);
        let mut local = LocalView { node: node(), ..LocalView::default() };
        local.services.insert("web".into(), svc.clone());
        local.checks.insert("c1".into(), c1.clone());
        let mut catalog = CatalogView { node: Some(Node { create_index: 3, modify_index: 4, ..node() }), ..CatalogView::default() };
        catalog.services.insert("web".into(), NodeService { create_index: 5, modify_index: 6, ..svc.clone() });
        catalog.checks.insert("c1".into(), in_catalog(&c1, &svc));
        assert_eq!(plan(&local, &catalog, SyncMode::Full), SyncPlan::default());
        local.checks.get_mut("c1").unwrap().status = HealthStatus::Critical;
        assert_eq!(plan(&local, &catalog, SyncMode::Changes).ops, vec![SyncOp::RegisterCheck(local.checks["c1"].clone())]);
    }

    #[test]
    fn only_a_full_sync_removes_what_the_agent_never_knew_and_serf_health_always_stays() {
        let mut local = LocalView { node: node(), ..LocalView::default() };
        local.deleted_services.insert("old".into());
        let mut catalog = CatalogView { node: Some(node()), ..CatalogView::default() };
        for id in ["old", "stranger", CONSUL_SERVICE_ID] {
            catalog.services.insert(id.into(), service(id, &[]));
        }
        catalog.checks.insert("old-check".into(), check("old-check", "old", HealthStatus::Passing));
        catalog.checks.insert(SERF_CHECK_ID.into(), check(SERF_CHECK_ID, "", HealthStatus::Passing));
        catalog.checks.insert("orphan".into(), check("orphan", "", HealthStatus::Passing));
        assert_eq!(plan(&local, &catalog, SyncMode::Changes).ops, vec![SyncOp::DeregisterService("old".into())]);
        assert_eq!(
            plan(&local, &catalog, SyncMode::Full).ops,
            vec![
                SyncOp::DeregisterService("old".into()),
                SyncOp::DeregisterService("stranger".into()),
                SyncOp::DeregisterCheck("orphan".into()),
            ],
            "the service's own checks go with it; serfHealth and the consul service stay"
        );
    }

    #[test]
    fn enable_tag_override_keeps_catalog_tags_and_adopts_them() {
        let mut local = LocalView { node: node(), ..LocalView::default() };
        local.services.insert("web".into(), NodeService { enable_tag_override: true, ..service("web", &["local"]) });
        let mut catalog = CatalogView { node: Some(node()), ..CatalogView::default() };
        catalog.services.insert("web".into(), NodeService { enable_tag_override: true, ..service("web", &["edited"]) });
        let p = plan(&local, &catalog, SyncMode::Full);
        assert_eq!(p.ops, Vec::<SyncOp>::new(), "the catalog's tags win");
        assert_eq!(p.adopt_tags, vec![("web".to_string(), vec!["edited".to_string()])]);
        local.services.get_mut("web").unwrap().enable_tag_override = false;
        assert!(matches!(&plan(&local, &catalog, SyncMode::Full).ops[..], [SyncOp::RegisterService { service, .. }] if service.tags == ["local"]));
    }

    #[test]
    fn a_changed_node_address_is_resynced() {
        let local = LocalView { node: node(), ..LocalView::default() };
        let catalog = CatalogView { node: Some(Node { address: "10.9.9.9".into(), ..node() }), ..CatalogView::default() };
        assert_eq!(plan(&local, &catalog, SyncMode::Changes).ops, vec![SyncOp::RegisterNode]);
    }
}
