//! Raft commands: a message type, a format version and an encoded body.
//!
//! Source: Consul `agent/structs/structs.go` (`MessageType`, `IgnoreUnknownTypeFlag`) and
//! `agent/consul/fsm/fsm.go` (one apply function per type; an unknown type halts the server
//! unless it carries the ignore flag). The body is encoded once, with [`crate::codec::encode`],
//! when the command is built; the log, snapshots and RPC carry the bytes as they are.
//!
//! A command is decided entirely by the state it is applied to, so every server computes the same
//! result for the same log index: a CAS that fails on one server fails on all.

use serde::{Deserialize, Serialize};

use super::catalog::{DeregisterRequest, RegisterRequest};
use super::kvs::KvsRequest;
use super::session::SessionRequest;
use super::txn::{TxnError, TxnRequest, TxnResult};
use crate::codec::{decode, encode, CodecError};

/// A Raft message type (Consul's numbering where Consul has the type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageType(pub u8);

impl MessageType {
    /// `RegisterRequestType`: a catalog registration (Consul: 0).
    pub const REGISTER: Self = Self(0);
    /// `DeregisterRequestType`: a catalog deregistration (Consul: 1).
    pub const DEREGISTER: Self = Self(1);
    /// `KVSRequestType`: a KV write (Consul: 2).
    pub const KVS: Self = Self(2);
    /// `SessionRequestType`: a session create or destroy (Consul: 3).
    pub const SESSION: Self = Self(3);
    /// Concord's own: replace the whole state with a snapshot archive's (`PUT /v1/snapshot`;
    /// Consul restores outside the log). Not ignorable: a server that skipped it would diverge.
    pub const RESTORE: Self = Self(100);
    /// `TombstoneRequestType`: reap KV tombstones (Consul: 5).
    pub const TOMBSTONE: Self = Self(5);
    /// `CoordinateBatchUpdateType` (Consul: 6), always sent with the ignore flag as Consul does:
    /// a server that does not know coordinates may skip them.
    pub const COORDINATE_BATCH_UPDATE: Self = Self(6 | Self::IGNORE_UNKNOWN_FLAG);
    /// `TxnRequestType`: a transaction of several operations (Consul: 8).
    pub const TXN: Self = Self(8);
    /// Concord's own: several independent writes group-committed in one entry
    /// ([`BatchRequest`], built by `server::group_commit`). Not ignorable: every write in it
    /// must apply on every server.
    pub const BATCH: Self = Self(101);
    /// High bit: a server that does not know the type skips the entry instead of halting
    /// (Consul's `IgnoreUnknownTypeFlag`, 128).
    pub const IGNORE_UNKNOWN_FLAG: u8 = 128;

    /// The type without the ignore flag.
    pub fn base(self) -> u8 {
        self.0 & !Self::IGNORE_UNKNOWN_FLAG
    }
    /// Whether an unknown type may be skipped.
    pub fn ignorable(self) -> bool {
        self.0 & Self::IGNORE_UNKNOWN_FLAG != 0
    }
}

/// The newest body version this build writes and reads, per message type.
pub const COMMAND_VERSION: u8 = 1;

/// A replicated write as it sits in the Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub msg_type: MessageType,
    /// Body format version ([`COMMAND_VERSION`] today).
    pub version: u8,
    /// The request, encoded with [`crate::codec::encode`].
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// `TombstoneRequest`: forget KV tombstones at or below a Raft index. Issued by the leader once
/// they are older than the tombstone TTL (Consul's `TombstoneGC`, 15 min by default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TombstoneReapRequest {
    /// Reap tombstones whose delete index is ≤ this Raft index.
    pub reap_index: u64,
}

/// `RESTORE`: the state sections of a verified snapshot archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRequest {
    #[serde(with = "serde_bytes")]
    pub sections: Vec<u8>,
}

/// `BATCH`: independent writes that share one log entry, applied in order at its index, each
/// with its own result ([`CommandResult::Batch`]). Never nested, never holds a `RESTORE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest {
    pub commands: Vec<Command>,
}

/// A decoded command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Register(RegisterRequest),
    Deregister(DeregisterRequest),
    Kvs(KvsRequest),
    Session(SessionRequest),
    TombstoneReap(TombstoneReapRequest),
    Txn(TxnRequest),
    Restore(RestoreRequest),
    Batch(BatchRequest),
    /// Node coordinates to store (Consul `structs.Coordinates`).
    CoordinateBatchUpdate(Vec<super::CoordinateEntry>),
    /// A type this build does not know but that is flagged ignorable: applied as a no-op.
    Ignored(MessageType),
}

