//! The transaction endpoints (Consul `agent/consul/txn_endpoint.go`): `Txn.Apply`, a
//! transaction with at least one write, through Raft as one entry; and `Txn.Read`, a read-only
//! transaction, served under its consistency mode like any read but never blocking.

use super::Server;
use crate::state::{Table, WatchKey};
use crate::structs::{
    Command, CommandResult, QueryError, TxnError, TxnKvVerb, TxnOp, TxnReadRequest, TxnReadResponse, TxnRequest, WriteError,
};

pub const TXN_APPLY: &str = "Txn.Apply";
pub const TXN_READ: &str = "Txn.Read";

/// Every transaction method name (for the RPC metrics' label set).
pub const TXN_METHODS: [&str; 2] = [TXN_APPLY, TXN_READ];

impl Server {
    /// `Txn.Apply`: applies every operation at one Raft index, or none. The answer is
    /// [`CommandResult::Txn`]: results, or every failed operation's error (nothing applied).
    /// Errors: the write path's.
    ///
    /// The leader refuses, without proposing it, a transaction with a `lock` of a key still under
    /// a lock-delay: every such op gets Consul's "failed to lock key … due to lock delay" error
    /// (`txn_endpoint.go`'s pre-check), so the answer is a 409 with nothing applied.
    pub async fn txn_apply(&self, req: TxnRequest, forwarded: bool) -> Result<CommandResult, WriteError> {
        if forwarded || self.is_leader() {
            let errors = self.lock_delay_errors(&req);
            if !errors.is_empty() {
                return Ok(CommandResult::Txn { results: Vec::new(), errors, index: 0 });
            }
        }
        self.apply_write(TXN_APPLY, req, forwarded, Command::txn).await
    }

    /// One error per `lock` op whose key is under a lock-delay on this server.
    fn lock_delay_errors(&self, req: &TxnRequest) -> Vec<TxnError> {
        let delayed = req.ops.iter().enumerate().filter_map(|(i, op)| match op {
            TxnOp::Kv(kv) if kv.verb == TxnKvVerb::Lock && self.key_lock_delayed(&kv.dir_ent.key) => Some((i, &kv.dir_ent.key)),
            _ => None,
        });
        delayed.map(|(op_index, key)| TxnError { op_index, what: format!("failed to lock key {key:?} due to lock delay") }).collect()
    }

    /// `Txn.Read`: runs read-only operations against one consistent view of the store, under
    /// the request's consistency mode (`?stale`, `?consistent`, default). Never blocks: an
    /// `?index=` is ignored, as Consul does. Errors: the read path's (no leader, wrong dc).
    pub async fn txn_read(&self, mut req: TxnReadRequest, forwarded: bool) -> Result<TxnReadResponse, QueryError> {
        req.opts.min_query_index = 0;
        let opts = req.opts.clone();
        self.route_read(TXN_READ, req, &opts, forwarded, |req| async move {
            let ((results, errors), meta) = self
                .blocking_query(&req.opts, WatchKey::Table(Table::Kvs), |s| (s.txn_read(&req.ops), s.max_index()))
                .await?;
            Ok(TxnReadResponse { results, errors, meta })
        })
        .await
    }
}
