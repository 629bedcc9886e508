//! The agent's local services and checks (Consul `agent/local`, `agent/checks`, `agent/ae`):
//! what is registered on this agent, the check runners that keep its health current, and
//! anti-entropy, which makes this node's catalog entries match it.
//!
//! Owns: [`Local`], the handle the HTTP API uses (`server.local`): every change is validated
//! whole ([`definition`]), applied to the pure [`state::LocalState`], persisted ([`persist`]),
//! then the runners are reconciled ([`runner`]) and anti-entropy is woken ([`ae`], [`sync`]).
//! A refused change leaves nothing behind; a change that cannot be persisted is rolled back.
//!
//! Never: touches sockets, files, clocks or randomness except through [`crate::io::Io`] (probes
//! use `io.net`, persistence `io.disk`, wall time `io.clock`, jitter a ChaCha RNG seeded from
//! `io.seed`); writes the catalog except through [`sync::CatalogPort`].
//!
//! Source: Consul docs "Services" / "Health Checks" / "Anti-Entropy", and the agent HTTP API
//! ("Service - Agent", "Check - Agent").

pub mod ae;
pub mod alias;
pub mod definition;
pub mod persist;
pub mod probe;
pub mod runner;
pub mod state;
pub mod sync;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::AgentConfig;
use crate::io::Io;
use crate::structs::{HealthCheck, HealthStatus, Meta, Node, NodeService};
use definition::{CheckRegistration, CheckSpec, ServiceRegistration};
use state::{ConfigChange, LocalError, LocalState, NODE_MAINT_CHECK_ID, SERVICE_MAINT_PREFIX};

/// The services and checks defined in the agent's config files (validated), registered at start
/// and replaced on reload ([`Local::replace_config_entries`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigEntries {
    pub services: Vec<ServiceRegistration>,
    pub checks: Vec<CheckRegistration>,
}

/// What `PUT /v1/agent/reload` (and SIGHUP) runs: re-reads the config files and applies what a
/// reload may change. Set by whoever owns the config files (the `concord agent` CLI, see
/// [`Local::set_reload_hook`]); an error is the message Consul answers 500 with.
pub type ReloadHook =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Salt for the local agent's RNG stream, so it differs from the server core's for one seed.
const RNG_SALT: u64 = 0x6c6f_6361_6c5f_6165; // "local_ae"

/// Consul's maintenance check names and default reasons (`agent.EnableNodeMaintenance`,
/// `EnableServiceMaintenance`).
const NODE_MAINT_NAME: &str = "Node Maintenance Mode";
const NODE_MAINT_DEFAULT_REASON: &str =
    "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.";
const SERVICE_MAINT_NAME: &str = "Service Maintenance Mode";
const SERVICE_MAINT_DEFAULT_REASON: &str =
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";

/// Which files a change rewrites.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Files {
    /// Services and checks (a service change).
    Both,
    /// Checks only (a check definition or TTL status).
    Checks,
    /// Nothing (an interval check's status: not persisted, as in Consul).
    None,
}

