//! Snapshot archives: the whole state store as `GET /v1/snapshot` saves it and
//! `PUT /v1/snapshot` restores it (Consul HTTP API, "Snapshots"; `consul snapshot save|restore|
//! inspect`).
//!
//! Layout: the magic line [`MAGIC`], then two checksummed frames ([`crate::codec::frame`]): the
//! metadata ([`ArchiveMeta`]: ID, Raft index and term, format version, per-table row counts and
//! sizes) and the store's snapshot sections ([`super::snapshot`]). A truncated or tampered
//! archive fails a frame checksum or its section decoding and is refused whole: nothing is
//! applied. Consul's archive is a gzipped tar of its own format; this one is Concord's, so a
//! Consul archive is refused with a clear error.

use serde::{Deserialize, Serialize};

use super::snapshot::{decode_sections, encode_sections, list_sections};
use super::Store;
use crate::codec::{decode, encode, frame, unframe};

/// The first bytes of every archive.
pub const MAGIC: &[u8] = b"CONCORD-SNAPSHOT\n";
/// The archive format this build writes and reads.
pub const ARCHIVE_VERSION: u32 = 1;

/// What an archive says about itself (printed by `concord snapshot inspect`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveMeta {
    /// `<term>-<index>-<unix ms>`, as Consul's snapshot IDs.
    pub id: String,
    /// The Raft index of the newest change in the saved state.
    pub index: u64,
    /// The leader's term when it was saved.
    pub term: u64,
    pub version: u32,
    /// Per table: (name, rows, encoded bytes).
    pub tables: Vec<(String, u64, u64)>,
    /// Bytes of the state sections.
    pub size: u64,
}

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a Concord snapshot archive (bad magic; a Consul archive is not readable here)")]
    Magic,
    #[error("snapshot archive is truncated or corrupt: {0}")]
    Corrupt(String),
    #[error("snapshot archive version {0} is newer than {ARCHIVE_VERSION}, which this build reads")]
    Version(u32),
}

/// Builds an archive of `store`. Errors: a row fails to encode (as text).
pub fn save(store: &Store, id: String, term: u64) -> Result<Vec<u8>, String> {
    let sections = encode_sections(store).map_err(|e| e.to_string())?;
    let tables = list_sections(&sections)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|s| (s.table, s.rows, s.data.len() as u64))
        .collect();
    let meta = ArchiveMeta { id, index: store.max_index(), term, version: ARCHIVE_VERSION, tables, size: sections.len() as u64 };
    let mut out = MAGIC.to_vec();
    out.extend(frame(&encode(&meta).map_err(|e| e.to_string())?));
    out.extend(frame(&sections));
    Ok(out)
}

/// Reads an archive's metadata and its state sections (undecoded). Errors: see
/// [`ArchiveError`].
pub fn open(bytes: &[u8]) -> Result<(ArchiveMeta, &[u8]), ArchiveError> {
    let body = bytes.strip_prefix(MAGIC).ok_or(ArchiveError::Magic)?;
    let corrupt = |e: &dyn std::fmt::Display| ArchiveError::Corrupt(e.to_string());
    let (meta_bytes, next) = unframe(body, 0).map_err(|e| corrupt(&e))?;
    let meta: ArchiveMeta = decode(meta_bytes).map_err(|e| corrupt(&e))?;
    if meta.version > ARCHIVE_VERSION {
        return Err(ArchiveError::Version(meta.version));
    }
    let (sections, end) = unframe(body, next).map_err(|e| corrupt(&e))?;
    if end != body.len() {
        return Err(ArchiveError::Corrupt(format!("{} trailing bytes", body.len() - end)));
    }
    Ok((meta, sections))
}

/// Opens an archive and decodes its state, proving it restorable. Returns the metadata, the
/// decoded state and the state sections as they are (what a restore carries). Errors: see
/// [`ArchiveError`].
pub fn verify(bytes: &[u8]) -> Result<(ArchiveMeta, Store, &[u8]), ArchiveError> {
    let (meta, sections) = open(bytes)?;
    let store = decode_sections(sections).map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    Ok((meta, store, sections))
}

