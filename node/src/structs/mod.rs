//! Wire types shared by the HTTP API, server RPC and the state store (Consul's `agent/structs`).
//!
//! Owns: catalog and health shapes ([`catalog`]), Raft commands with their message type and version ([`command`]), the KV request and
//! result shapes ([`kvs`]), sessions ([`session`]), transactions ([`txn`]), and the blocking-query options and metadata every read carries
//! ([`query`]). Every layer imports these; none of them imports another layer's types, which is
//! what keeps HTTP → server core → state/raft free of cycles. This module does no I/O.

pub mod catalog;
pub mod command;
pub mod coordinate;
pub mod duration;
pub mod kvs;
pub mod query;
pub mod session;
pub mod txn;

pub use catalog::{
    CatalogQuery, CheckServiceNode, DeregisterRequest, HealthCheck, HealthStatus, Indexed, Meta, Node, NodeService, NodeServices,
    RegisterRequest, ServiceNode, Weights,
};
pub use coordinate::{CoordinateEntry, CoordinateQuery, CoordinateUpdateRequest, DatacenterMap};
pub use command::{BatchRequest, Command, CommandError, CommandResult, MessageType, Request, RestoreRequest, TombstoneReapRequest};
pub use kvs::{DirEntry, IndexedDirEntries, IndexedKeyList, KeyListRequest, KeyRequest, KvsOp, KvsRequest};
pub use session::{Session, SessionBehavior, SessionOp, SessionQuery, SessionRequest};
pub use txn::{TxnCatalogVerb, TxnError, TxnKvOp, TxnKvVerb, TxnOp, TxnReadRequest, TxnReadResponse, TxnRequest, TxnResult, MAX_TXN_OPS};
pub use query::{Consistency, QueryError, QueryMeta, QueryOptions, WriteError};
