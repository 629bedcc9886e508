//! `/v1/txn` Node, Service and Check operations (`get`, `set`, `delete`) against the catalog
//! tables, inside the transaction's [`WriteTxn`] or against a read-only [`Store`].
//!
//! Source: Consul `agent/consul/state/txn.go` (`txnNode`, `txnService`, `txnCheck`), whose error
//! texts these are. A `set` registers through the catalog's own write (Consul's defaults and
//! refusals apply: "Missing node registration", "Missing service registration") and returns the
//! row as stored; a `delete` deregisters (a missing row is fine) and returns nothing.

use super::store::Store;
use super::txn::WriteTxn;
use crate::structs::{DeregisterRequest, HealthCheck, Node, NodeService, RegisterRequest, TxnCatalogVerb, TxnOp, TxnResult};

/// What one operation gives back, or why it failed.
type OpOutcome = Result<Vec<TxnResult>, String>;

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
            _ => return None,
        })
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