/// The agent's local state and its machinery, shared by the HTTP API, the check runners and
/// anti-entropy.
pub struct Local {
    /// This node's catalog row as anti-entropy registers it.
    node: Node,
    enable_script_checks: bool,
    io: Io,
    state: Mutex<LocalState>,
    /// Serialises persistence so the files on disk follow the order of changes.
    persist_lock: tokio::sync::Mutex<()>,
    /// Wakes anti-entropy after a local change.
    sync_wake: Notify,
    /// Bumped after every change to the local services or checks (a registration, a removal, a
    /// status change): alias checks on this node re-evaluate on it ([`alias`]). Unlike
    /// `sync_wake`, every subscriber sees every bump.
    changes: tokio::sync::watch::Sender<u64>,
    /// The catalog given to [`Local::start`]; alias checks of other nodes read it.
    catalog: Mutex<Option<Arc<dyn sync::CatalogPort>>>,
    runners: Mutex<BTreeMap<String, runner::Runner>>,
    /// Set by [`Local::start`]; runners run only after it.
    started: std::sync::atomic::AtomicBool,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    rng: Mutex<ChaCha8Rng>,
    /// The `local_state_not_persisted` bug switch: changes are never written to the data dir.
    skip_persist: bool,
    /// See [`ReloadHook`]; `None` until set (then a reload has nothing to re-read).
    reload_hook: Mutex<Option<ReloadHook>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Local {
    /// Loads the persisted local state from the data dir. `node_id` is this agent's NodeID.
    /// Errors: unreadable or corrupt local state files (see [`persist::load`]).
    pub async fn open(config: &AgentConfig, io: Io, node_id: &str) -> Result<Arc<Self>, String> {
        let state = persist::load(io.disk.as_ref(), Instant::now(), io.clock.wall_now()).await?;
        let address = config.bind_addr.to_string();
        let tagged: Meta = ["lan", "lan_ipv4", "wan", "wan_ipv4"].iter().map(|k| (k.to_string(), address.clone())).collect();
        let node = Node {
            id: node_id.to_string(),
            node: config.node_name.clone(),
            address,
            datacenter: config.datacenter.clone(),
            tagged_addresses: tagged,
            ..Node::default()
        };
        tracing::debug!(services = state.services.len(), checks = state.checks.len(), "loaded local state");
        Ok(Arc::new(Self {
            node,
            enable_script_checks: config.enable_script_checks,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(io.seed ^ RNG_SALT)),
            io,
            state: Mutex::new(state),
            persist_lock: tokio::sync::Mutex::new(()),
            sync_wake: Notify::new(),
            changes: tokio::sync::watch::Sender::new(0),
            catalog: Mutex::new(None),
            runners: Mutex::new(BTreeMap::new()),
            started: std::sync::atomic::AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            skip_persist: config.bugs.local_state_not_persisted,
            reload_hook: Mutex::new(None),
        }))
    }

    /// Starts the check runners, the reaper and anti-entropy against `catalog`.
    pub fn start(self: &Arc<Self>, catalog: Arc<dyn sync::CatalogPort>) {
        *lock(&self.catalog) = Some(catalog.clone());
        self.started.store(true, std::sync::atomic::Ordering::SeqCst);
        self.reconcile_runners();
        let tasks = vec![tokio::spawn(ae::run(self.clone(), catalog)), tokio::spawn(runner::reap(self.clone()))];
        lock(&self.tasks).extend(tasks);
    }

    /// Stops every task this module started.
    pub fn shutdown(&self) {
        self.started.store(false, std::sync::atomic::Ordering::SeqCst);
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        for (_, r) in std::mem::take(&mut *lock(&self.runners)) {
            r.task.abort();
        }
    }

    /// Whether script checks may be registered (`-enable-script-checks`).
    pub fn enable_script_checks(&self) -> bool {
        self.enable_script_checks
    }

    /// This node's catalog row as anti-entropy registers it.
    pub fn node(&self) -> &Node {
        &self.node
    }