/// Why a log entry cannot be applied. Every server reaches the same verdict for the same entry,
/// so the state machine stops (as Consul's FSM panics) rather than let servers diverge.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown raft message type {0} without the ignore flag: this server is older than the one that wrote the entry; upgrade it")]
    UnknownType(u8),
    #[error("raft message type {msg_type} has body version {version}, newer than {COMMAND_VERSION} this server reads; upgrade it")]
    NewerVersion { msg_type: u8, version: u8 },
    #[error("raft message type {msg_type}: undecodable body: {reason}")]
    Body { msg_type: u8, reason: String },
}

impl Command {
    fn build<T: Serialize>(msg_type: MessageType, body: &T) -> Result<Self, CodecError> {
        Ok(Self { msg_type, version: COMMAND_VERSION, body: encode(body)? })
    }
    /// A KV write. Errors: the request cannot be encoded.
    pub fn kvs(req: &KvsRequest) -> Result<Self, CodecError> {
        Self::build(MessageType::KVS, req)
    }
    /// A catalog registration. Errors: the request cannot be encoded.
    pub fn register(req: &RegisterRequest) -> Result<Self, CodecError> {
        Self::build(MessageType::REGISTER, req)
    }
    /// A catalog deregistration. Errors: the request cannot be encoded.
    pub fn deregister(req: &DeregisterRequest) -> Result<Self, CodecError> {
        Self::build(MessageType::DEREGISTER, req)
    }
    /// A session create or destroy. Errors: the request cannot be encoded.
    pub fn session(req: &SessionRequest) -> Result<Self, CodecError> {
        Self::build(MessageType::SESSION, req)
    }
    /// A snapshot restore. Errors: the request cannot be encoded.
    pub fn restore(req: &RestoreRequest) -> Result<Self, CodecError> {
        Self::build(MessageType::RESTORE, req)
    }
    /// A tombstone reap. Errors: the request cannot be encoded.
    pub fn tombstone_reap(req: &TombstoneReapRequest) -> Result<Self, CodecError> {
        Self::build(MessageType::TOMBSTONE, req)
    }

    /// A transaction. Errors: the request cannot be encoded.
    pub fn txn(req: &TxnRequest) -> Result<Self, CodecError> {
        Self::build(MessageType::TXN, req)
    }

    /// Several writes in one entry. Errors: the request cannot be encoded.
    pub fn batch(req: &BatchRequest) -> Result<Self, CodecError> {
        Self::build(MessageType::BATCH, req)
    }

    /// A batch of node coordinates. Errors: the request cannot be encoded.
    pub fn coordinate_batch_update(req: &Vec<super::CoordinateEntry>) -> Result<Self, CodecError> {
        Self::build(MessageType::COORDINATE_BATCH_UPDATE, req)
    }

    /// Decodes the body by type. Errors: see [`CommandError`].
    pub fn decode(&self) -> Result<Request, CommandError> {
        let t = self.msg_type;
        let known = matches!(t.base(), 0 | 1 | 2 | 3 | 5 | 6 | 8 | 100 | 101);
        if !known {
            return if t.ignorable() { Ok(Request::Ignored(t)) } else { Err(CommandError::UnknownType(t.0)) };
        }
        if self.version > COMMAND_VERSION {
            return Err(CommandError::NewerVersion { msg_type: t.0, version: self.version });
        }
        let body_err = |e: CodecError| CommandError::Body { msg_type: t.0, reason: e.to_string() };
        match t.base() {
            0 => Ok(Request::Register(decode(&self.body).map_err(body_err)?)),
            1 => Ok(Request::Deregister(decode(&self.body).map_err(body_err)?)),
            2 => Ok(Request::Kvs(decode(&self.body).map_err(body_err)?)),
            3 => Ok(Request::Session(decode(&self.body).map_err(body_err)?)),
            6 => Ok(Request::CoordinateBatchUpdate(decode(&self.body).map_err(body_err)?)),
            8 => Ok(Request::Txn(decode(&self.body).map_err(body_err)?)),
            100 => Ok(Request::Restore(decode(&self.body).map_err(body_err)?)),
            101 => Ok(Request::Batch(decode(&self.body).map_err(body_err)?)),
            _ => Ok(Request::TombstoneReap(decode(&self.body).map_err(body_err)?)),
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.decode() {
            Ok(Request::Kvs(r)) => write!(f, "{r}"),
            Ok(Request::Register(r)) => {
                write!(f, "register node {}", r.node)?;
                if let Some(s) = &r.service {
                    write!(f, " service {}", s.id)?;
                }
                for c in &r.checks {
                    write!(f, " check {}={}", c.check_id, c.status.as_str())?;
                }
                Ok(())
            }
            Ok(Request::Deregister(r)) => match (r.service_id.as_str(), r.check_id.as_str()) {
                ("", "") => write!(f, "deregister node {}", r.node),
                ("", c) => write!(f, "deregister check {c} on {}", r.node),
                (s, _) => write!(f, "deregister service {s} on {}", r.node),
            },
            Ok(Request::Session(r)) => write!(f, "{r}"),
            Ok(Request::Restore(r)) => write!(f, "restore snapshot ({} bytes)", r.sections.len()),
            Ok(Request::TombstoneReap(r)) => write!(f, "reap tombstones <= {}", r.reap_index),
            Ok(Request::Txn(r)) => write!(f, "{r}"),
            Ok(Request::Batch(b)) => {
                write!(f, "batch[")?;
                for (i, c) in b.commands.iter().enumerate() {
                    write!(f, "{}{c}", if i == 0 { "" } else { "; " })?;
                }
                write!(f, "]")
            }
            Ok(Request::CoordinateBatchUpdate(r)) => write!(f, "update {} coordinates", r.len()),
            Ok(Request::Ignored(t)) => write!(f, "ignored type {}", t.0),
            Err(e) => write!(f, "undecodable: {e}"),
        }
    }
}

/// The outcome of applying one log entry, by command kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// A KV write: Consul answers with a bare `true`/`false` (`false` when a CAS failed and the
    /// write changed nothing).
    Kvs { ok: bool, index: u64 },
    /// A catalog write: `error` is why it was refused as a whole (e.g. a check for a service the
    /// node does not have: Consul's "Missing service registration"); nothing changed then.
    Catalog { error: Option<String>, index: u64 },
    /// A session created (`id`) or destroyed.
    Session { id: String, index: u64 },
    /// Refused by the state store as a whole; nothing changed (Consul's FSM error, answered with
    /// 500 and the text: "Missing node registration" on a session create, "invalid session" on a
    /// lock).
    Refused { error: String, index: u64 },
    /// Tombstones reaped.
    TombstoneReap { reaped: u64, index: u64 },
    /// A transaction (Consul `TxnResponse`): the results when every operation succeeded (then
    /// `errors` is empty and everything was applied), else every operation's error and nothing
    /// applied (`results` is empty).
    Txn { results: Vec<TxnResult>, errors: Vec<TxnError>, index: u64 },
    /// A group-committed entry ([`BatchRequest`]): each write's own result, in order.
    Batch { results: Vec<CommandResult>, index: u64 },
    /// A blank or membership entry, or an ignorable unknown type: nothing changed.
    None { index: u64 },
}

