//! Catalog and health reads, each with the index a blocking query on it reports.
//!
//! Source: Consul `agent/consul/state/catalog.go` (`Nodes`, `Services`, `ServiceNodes`,
//! `NodeServices`, `NodeChecks`, `ServiceChecks`, `ChecksInState`, `CheckServiceNodes`).
//! Per-service and per-node reads report their scope index ([`Store::scope_index`]), so a blocking
//! query on one service returns only when that service's instances or health changed.
//!
//! Tag filters compare case-insensitively, as Consul's `serviceTagFilter` does.

use std::collections::BTreeMap;

use super::catalog::node_rows;
use super::store::Store;
use super::watch::Table;
use crate::structs::{CheckServiceNode, HealthCheck, HealthStatus, Meta, NodeService, NodeServices, ServiceNode};

const CATALOG_TABLES: [Table; 3] = [Table::Nodes, Table::Services, Table::Checks];

fn has_tags(tags: &[String], want: &[String]) -> bool {
    want.iter().all(|w| tags.iter().any(|t| t.eq_ignore_ascii_case(w)))
}

fn has_meta(meta: &Meta, want: &Meta) -> bool {
    want.iter().all(|(k, v)| meta.get(k) == Some(v))
}

impl Store {
    /// The fine-grained index of one scope: `(Table::Nodes, node)` or `(Table::Services, name)`.
    /// A scope never written reports the catalog's newest index, which is ≥ any scope index, so a
    /// scope's index never goes backwards when it first appears.
    pub fn scope_index(&self, table: Table, key: &str) -> u64 {
        match self.scope_indexes.get(&(table, key.to_string())) {
            Some(i) => *i,
            None => self.max_index_of(&CATALOG_TABLES),
        }
    }

    /// `/v1/catalog/nodes`: every node (with `?node-meta` filters), by name.
    pub fn catalog_nodes(&self, node_meta: &Meta) -> (Vec<crate::structs::Node>, u64) {
        let nodes = self.nodes.values().filter(|n| has_meta(&n.meta, node_meta)).cloned().collect();
        (nodes, self.table_index(Table::Nodes))
    }

    /// `/v1/catalog/services`: service name → its instances' tags (deduplicated, sorted), for
    /// instances on nodes matching `node_meta`.
    pub fn catalog_services(&self, node_meta: &Meta) -> (BTreeMap<String, Vec<String>>, u64) {
        let mut out: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for ((node, _), s) in &self.services {
            if !node_meta.is_empty() && !self.nodes.get(node).is_some_and(|n| has_meta(&n.meta, node_meta)) {
                continue;
            }
            out.entry(s.service.clone()).or_default().extend(s.tags.iter().cloned());
        }
        let out = out.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect();
        (out, self.max_index_of(&[Table::Services, Table::Nodes]))
    }

    /// Instances of service `name` with their nodes, in (node, id) order.
    fn instances<'a>(&'a self, name: &'a str, tags: &'a [String], node_meta: &'a Meta) -> impl Iterator<Item = (&'a crate::structs::Node, &'a NodeService)> + 'a {
        let keys = self.service_index.get(name).into_iter().flatten();
        keys.filter_map(move |k| {
            let s = self.services.get(k).filter(|s| has_tags(&s.tags, tags))?;
            let n = self.nodes.get(&k.0)?;
            has_meta(&n.meta, node_meta).then_some((n, s))
        })
    }

    /// `/v1/catalog/service/<name>`: its instances joined with their nodes.
    pub fn catalog_service_nodes(&self, name: &str, tags: &[String], node_meta: &Meta) -> (Vec<ServiceNode>, u64) {
        let rows = self.instances(name, tags, node_meta).map(|(n, s)| ServiceNode::new(n, s)).collect();
        (rows, self.scope_index(Table::Services, name))
    }

