//! Commands carried in the Raft log and their results.
//!
//! A command is decided entirely by the state it is applied to, so every server computes the same
//! result for the same log index: a CAS that fails on one server fails on all.

use serde::{Deserialize, Serialize};

/// A replicated write. Source of semantics: Consul HTTP API, `/v1/kv` (PUT and DELETE).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `PUT /v1/kv/<key>[?flags=][&cas=]`. `cas = Some(0)` means "only if absent".
    KvSet {
        key: String,
        #[serde(with = "crate::codec::b64")]
        value: Vec<u8>,
        flags: u64,
        cas: Option<u64>,
    },
    /// `DELETE /v1/kv/<key>[?recurse][&cas=]`. With `recurse`, `key` is a prefix.
    KvDelete { key: String, recurse: bool, cas: Option<u64> },
    /// A no-op a new leader may commit; changes nothing.
    Noop,
}

/// The outcome of applying a [`Command`]: Consul answers writes with a bare `true`/`false`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// `false` when a CAS precondition failed; the write changed nothing.
    pub ok: bool,
    /// The Raft log index the command was applied at.
    pub index: u64,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::KvSet { key, value, cas, .. } => write!(f, "set {key} len={} cas={cas:?}", value.len()),
            Command::KvDelete { key, recurse, cas } => write!(f, "delete {key} recurse={recurse} cas={cas:?}"),
            Command::Noop => write!(f, "noop"),
        }
    }
}
