//! Anti-entropy's schedule (Consul `agent/ae.StateSyncer`): a full sync at start, a sync at
//! once after every local change, a full sync every [`FULL_SYNC_INTERVAL`] (scaled with the
//! cluster's size and staggered with the seeded RNG so agents do not sync in lockstep), and on
//! failure a full sync again after a jittered, doubling backoff.
//!
//! Source: Consul "Anti-Entropy" docs ("the agent syncs every minute for clusters up to 128
//! nodes, and the interval grows with the cluster") and `agent/ae/ae.go` (`scaleFactor`,
//! `staggerFn`, `retryFailIntv`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::sync::{self, CatalogPort, CatalogView, LocalView, SyncMode};
use super::Local;
use crate::server::Server;
use crate::structs::{CatalogQuery, DeregisterRequest, HealthCheck, QueryOptions, RegisterRequest};

/// Full sync period for clusters up to [`SCALE_THRESHOLD_NODES`] (Consul: 1 minute).
pub const FULL_SYNC_INTERVAL: Duration = Duration::from_secs(60);
/// Cluster size above which the full-sync period grows (Consul `scaleThreshold`).
pub const SCALE_THRESHOLD_NODES: usize = 128;
/// First retry delay after a failed sync; doubles up to [`RETRY_MAX`].
pub const RETRY_MIN: Duration = Duration::from_millis(500);
/// Longest retry delay (Consul `retryFailIntv`, 15 s).
pub const RETRY_MAX: Duration = Duration::from_secs(15);
/// Failed attempts in a row logged at DEBUG before WARN (a new agent has no leader for a moment).
const QUIET_FAILURES: u32 = 3;

/// Consul's `scaleFactor`: 1 up to 128 nodes, then `ceil(log2(nodes) - log2(128)) + 1`.
pub fn scale_factor(nodes: usize) -> u32 {
    if nodes <= SCALE_THRESHOLD_NODES {
        return 1;
    }
    ((nodes as f64).log2() - (SCALE_THRESHOLD_NODES as f64).log2()).ceil() as u32 + 1
}

/// Runs anti-entropy until aborted.
pub async fn run(local: Arc<Local>, catalog: Arc<dyn CatalogPort>) {
    let mut mode = SyncMode::Full;
    let mut backoff = RETRY_MIN;
    let mut failures = 0u32;
    let mut next_full = tokio::time::Instant::now();
    loop {
        match sync_once(&local, catalog.as_ref(), mode).await {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(node = %local.node.node, "anti-entropy sync succeeded after {failures} failed attempts");
                }
                failures = 0;
                backoff = RETRY_MIN;
                if mode == SyncMode::Full {
                    let scaled = FULL_SYNC_INTERVAL * scale_factor(catalog.cluster_size());
                    next_full = tokio::time::Instant::now() + FULL_SYNC_INTERVAL + local.stagger(scaled);
                }
                tokio::select! {
                    biased;
                    _ = local.sync_wake.notified() => mode = SyncMode::Changes,
                    _ = tokio::time::sleep_until(next_full) => mode = SyncMode::Full,
                }
            }
            Err(e) => {
                failures += 1;
                if failures > QUIET_FAILURES {
                    tracing::warn!(node = %local.node.node, error = %e, "anti-entropy sync failed; retrying");
                } else {
                    tracing::debug!(node = %local.node.node, error = %e, "anti-entropy sync failed; retrying");
                }
                tokio::time::sleep(backoff + local.stagger(backoff)).await;
                backoff = (backoff * 2).min(RETRY_MAX);
                mode = SyncMode::Full;
            }
        }
    }
}

/// One sync: read this node's catalog entries, diff, write the differences.
async fn sync_once(local: &Arc<Local>, catalog: &dyn CatalogPort, mode: SyncMode) -> Result<(), String> {
    let remote = catalog.node_entries(&local.node.node).await?;
    let view = local.view();
    let plan = sync::plan(&view, &remote, mode);
    if !plan.adopt_tags.is_empty() {
        local.adopt_tags(&plan.adopt_tags);
    }
    sync::apply(catalog, &local.node, &plan.ops).await?;
    local.forget_deleted(&view);
    Ok(())
}