    /// `/v1/catalog/node/<node>`: the node and its services by id (`None` if unknown).
    pub fn catalog_node_services(&self, node: &str) -> (Option<NodeServices>, u64) {
        let found = self.nodes.get(node).map(|n| NodeServices {
            node: n.clone(),
            services: node_rows(&self.services, node).map(|(k, s)| (k.1.clone(), s.clone())).collect(),
        });
        (found, self.scope_index(Table::Nodes, node))
    }

    /// `/v1/health/node/<node>`: every check on the node.
    pub fn health_node_checks(&self, node: &str) -> (Vec<HealthCheck>, u64) {
        (node_rows(&self.checks, node).map(|(_, c)| c.clone()).collect(), self.scope_index(Table::Nodes, node))
    }

    /// `/v1/health/checks/<service>`: the checks of every instance of the service.
    pub fn health_service_checks(&self, name: &str, node_meta: &Meta) -> (Vec<HealthCheck>, u64) {
        let rows = self
            .checks
            .values()
            .filter(|c| c.service_name == name)
            .filter(|c| node_meta.is_empty() || self.nodes.get(&c.node).is_some_and(|n| has_meta(&n.meta, node_meta)))
            .cloned()
            .collect();
        (rows, self.scope_index(Table::Services, name))
    }

    /// `/v1/health/state/<state>`: every check in `state` (`None`: any state).
    pub fn health_checks_in_state(&self, state: Option<HealthStatus>, node_meta: &Meta) -> (Vec<HealthCheck>, u64) {
        let rows = self
            .checks
            .values()
            .filter(|c| state.map_or(true, |s| c.status == s))
            .filter(|c| node_meta.is_empty() || self.nodes.get(&c.node).is_some_and(|n| has_meta(&n.meta, node_meta)))
            .cloned()
            .collect();
        (rows, self.table_index(Table::Checks))
    }

    /// `/v1/health/service/<name>`: each instance with its node and the checks bearing on it (the
    /// node's own checks, then the instance's). `passing_only` drops an instance when any of
    /// those checks is not passing (Consul's `?passing`).
    pub fn health_service_nodes(&self, name: &str, tags: &[String], node_meta: &Meta, passing_only: bool) -> (Vec<CheckServiceNode>, u64) {
        let rows = self
            .instances(name, tags, node_meta)
            .map(|(n, s)| CheckServiceNode {
                node: n.clone(),
                service: s.clone(),
                checks: node_rows(&self.checks, &n.node)
                    .filter(|(_, c)| c.service_id.is_empty() || c.service_id == s.id)
                    .map(|(_, c)| c.clone())
                    .collect(),
            })
            .filter(|csn| !passing_only || csn.aggregate_status() == HealthStatus::Passing)
            .collect();
        (rows, self.scope_index(Table::Services, name))
    }

    /// The instances of `name` with all of `tags`, each joined with its node and the worst status
    /// of its node's and its own checks (passing when none), borrowed rather than cloned: the DNS
    /// answer path calls this per query and turns only a few instances into records.
    pub fn health_service_instances(&self, name: &str, tags: &[String]) -> Vec<(&crate::structs::Node, &NodeService, HealthStatus)> {
        let keys = self.service_index.get(name).into_iter().flatten();
        keys.filter_map(|k| Some((self.nodes.get(&k.0)?, self.services.get(k).filter(|s| has_tags(&s.tags, tags))?)))
            .map(|(n, s)| {
                let worst = node_rows(&self.checks, &n.node)
                    .filter(|(_, c)| c.service_id.is_empty() || c.service_id == s.id)
                    .map(|(_, c)| c.status)
                    .max()
                    .unwrap_or(HealthStatus::Passing);
                (n, s, worst)
            })
            .collect()
    }

    /// Number of catalog nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::catalog::tests::register;
    use HealthStatus::*;

    fn store() -> Store {
        let mut s = Store::new();
        s.apply(1, &register("n1", Some(("web1", "web")), &[("serfHealth", "", Passing), ("w1", "web1", Passing)]));
        s.apply(2, &register("n2", Some(("web2", "web")), &[("serfHealth", "", Passing), ("w2", "web2", Critical)]));
        s.apply(3, &register("n2", Some(("db1", "db")), &[]));
        s
    }

