//! What Concord reports as its version.
//!
//! Clients gate features on the Consul version an agent reports (`/v1/agent/self`
//! `Config.Version`, `/v1/agent/version`), so that field carries the Consul API level Concord
//! implements, [`CONSUL_API_VERSION`]; Concord's own version and revision are reported beside it
//! (`Stats.build`, `concord version`).

/// The Consul release whose HTTP API, CLI and JSON shapes Concord follows: 1.20 is the release the
/// project's Consul reference was condensed from (`/v1/agent/version` and the `Stats`/`Meta` keys
/// as 1.20 returns them).
pub const CONSUL_API_VERSION: &str = "1.20.0";
/// Concord's own version (the crate version).
pub const CONCORD_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision this binary was built from (see `build.rs`), or "unknown".
pub const REVISION: &str = env!("CONCORD_REVISION");
/// Consul's Raft protocol version reported in `Stats.raft.protocol_version`.
pub const RAFT_PROTOCOL_VERSION: u32 = 3;