    fn state(&self) -> MutexGuard<'_, LocalState> {
        lock(&self.state)
    }

    /// A copy of the local state (for anti-entropy and reads).
    pub fn snapshot(&self) -> LocalState {
        self.state().clone()
    }

    /// Applies `f` to the state, persists `files`, and on success reconciles runners and wakes
    /// anti-entropy. `f` must refuse before changing anything. A failed write rolls the state
    /// back and answers [`LocalError::Persist`].
    async fn mutate<T>(
        self: &Arc<Self>,
        files: Files,
        f: impl FnOnce(&mut LocalState, Instant) -> Result<T, LocalError>,
    ) -> Result<T, LocalError> {
        let _order = if files == Files::None { None } else { Some(self.persist_lock.lock().await) };
        let now = Instant::now();
        let (before, result, bytes, order) = {
            let mut st = self.state();
            let before = (files != Files::None).then(|| st.clone());
            let result = f(&mut st, now)?;
            let removes_service = before.as_ref().is_some_and(|b| b.services.keys().any(|id| !st.services.contains_key(id)));
            let order = if removes_service { persist::Order::ServicesFirst } else { persist::Order::ChecksFirst };
            let bytes = match files {
                Files::Both => Some((Some(persist::encode_services(&st)), persist::encode_checks(&st, now, self.io.clock.wall_now()))),
                Files::Checks => Some((None, persist::encode_checks(&st, now, self.io.clock.wall_now()))),
                Files::None => None,
            };
            (before, result, bytes, order)
        };
        if let Some((services, checks)) = bytes.filter(|_| !self.skip_persist) {
            if let Err(e) = persist::save(self.io.disk.as_ref(), services.as_deref(), Some(&checks), order).await {
                tracing::error!(error = %e, "could not persist local state; change rolled back");
                if let Some(before) = before {
                    *self.state() = before;
                }
                return Err(LocalError::Persist(e.to_string()));
            }
        }
        self.reconcile_runners();
        self.sync_wake.notify_one();
        self.changed();
        Ok(result)
    }

    /// `PUT /v1/agent/service/register`: adds or replaces a service with its checks.
    pub async fn register_service(self: &Arc<Self>, reg: ServiceRegistration, replace_existing_checks: bool) -> Result<(), LocalError> {
        let id = reg.service.id.clone();
        self.mutate(Files::Both, |st, now| Ok(st.add_service(reg, replace_existing_checks, now))).await?;
        tracing::debug!(service = %id, "registered local service");
        Ok(())
    }

    /// Registers the config files' services and checks at start (before [`Local::start`], so
    /// anti-entropy's first sync already has them); nothing is persisted. Errors: a check names
    /// a service neither the config nor the persisted API registrations have.
    pub fn apply_config_at_open(&self, entries: ConfigEntries) -> Result<(), LocalError> {
        self.state().replace_config(entries.services, entries.checks, Instant::now()).map(|_| ())
    }

    /// Replaces the services and checks that came from config files (a reload): see
    /// [`LocalState::replace_config`]. API-registered entries are untouched. Errors: a check
    /// names an unknown service (nothing applied), or the data dir could not be written.
    pub async fn replace_config_entries(self: &Arc<Self>, entries: ConfigEntries) -> Result<ConfigChange, LocalError> {
        self.mutate(Files::Both, |st, now| st.replace_config(entries.services, entries.checks, now)).await
    }

    /// Registers the reload hook (the CLI does, after start); replaces any earlier one.
    pub fn set_reload_hook(&self, hook: ReloadHook) {
        *lock(&self.reload_hook) = Some(hook);
    }

    /// Runs the reload hook (`PUT /v1/agent/reload`). Without a hook there is nothing to
    /// re-read and the reload succeeds. Errors: the hook's (a bad config file).
    pub async fn reload(&self) -> Result<(), String> {
        let hook = lock(&self.reload_hook).clone();
        match hook {
            Some(hook) => hook().await,
            None => Ok(()),
        }
    }

    /// `PUT /v1/agent/service/deregister/<id>`. Errors: unknown service (404).
    pub async fn deregister_service(self: &Arc<Self>, id: &str) -> Result<(), LocalError> {
        self.mutate(Files::Both, |st, _| st.remove_service(id).map(|_| ())).await
    }

    /// `PUT /v1/agent/check/register`. Errors: it names an unknown service (400).
    pub async fn register_check(self: &Arc<Self>, reg: CheckRegistration) -> Result<(), LocalError> {
        self.mutate(Files::Checks, |st, now| st.add_check(reg, now)).await
    }

    /// `PUT /v1/agent/check/deregister/<id>`. Errors: unknown check (404).
    pub async fn deregister_check(self: &Arc<Self>, id: &str) -> Result<(), LocalError> {
        self.mutate(Files::Checks, |st, _| st.remove_check(id)).await
    }

    /// `PUT /v1/agent/check/{pass,warn,fail,update}/<id>`: sets a TTL check and restarts its TTL.
    /// Errors: unknown check (404), not a TTL check (400).
    pub async fn update_ttl(self: &Arc<Self>, id: &str, status: HealthStatus, output: &str) -> Result<(), LocalError> {
        self.mutate(Files::Checks, |st, now| st.update_ttl(id, status, output, now)).await?;
        if let Some(r) = lock(&self.runners).get(id) {
            r.wake.notify_one();
        }
        Ok(())
    }

    /// A TTL ran out (called by the TTL runner).
    async fn expire_ttl(self: &Arc<Self>, id: &str) {
        let _ = self.mutate(Files::Checks, |st, now| Ok(st.expire_ttl(id, now))).await;
    }

    /// One probe result of an interval check, through its thresholds (called by its runner).
    async fn report(self: &Arc<Self>, id: &str, status: HealthStatus, output: &str) {
        let changed = {
            let mut st = self.state();
            let now = Instant::now();
            st.checks.get_mut(id).is_some_and(|c| c.report(status, output, now))
        };
        if changed {
            self.sync_wake.notify_one();
            self.changed();
        }
    }

    /// Tells the alias checks watching this node that its services or checks changed.
    fn changed(&self) {
        self.changes.send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// `PUT /v1/agent/maintenance?enable=`: adds or removes the critical `_node_maintenance`
    /// check. Enabling twice keeps the first reason, as Consul does.
    pub async fn node_maintenance(self: &Arc<Self>, enable: bool, reason: &str) -> Result<(), LocalError> {
        let reg = maintenance_check(NODE_MAINT_CHECK_ID, NODE_MAINT_NAME, "", reason, NODE_MAINT_DEFAULT_REASON);
        self.set_maintenance(NODE_MAINT_CHECK_ID, enable, reg).await
    }

    /// `PUT /v1/agent/service/maintenance/<id>?enable=`: the critical
    /// `_service_maintenance:<id>` check. Errors: unknown service (404).
    pub async fn service_maintenance(self: &Arc<Self>, service_id: &str, enable: bool, reason: &str) -> Result<(), LocalError> {
        if !self.state().services.contains_key(service_id) {
            return Err(LocalError::UnknownService(service_id.to_string()));
        }
        let id = format!("{SERVICE_MAINT_PREFIX}{service_id}");
        let reg = maintenance_check(&id, SERVICE_MAINT_NAME, service_id, reason, SERVICE_MAINT_DEFAULT_REASON);
        self.set_maintenance(&id, enable, reg).await
    }

    async fn set_maintenance(self: &Arc<Self>, id: &str, enable: bool, reg: CheckRegistration) -> Result<(), LocalError> {
        let present = self.state().checks.contains_key(id);
        match (enable, present) {
            (true, false) => self.mutate(Files::Checks, |st, now| st.add_check(reg, now)).await,
            (false, true) => self.mutate(Files::Checks, |st, _| st.remove_check(id)).await,
            _ => Ok(()),
        }
    }

    /// Every local service, by id.
    pub fn services(&self) -> BTreeMap<String, NodeService> {
        self.state().services.clone()
    }

    /// Every local check, by id, as the catalog will show it (node filled in).
    pub fn checks(&self) -> BTreeMap<String, HealthCheck> {
        self.state().checks.iter().map(|(id, c)| (id.clone(), self.with_node(&c.check))).collect()
    }

    fn with_node(&self, c: &HealthCheck) -> HealthCheck {
        HealthCheck { node: self.node.node.clone(), ..c.clone() }
    }

    /// A service with the checks that bear on it (its own and the node's) and their aggregate
    /// status (`passing`, `warning`, `critical` or `maintenance`), for
    /// `/v1/agent/health/service/*`. `None` for an unknown id.
    pub fn service_health(&self, id: &str) -> Option<(NodeService, Vec<HealthCheck>, &'static str)> {
        let st = self.state();
        let svc = st.services.get(id)?.clone();
        let checks = st.checks_for_service(id);
        let status = state::aggregate(&checks);
        Some((svc, checks.iter().map(|c| self.with_node(&c.check)).collect(), status))
    }

    /// The ids of the local instances of service `name`, in id order.
    pub fn service_ids_named(&self, name: &str) -> Vec<String> {
        self.state().services.values().filter(|s| s.service == name).map(|s| s.id.clone()).collect()
    }

    /// A random stagger in `[0, d)` from the seeded RNG.
    fn stagger(&self, d: std::time::Duration) -> std::time::Duration {
        use rand::Rng;
        let ms = d.as_millis() as u64;
        if ms == 0 {
            return d;
        }
        std::time::Duration::from_millis(lock(&self.rng).gen_range(0..ms))
    }
}

