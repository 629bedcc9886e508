//! Session shapes (Consul `agent/structs`: `Session`, `SessionRequest`, `SessionSpecificRequest`,
//! `IndexedSessions`).
//!
//! Source: Consul HTTP API, "Sessions" (`website/content/api-docs/session.mdx`) and
//! `agent/session_endpoint.go`. Field names are Consul's JSON names, used both on the wire and in
//! the binary encoding. Indexes are Raft log indexes.

use serde::{Deserialize, Serialize};

use super::query::QueryOptions;

/// Default lock-delay of a new session (Consul: 15 s).
pub const DEFAULT_LOCK_DELAY_MS: u64 = 15_000;
/// Longest lock-delay accepted (Consul's `MaxLockDelay`, 60 s).
pub const MAX_LOCK_DELAY_MS: u64 = 60_000;
/// Shortest and longest session TTL (Consul's `session_ttl_min`, 10 s, and `MaxSessionTTL`, 24 h).
pub const MIN_SESSION_TTL_MS: u64 = 10_000;
pub const MAX_SESSION_TTL_MS: u64 = 86_400_000;
/// The leader invalidates a TTL session this many TTLs after its last create, renew or leader
/// change (Consul's `SessionTTLMultiplier`).
pub const SESSION_TTL_MULTIPLIER: u32 = 2;

/// What happens to a session's locks when it is invalidated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionBehavior {
    /// `release`: the locks are released (the keys stay, with `Session` cleared).
    #[default]
    #[serde(rename = "release")]
    Release,
    /// `delete`: the keys it holds are deleted.
    #[serde(rename = "delete")]
    Delete,
}

impl SessionBehavior {
    /// Parses Consul's spelling; the empty string is `release`. Errors: Consul's
    /// "Invalid Behavior setting '…'".
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "" | "release" => Ok(Self::Release),
            "delete" => Ok(Self::Delete),
            other => Err(format!("Invalid Behavior setting '{other}'")),
        }
    }
}

/// A service check a session is bound to (Consul `structs.ServiceCheck`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceCheck {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(default)]
    pub namespace: String,
}

/// A session (Consul `structs.Session`; `/v1/session/info` rows).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Session {
    /// A UUID, chosen by the server that took the create request.
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    /// The node the session belongs to; deregistering it invalidates the session.
    pub node: String,
    /// Lock-delay in nanoseconds, as Consul prints it (`15000000000` for 15 s).
    pub lock_delay: u64,
    pub behavior: SessionBehavior,
    /// A Go duration (`"30s"`), or empty for no TTL.
    #[serde(rename = "TTL")]
    pub ttl: String,
    /// Node-level check ids; any going critical or away invalidates the session.
    pub node_checks: Vec<String>,
    /// Service checks; any going critical or away invalidates the session.
    pub service_checks: Option<Vec<ServiceCheck>>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Session {
    /// The lock-delay in milliseconds.
    pub fn lock_delay_ms(&self) -> u64 {
        self.lock_delay / 1_000_000
    }

    /// The TTL in milliseconds (`None`: no TTL). Validated at create, so an unparsable TTL in the
    /// store reads as none.
    pub fn ttl_ms(&self) -> Option<u64> {
        if self.ttl.is_empty() {
            return None;
        }
        super::duration::parse_go_duration(&self.ttl).map(|d| d.as_millis() as u64).filter(|ms| *ms > 0)
    }

    /// Every check id the session is bound to on its node (node checks, then service checks).
    pub fn check_ids(&self) -> impl Iterator<Item = &str> {
        let service = self.service_checks.iter().flatten().map(|c| c.id.as_str());
        self.node_checks.iter().map(String::as_str).chain(service)
    }
}

/// A session write verb (Consul `SessionOp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionOp {
    /// `PUT /v1/session/create`.
    Create,
    /// `PUT /v1/session/destroy/<id>`, and every invalidation the leader proposes (TTL expiry).
    Destroy,
}

/// A session write (`Session.Apply`): the whole session on create, its id on destroy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRequest {
    pub op: SessionOp,
    pub session: Session,
}

impl std::fmt::Display for SessionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.op {
            SessionOp::Create => write!(f, "session create {} node={} ttl={:?}", self.session.id, self.session.node, self.session.ttl),
            SessionOp::Destroy => write!(f, "session destroy {}", self.session.id),
        }
    }
}

/// A session read by id or by node (`Session.Get`, `Session.NodeSessions`, `Session.Renew`), or
/// of every session (`Session.List`, with an empty `name`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionQuery {
    /// The session id, the node name, or empty.
    pub name: String,
    pub opts: QueryOptions,
}
