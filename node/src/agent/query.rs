//! KV reads: the query shape, consistency modes and blocking-query evaluation.
//!
//! Source: Consul HTTP API, "Blocking Queries" and "Consistency Modes". A query is evaluated
//! against the local store; [`evaluate_blocking`] re-evaluates it each time a watched key changes
//! until its index passes `min_index` or the wait expires (then it answers with unchanged data).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::raft::state_machine::SharedState;
use crate::state::{KvEntry, WatchKey};

/// Consul's consistency modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    /// Leader answers from local state, under a leader lease.
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

/// What to read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvRead {
    /// One key.
    Get,
    /// Every entry under the key as a prefix (`?recurse`).
    Recurse,
    /// Key names under the prefix (`?keys`, optional `?separator`).
    Keys { separator: Option<String> },
}

/// A KV read with its blocking parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvQuery {
    pub key: String,
    pub read: KvRead,
    pub consistency: Consistency,
    /// `?index=`: block until the result's index exceeds this (0 = do not block).
    pub min_index: u64,
    /// `?wait=` in ms, already clamped and jittered.
    pub wait_ms: u64,
}

/// A read's answer: entries (Get/Recurse) or key names (Keys), and headers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryResult {
    pub entries: Vec<(String, KvEntry)>,
    pub keys: Vec<String>,
    /// `X-Consul-Index` before clamping to ≥ 1.
    pub index: u64,
    pub known_leader: bool,
    /// `X-Consul-LastContact` in ms (0 on the leader).
    pub last_contact_ms: u64,
}

/// Why a read could not be answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum QueryError {
    /// No leader, or leadership could not be confirmed. Consul: 500 "No cluster leader".
    #[error("No cluster leader")]
    NoLeader,
    /// Forwarding to the leader failed.
    #[error("rpc error: {0}")]
    Rpc(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Evaluates `q` once against the local store: (entries, keys, index).
pub fn evaluate(state: &SharedState, q: &KvQuery) -> Result<(Vec<(String, KvEntry)>, Vec<String>, u64), QueryError> {
    let store = state.read().map_err(|e| QueryError::Internal(e.to_string()))?;
    Ok(match &q.read {
        KvRead::Get => {
            let (entry, index) = store.kv.get(&q.key);
            (entry.map(|e| (q.key.clone(), e.clone())).into_iter().collect(), Vec::new(), index)
        }
        KvRead::Recurse => {
            let (entries, index) = store.kv.list(&q.key);
            (entries.into_iter().map(|(k, e)| (k.clone(), e.clone())).collect(), Vec::new(), index)
        }
        KvRead::Keys { separator } => {
            let (keys, index) = store.kv.keys(&q.key, separator.as_deref());
            (Vec::new(), keys, index)
        }
    })
}

/// Evaluates `q`, blocking while its index is ≤ `min_index`, woken only by changes to the key (or
/// prefix) it reads, until `wait_ms` passes.
pub async fn evaluate_blocking(
    state: &SharedState,
    q: &KvQuery,
) -> Result<(Vec<(String, KvEntry)>, Vec<String>, u64), QueryError> {
    if q.min_index == 0 {
        return evaluate(state, q);
    }
    let watch_key = match q.read {
        KvRead::Get => WatchKey::Exact(q.key.clone()),
        KvRead::Recurse | KvRead::Keys { .. } => WatchKey::Prefix(q.key.clone()),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(q.wait_ms);
    loop {
        let notify = state.watches.watch(watch_key.clone());
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let result = evaluate(state, q)?;
        if result.2 > q.min_index {
            return Ok(result);
        }
        // Fault point: a spurious wake-up; the loop must re-check, not return unchanged data early.
        if crate::buggify!() {
            continue;
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => return evaluate(state, q),
        }
    }
}
