//! Checkers for Concord histories.
//!
//! - [`history`]: the recorded history types (ops, outcomes), shared by simulator and real runs.
//! - [`linearizable`]: per-key linearizability of the KV register (Wing & Gong 1993 / Lowe 2017
//!   search with Porcupine-style memoisation), with shrinking of violations to a minimal failing
//!   sub-history; the search is generic over a [`Model`] (Porcupine's init / step / equal), so a
//!   new data type is checked by implementing it ([`check_model`]).
//! - [`lock`]: the lock model (acquire / release / session invalidation) for that search, with
//!   mutual exclusion and session-TTL safety as part of its linearizability.
//! - [`raft`]: Raft safety invariants (Ongaro & Ousterhout 2014, Figure 3) over the simulator's
//!   trace.
//! - [`oracles`]: targeted history properties (no phantom values, acknowledged writes survive,
//!   monotonic `X-Consul-Index`, a snapshot restore judged against the archive).
//! - [`host_names`]: report text with hosts' addresses and Raft ids replaced by their names.
//! - [`invariant`]: the [`InvariantViolation`] report shared by `raft` and `oracles`.
pub mod history;
pub mod host_names;
pub mod invariant;
pub mod linearizable;
pub mod lock;
pub mod oracles;
pub mod raft;
pub mod session_ttl;

pub use history::{History, IndexObservation, CoordinateRound, KeyringRotation, MembershipRound, OkResult, Op, OpFn, Outcome, ReadMode, SavedSnapshot, Value};
pub use host_names::HostNames;
pub use invariant::InvariantViolation;
pub use linearizable::model::{Model, Operation, Register};
pub use linearizable::{check_history, check_key, check_model, ModelVerdict, Verdict, Violation};
pub use oracles::check_oracles;
pub use raft::{check_raft_trace, trace_events, Record, TraceEvent};
