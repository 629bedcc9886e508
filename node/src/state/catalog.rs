//! The catalog tables' writes: nodes, service instances and health checks.
//!
//! Source: Consul `agent/consul/state/catalog.go` (`ensureRegistrationTxn`, `ensureNodeTxn`,
//! `ensureServiceTxn`, `ensureCheckTxn`, `deleteNodeTxn`, `deleteServiceTxn`,
//! `deleteCheckTxn`). A registration is one Raft entry and applies whole or not at all.
//!
//! Indexes: a row's CreateIndex/ModifyIndex move only when the row really changed, so an
//! anti-entropy re-sync of unchanged state moves nothing and wakes no one. Beyond the table
//! indexes, every change moves two kinds of fine-grained scope index (see
//! [`Store::scope_index`]): its node's, and that of every service name whose instances or health
//! it changed. A node-level check bears on every service of its node; a service check only on its
//! own service. This is finer than Consul, which wakes every health watcher on any check change
//! (Consul #4984).

use std::collections::{BTreeMap, BTreeSet};

use super::store::Store;
use super::txn::{NodeRowKey, WriteTxn};
use super::watch::Table;
use crate::structs::{DeregisterRequest, HealthCheck, HealthStatus, Node, NodeService, RegisterRequest};

/// The rows of `map` that belong to `node`, in id order.
pub(super) fn node_rows<'a, V>(map: &'a BTreeMap<NodeRowKey, V>, node: &'a str) -> impl Iterator<Item = (&'a NodeRowKey, &'a V)> + 'a {
    map.range((node.to_string(), String::new())..).take_while(move |(k, _)| k.0 == node)
}

fn key(node: &str, id: &str) -> NodeRowKey {
    (node.to_string(), id.to_string())
}

impl Store {
    /// The deliberate bug `check_status_ignored`: rewrites a registration so that each check
    /// that differs from the stored one only in its status keeps the stored status, as a
    /// definition comparison that forgot the status would. Never called unless the bug is on.
    pub fn keep_stored_check_status(&self, req: &mut RegisterRequest) {
        for c in &mut req.checks {
            if let Some(old) = self.checks.get(&key(&req.node, &c.check_id)) {
                // The fields the store fills in are not part of the definition.
                let probe = HealthCheck { status: old.status, service_name: old.service_name.clone(), service_tags: old.service_tags.clone(), ..c.clone() };
                if old.same_as(&probe) {
                    c.status = old.status;
                }
            }
        }
    }

    /// The service names registered on `node`.
    pub(super) fn service_names_on(&self, node: &str) -> BTreeSet<String> {
        node_rows(&self.services, node).map(|(_, s)| s.service.clone()).collect()
    }
}

