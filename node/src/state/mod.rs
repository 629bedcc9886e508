//! The replicated state store: what Raft applies and what reads see.
//!
//! Owns: the KV table with delete tombstones ([`kv`]), the watch set that wakes blocking queries
//! only when what they read changed ([`watch`]), and the commands that change them ([`command`]).
//! Every mutation is stamped with the Raft log index that carried it, like Consul's memdb. This
//! module must never do I/O: it is a pure function of the applied log.

pub mod command;
pub mod kv;
pub mod watch;

pub use command::{Command, CommandResult};
pub use kv::{KvEntry, KvStore};
pub use watch::{WatchKey, WatchSet};
