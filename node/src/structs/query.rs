//! What every read carries in (`QueryOptions`) and out (`QueryMeta`), and the errors of the
//! request path.
//!
//! Source: Consul HTTP API, "Blocking Queries" and "Consistency Modes", and
//! `agent/structs.QueryOptions` / `QueryMeta`. Parsed from the URL once, at the HTTP edge, and
//! carried unchanged through forwarding.

use serde::{Deserialize, Serialize};

/// Consul's consistency modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    /// Leader answers from local state, under a leader lease.
    #[default]
    Default,
    /// Leader verifies leadership with a quorum (read index) first: linearizable.
    Consistent,
    /// Any server answers from local state.
    Stale,
}

impl Consistency {
    /// Value of the `X-Consul-Effective-Consistency` header.
    pub fn header_value(self) -> &'static str {
        match self {
            Consistency::Default => "leader",
            Consistency::Consistent => "consistent",
            Consistency::Stale => "stale",
        }
    }
}

/// Options of a read (Consul `QueryOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryOptions {
    /// `?dc=`: the target datacenter (`None` = the agent's own).
    pub datacenter: Option<String>,
    /// `X-Consul-Token` / `?token=` (ACLs are not enforced yet; carried for forwarding).
    pub token: Option<String>,
    /// `?index=`: block until the result's index exceeds this (0 = do not block).
    pub min_query_index: u64,
    /// `?wait=`, clamped and jittered, in ms.
    pub max_query_time_ms: u64,
    pub consistency: Consistency,
    /// `?filter=` (the expression language comes with the catalog).
    pub filter: Option<String>,
}

/// Metadata of a read's answer (Consul `QueryMeta`), sent as `X-Consul-*` headers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryMeta {
    /// `X-Consul-Index`: the Raft index of what the query read (the HTTP edge clamps it to ≥ 1).
    pub index: u64,
    /// `X-Consul-KnownLeader`.
    pub known_leader: bool,
    /// `X-Consul-LastContact`, ms since the answering server heard from the leader (0 on it).
    pub last_contact_ms: u64,
    /// `X-Consul-Effective-Consistency`.
    pub consistency: Consistency,
}

/// Why a read could not be answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum QueryError {
    /// No leader, or leadership could not be confirmed. Consul: 500 "No cluster leader".
    #[error("No cluster leader")]
    NoLeader,
    /// `?dc=` names a datacenter this agent cannot reach. Consul: 500 "No path to datacenter".
    #[error("No path to datacenter")]
    NoPathToDatacenter,
    /// Forwarding to the leader failed.
    #[error("rpc error: {0}")]
    Rpc(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a write failed. The variant says whether it may have been applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WriteError {
    /// No leader is known, or the leader lost its quorum; the write was not proposed.
    /// Consul: 500 "No cluster leader".
    #[error("No cluster leader")]
    NoLeader,
    /// The outcome is unknown (commit timed out, leadership or connection lost in flight): the
    /// write may have been applied, or may still be.
    #[error("write outcome unknown (it may have been applied): {0}")]
    Unknown(String),
    /// The write was certainly not applied (e.g. rejected before reaching Raft).
    #[error("write rejected: {0}")]
    Rejected(String),
    /// `?dc=` names a datacenter with no live server in the WAN pool: nothing was sent.
    /// Consul: 500 "No path to datacenter".
    #[error("No path to datacenter")]
    NoPathToDatacenter,
}

impl WriteError {
    /// Whether the write certainly did not take effect.
    pub fn certainly_not_applied(&self) -> bool {
        matches!(self, WriteError::NoLeader | WriteError::Rejected(_) | WriteError::NoPathToDatacenter)
    }
}