impl WriteTxn<'_> {
    /// Applies `PUT /v1/catalog/register` (already normalised by
    /// [`RegisterRequest::normalize`]): the node (unless `SkipNodeUpdate`), the service, then
    /// each check. Errors, which roll the whole registration back: Consul's "Missing node
    /// registration" (no node row to add to) and "Missing service registration" (a check names a
    /// service the node does not have).
    pub fn ensure_registration(&mut self, req: &RegisterRequest) -> Result<(), String> {
        if !req.skip_node_update {
            let node = Node {
                id: req.id.clone(),
                node: req.node.clone(),
                address: req.address.clone(),
                datacenter: req.datacenter.clone(),
                tagged_addresses: req.tagged_addresses.clone(),
                meta: req.node_meta.clone(),
                create_index: 0,
                modify_index: 0,
            };
            self.ensure_node(node);
        }
        if let Some(svc) = &req.service {
            self.ensure_service(&req.node, svc)?;
        }
        for check in &req.checks {
            self.ensure_check(&req.node, check)?;
        }
        Ok(())
    }

    /// Applies `PUT /v1/catalog/deregister`: one check, one service with its checks, or the whole
    /// node. Removing what is not there succeeds and changes nothing (Consul is idempotent here).
    pub fn deregister(&mut self, req: &DeregisterRequest) -> Result<(), String> {
        if !req.service_id.is_empty() {
            self.delete_service(&req.node, &req.service_id);
        } else if !req.check_id.is_empty() {
            self.delete_check(&req.node, &req.check_id);
        } else {
            self.delete_node(&req.node);
        }
        Ok(())
    }

    fn ensure_node(&mut self, mut node: Node) {
        let index = self.index();
        let existing = self.store().nodes.get(&node.node);
        if let Some(old) = existing {
            if (Node { create_index: old.create_index, modify_index: old.modify_index, ..node.clone() }) == *old {
                return;
            }
        }
        node.create_index = existing.map(|o| o.create_index).unwrap_or(index);
        node.modify_index = index;
        let name = node.node.clone();
        self.set_node(&name, Some(node));
        self.bump(Table::Nodes, &name);
        self.node_health_changed(&name);
    }

    fn ensure_service(&mut self, node: &str, svc: &NodeService) -> Result<(), String> {
        if !self.store().nodes.contains_key(node) {
            return Err("Missing node registration".into());
        }
        let index = self.index();
        let k = key(node, &svc.id);
        let existing = self.store().services.get(&k).cloned();
        if existing.as_ref().is_some_and(|old| old.same_as(svc)) {
            return Ok(());
        }
        let row = NodeService {
            create_index: existing.as_ref().map(|o| o.create_index).unwrap_or(index),
            modify_index: index,
            ..svc.clone()
        };
        self.set_service(&k, Some(row.clone()));
        self.bump(Table::Services, &row.service);
        self.bump_scope(Table::Services, &row.service);
        if let Some(old) = existing.filter(|o| o.service != row.service) {
            self.bump_scope(Table::Services, &old.service);
        }
        self.bump_scope(Table::Nodes, node);
        // Checks of this instance carry its name and tags: keep them in step.
        let stale: Vec<(NodeRowKey, HealthCheck)> = node_rows(&self.store().checks, node)
            .filter(|(_, c)| c.service_id == row.id && (c.service_name != row.service || c.service_tags != row.tags))
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        for (ck, c) in stale {
            let updated = HealthCheck { service_name: row.service.clone(), service_tags: row.tags.clone(), modify_index: index, ..c };
            self.set_check(&ck, Some(updated));
            self.bump(Table::Checks, &format!("{}/{}", ck.0, ck.1));
        }
        Ok(())
    }

    fn ensure_check(&mut self, node: &str, check: &HealthCheck) -> Result<(), String> {
        if !self.store().nodes.contains_key(node) {
            return Err("Missing node registration".into());
        }
        let index = self.index();
        let mut row = HealthCheck { node: node.to_string(), ..check.clone() };
        if !row.service_id.is_empty() {
            let svc = self.store().services.get(&key(node, &row.service_id)).ok_or("Missing service registration")?;
            row.service_name = svc.service.clone();
            row.service_tags = svc.tags.clone();
        } else {
            row.service_name.clear();
            row.service_tags.clear();
        }
        let k = key(node, &row.check_id);
        let existing = self.store().checks.get(&k).cloned();
        if existing.as_ref().is_some_and(|old| old.same_as(&row)) {
            return Ok(());
        }
        row.create_index = existing.as_ref().map(|o| o.create_index).unwrap_or(index);
        row.modify_index = index;
        self.set_check(&k, Some(row.clone()));
        self.bump(Table::Checks, &format!("{node}/{}", row.check_id));
        self.check_scope_changed(node, &row);
        if let Some(old) = existing {
            self.check_scope_changed(node, &old);
        }
        if row.status == HealthStatus::Critical {
            self.invalidate_sessions_of_check(node, &row.check_id);
        }
        Ok(())
    }

    fn delete_check(&mut self, node: &str, check_id: &str) {
        if let Some(old) = self.set_check(&key(node, check_id), None) {
            self.bump(Table::Checks, &format!("{node}/{check_id}"));
            self.check_scope_changed(node, &old);
            self.invalidate_sessions_of_check(node, check_id);
        }
    }

    fn delete_service(&mut self, node: &str, service_id: &str) {
        let Some(old) = self.set_service(&key(node, service_id), None) else {
            return;
        };
        self.bump(Table::Services, &old.service);
        self.bump_scope(Table::Services, &old.service);
        self.bump_scope(Table::Nodes, node);
        let checks: Vec<String> =
            node_rows(&self.store().checks, node).filter(|(_, c)| c.service_id == service_id).map(|(k, _)| k.1.clone()).collect();
        for id in checks {
            self.delete_check(node, &id);
        }
    }

    fn delete_node(&mut self, node: &str) {
        if !self.store().nodes.contains_key(node) {
            return;
        }
        self.invalidate_sessions_of_node(node);
        let checks: Vec<String> = node_rows(&self.store().checks, node).map(|(k, _)| k.1.clone()).collect();
        for id in checks {
            self.delete_check(node, &id);
        }
        let services: Vec<String> = node_rows(&self.store().services, node).map(|(k, _)| k.1.clone()).collect();
        for id in services {
            self.delete_service(node, &id);
        }
        self.delete_coordinate(node);
        self.set_node(node, None);
        self.bump(Table::Nodes, node);
        self.bump_scope(Table::Nodes, node);
    }

    /// A check changed: its node's scope moves, and the scope of the service it belongs to, or,
    /// for a node-level check, of every service on the node.
    fn check_scope_changed(&mut self, node: &str, check: &HealthCheck) {
        if check.service_id.is_empty() {
            self.node_health_changed(node);
        } else {
            self.bump_scope(Table::Nodes, node);
            if !check.service_name.is_empty() {
                self.bump_scope(Table::Services, &check.service_name);
            }
        }
    }

    /// The node row or a node-level check changed: every service on it is affected.
    fn node_health_changed(&mut self, node: &str) {
        self.bump_scope(Table::Nodes, node);
        for name in self.store().service_names_on(node) {
            self.bump_scope(Table::Services, &name);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::structs::{HealthStatus, Request};

    pub(crate) fn register(node: &str, svc: Option<(&str, &str)>, checks: &[(&str, &str, HealthStatus)]) -> Request {
        let mut req = RegisterRequest {
            node: node.into(),
            address: format!("10.0.0.{}", node.len()),
            service: svc.map(|(id, name)| NodeService { id: id.into(), service: name.into(), port: 80, ..Default::default() }),
            checks: checks
                .iter()
                .map(|(id, sid, st)| HealthCheck { check_id: (*id).into(), service_id: (*sid).into(), status: *st, ..Default::default() })
                .collect(),
            ..Default::default()
        };
        req.normalize().expect("valid registration");
        Request::Register(req)
    }

    fn dereg(node: &str, sid: &str, cid: &str) -> Request {
        Request::Deregister(DeregisterRequest { node: node.into(), service_id: sid.into(), check_id: cid.into(), ..Default::default() })
    }

    #[test]
    fn reregistering_the_same_thing_moves_no_index_and_wakes_nobody() {
        let mut s = Store::new();
        let req = register("n1", Some(("web1", "web")), &[("c1", "web1", HealthStatus::Passing)]);
        let (r, changes) = s.apply(5, &req);
        assert!(r.ok() && !changes.is_empty());
        let (r, changes) = s.apply(6, &req);
        assert!(r.ok());
        assert!(changes.is_empty(), "an unchanged re-sync changes nothing: {changes:?}");
        assert_eq!(s.scope_index(Table::Services, "web"), 5);
        assert_eq!(s.max_index(), 5);
    }

    #[test]
    fn a_changed_row_keeps_its_create_index_and_takes_the_new_modify_index() {
        let mut s = Store::new();
        s.apply(1, &register("n1", Some(("web1", "web")), &[("c", "web1", HealthStatus::Passing)]));
        let Request::Register(mut req) = register("n1", Some(("web1", "web")), &[("c", "web1", HealthStatus::Critical)]) else {
            unreachable!("register builds a registration")
        };
        req.address = "10.9.9.9".into();
        req.service.as_mut().expect("has a service").port = 81;
        assert!(s.apply(2, &Request::Register(req)).0.ok());
        let node = &s.nodes["n1"];
        assert_eq!((node.create_index, node.modify_index), (1, 2), "node");
        let svc = &s.services[&key("n1", "web1")];
        assert_eq!((svc.create_index, svc.modify_index), (1, 2), "service");
        let check = &s.checks[&key("n1", "c")];
        assert_eq!((check.create_index, check.modify_index), (1, 2), "check");
    }

    #[test]
    fn a_check_for_a_missing_service_rolls_the_whole_registration_back() {
        let mut s = Store::new();
        let mut req = RegisterRequest { node: "n1".into(), address: "10.0.0.1".into(), ..Default::default() };
        req.checks.push(HealthCheck { check_id: "c".into(), service_id: "nope".into(), ..Default::default() });
        let (r, changes) = s.apply(3, &Request::Register(req));
        assert_eq!(r, crate::structs::CommandResult::Catalog { error: Some("Missing service registration".into()), index: 3 });
        assert!(changes.is_empty());
        assert_eq!(s, Store::new(), "the node row was rolled back too");
    }

    #[test]
    fn service_check_moves_only_its_service_but_node_check_moves_every_service_on_the_node() {
        let mut s = Store::new();
        s.apply(1, &register("n1", Some(("web1", "web")), &[]));
        s.apply(2, &register("n1", Some(("db1", "db")), &[]));
        s.apply(3, &register("n1", None, &[("web-alive", "web1", HealthStatus::Critical)]));
        assert_eq!((s.scope_index(Table::Services, "web"), s.scope_index(Table::Services, "db")), (3, 2));
        s.apply(4, &register("n1", None, &[("mem", "", HealthStatus::Warning)]));
        assert_eq!((s.scope_index(Table::Services, "web"), s.scope_index(Table::Services, "db")), (4, 4));
        assert_eq!(s.scope_index(Table::Nodes, "n1"), 4);
    }

    #[test]
    fn deregistering_a_node_removes_its_services_and_checks_and_moves_their_scopes() {
        let mut s = Store::new();
        s.apply(1, &register("n1", Some(("web1", "web")), &[("c", "web1", HealthStatus::Passing)]));
        s.apply(2, &register("n2", Some(("web2", "web")), &[]));
        let (r, _) = s.apply(3, &dereg("n1", "", ""));
        assert!(r.ok());
        assert_eq!(s.table_sizes().iter().map(|(_, n)| *n).collect::<Vec<_>>(), vec![0, 0, 1, 1, 0, 0, 0]);
        assert_eq!(s.scope_index(Table::Services, "web"), 3);
        assert_eq!(s.scope_index(Table::Nodes, "n1"), 3);
        let (r, changes) = s.apply(4, &dereg("n1", "", ""));
        assert!(r.ok() && changes.is_empty(), "deregistering a missing node is a no-op");
    }

    #[test]
    fn renaming_an_instance_updates_its_checks_and_both_service_scopes() {
        let mut s = Store::new();
        s.apply(1, &register("n1", Some(("i1", "old")), &[("c", "i1", HealthStatus::Passing)]));
        s.apply(2, &register("n1", Some(("i1", "new")), &[]));
        assert_eq!((s.scope_index(Table::Services, "old"), s.scope_index(Table::Services, "new")), (2, 2));
        let check = s.checks.get(&key("n1", "c")).expect("check kept");
        assert_eq!((check.service_name.as_str(), check.modify_index), ("new", 2));
    }

    #[test]
    fn scopes_of_deleted_names_are_dropped_without_moving_their_index_backwards() {
        let mut s = Store::new();
        s.apply(1, &register("n1", Some(("web1", "web")), &[]));
        s.apply(2, &register("n2", Some(("db1", "db")), &[]));
        s.apply(3, &dereg("n1", "", ""));
        assert!(!s.scope_indexes.contains_key(&(Table::Services, "web".to_string())), "web has no instances left");
        assert!(!s.scope_indexes.contains_key(&(Table::Nodes, "n1".to_string())), "n1 is gone");
        assert_eq!((s.scope_index(Table::Services, "web"), s.scope_index(Table::Nodes, "n1")), (3, 3), "what a reader saw at the delete");
        // A refused write leaves the scopes as they were.
        let before = s.scope_indexes.clone();
        let (r, _) = s.apply(4, &register("n2", Some(("db1", "db")), &[("c", "missing", HealthStatus::Passing)]));
        assert!(!r.ok());
        assert_eq!(s.scope_indexes, before);
        s.apply(5, &register("n1", Some(("web1", "web")), &[]));
        assert_eq!(s.scope_index(Table::Services, "web"), 5, "a name that comes back gets its scope again");
    }
}
