//! Snapshot sections: one per table, each a checksummed frame holding the table's rows.
//!
//! A snapshot is the Raft-level header (written by `raft::snapshot_file`) followed by these
//! sections, so a later `concord snapshot inspect` can list tables and row counts without decoding
//! rows, and a table added later is one more section. Encoding works on a consistent copy of the
//! [`Store`] (cloned under the apply lock, encoded outside it); decoding builds a fresh store that
//! the caller swaps in whole.

use serde::{Deserialize, Serialize};

use super::graveyard::Graveyard;
use super::store::Store;
use super::watch::Table;
use crate::codec::{decode, encode, frame_into, unframe, CodecError};
use crate::structs::{CoordinateEntry, DirEntry, HealthCheck, Node, NodeService, Session};

/// Why snapshot sections could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot section {offset}: {source}")]
    Frame { offset: usize, source: crate::codec::FrameError },
    #[error("snapshot section {table:?}: {source}")]
    Codec { table: String, source: CodecError },
    #[error("snapshot has a table {0:?} this server does not know; upgrade it")]
    UnknownTable(String),
}

/// One section: a table's name and its encoded rows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Section {
    pub table: String,
    /// Row count, readable without decoding the rows.
    pub rows: u64,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// [`Section`] borrowing its rows: the same encoding, without copying a table's encoded rows
/// into an owned section first.
#[derive(Serialize)]
struct SectionRef<'a> {
    table: &'a str,
    rows: u64,
    #[serde(with = "serde_bytes")]
    data: &'a [u8],
}

#[derive(Serialize, Deserialize)]
struct TombstoneRows {
    tombstones: Vec<(String, u64)>,
    reaped_max: u64,
}

const INDEX_SECTION: &str = "index";
/// Fine-grained scope indexes (`(table, key, index)` rows; see `Store::scope_index`).
const SCOPE_INDEX_SECTION: &str = "scope-index";

fn codec(table: &str) -> impl Fn(CodecError) -> SnapshotError + '_ {
    move |source| SnapshotError::Codec { table: table.to_string(), source }
}

/// Encodes every table as framed sections, in a fixed order. Errors: a row fails to encode.
///
/// Memory: rows are encoded table by table straight into the output; at most one table's
/// encoded rows and its encoded section exist beside the output (the KV values are encoded from
/// the store's shared bytes, never copied first).
pub fn encode_sections(store: &Store) -> Result<Vec<u8>, SnapshotError> {
    let mut out = Vec::new();
    let mut section = |table: &str, rows: usize, data: Result<Vec<u8>, CodecError>| -> Result<(), SnapshotError> {
        let data = data.map_err(codec(table))?;
        let encoded = encode(&SectionRef { table, rows: rows as u64, data: &data }).map_err(codec(table))?;
        drop(data);
        frame_into(&mut out, &encoded);
        Ok(())
    };
    let kvs: Vec<&DirEntry> = store.kvs.values().collect();
    section(Table::Kvs.name(), kvs.len(), encode(&kvs))?;
    drop(kvs);
    let tombs = TombstoneRows {
        tombstones: store.graveyard.tombstones.iter().map(|(k, i)| (k.clone(), *i)).collect(),
        reaped_max: store.graveyard.reaped_max,
    };
    section(Table::Tombstones.name(), tombs.tombstones.len(), encode(&tombs))?;
    let index: Vec<(&str, u64)> = store.indexes.iter().map(|(t, i)| (t.name(), *i)).collect();
    section(INDEX_SECTION, index.len(), encode(&index))?;
    let nodes: Vec<&Node> = store.nodes.values().collect();
    section(Table::Nodes.name(), nodes.len(), encode(&nodes))?;
    // Service and check rows carry their node; the key's id is the row's own id.
    let services: Vec<(&str, &NodeService)> = store.services.iter().map(|((n, _), s)| (n.as_str(), s)).collect();
    section(Table::Services.name(), services.len(), encode(&services))?;
    let checks: Vec<&HealthCheck> = store.checks.values().collect();
    section(Table::Checks.name(), checks.len(), encode(&checks))?;
    let scopes: Vec<(&str, &str, u64)> = store.scope_indexes.iter().map(|((t, k), i)| (t.name(), k.as_str(), *i)).collect();
    section(SCOPE_INDEX_SECTION, scopes.len(), encode(&scopes))?;
    let sessions: Vec<&Session> = store.sessions.values().collect();
    section(Table::Sessions.name(), sessions.len(), encode(&sessions))?;
    let coordinates: Vec<&CoordinateEntry> = store.coordinates.values().collect();
    section(Table::Coordinates.name(), coordinates.len(), encode(&coordinates))?;
    Ok(out)
}