impl Local {
    /// What anti-entropy wants the catalog to hold.
    fn view(&self) -> LocalView {
        let st = self.state();
        LocalView {
            node: self.node.clone(),
            services: st.services.clone(),
            checks: st.checks.iter().map(|(id, c)| (id.clone(), HealthCheck { node: self.node.node.clone(), ..c.check.clone() })).collect(),
            deleted_services: st.deleted_services.clone(),
            deleted_checks: st.deleted_checks.clone(),
        }
    }

    /// `EnableTagOverride`: the catalog's tags become the local ones (Consul does the same; not
    /// persisted, so a restart re-adopts them at its first full sync).
    fn adopt_tags(&self, adopt: &[(String, Vec<String>)]) {
        let mut st = self.state();
        for (id, tags) in adopt {
            if let Some(s) = st.services.get_mut(id).filter(|s| s.enable_tag_override) {
                s.tags = tags.clone();
            }
            for c in st.checks.values_mut().filter(|c| c.check.service_id == *id) {
                c.check.service_tags = tags.clone();
            }
        }
    }

    /// The removals a sync has carried to the catalog need no more attention.
    fn forget_deleted(&self, synced: &LocalView) {
        let mut st = self.state();
        for id in &synced.deleted_services {
            if !st.services.contains_key(id) {
                st.deleted_services.remove(id);
            }
        }
        for id in &synced.deleted_checks {
            if !st.checks.contains_key(id) {
                st.deleted_checks.remove(id);
            }
        }
    }
}

/// The server core as anti-entropy's catalog: reads at default consistency (the leader's),
/// writes through Raft.
#[async_trait]
impl CatalogPort for Server {
    async fn node_entries(&self, node: &str) -> Result<CatalogView, String> {
        let q = CatalogQuery { name: node.to_string(), ..CatalogQuery::default() };
        let services = self.catalog_node_services(q.clone(), false).await.map_err(|e| e.to_string())?.value;
        let checks = self.health_node_checks(q, false).await.map_err(|e| e.to_string())?.value;
        let (node, services) = match services {
            Some(ns) => (Some(ns.node), ns.services),
            None => (None, Default::default()),
        };
        Ok(CatalogView { node, services, checks: checks.into_iter().map(|c| (c.check_id.clone(), c)).collect() })
    }

    async fn register(&self, req: RegisterRequest) -> Result<(), String> {
        self.catalog_register(&QueryOptions::default(), req).await.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn deregister(&self, req: DeregisterRequest) -> Result<(), String> {
        self.catalog_deregister(&QueryOptions::default(), req).await.map(|_| ()).map_err(|e| e.to_string())
    }

    fn cluster_size(&self) -> usize {
        self.voter_addrs().len().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use crate::io::mem::MemDisk;
    use crate::local::definition::parse_service;
    use crate::structs::{HealthStatus, Node};
    use std::sync::Mutex;

    #[test]
    fn the_full_sync_interval_scales_past_128_nodes() {
        assert_eq!((scale_factor(1), scale_factor(128), scale_factor(129), scale_factor(256), scale_factor(1000)), (1, 1, 2, 2, 4));
    }

    /// A catalog in memory that can be told to fail.
    #[derive(Default)]
    struct FakeCatalog {
        view: Mutex<CatalogView>,
        fail: std::sync::atomic::AtomicBool,
        writes: std::sync::atomic::AtomicUsize,
        /// Writes (counted from 1) that are applied but answer an error, as a lost reply does.
        lose_replies: Mutex<Vec<usize>>,
    }

    impl FakeCatalog {
        fn answer(&self) -> Result<(), String> {
            let n = self.writes.load(std::sync::atomic::Ordering::SeqCst);
            if self.lose_replies.lock().unwrap().contains(&n) {
                return Err("write outcome unknown: reply lost".into());
            }
            Ok(())
        }
    }

    #[async_trait]
    impl CatalogPort for FakeCatalog {
        async fn node_entries(&self, _node: &str) -> Result<CatalogView, String> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("No cluster leader".into());
            }
            Ok(self.view.lock().unwrap().clone())
        }
        async fn register(&self, req: RegisterRequest) -> Result<(), String> {
            self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut v = self.view.lock().unwrap();
            v.node = Some(Node { id: req.id, node: req.node, address: req.address, datacenter: req.datacenter, tagged_addresses: req.tagged_addresses, meta: req.node_meta, ..Node::default() });
            if let Some(s) = req.service {
                v.services.insert(s.id.clone(), s);
            }
            for c in req.checks {
                v.checks.insert(c.check_id.clone(), c);
            }
            drop(v);
            self.answer()
        }
        async fn deregister(&self, req: DeregisterRequest) -> Result<(), String> {
            self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut v = self.view.lock().unwrap();
            if !req.service_id.is_empty() {
                v.services.remove(&req.service_id);
                v.checks.retain(|_, c| c.service_id != req.service_id);
            } else {
                v.checks.remove(&req.check_id);
            }
            drop(v);
            self.answer()
        }
        fn cluster_size(&self) -> usize {
            1
        }
    }

