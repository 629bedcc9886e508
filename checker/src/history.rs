//! Histories: what clients saw, as Jepsen records it.
//!
//! A history is a list of [`Op`]s. Each op was *invoked* at a (simulated) time and then completed as
//! `Ok` (it happened, with this result), `Fail` (it certainly did not happen) or `Info` (unknown:
//! e.g. a timeout; it may or may not have taken effect, at any time after its invocation).
//! Checkers judge histories only, never node internals, so a history recorded against the real
//! binary can be judged by the same code.
//!
//! The KV register model: every written value is unique per key (the workload guarantees it), so a
//! Consul `?cas=<ModifyIndex>` is recorded as a CAS on the value the client last read at that index
//! (`expect: None` is Consul's `cas=0`, "only if absent").

use serde::{Deserialize, Serialize};

/// A value written to a key. Unique per key across a history.
pub type Value = u64;

/// What the client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpFn {
    /// `GET /v1/kv/<key>` (in a mode the checker treats as linearizable).
    Read,
    /// `PUT /v1/kv/<key>` with the value.
    Write(Value),
    /// `PUT /v1/kv/<key>?cas=<idx>`: succeeds iff the current value is `expect` (`None` = absent).
    Cas { expect: Option<Value>, new: Value },
    /// `DELETE /v1/kv/<key>`.
    Delete,
    /// `DELETE /v1/kv/<key>?cas=<idx>` with the ModifyIndex of the value `expect`: deletes iff the
    /// current value is `expect`; answers `true` also when the key is already absent (Consul's
    /// `kvsDeleteCASTxn`), `false` when another value is there. The result is `OkResult::Cas`.
    DeleteCas { expect: Value },
}

/// What the client saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The op took effect. For reads, the value read (`None` = 404); for CAS, whether it swapped;
    /// writes and deletes carry `OkResult::Done`.
    Ok(OkResult),
    /// The op certainly did not take effect (e.g. rejected before reaching Raft, connection refused).
    Fail,
    /// Unknown: it may have taken effect at any time after invocation (timeouts, dropped replies).
    Info,
}

/// Result carried by an `Ok` outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OkResult {
    /// A read's result: the value, or `None` if the key was absent.
    Read(Option<Value>),
    /// A read that saw the key exist without its value (a `?keys` listing named it). Absent
    /// keys of a listing are recorded as `Read(None)`.
    Present,
    /// A CAS's result: `true` if it swapped.
    Cas(bool),
    /// A write or delete that was acknowledged.
    Done,
}

/// How a read was served (writes are recorded as [`ReadMode::Default`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadMode {
    /// Consul's default mode (the leader, with a lease).
    #[default]
    Default,
    /// `?consistent` (a read-index round on the leader).
    Consistent,
    /// `?stale`: any server's applied state, possibly behind. Not judged as linearizable.
    Stale,
    /// A blocking read, `?index=<index>&wait=<wait_ms>ms` in the default mode: it answers once
    /// the key's index passes `index`, or when the wait runs out.
    Blocking {
        /// The `?index=` sent: the `X-Consul-Index` the client last saw for the key.
        index: u64,
        /// The `?wait=` sent, in milliseconds.
        wait_ms: u64,
        /// When the client saw `index` (the response that carried it arrived), ns since the start.
        index_seen_ns: u64,
    },
}

impl ReadMode {
    /// Whether the linearizability checker judges reads in this mode (every mode but `?stale`).
    pub fn is_linearizable(&self) -> bool {
        !matches!(self, ReadMode::Stale)
    }

    /// The mode as a report shows it: `default`, `consistent`, `stale`, or
    /// `blocking index=<index> wait=<wait_ms>ms`.
    pub fn label(&self) -> String {
        match self {
            ReadMode::Default => "default".to_string(),
            ReadMode::Consistent => "consistent".to_string(),
            ReadMode::Stale => "stale".to_string(),
            ReadMode::Blocking { index, wait_ms, .. } => format!("blocking index={index} wait={wait_ms}ms"),
        }
    }

    /// The query string that selects this mode (`""` for the default).
    pub fn query(&self) -> String {
        match self {
            ReadMode::Default => String::new(),
            ReadMode::Consistent => "?consistent".to_string(),
            ReadMode::Stale => "?stale".to_string(),
            ReadMode::Blocking { index, wait_ms, .. } => format!("?index={index}&wait={wait_ms}ms"),
        }
    }
}

/// One operation: invocation and completion, with simulated times in nanoseconds since the start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the full history (stable identifier for reports).
    pub id: usize,
    /// The client (process) that issued it. A client has at most one op in flight.
    pub client: u32,
    pub key: String,
    pub f: OpFn,
    /// Invocation time, ns since the run started.
    pub invoke_ns: u64,
    /// Completion time, ns; for `Info` ops, the time the client gave up (the op may still take
    /// effect later, so checkers treat `Info` ops as completing at +infinity).
    pub complete_ns: u64,
    pub outcome: Outcome,
    /// The server (host name) the request went to, if recorded.
    #[serde(default)]
    pub server: Option<String>,
    /// How a read was served. Absent from older recorded histories (default mode).
    #[serde(default)]
    pub mode: ReadMode,
}