/// Reads the section headers (table and row count) without decoding rows.
pub fn list_sections(bytes: &[u8]) -> Result<Vec<Section>, SnapshotError> {
    let mut offset = 0;
    let mut out = Vec::new();
    while offset < bytes.len() {
        let (payload, next) = unframe(bytes, offset).map_err(|source| SnapshotError::Frame { offset, source })?;
        out.push(decode::<Section>(payload).map_err(codec("section header"))?);
        offset = next;
    }
    Ok(out)
}

/// Decodes framed sections into a fresh store. Errors: a bad frame, an undecodable table, or a
/// table this build does not know (never silently dropped).
pub fn decode_sections(bytes: &[u8]) -> Result<Store, SnapshotError> {
    let mut store = Store::new();
    for s in list_sections(bytes)? {
        match s.table.as_str() {
            "kvs" => {
                let rows: Vec<DirEntry> = decode(&s.data).map_err(codec("kvs"))?;
                store.kvs = rows.into_iter().collect();
            }
            "tombstones" => {
                let rows: TombstoneRows = decode(&s.data).map_err(codec("tombstones"))?;
                store.graveyard = Graveyard { tombstones: rows.tombstones.into_iter().collect(), reaped_max: rows.reaped_max };
            }
            INDEX_SECTION => {
                let rows: Vec<(String, u64)> = decode(&s.data).map_err(codec(INDEX_SECTION))?;
                for (name, i) in rows {
                    let table = Table::from_name(&name).ok_or(SnapshotError::UnknownTable(name))?;
                    store.indexes.insert(table, i);
                }
            }
            "nodes" => {
                let rows: Vec<Node> = decode(&s.data).map_err(codec("nodes"))?;
                store.nodes = rows.into_iter().map(|n| (n.node.clone(), n)).collect();
            }
            "services" => {
                let rows: Vec<(String, NodeService)> = decode(&s.data).map_err(codec("services"))?;
                for (n, s) in rows {
                    store.put_service_row(&(n, s.id.clone()), Some(s));
                }
            }
            "checks" => {
                let rows: Vec<HealthCheck> = decode(&s.data).map_err(codec("checks"))?;
                store.checks = rows.into_iter().map(|c| ((c.node.clone(), c.check_id.clone()), c)).collect();
            }
            SCOPE_INDEX_SECTION => {
                let rows: Vec<(String, String, u64)> = decode(&s.data).map_err(codec(SCOPE_INDEX_SECTION))?;
                for (name, key, i) in rows {
                    let table = Table::from_name(&name).ok_or(SnapshotError::UnknownTable(name))?;
                    store.scope_indexes.insert((table, key), i);
                }
            }
            "sessions" => {
                let rows: Vec<Session> = decode(&s.data).map_err(codec("sessions"))?;
                store.sessions = rows.into_iter().map(|r| (r.id.clone(), r)).collect();
            }
            "coordinates" => {
                let rows: Vec<CoordinateEntry> = decode(&s.data).map_err(codec("coordinates"))?;
                store.coordinates = rows.into_iter().map(|r| (r.node.clone(), r)).collect();
            }
            other => return Err(SnapshotError::UnknownTable(other.to_string())),
        }
    }
    store.rebuild_session_locks();
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{DeregisterRequest, HealthStatus, KvsOp, KvsRequest, Request, TombstoneReapRequest};
    use proptest::prelude::*;

    fn op_strategy() -> impl Strategy<Value = Request> {
        let key = prop::sample::select(vec!["a", "a/b", "a/c", "b", "c/d/e"]);
        let node = prop::sample::select(vec!["n1", "n2"]);
        let svc = prop::sample::select(vec!["s1", "s2"]);
        prop_oneof![
            (key.clone(), prop::collection::vec(any::<u8>(), 0..8), any::<u64>()).prop_map(|(k, v, f)| Request::Kvs(
                KvsRequest { op: KvsOp::Set, dir_ent: DirEntry { flags: f, ..DirEntry::new(k, v) } }
            )),
            (key.clone(), 0u64..20).prop_map(|(k, c)| Request::Kvs(KvsRequest {
                op: KvsOp::Cas,
                dir_ent: DirEntry { modify_index: c, ..DirEntry::new(k, b"x".to_vec()) }
            })),
            key.clone().prop_map(|k| Request::Kvs(KvsRequest { op: KvsOp::Delete, dir_ent: DirEntry::new(k, bytes::Bytes::new()) })),
            key.prop_map(|k| Request::Kvs(KvsRequest { op: KvsOp::DeleteTree, dir_ent: DirEntry::new(k, bytes::Bytes::new()) })),
            (0u64..20).prop_map(|i| Request::TombstoneReap(TombstoneReapRequest { reap_index: i })),
            (node.clone(), svc.clone(), any::<bool>()).prop_map(|(n, s, passing)| {
                let status = if passing { HealthStatus::Passing } else { HealthStatus::Critical };
                crate::state::catalog::tests::register(n, Some((s, "web")), &[("c", s, status), ("serfHealth", "", status)])
            }),
            (node, svc).prop_map(|(n, s)| Request::Deregister(DeregisterRequest { node: n.into(), service_id: s.into(), ..Default::default() })),
        ]
    }

    proptest! {
        /// A snapshot restores exactly: every table, every index, every tombstone.
        #[test]
        fn snapshot_restores_exactly(ops in prop::collection::vec(op_strategy(), 0..40)) {
            let mut store = Store::new();
            for (i, op) in ops.iter().enumerate() {
                store.apply(i as u64 + 1, op);
            }
            let bytes = encode_sections(&store).unwrap();
            let back = decode_sections(&bytes).unwrap();
            prop_assert_eq!(&back, &store);
            let sizes: Vec<u64> = list_sections(&bytes).unwrap().iter().map(|s| s.rows).collect();
            prop_assert_eq!(sizes[0], store.kv_len() as u64);
        }
    }

    /// Snapshots written before [`SectionRef`] existed must still decode: the borrowed section
    /// encodes exactly as the owned [`Section`] it replaced on the write side.
    #[test]
    fn a_borrowed_section_encodes_as_the_owned_one() {
        let owned = Section { table: "kvs".into(), rows: 2, data: vec![1, 2, 3] };
        let borrowed = SectionRef { table: "kvs", rows: 2, data: &[1, 2, 3] };
        assert_eq!(encode(&owned).unwrap(), encode(&borrowed).unwrap());
    }

    #[test]
    fn corrupted_or_unknown_sections_are_refused() {
        let mut store = Store::new();
        store.apply(1, &Request::Kvs(KvsRequest { op: KvsOp::Set, dir_ent: DirEntry::new("k", b"v".to_vec()) }));
        let mut bytes = encode_sections(&store).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(decode_sections(&bytes).is_err());
        let alien = Section { table: "prepared-queries".into(), rows: 0, data: vec![] };
        let bytes = crate::codec::frame(&encode(&alien).unwrap());
        assert!(matches!(decode_sections(&bytes), Err(SnapshotError::UnknownTable(t)) if t == "prepared-queries"));
    }
}
