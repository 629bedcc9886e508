//! Telemetry: what an operator reads about a running agent — the log policy and the log stream
//! behind `/v1/agent/monitor` ([`logs`]), and per-agent metrics behind `/v1/agent/metrics`
//! ([`metrics`], rendered as Prometheus text or Consul's JSON by [`consul_json`]).
//!
//! Owns: nothing about Raft or the state store; it only counts and formats what the agent reports
//! through one-line hooks. Metrics are per agent (several agents share one process in the
//! simulator), so there is no process-global metrics registry. Logs go through `tracing`, which is
//! process-global by nature; [`logs::hub`] is the one process-wide piece, and only the `concord`
//! binary feeds it.

pub mod consul_json;
pub mod logs;
pub mod metrics;

pub use metrics::Metrics;

/// One agent's telemetry handle, shared by the HTTP layer, the RPC server, the Raft transport and
/// storage through one-line hooks.
#[derive(Default)]
pub struct Telemetry {
    pub metrics: Metrics,
    /// Peer reachability as the Raft transport sees it (operator log lines).
    pub peers: crate::server::events::PeerReachability,
}