    fn io() -> crate::io::Io {
        crate::io::test_io(Arc::new(MemDisk::new()), 1)
    }

    #[tokio::test(start_paused = true)]
    async fn changes_reach_the_catalog_at_once_and_a_failed_sync_is_retried() {
        let local = Local::open(&AgentConfig::dev(), io(), "uuid-1").await.unwrap();
        let catalog = Arc::new(FakeCatalog::default());
        catalog.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        local.start(catalog.clone());
        local.register_service(parse_service(br#"{"Name":"web","Port":80,"Check":{"TTL":"1h"}}"#, false).unwrap(), false).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(catalog.view.lock().unwrap().services.is_empty(), "nothing reaches a catalog without a leader");
        catalog.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(RETRY_MAX * 2).await;
        {
            let v = catalog.view.lock().unwrap();
            assert_eq!(v.node.as_ref().map(|n| (n.id.as_str(), n.address.as_str())), Some(("uuid-1", "127.0.0.1")));
            assert_eq!(v.services["web"].port, 80);
            assert_eq!(v.checks["service:web"].status, HealthStatus::Critical);
        }
        local.update_ttl("service:web", HealthStatus::Passing, "up").await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(catalog.view.lock().unwrap().checks["service:web"].status, HealthStatus::Passing, "synced at once");
        let writes = catalog.writes.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(FULL_SYNC_INTERVAL * 3).await;
        assert_eq!(catalog.writes.load(std::sync::atomic::Ordering::SeqCst), writes, "full syncs of an in-sync catalog write nothing");
        local.deregister_service("web").await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let v = catalog.view.lock().unwrap();
        assert!(v.services.is_empty() && v.checks.is_empty(), "{v:?}");
        drop(v);
        local.shutdown();
    }

    #[tokio::test]
    async fn one_lost_reply_does_not_hold_back_the_rest_of_a_sync_but_two_in_a_row_stop_it() {
        let node = Node { id: "uuid".into(), node: "n1".into(), ..Node::default() };
        let svc = |id: &str| sync::SyncOp::RegisterService {
            service: crate::structs::NodeService { id: id.into(), service: id.into(), ..Default::default() },
            checks: Vec::new(),
        };
        let ops = vec![svc("a"), svc("b"), svc("c"), svc("d")];
        let catalog = FakeCatalog::default();
        *catalog.lose_replies.lock().unwrap() = vec![1];
        let err = sync::apply(&catalog, &node, &ops).await.unwrap_err();
        assert!(err.contains("\"a\""), "{err}");
        assert_eq!(catalog.view.lock().unwrap().services.len(), 4, "every write was made");
        let catalog = FakeCatalog::default();
        *catalog.lose_replies.lock().unwrap() = vec![2, 3];
        assert!(sync::apply(&catalog, &node, &ops).await.is_err());
        assert_eq!(catalog.writes.load(std::sync::atomic::Ordering::SeqCst), 3, "two failures in a row stop the sync");
    }
}
