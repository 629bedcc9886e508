//! KV request and result shapes (Consul `agent/structs`: `DirEntry`, `KVSRequest`,
//! `KeyRequest`, `KeyListRequest`, `IndexedDirEntries`, `IndexedKeyList`).

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

use super::query::{QueryMeta, QueryOptions};

/// One KV entry (Consul's `DirEntry`). Indexes are Raft log indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// The key. Keys up to 23 bytes live inside the row with no allocation of their own (most
    /// keys; a server holds one row per key); serialized as a plain string.
    pub key: SmolStr,
    /// Opaque client flags (`?flags=`).
    pub flags: u64,
    /// The value. Shared, not copied, between the store, reads of it and snapshots: a clone is a
    /// reference count (same encoding as `serde_bytes`: msgpack `bin`).
    pub value: bytes::Bytes,
    /// Raft index that created the key.
    pub create_index: u64,
    /// Raft index of the last change; on a CAS request, the expected ModifyIndex.
    pub modify_index: u64,
    /// How many times a session acquired the lock on this key.
    pub lock_index: u64,
    /// Session holding the lock, if any.
    pub session: Option<String>,
}

impl DirEntry {
    /// An entry with `key` and `value` and everything else zero.
    pub fn new(key: impl Into<SmolStr>, value: impl Into<bytes::Bytes>) -> Self {
        Self { key: key.into(), value: value.into(), ..Self::default() }
    }
}

/// A KV write verb (Consul `api.KVOp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvsOp {
    /// `PUT /v1/kv/<key>`.
    Set,
    /// `PUT /v1/kv/<key>?cas=<ModifyIndex>`: only if the key's ModifyIndex matches (0 = absent).
    Cas,
    /// `DELETE /v1/kv/<key>`.
    Delete,
    /// `DELETE /v1/kv/<key>?cas=<ModifyIndex>`.
    DeleteCas,
    /// `DELETE /v1/kv/<prefix>?recurse`.
    DeleteTree,
    /// `PUT /v1/kv/<key>?acquire=<session>`: take the lock if free (LockIndex + 1), or update the
    /// value if this session holds it already.
    Lock,
    /// `PUT /v1/kv/<key>?release=<session>`: free the lock if this session holds it.
    Unlock,
}

impl KvsOp {
    /// Consul's spelling (`set`, `cas`, `delete`, `delete-cas`, `delete-tree`), for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            KvsOp::Set => "set",
            KvsOp::Cas => "cas",
            KvsOp::Delete => "delete",
            KvsOp::DeleteCas => "delete-cas",
            KvsOp::DeleteTree => "delete-tree",
            KvsOp::Lock => "lock",
            KvsOp::Unlock => "unlock",
        }
    }
}

/// A KV write (`KVS.Apply`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvsRequest {
    pub op: KvsOp,
    /// The key (or prefix, for `DeleteTree`), value, flags, and for CAS the expected ModifyIndex.
    pub dir_ent: DirEntry,
}

impl std::fmt::Display for KvsRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.dir_ent;
        match self.op {
            KvsOp::Set => write!(f, "set {} len={} cas=None", e.key, e.value.len()),
            KvsOp::Cas => write!(f, "set {} len={} cas=Some({})", e.key, e.value.len(), e.modify_index),
            KvsOp::Delete => write!(f, "delete {} recurse=false cas=None", e.key),
            KvsOp::DeleteCas => write!(f, "delete {} recurse=false cas=Some({})", e.key, e.modify_index),
            KvsOp::DeleteTree => write!(f, "delete {} recurse=true cas=None", e.key),
            KvsOp::Lock => write!(f, "acquire {} len={} session={}", e.key, e.value.len(), e.session.as_deref().unwrap_or("")),
            KvsOp::Unlock => write!(f, "release {} len={} session={}", e.key, e.value.len(), e.session.as_deref().unwrap_or("")),
        }
    }
}

/// Read one key (`KVS.Get`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRequest {
    pub key: String,
    pub opts: QueryOptions,
}

/// Read a prefix (`KVS.List`: entries; `KVS.ListKeys`: names, folded at `separator`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyListRequest {
    pub prefix: String,
    pub separator: Option<String>,
    pub opts: QueryOptions,
}

/// Entries and the blocking-query metadata (`KVS.Get`, `KVS.List`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedDirEntries {
    pub entries: Vec<DirEntry>,
    pub meta: QueryMeta,
}

/// Key names and the blocking-query metadata (`KVS.ListKeys`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedKeyList {
    pub keys: Vec<String>,
    pub meta: QueryMeta,
}
