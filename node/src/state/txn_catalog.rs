//! `/v1/txn` Node, Service and Check operations (`get`, `set`, `cas`, `delete`, `delete-cas`) against the catalog
//! tables, inside the transaction's [`WriteTxn`] or against a read-only [`Store`].
//!
//! Source: Consul `agent/consul/state/txn.go` (`txnNode`, `txnService`, `txnCheck`), whose error
//! texts these are. A `set` registers through the catalog's own write (Consul's defaults and
//! refusals apply: "Missing node registration", "Missing service registration") and returns the
//! row as stored; a `delete` deregisters (a missing row is fine) and returns nothing. The CAS
//! variants first compare the op's `ModifyIndex` with the stored row's (Consul's
//! `ensureNodeCASTxn`, `deleteNodeCASTxn` and their service and check twins): `cas` with 0 sets
//! only an absent row, otherwise only a row with that index; `delete-cas` needs the row to exist
//! with that index. A mismatch fails the transaction with "…, index is stale".

use super::store::Store;
use super::txn::WriteTxn;
use crate::structs::{DeregisterRequest, HealthCheck, Node, NodeService, RegisterRequest, TxnCatalogVerb, TxnOp, TxnResult};

/// What one operation gives back, or why it failed.
type OpOutcome = Result<Vec<TxnResult>, String>;

/// Whether a `cas` may set a row whose stored ModifyIndex is `existing` (`None`: absent) when
/// the op carries `want` (0: set only if absent).
fn cas_allows_set(existing: Option<u64>, want: u64) -> bool {
    match existing {
        None => want == 0,
        Some(index) => want != 0 && index == want,
    }
}

fn node_get(store: &Store, name: &str) -> OpOutcome {
    store.nodes.get(name).map(|n| vec![TxnResult::Node(n.clone())]).ok_or_else(|| format!("node {name:?} doesn't exist"))
}

fn service_get(store: &Store, node: &str, id: &str) -> OpOutcome {
    store
        .services
        .get(&(node.to_string(), id.to_string()))
        .map(|s| vec![TxnResult::Service(s.clone())])
        .ok_or_else(|| format!("service {id:?} on node {node:?} doesn't exist"))
}

fn check_get(store: &Store, node: &str, id: &str) -> OpOutcome {
    store
        .checks
        .get(&(node.to_string(), id.to_string()))
        .map(|c| vec![TxnResult::Check(c.clone())])
        .ok_or_else(|| format!("check {id:?} on node {node:?} doesn't exist"))
}

/// A catalog `get` against `store`; `None` for a write or a KV operation.
pub(super) fn catalog_read(store: &Store, op: &TxnOp) -> Option<OpOutcome> {
    Some(match op {
        TxnOp::Node { verb: TxnCatalogVerb::Get, node } => node_get(store, &node.node),
        TxnOp::Service { verb: TxnCatalogVerb::Get, node, service } => service_get(store, node, &service.id),
        TxnOp::Check { verb: TxnCatalogVerb::Get, check } => check_get(store, &check.node, &check.check_id),
        _ => return None,
    })
}

