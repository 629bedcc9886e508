//! The snapshot endpoints (Consul `agent/consul/snapshot_endpoint.go`, HTTP "Snapshots"):
//! `Snapshot.Save` builds an archive of the whole state ([`crate::state::archive`]) on the leader
//! (any server with `?stale`); `Snapshot.Restore` verifies an archive and replaces every server's
//! state with it through one Raft entry, so all servers converge on it.
//!
//! Limits: the archive is built while the state lock is held (applies wait for it), and a restore
//! travels as one Raft entry, so archives are bounded by [`MAX_ARCHIVE_BYTES`].

use serde_bytes::ByteBuf;

use super::Server;
use crate::state::archive;
use crate::state::{Table, WatchKey};
use crate::structs::{Command, CommandResult, Indexed, QueryError, QueryOptions, RestoreRequest, WriteError};

pub const SNAPSHOT_SAVE: &str = "Snapshot.Save";
pub const SNAPSHOT_RESTORE: &str = "Snapshot.Restore";

/// Largest archive accepted for restore (it must fit one Raft entry and one RPC frame).
pub const MAX_ARCHIVE_BYTES: usize = 32 << 20;

/// Why a restore failed: the archive was refused (nothing applied), or the write path's error.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl Server {
    /// `Snapshot.Save`: the archive of the state this server may answer with under `opts`'
    /// consistency mode, and its index. Errors: the read path's.
    pub async fn snapshot_save(&self, opts: QueryOptions, forwarded: bool) -> Result<Indexed<ByteBuf>, QueryError> {
        let mode = opts.clone();
        self.route_read(SNAPSHOT_SAVE, opts, &mode, forwarded, |opts| async move {
            let term = self.raft.metrics().borrow().current_term;
            let unix_ms = self.io.clock.wall_now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
            let opts = QueryOptions { min_query_index: 0, ..opts };
            let (built, meta) = self
                .blocking_query(&opts, WatchKey::Table(Table::Kvs), |s| {
                    let index = s.max_index();
                    (archive::save(s, format!("{term}-{index}-{unix_ms}"), term), index)
                })
                .await?;
            let bytes = built.map_err(QueryError::Internal)?;
            Ok(Indexed { value: ByteBuf::from(bytes), meta })
        })
        .await
    }

    /// `PUT /v1/snapshot`: verifies `archive` whole (magic, checksums, every table decodes),
    /// then restores it through Raft. Errors: [`RestoreError::Invalid`] for a refused archive
    /// (400 at the HTTP edge), or the write path's.
    pub async fn snapshot_restore(&self, bytes: &[u8]) -> Result<CommandResult, RestoreError> {
        if bytes.len() > MAX_ARCHIVE_BYTES {
            return Err(RestoreError::Invalid(format!("snapshot archive of {} bytes is over the {MAX_ARCHIVE_BYTES}-byte limit", bytes.len())));
        }
        let (meta, _, sections) = archive::verify(bytes).map_err(|e| RestoreError::Invalid(e.to_string()))?;
        tracing::info!(node = %self.config.node_name, id = %meta.id, index = meta.index, "restoring snapshot");
        let req = RestoreRequest { sections: sections.to_vec() };
        match self.apply_write(SNAPSHOT_RESTORE, req, false, Command::restore).await? {
            CommandResult::Refused { error, .. } => Err(RestoreError::Invalid(error)),
            ok => Ok(ok),
        }
    }
}