impl Default for CommandResult {
    fn default() -> Self {
        CommandResult::None { index: 0 }
    }
}

impl CommandResult {
    /// The Raft log index the entry was applied at.
    pub fn index(&self) -> u64 {
        match self {
            CommandResult::Kvs { index, .. }
            | CommandResult::Catalog { index, .. }
            | CommandResult::Session { index, .. }
            | CommandResult::Refused { index, .. }
            | CommandResult::TombstoneReap { index, .. }
            | CommandResult::Txn { index, .. }
            | CommandResult::Batch { index, .. }
            | CommandResult::None { index } => *index,
        }
    }
    /// Whether the write took effect (a failed CAS is `false`).
    pub fn ok(&self) -> bool {
        match self {
            CommandResult::Kvs { ok, .. } => *ok,
            CommandResult::Catalog { error, .. } => error.is_none(),
            CommandResult::Refused { .. } => false,
            CommandResult::Txn { errors, .. } => errors.is_empty(),
            CommandResult::Batch { results, .. } => results.iter().all(CommandResult::ok),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::kvs::{DirEntry, KvsOp};

    #[test]
    fn unknown_type_halts_unless_flagged_ignorable() {
        let cmd = Command { msg_type: MessageType(77), version: 1, body: vec![] };
        assert_eq!(cmd.decode(), Err(CommandError::UnknownType(77)));
        let ignorable = Command { msg_type: MessageType(77 | MessageType::IGNORE_UNKNOWN_FLAG), version: 1, body: vec![] };
        assert!(matches!(ignorable.decode(), Ok(Request::Ignored(_))));
    }

    #[test]
    fn newer_body_version_is_refused_and_current_round_trips() {
        let req = KvsRequest { op: KvsOp::Set, dir_ent: DirEntry::new("a", b"v".to_vec()) };
        let mut cmd = Command::kvs(&req).unwrap();
        assert_eq!(cmd.decode(), Ok(Request::Kvs(req)));
        cmd.version = COMMAND_VERSION + 1;
        assert!(matches!(cmd.decode(), Err(CommandError::NewerVersion { .. })));
    }

    #[test]
    fn txn_is_consuls_type_8_and_round_trips() {
        use crate::structs::{TxnKvOp, TxnKvVerb, TxnOp, TxnRequest};
        let req = TxnRequest { ops: vec![TxnOp::Kv(TxnKvOp { verb: TxnKvVerb::CheckIndex, dir_ent: DirEntry::new("a", bytes::Bytes::new()) })] };
        let cmd = Command::txn(&req).unwrap();
        assert_eq!(cmd.msg_type.0, 8);
        assert_eq!(cmd.to_string(), "txn check-index:a");
        assert_eq!(cmd.decode(), Ok(Request::Txn(req)));
    }
}
