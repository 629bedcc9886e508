//! The replicated state store: what Raft applies and what reads see.
//!
//! Owns: the [`Store`] of tables with Consul's `index` table ([`store`]), the KV table ([`kv`]),
//! sessions and their locks ([`session`]) with their lock-delays ([`lock_delay`]), the catalog's nodes, services and checks ([`catalog`] writes, [`catalog_query`] reads)
//! and its tombstones ([`graveyard`]), node network coordinates ([`coordinate`]), write transactions that apply atomically or roll back
//! whole ([`txn`]) and the `/v1/txn` operations run in them ([`txn_ops`], [`txn_catalog`]), the watch set that wakes blocking queries only when what they read changed
//! ([`watch`]), the per-table snapshot sections ([`snapshot`]) and the snapshot archives of `/v1/snapshot` ([`archive`]). Every mutation is stamped
//! with the Raft log index that carried it, like Consul's memdb. This module must never do I/O
//! or know about Raft: it is a pure function of the applied commands.

pub mod archive;
pub mod catalog;
pub mod catalog_query;
pub mod coordinate;
pub mod graveyard;
pub mod kv;
pub mod kv_table;
pub mod lock_delay;
pub mod session;
pub mod snapshot;
pub mod store;
pub mod txn;
pub mod txn_catalog;
pub mod txn_ops;
pub mod watch;

pub use store::{ApplyOutcome, Store};
pub use txn::WriteTxn;
pub use watch::{Change, Table, WatchKey, WatchSet};
