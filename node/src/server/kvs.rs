//! The KV endpoints (Consul `agent/consul/kvs_endpoint.go`): `KVS.Apply`, `KVS.Get`,
//! `KVS.List`, `KVS.ListKeys`. Each routes through the shared write or read path; the HTTP API
//! calls them directly and other servers reach them over RPC.

use super::Server;
use crate::state::{Table, WatchKey};
use crate::structs::{
    Command, CommandResult, DirEntry, IndexedDirEntries, IndexedKeyList, KeyListRequest, KeyRequest, KvsRequest, QueryError,
    QueryOptions, WriteError,
};

/// RPC method names.
pub const KVS_APPLY: &str = "KVS.Apply";
pub const KVS_GET: &str = "KVS.Get";
pub const KVS_LIST: &str = "KVS.List";
pub const KVS_LIST_KEYS: &str = "KVS.ListKeys";

impl Server {
    /// `KVS.Apply`: a KV write. Returns whether it took effect (`false`: a CAS failed).
    /// The leader answers an acquire of a key under a lock-delay with `false` without proposing it.
    pub async fn kvs_apply(&self, req: KvsRequest, forwarded: bool) -> Result<CommandResult, WriteError> {
        if (forwarded || self.is_leader()) && self.lock_delayed(&req) {
            return Ok(CommandResult::Kvs { ok: false, index: 0 });
        }
        self.apply_write(KVS_APPLY, req, forwarded, Command::kvs).await
    }

    /// A KV write from the HTTP API: in datacenter `dc` when it is another one (forwarded there,
    /// [`super::federation`]), else [`Server::kvs_apply`] here.
    pub async fn kvs_apply_in(&self, opts: &QueryOptions, req: KvsRequest) -> Result<CommandResult, WriteError> {
        self.write_in(opts, KVS_APPLY, req, |req| self.kvs_apply(req, false)).await
    }

    /// `KVS.Get`: one key (an empty list when absent).
    pub async fn kvs_get(&self, req: KeyRequest, forwarded: bool) -> Result<IndexedDirEntries, QueryError> {
        let opts = req.opts.clone();
        self.route_read(KVS_GET, req, &opts, forwarded, |req| async move {
            let watch = WatchKey::Row(Table::Kvs, req.key.clone());
            let (entries, meta) = self
                .blocking_query(&req.opts, watch, |s| {
                    let (e, index) = s.kv_get(&req.key);
                    (e.cloned().into_iter().collect::<Vec<DirEntry>>(), index)
                })
                .await?;
            Ok(IndexedDirEntries { entries, meta })
        })
        .await
    }

    /// `KVS.List`: every entry under a prefix (`?recurse`).
    pub async fn kvs_list(&self, req: KeyListRequest, forwarded: bool) -> Result<IndexedDirEntries, QueryError> {
        let opts = req.opts.clone();
        self.route_read(KVS_LIST, req, &opts, forwarded, |req| async move {
            let watch = WatchKey::Prefix(Table::Kvs, req.prefix.clone());
            let (entries, meta) = self
                .blocking_query(&req.opts, watch, |s| {
                    let (list, index) = s.kv_list(&req.prefix);
                    (list.into_iter().cloned().collect::<Vec<DirEntry>>(), index)
                })
                .await?;
            Ok(IndexedDirEntries { entries, meta })
        })
        .await
    }

    /// `KVS.ListKeys`: key names under a prefix, folded at the separator (`?keys`).
    pub async fn kvs_list_keys(&self, req: KeyListRequest, forwarded: bool) -> Result<IndexedKeyList, QueryError> {
        let opts = req.opts.clone();
        self.route_read(KVS_LIST_KEYS, req, &opts, forwarded, |req| async move {
            let watch = WatchKey::Prefix(Table::Kvs, req.prefix.clone());
            let (keys, meta) =
                self.blocking_query(&req.opts, watch, |s| s.kv_keys(&req.prefix, req.separator.as_deref())).await?;
            Ok(IndexedKeyList { keys, meta })
        })
        .await
    }
}
