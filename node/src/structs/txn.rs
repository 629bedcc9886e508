//! Transaction shapes (Consul HTTP API, `/v1/txn`; Consul `agent/structs/txn.go`).
//!
//! A transaction is a list of operations applied at one Raft index, all or nothing. KV operations
//! have all of Consul's verbs; Node, Service and Check operations have `get`, `set` and `delete`
//! (not `cas`/`delete-cas`); Session operations are refused at the HTTP edge. Results are Consul's: a read verb returns the entry with its value, a KV write or check
//! returns the entry as stored without its value, a delete returns nothing, and `get-tree`
//! returns every entry under the prefix. Errors name the operation (`OpIndex`) and why (`What`).

use serde::{Deserialize, Serialize};

use super::catalog::{HealthCheck, Node, NodeService};
use super::kvs::DirEntry;
use super::query::{QueryMeta, QueryOptions};

/// Most operations in one transaction (Consul's `maxTxnOps`: 64 before 1.x, 128 now).
pub const MAX_TXN_OPS: usize = 128;

/// A KV verb inside a transaction (Consul `api.KVOp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnKvVerb {
    /// `set`: write the value and flags.
    Set,
    /// `cas`: write only if `Index` is the key's ModifyIndex (0: the key must not exist).
    Cas,
    /// `lock`: take (or keep) the key's lock for `Session` and write the value.
    Lock,
    /// `unlock`: release the lock `Session` holds and write the value.
    Unlock,
    /// `get`: the entry; fails when the key does not exist.
    Get,
    /// `get-or-empty`: the entry, or an empty one when the key does not exist.
    GetOrEmpty,
    /// `get-tree`: every entry under the prefix (possibly none).
    GetTree,
    /// `check-index`: fails unless the key's ModifyIndex is `Index`.
    CheckIndex,
    /// `check-session`: fails unless `Session` holds the key's lock.
    CheckSession,
    /// `check-not-exists`: fails when the key exists.
    CheckNotExists,
    /// `delete`: delete the key (a missing key is fine).
    Delete,
    /// `delete-tree`: delete every key under the prefix.
    DeleteTree,
    /// `delete-cas`: delete only if `Index` is the key's ModifyIndex.
    DeleteCas,
}

impl TxnKvVerb {
    /// Every verb, for parsing and tests.
    pub const ALL: [TxnKvVerb; 13] = [
        Self::Set, Self::Cas, Self::Lock, Self::Unlock, Self::Get, Self::GetOrEmpty, Self::GetTree, Self::CheckIndex,
        Self::CheckSession, Self::CheckNotExists, Self::Delete, Self::DeleteTree, Self::DeleteCas,
    ];

    /// Consul's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Set => "set",
            Self::Cas => "cas",
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::Get => "get",
            Self::GetOrEmpty => "get-or-empty",
            Self::GetTree => "get-tree",
            Self::CheckIndex => "check-index",
            Self::CheckSession => "check-session",
            Self::CheckNotExists => "check-not-exists",
            Self::Delete => "delete",
            Self::DeleteTree => "delete-tree",
            Self::DeleteCas => "delete-cas",
        }
    }

    /// The verb spelled `s` (exactly, as Consul compares), if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the verb changes the store (Consul's `isWrite`): a transaction with none is a read.
    pub fn is_write(self) -> bool {
        matches!(self, Self::Set | Self::Cas | Self::Lock | Self::Unlock | Self::Delete | Self::DeleteTree | Self::DeleteCas)
    }
}

/// One KV operation (Consul `TxnKVOp`). `dir_ent.modify_index` carries the request's `Index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnKvOp {
    pub verb: TxnKvVerb,
    pub dir_ent: DirEntry,
}