    #[test]
    fn health_service_joins_node_and_instance_checks_and_passing_drops_unhealthy() {
        let s = store();
        let (all, index) = s.health_service_nodes("web", &[], &Meta::new(), false);
        assert_eq!(index, 2);
        let checks: Vec<Vec<&str>> = all.iter().map(|c| c.checks.iter().map(|c| c.check_id.as_str()).collect()).collect();
        assert_eq!(checks, vec![vec!["serfHealth", "w1"], vec!["serfHealth", "w2"]]);
        let (passing, _) = s.health_service_nodes("web", &[], &Meta::new(), true);
        assert_eq!(passing.iter().map(|c| c.node.node.as_str()).collect::<Vec<_>>(), vec!["n1"]);
    }

    #[test]
    fn unrelated_service_changes_do_not_move_a_service_index() {
        let mut s = store();
        s.apply(4, &register("n2", Some(("db1", "db")), &[("db-check", "db1", Warning)]));
        assert_eq!(s.health_service_nodes("web", &[], &Meta::new(), false).1, 2);
        assert_eq!(s.health_service_nodes("db", &[], &Meta::new(), false).1, 4);
        assert_eq!(s.health_checks_in_state(Some(Warning), &Meta::new()).0.len(), 1);
        assert_eq!(s.health_checks_in_state(None, &Meta::new()).1, 4);
    }

    #[test]
    fn catalog_services_lists_names_with_deduplicated_tags() {
        let mut s = Store::new();
        let mut req = register("n1", Some(("a", "web")), &[]);
        if let crate::structs::Request::Register(r) = &mut req {
            r.service.as_mut().expect("service").tags = vec!["v2".into(), "v1".into()];
        }
        s.apply(1, &req);
        let (names, _) = s.catalog_services(&Meta::new());
        assert_eq!(names.get("web"), Some(&vec!["v1".to_string(), "v2".to_string()]));
    }

    #[test]
    fn service_checks_are_the_services_own_on_nodes_matching_the_meta() {
        let mut s = store();
        let mut req = register("n3", Some(("web3", "web")), &[("w3", "web3", Passing)]);
        if let crate::structs::Request::Register(r) = &mut req {
            r.node_meta.insert("rack".into(), "r1".into());
        }
        s.apply(4, &req);
        let ids = |meta: &Meta| s.health_service_checks("web", meta).0.into_iter().map(|c| c.check_id).collect::<Vec<_>>();
        assert_eq!(ids(&Meta::new()), vec!["w1", "w2", "w3"], "no node check, no other service's check");
        assert_eq!(ids(&Meta::from([("rack".to_string(), "r1".to_string())])), vec!["w3"]);
    }

    #[test]
    fn tag_filter_is_case_insensitive_and_node_meta_must_all_match() {
        let mut s = Store::new();
        let mut req = register("n1", Some(("a", "web")), &[]);
        if let crate::structs::Request::Register(r) = &mut req {
            r.service.as_mut().expect("service").tags = vec!["Primary".into()];
            r.node_meta.insert("rack".into(), "r1".into());
        }
        s.apply(1, &req);
        assert_eq!(s.catalog_service_nodes("web", &["primary".into()], &Meta::new()).0.len(), 1);
        let rack = |r: &str| Meta::from([("rack".to_string(), r.to_string())]);
        assert_eq!(s.catalog_service_nodes("web", &[], &rack("r1")).0.len(), 1);
        assert_eq!(s.catalog_service_nodes("web", &[], &rack("r2")).0.len(), 0);
    }

    #[test]
    fn a_never_seen_scope_reports_the_catalog_index_and_never_goes_backwards() {
        let mut s = store();
        let before = s.scope_index(Table::Services, "api");
        assert_eq!(before, 3);
        s.apply(9, &register("n3", Some(("api1", "api")), &[]));
        assert!(s.scope_index(Table::Services, "api") >= before);
    }
}