fn maintenance_check(id: &str, name: &str, service_id: &str, reason: &str, default_reason: &str) -> CheckRegistration {
    let notes = if reason.is_empty() { default_reason } else { reason };
    CheckRegistration {
        check: HealthCheck {
            check_id: id.to_string(),
            name: name.to_string(),
            notes: notes.to_string(),
            status: HealthStatus::Critical,
            service_id: service_id.to_string(),
            ..HealthCheck::default()
        },
        spec: CheckSpec::manual(),
        status_given: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemDisk;
    use crate::io::Disk;
    use async_trait::async_trait;
    use definition::parse_service;

    /// A disk that refuses to write one file (a crash between the two local-state files, as far
    /// as what reaches the disk is concerned).
    struct RefuseWrite(Arc<MemDisk>, &'static str);

    #[async_trait]
    impl Disk for RefuseWrite {
        async fn read(&self, path: &str) -> std::io::Result<Option<Vec<u8>>> {
            self.0.read(path).await
        }
        async fn read_at(&self, path: &str, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            self.0.read_at(path, offset, len).await
        }
        async fn append(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
            self.0.append(path, bytes).await
        }
        async fn write(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
            if path == self.1 {
                return Err(std::io::Error::other("refused"));
            }
            self.0.write(path, bytes).await
        }
        async fn truncate(&self, path: &str, len: u64) -> std::io::Result<()> {
            self.0.truncate(path, len).await
        }
        async fn sync(&self, path: &str) -> std::io::Result<()> {
            self.0.sync(path).await
        }
        async fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
            self.0.rename(from, to).await
        }
        async fn remove(&self, path: &str) -> std::io::Result<()> {
            self.0.remove(path).await
        }
        async fn sync_dir(&self) -> std::io::Result<()> {
            self.0.sync_dir().await
        }
    }

    fn io(disk: Arc<dyn Disk>) -> Io {
        crate::io::test_io(disk, 1)
    }

    const CRITICAL_WEB: &[u8] = br#"{"ID":"web","Name":"web","Check":{"CheckID":"web:ttl","Name":"ttl","TTL":"1h","Status":"critical"}}"#;

    async fn reopened(disk: &Arc<MemDisk>) -> LocalState {
        Local::open(&AgentConfig::dev(), io(disk.clone()), "id").await.unwrap().snapshot()
    }

    #[tokio::test]
    async fn a_registration_cut_between_its_two_files_is_not_half_applied() {
        // Only the first file reaches the disk: the restarted agent must not hold the service
        // without the check it was registered with (it would look healthy).
        for refused in [persist::SERVICES_FILE, persist::CHECKS_FILE] {
            let disk = Arc::new(MemDisk::new());
            let local = Local::open(&AgentConfig::dev(), io(Arc::new(RefuseWrite(disk.clone(), if refused == persist::SERVICES_FILE { "local-services.json.tmp" } else { "local-checks.json.tmp" }))), "id")
                .await
                .unwrap();
            let _ = local.register_service(parse_service(CRITICAL_WEB, false).unwrap(), false).await;
            disk.crash();
            let back = reopened(&disk).await;
            let half = back.services.contains_key("web") && !back.checks.contains_key("web:ttl");
            assert!(!half, "refusing {refused}: service without its check");
        }
    }

    #[tokio::test]
    async fn a_deregistration_cut_between_its_two_files_is_not_half_applied() {
        for refused in ["local-services.json.tmp", "local-checks.json.tmp"] {
            let disk = Arc::new(MemDisk::new());
            let local = Local::open(&AgentConfig::dev(), io(disk.clone()), "id").await.unwrap();
            local.register_service(parse_service(CRITICAL_WEB, false).unwrap(), false).await.unwrap();
            let local = Local::open(&AgentConfig::dev(), io(Arc::new(RefuseWrite(disk.clone(), refused))), "id").await.unwrap();
            let _ = local.deregister_service("web").await;
            disk.crash();
            let back = reopened(&disk).await;
            let half = back.services.contains_key("web") && !back.checks.contains_key("web:ttl");
            assert!(!half, "refusing {refused}: service without its check");
        }
    }
}