/// A Node, Service or Check verb inside a transaction (Consul `api.NodeOp`, `ServiceOp`,
/// `CheckOp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnCatalogVerb {
    /// `get`: the row; fails when it does not exist.
    Get,
    /// `set`: register (create or update) the row.
    Set,
    /// `delete`: deregister the row (a missing one is fine).
    Delete,
    /// `cas`: `set` only if the row's ModifyIndex is the op's `ModifyIndex` (0: only if absent).
    Cas,
    /// `delete-cas`: `delete` only if the row exists with the op's `ModifyIndex`.
    DeleteCas,
}

impl TxnCatalogVerb {
    /// Consul's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Set => "set",
            Self::Delete => "delete",
            Self::Cas => "cas",
            Self::DeleteCas => "delete-cas",
        }
    }

    /// The verb spelled `s`, if supported.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Get, Self::Set, Self::Delete, Self::Cas, Self::DeleteCas].into_iter().find(|v| v.as_str() == s)
    }
}

/// One operation of a transaction (Consul `TxnOp`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    Kv(TxnKvOp),
    /// `{"Node": {"Verb", "Node": {ID, Node, Address, Datacenter, TaggedAddresses, Meta}}}`.
    Node { verb: TxnCatalogVerb, node: Node },
    /// `{"Service": {"Verb", "Node", "Service": {ID, Service, Tags, Address, Meta, Port, ...}}}`.
    Service { verb: TxnCatalogVerb, node: String, service: NodeService },
    /// `{"Check": {"Verb", "Check": {Node, CheckID, Name, Status, ServiceID, ...}}}`.
    Check { verb: TxnCatalogVerb, check: HealthCheck },
}

impl TxnOp {
    /// Whether the operation changes the store.
    pub fn is_write(&self) -> bool {
        match self {
            TxnOp::Kv(op) => op.verb.is_write(),
            TxnOp::Node { verb, .. } | TxnOp::Service { verb, .. } | TxnOp::Check { verb, .. } => *verb != TxnCatalogVerb::Get,
        }
    }
}

/// A transaction with at least one write (`Txn.Apply`, Raft message type 8).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    pub ops: Vec<TxnOp>,
}

impl std::fmt::Display for TxnRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "txn")?;
        for op in &self.ops {
            match op {
                TxnOp::Kv(op) => write!(f, " {}:{}", op.verb.as_str(), op.dir_ent.key)?,
                TxnOp::Node { verb, node } => write!(f, " node-{}:{}", verb.as_str(), node.node)?,
                TxnOp::Service { verb, node, service } => write!(f, " service-{}:{}/{}", verb.as_str(), node, service.id)?,
                TxnOp::Check { verb, check } => write!(f, " check-{}:{}/{}", verb.as_str(), check.node, check.check_id)?,
            }
        }
        Ok(())
    }
}

/// A read-only transaction (`Txn.Read`), served under its consistency mode, never blocking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnReadRequest {
    pub ops: Vec<TxnOp>,
    pub opts: QueryOptions,
}

/// One result (Consul `TxnResult`): JSON `{"KV": DirEntry}`, `{"Node": Node}`,
/// `{"Service": NodeService}` or `{"Check": HealthCheck}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnResult {
    Kv(DirEntry),
    Node(Node),
    Service(NodeService),
    Check(HealthCheck),
}

/// Why one operation failed (Consul `TxnError`): JSON `{"OpIndex": i, "What": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnError {
    pub op_index: usize,
    pub what: String,
}

/// The answer to a read-only transaction, with its read metadata (`Txn.Read`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnReadResponse {
    pub results: Vec<TxnResult>,
    /// Empty when every operation succeeded.
    pub errors: Vec<TxnError>,
    pub meta: QueryMeta,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_round_trip_and_reads_are_not_writes() {
        for v in TxnKvVerb::ALL {
            assert_eq!(TxnKvVerb::parse(v.as_str()), Some(v));
        }
        assert_eq!(TxnKvVerb::parse("SET"), None);
        let writes: Vec<&str> = TxnKvVerb::ALL.into_iter().filter(|v| v.is_write()).map(TxnKvVerb::as_str).collect();
        assert_eq!(writes, ["set", "cas", "lock", "unlock", "delete", "delete-tree", "delete-cas"]);
    }
}
