//! Consensus: openraft's type configuration and the glue that binds it to Concord.
//!
//! Owns: the seeded async runtime ([`runtime`]) and its per-host drifting time ([`drift`]), the durable Raft log and vote ([`log_store`]) with its bounded in-memory tail ([`log_cache`]),
//! the state machine ([`state_machine`]) with durable snapshots ([`snapshot_file`]), the data-dir
//! format marker ([`format`]), `peers.json` outage recovery ([`recover`]) and the Raft transport ([`network`]). Servers are Raft voters; client agents are not in Raft.

pub mod drift;
pub mod format;
pub(crate) mod log_cache;
pub mod log_store;
pub mod network;
pub mod recover;
pub mod runtime;
pub mod snapshot_file;
pub mod state_machine;

use std::io::Cursor;

use crate::structs::{Command, CommandResult};

openraft::declare_raft_types!(
    /// Concord's openraft configuration: commands are [`Command`]s, node ids are `u64` derived
    /// from the node name, nodes carry their server RPC address.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = runtime::SeededRuntime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

/// The Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// A Raft node id.
pub type NodeId = u64;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id (term + leader + index).
pub type LogId = openraft::LogId<NodeId>;
/// openraft's storage error for our node id.
pub type StorageError = openraft::StorageError<NodeId>;
pub use openraft::ServerState;

/// Derives a stable Raft node id from a node name (FNV-1a, 64 bit). Node names are unique in a
/// datacenter (Consul requires it), so ids are too, with overwhelming probability.
pub fn node_id_for(name: &str) -> NodeId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Builds a storage error for an I/O failure on `what` (a file or a decode step).
pub(crate) fn storage_io_error(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}