impl WriteTxn<'_> {
    fn register_normalized(&mut self, mut req: RegisterRequest) -> Result<(), String> {
        req.normalize()?;
        self.ensure_registration(&req)
    }

    /// A catalog `set` or `delete`; `None` for a `get` or a KV operation.
    pub(super) fn catalog_write(&mut self, op: &TxnOp) -> Option<OpOutcome> {
        Some(match op {
            TxnOp::Node { verb: TxnCatalogVerb::Set, node } => self.node_set(node),
            TxnOp::Node { verb: TxnCatalogVerb::Delete, node } => self.deregister_row(&node.node, "", ""),
            TxnOp::Service { verb: TxnCatalogVerb::Set, node, service } => self.service_set(node, service),
            TxnOp::Service { verb: TxnCatalogVerb::Delete, node, service } => self.deregister_row(node, &service.id, ""),
            TxnOp::Check { verb: TxnCatalogVerb::Set, check } => self.check_set(check),
            TxnOp::Check { verb: TxnCatalogVerb::Delete, check } => self.deregister_row(&check.node, "", &check.check_id),
            TxnOp::Node { verb: TxnCatalogVerb::Cas | TxnCatalogVerb::DeleteCas, .. }
            | TxnOp::Service { verb: TxnCatalogVerb::Cas | TxnCatalogVerb::DeleteCas, .. }
            | TxnOp::Check { verb: TxnCatalogVerb::Cas | TxnCatalogVerb::DeleteCas, .. } => self.catalog_cas(op),
            _ => return None,
        })
    }

    /// A `cas` or `delete-cas`: the ModifyIndex comparison, then the `set` or `delete`.
    fn catalog_cas(&mut self, op: &TxnOp) -> OpOutcome {
        let stale = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
        match op {
            TxnOp::Node { verb, node } => {
                let existing = self.store().nodes.get(&node.node).map(|n| n.modify_index);
                if *verb == TxnCatalogVerb::Cas {
                    stale(cas_allows_set(existing, node.modify_index), format!("failed to set node {:?}, index is stale", node.node))?;
                    return self.node_set(node);
                }
                stale(existing == Some(node.modify_index), format!("failed to delete node {:?}, index is stale", node.node))?;
                self.deregister_row(&node.node, "", "")
            }
            TxnOp::Service { verb, node, service } => {
                let id = if service.id.is_empty() { &service.service } else { &service.id };
                let existing = self.store().services.get(&(node.clone(), id.clone())).map(|s| s.modify_index);
                if *verb == TxnCatalogVerb::Cas {
                    let what = format!("failed to set service {id:?} on node {node:?}, index is stale");
                    stale(cas_allows_set(existing, service.modify_index), what)?;
                    return self.service_set(node, service);
                }
                stale(existing == Some(service.modify_index), format!("failed to delete service {id:?} on node {node:?}, index is stale"))?;
                self.deregister_row(node, id, "")
            }
            TxnOp::Check { verb, check } => {
                let existing = self.store().checks.get(&(check.node.clone(), check.check_id.clone())).map(|c| c.modify_index);
                let (id, node) = (&check.check_id, &check.node);
                if *verb == TxnCatalogVerb::Cas {
                    stale(cas_allows_set(existing, check.modify_index), format!("failed to set check {id:?} on node {node:?}, index is stale"))?;
                    return self.check_set(check);
                }
                stale(existing == Some(check.modify_index), format!("failed to delete check {id:?} on node {node:?}, index is stale"))?;
                self.deregister_row(node, "", id)
            }
            TxnOp::Kv(_) => Err("not a catalog operation".to_string()),
        }
    }

    fn node_set(&mut self, n: &Node) -> OpOutcome {
        let req = RegisterRequest {
            datacenter: n.datacenter.clone(),
            id: n.id.clone(),
            node: n.node.clone(),
            address: n.address.clone(),
            tagged_addresses: n.tagged_addresses.clone(),
            node_meta: n.meta.clone(),
            ..RegisterRequest::default()
        };
        self.register_normalized(req)?;
        node_get(self.store(), &n.node)
    }

    fn service_set(&mut self, node: &str, svc: &NodeService) -> OpOutcome {
        let req = RegisterRequest { node: node.to_string(), skip_node_update: true, service: Some(svc.clone()), ..RegisterRequest::default() };
        self.register_normalized(req)?;
        let id = if svc.id.is_empty() { &svc.service } else { &svc.id };
        service_get(self.store(), node, id)
    }

    fn check_set(&mut self, check: &HealthCheck) -> OpOutcome {
        let req = RegisterRequest { node: check.node.clone(), skip_node_update: true, checks: vec![check.clone()], ..RegisterRequest::default() };
        self.register_normalized(req)?;
        check_get(self.store(), &check.node, &check.check_id)
    }

    fn deregister_row(&mut self, node: &str, service_id: &str, check_id: &str) -> OpOutcome {
        let req = DeregisterRequest { datacenter: String::new(), node: node.to_string(), service_id: service_id.into(), check_id: check_id.into() };
        self.deregister(&req)?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use crate::state::Store;
    use crate::structs::{CommandResult, HealthCheck, Node, NodeService, Request, TxnCatalogVerb as V, TxnError, TxnOp, TxnRequest, TxnResult};

    fn apply(s: &mut Store, index: u64, ops: Vec<TxnOp>) -> (Vec<TxnResult>, Vec<TxnError>) {
        match s.apply(index, &Request::Txn(TxnRequest { ops })).0 {
            CommandResult::Txn { results, errors, .. } => (results, errors),
            other => panic!("not a txn result: {other:?}"),
        }
    }
    fn node(name: &str) -> Node {
        Node { node: name.into(), address: "10.0.0.1".into(), ..Node::default() }
    }
    fn service(id: &str) -> NodeService {
        NodeService { id: id.into(), service: "web".into(), port: 80, ..NodeService::default() }
    }
    fn check(id: &str, service_id: &str) -> HealthCheck {
        HealthCheck { node: "n1".into(), check_id: id.into(), name: id.into(), service_id: service_id.into(), ..HealthCheck::default() }
    }

    #[test]
    fn node_service_and_check_set_get_delete_in_one_transaction() {
        let mut s = Store::new();
        let (results, errors) = apply(&mut s, 1, vec![
            TxnOp::Node { verb: V::Set, node: node("n1") },
            TxnOp::Service { verb: V::Set, node: "n1".into(), service: service("web1") },
            TxnOp::Check { verb: V::Set, check: check("c1", "web1") },
            TxnOp::Service { verb: V::Get, node: "n1".into(), service: service("web1") },
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(matches!(&results[0], TxnResult::Node(n) if n.node == "n1" && n.create_index == 1));
        assert!(matches!(&results[2], TxnResult::Check(c) if c.service_name == "web"));
        assert_eq!(results.len(), 4);
        let (_, errors) = apply(&mut s, 2, vec![
            TxnOp::Check { verb: V::Delete, check: check("c1", "") },
            TxnOp::Node { verb: V::Get, node: node("n1") },
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(s.checks.is_empty() && s.services.len() == 1);
    }

    #[test]
    fn cas_and_delete_cas_compare_the_modify_index() {
        let mut s = Store::new();
        let at = |index: u64, n: Node| Node { modify_index: index, ..n };
        let (_, errors) = apply(&mut s, 1, vec![TxnOp::Node { verb: V::Cas, node: at(0, node("n1")) }]);
        assert!(errors.is_empty(), "0 sets an absent node: {errors:?}");
        let (_, errors) = apply(&mut s, 2, vec![TxnOp::Node { verb: V::Cas, node: at(0, node("n1")) }]);
        assert_eq!(errors[0].what, r#"failed to set node "n1", index is stale"#);
        let svc = |index: u64| NodeService { modify_index: index, ..service("web1") };
        let (results, errors) = apply(&mut s, 3, vec![
            TxnOp::Node { verb: V::Cas, node: Node { address: "10.0.0.2".into(), ..at(1, node("n1")) } },
            TxnOp::Service { verb: V::Cas, node: "n1".into(), service: svc(0) },
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(matches!(&results[0], TxnResult::Node(n) if n.address == "10.0.0.2" && n.modify_index == 3));
        let chk = |index: u64| HealthCheck { modify_index: index, ..check("c1", "web1") };
        let (_, errors) = apply(&mut s, 4, vec![
            TxnOp::Service { verb: V::Cas, node: "n1".into(), service: svc(2) },
            TxnOp::Check { verb: V::DeleteCas, check: chk(4) },
            TxnOp::Service { verb: V::DeleteCas, node: "n1".into(), service: svc(1) },
            TxnOp::Node { verb: V::DeleteCas, node: at(1, node("n1")) },
        ]);
        let whats: Vec<(usize, &str)> = errors.iter().map(|e| (e.op_index, e.what.as_str())).collect();
        assert_eq!(whats, [
            (0, r#"failed to set service "web1" on node "n1", index is stale"#),
            (1, r#"failed to delete check "c1" on node "n1", index is stale"#),
            (2, r#"failed to delete service "web1" on node "n1", index is stale"#),
            (3, r#"failed to delete node "n1", index is stale"#),
        ]);
        let (_, errors) = apply(&mut s, 5, vec![
            TxnOp::Check { verb: V::Cas, check: chk(0) },
            TxnOp::Service { verb: V::DeleteCas, node: "n1".into(), service: svc(3) },
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(s.services.is_empty(), "the service went, and with it its check");
        let (_, errors) = apply(&mut s, 6, vec![TxnOp::Node { verb: V::DeleteCas, node: at(3, node("n1")) }]);
        assert!(errors.is_empty() && s.nodes.is_empty(), "{errors:?}");
    }

    #[test]
    fn catalog_failures_use_consuls_texts_and_roll_back() {
        let mut s = Store::new();
        let before = s.clone();
        let (_, errors) = apply(&mut s, 1, vec![
            TxnOp::Node { verb: V::Set, node: node("n1") },
            TxnOp::Service { verb: V::Set, node: "ghost".into(), service: service("web1") },
            TxnOp::Node { verb: V::Get, node: node("nope") },
            TxnOp::Check { verb: V::Get, check: check("c9", "") },
            TxnOp::Service { verb: V::Get, node: "n1".into(), service: service("x") },
        ]);
        let whats: Vec<(usize, &str)> = errors.iter().map(|e| (e.op_index, e.what.as_str())).collect();
        assert_eq!(whats, [
            (1, "Missing node registration"),
            (2, r#"node "nope" doesn't exist"#),
            (3, r#"check "c9" on node "n1" doesn't exist"#),
            (4, r#"service "x" on node "n1" doesn't exist"#),
        ]);
        assert_eq!(s, before);
    }
}