impl Store {
    /// The store a restore at Raft index `index` installs: `restored`, with every table and
    /// scope index moved to `index`, so blocking queries wake and no index the store reports
    /// later is behind one it reported before (an archive from a longer history is clamped the
    /// same way; rows keep their own indexes).
    pub fn restored_at(mut restored: Store, index: u64) -> Store {
        for (table, _) in restored.table_sizes() {
            restored.indexes.insert(table, index);
        }
        for i in restored.scope_indexes.values_mut() {
            *i = index;
        }
        restored
    }
}

impl Store {
    /// Deliberate bug `restore_keeps_old_keys` (see `BugSwitches`): applies `req` like
    /// [`Store::apply_full`], then, if it restored an archive, puts back every KV row the archive
    /// does not hold (a merge instead of a replace).
    pub fn apply_restore_keeping_old_keys(&mut self, index: u64, req: &crate::structs::Request) -> super::ApplyOutcome {
        let before: Vec<crate::structs::DirEntry> = self.kvs.values().cloned().collect();
        let out = self.apply_full(index, req);
        if out.restored {
            for row in before.into_iter().filter(|r| r.session.is_none()) {
                if !self.kvs.contains_key(&row.key) {
                    self.put_kv_row(&row.key.clone(), Some(row));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{DirEntry, KvsOp, KvsRequest, Request};

    fn store() -> Store {
        let mut s = Store::new();
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            s.apply(i as u64 + 1, &Request::Kvs(KvsRequest { op: KvsOp::Set, dir_ent: DirEntry::new(*k, b"v".to_vec()) }));
        }
        s
    }

    #[test]
    fn an_archive_round_trips_and_names_its_tables() {
        let bytes = save(&store(), "1-3-0".into(), 1).expect("saves");
        let (meta, restored, _) = verify(&bytes).expect("opens");
        assert_eq!((meta.index, meta.term, meta.version), (3, 1, ARCHIVE_VERSION));
        assert!(meta.tables.iter().any(|(t, rows, _)| t == "kvs" && *rows == 3));
        assert_eq!(restored, store());
    }

    #[test]
    fn truncated_tampered_or_foreign_archives_are_refused() {
        let bytes = save(&store(), "1-3-0".into(), 1).expect("saves");
        assert!(matches!(verify(&bytes[..bytes.len() - 1]), Err(ArchiveError::Corrupt(_))));
        let mut tampered = bytes.clone();
        let last = tampered.len() - 2;
        tampered[last] ^= 0x40;
        assert!(matches!(verify(&tampered), Err(ArchiveError::Corrupt(_))));
        assert!(matches!(verify(b"\x1f\x8b gzip"), Err(ArchiveError::Magic)));
        let mut longer = bytes;
        longer.push(0);
        assert!(matches!(verify(&longer), Err(ArchiveError::Corrupt(_))));
    }

    #[test]
    fn the_deliberate_merging_restore_keeps_rows_the_archive_lacks() {
        use crate::structs::{Request, RestoreRequest};
        let sections = crate::state::snapshot::encode_sections(&store()).expect("encodes");
        let req = Request::Restore(RestoreRequest { sections });
        let with_d = |s: &mut Store| s.apply(4, &Request::Kvs(KvsRequest { op: KvsOp::Set, dir_ent: DirEntry::new("d", b"v".to_vec()) }));
        let mut replaced = store();
        with_d(&mut replaced);
        replaced.apply(5, &req);
        assert!(replaced.kv_get("d").0.is_none(), "a restore replaces the state");
        let mut merged = store();
        with_d(&mut merged);
        merged.apply_restore_keeping_old_keys(5, &req);
        assert!(merged.kv_get("d").0.is_some(), "the bug keeps it");
    }

    #[test]
    fn a_restore_moves_every_index_to_the_restore_entry() {
        let restored = Store::restored_at(store(), 10);
        assert_eq!(restored.max_index(), 10);
        assert_eq!(restored.kv_get("a").0.map(|e| e.modify_index), Some(1), "rows keep their indexes");
    }
}
