//! Checkers for Concord histories.
//!
//! - [`history`]: the recorded history types (ops, outcomes), shared by simulator and real runs.
//! - [`linearizable`]: per-key linearizability of the KV register (Wing & Gong 1993 / Lowe 2017
//!   search with Porcupine-style memoisation), with shrinking of violations to a minimal failing
//!   sub-history.
pub mod history;
pub mod linearizable;

pub use history::{History, OkResult, Op, OpFn, Outcome, Value};
pub use linearizable::{check_history, check_key, Verdict, Violation};