/// A recorded history: all ops of a run, in invocation order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    pub ops: Vec<Op>,
    /// `X-Consul-Index` values clients saw, in the order they saw them (checked by
    /// [`crate::oracles::index_monotonic`]). Absent from older recorded histories.
    #[serde(default)]
    pub index_observations: Vec<IndexObservation>,
    /// Snapshots clients saved with `GET /v1/snapshot` (judged by
    /// [`crate::oracles::snapshot_restore`]). Absent from older recorded histories.
    #[serde(default)]
    pub snapshots: Vec<SavedSnapshot>,
    /// Rounds of gossip membership observations after the final heal (checked by
    /// [`crate::oracles::membership_converges`]). Absent from older recorded histories.
    #[serde(default)]
    pub membership: Vec<MembershipRound>,
    /// The same rounds for the WAN pool, where a scenario polls both pools (`gossip-keyring`;
    /// `wan-gossip` polls the WAN pool alone, into `membership`). Absent from older histories.
    #[serde(default)]
    pub wan_membership: Vec<MembershipRound>,
    /// How far a gossip key rotation got (`gossip-keyring`). Absent from older recorded histories.
    #[serde(default)]
    pub keyring_rotation: Option<KeyringRotation>,
    /// Rounds of network-coordinate observations after the final heal (checked by
    /// [`crate::oracles::coordinates_reflect_latency`]). Absent from older recorded histories.
    #[serde(default)]
    pub coordinates: Vec<CoordinateRound>,
}

/// One polling round of the stored network coordinates (`/v1/coordinate/nodes`) and of
/// `/v1/catalog/nodes?near=<node>` for every expected node, on a network of two sites.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinateRound {
    /// When the round completed, ns since the run started.
    pub at_ns: u64,
    /// Each expected node's site (0 or 1).
    pub site_of: std::collections::BTreeMap<String, u32>,
    /// Expected nodes the servers held no coordinate for.
    pub missing: Vec<String>,
    /// Estimated round trip between each pair of expected nodes that have coordinates, in µs
    /// (serf's distance between the stored coordinates).
    pub rtt_us: Vec<(String, String, u64)>,
    /// The smallest true round trip across the sites, in µs (twice the slow links' fixed latency).
    pub across_rtt_min_us: u64,
    /// For each expected node, the expected nodes in the order `?near=<node>` listed them.
    pub near: std::collections::BTreeMap<String, Vec<String>>,
}

/// A gossip key rotation (install the new key, use it, remove the old one), as the rotating
/// client confirmed it step by step through `/v1/operator/keyring`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringRotation {
    /// Steps confirmed on every agent, of 3.
    pub steps_done: u32,
    /// When the last step was confirmed, ns since the run started.
    pub done_at_ns: Option<u64>,
}

/// A snapshot a client saved with `GET /v1/snapshot`: the archive's Raft index and what it holds
/// for each workload key, decoded from the archive by the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSnapshot {
    /// The client (process) that saved it.
    pub client: u32,
    /// The archive's index: the Raft index of the newest change it holds.
    pub index: u64,
    /// When the archive arrived, ns since the run started.
    pub at_ns: u64,
    /// Each workload key's value in the archive (`None`: absent).
    pub kv: std::collections::BTreeMap<String, Option<Value>>,
}

/// One polling round of every agent's gossip view and the catalog's `serfHealth` checks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipRound {
    /// When the round completed, ns since the run started.
    pub at_ns: u64,
    /// The agents that should be live members (every one of them should see every one alive).
    pub expected: Vec<String>,
    /// Each agent's `/v1/agent/members` answer: member name → Consul status name (`alive`,
    /// `leaving`, `left`, `failed`). An agent that did not answer is absent.
    pub views: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    /// The catalog's `serfHealth` status per node (`passing`, `critical`), read with
    /// `?consistent`; `None` if no server answered.
    pub serf_health: Option<std::collections::BTreeMap<String, String>>,
    /// IDs of the user events fired after the heal (every agent must come to list them).
    #[serde(default)]
    pub fired_events: Vec<String>,
    /// Each agent's `/v1/event/list` answer: the event IDs it lists. An agent that did not
    /// answer is absent.
    #[serde(default)]
    pub events: std::collections::BTreeMap<String, Vec<String>>,
}

/// One `X-Consul-Index` a client saw in a response (e.g. of a blocking query on `key`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexObservation {
    /// The client (process) that saw it.
    pub client: u32,
    /// The key (or endpoint) queried.
    pub key: String,
    /// The `X-Consul-Index` header value.
    pub index: u64,
    /// When the response arrived, ns since the run started.
    pub at_ns: u64,
    /// The server that answered (for reports, and the unit of monotonicity for `stale`).
    pub server: String,
    /// Whether it answered a `?stale` read: any server may answer one from its own applied state,
    /// so its index may be behind another server's (judged per server; see `index_monotonic`).
    #[serde(default)]
    pub stale: bool,
}

/// The host name of the client that recorded ops as `client`, in the simulator's scheme (see
/// `nemesis::hosts`): workload client `id` ≥ 1 is `w{id}`; 0 is the liveness probe, which records
/// the final reads.
pub fn client_name(client: u32) -> String {
    if client == 0 { "liveness".to_string() } else { format!("w{client}") }
}

impl Op {
    /// The host name of the client that issued this op ([`client_name`]).
    pub fn client_name(&self) -> String {
        client_name(self.client)
    }
}

impl History {
    /// Appends a completed op, assigning its `id`.
    pub fn push(&mut self, mut op: Op) {
        op.id = self.ops.len();
        self.ops.push(op);
    }

    /// Counts of ops by outcome: (ok, fail, info).
    pub fn outcome_counts(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for op in &self.ops {
            match op.outcome {
                Outcome::Ok(_) => counts.0 += 1,
                Outcome::Fail => counts.1 += 1,
                Outcome::Info => counts.2 += 1,
            }
        }
        counts
    }

    /// The distinct keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        let set: std::collections::BTreeSet<&String> = self.ops.iter().map(|o| &o.key).collect();
        set.into_iter().cloned().collect()
    }
}
