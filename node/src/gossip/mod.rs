//! SWIM membership for the LAN pool (every agent of a datacenter) and the WAN pool (the servers
//! of every datacenter, Consul `agent/consul/server_serf.go` `setupSerf(wan=true)`), with foca.
//! Both pools are the same [`Pool`] and [`driver`], told apart by [`GossipConfig::wan`]: the WAN
//! pool runs foca's WAN profile on the `serf_wan` port and names members `<node>.<dc>` ([`wan`]).
//!
//! Owns: the pool's membership view ([`Pool`]: who is alive, suspect, failed or left, with
//! Consul's member tags), the driver task that runs foca over `io::Net` UDP on the agent's
//! `serf_lan` port ([`driver`]), and how retry-join addresses become gossip join targets
//! ([`join_targets`]). foca is runtime-free: the driver feeds it datagrams and timer events and
//! carries out what it asks (send, schedule, notify); randomness comes from the agent's seed, so a
//! simulation replays. Never does: write to the catalog (the Raft leader reconciles this view into
//! it, `server::reconcile`), or touch Raft itself (`server::bootstrap` reads the servers in this
//! view to bootstrap Raft, as Consul's `maybeBootstrap` reads Serf's members).
//!
//! Join targets: a `-retry-join` entry names a LAN gossip address (Consul's form; a bare `ip` takes
//! the LAN gossip port) or a server's RPC address. The pool announces to the entry as given and to
//! the gossip address the server at it reports over RPC (`Server.GossipAddr`), which finds servers
//! whatever ports they were given.

pub mod broadcast;
pub mod coord_ping;
pub mod coordinate;
pub mod driver;
pub mod events;
pub mod force_leave;
pub mod identity;
pub mod keyring;
pub mod keyring_sync;
pub mod suspicion;
pub mod view;
pub mod wan;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

pub use identity::GossipId;

/// Largest gossip datagram sent or accepted, in bytes (Consul/memberlist's LAN `UDPBufferSize`,
/// 1400: below a typical MTU so datagrams are not fragmented). Larger datagrams are dropped.
pub const MAX_PACKET_BYTES: usize = 1400;

/// How a member stands, as this agent sees it. `Suspect` is SWIM's "probe failed, awaiting
/// refutation"; Consul (Serf) shows it as alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum MemberStatus {
    Alive,
    Suspect,
    /// This agent is leaving (only ever its own status).
    Leaving,
    Left,
    Failed,
}

impl MemberStatus {
    /// Consul's `Status` code in `/v1/agent/members` (serf `MemberStatus`): 1 alive, 2 leaving,
    /// 3 left, 4 failed. A suspect member is still alive to Serf.
    pub fn consul_code(self) -> u8 {
        match self {
            Self::Alive | Self::Suspect => 1,
            Self::Leaving => 2,
            Self::Left => 3,
            Self::Failed => 4,
        }
    }

    /// Consul's spelling in `consul members` (`alive`, `leaving`, `left`, `failed`).
    pub fn consul_name(self) -> &'static str {
        match self {
            Self::Alive | Self::Suspect => "alive",
            Self::Leaving => "leaving",
            Self::Left => "left",
            Self::Failed => "failed",
        }
    }

    /// The status's name in the simulator's trace and in logs.
    pub fn trace_name(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Leaving => "leaving",
            Self::Left => "left",
            Self::Failed => "failed",
        }
    }

    /// Alive or suspect: still a live member of the pool.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Alive | Self::Suspect | Self::Leaving)
    }
}

/// One member as this agent sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// LAN gossip address.
    pub addr: SocketAddr,
    pub tags: BTreeMap<String, String>,
    pub status: MemberStatus,
    /// The identity's generation (see [`identity`]).
    pub generation: u64,
}

impl Member {
    fn of(id: &GossipId, status: MemberStatus) -> Self {
        Self { name: id.name.clone(), addr: id.addr, tags: id.tags.clone(), status, generation: id.generation }
    }

    /// Whether this member is a server (tag `role=consul`, Consul's `metadata.IsConsulServer`) of
    /// datacenter `dc` (tag `dc`), whatever its status.
    pub fn is_server_of(&self, dc: &str) -> bool {
        self.tags.get("role").map(String::as_str) == Some("consul") && self.tags.get("dc").map(String::as_str) == Some(dc)
    }
}

/// Timing of the pool. Defaults follow memberlist's `DefaultLANConfig` (probe every 1 s, 500 ms
/// probe timeout, suspicion 4 × log(n) probe periods), except that failed members are re-tried
/// every 10 s (Serf's `reconnect_interval` is 30 s; foca's default 65 s makes healed partitions
/// slow to merge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipConfig {
    /// Expected pool size (sizes retransmissions and the suspicion timeout).
    pub expected_members: u32,
    /// How often a member that failed is announced to again (heals partitions), in ms.
    pub reconnect_interval_ms: u64,
    /// How often retry-join targets are announced to while this agent sees no other live member, in ms.
    pub retry_join_interval_ms: u64,
    /// Consul `-encrypt`: the gossip key this agent starts with (ignored when the data dir holds
    /// a keyring file, which wins, as in Consul). `None`: gossip in the clear.
    pub encrypt: Option<keyring::GossipKey>,
    /// Deliberate bug `gossip_hasty_failure`: SWIM without its safeguards (one indirect probe, a
    /// suspect declared down after 1 ms, no time to refute), so lost packets fail live members.
    pub hasty_failure: bool,
    /// This is the WAN pool: foca's WAN profile (memberlist's `DefaultWANConfig`: 5 s probes,
    /// 3 s probe timeout, longer suspicion) instead of the LAN one.
    pub wan: bool,
    /// Deliberate bug `wan-no-reconnect`: never announce to failed members again (no Serf
    /// reconnect), so a pool split in two by a partition stays split after it heals.
    pub no_reconnect: bool,
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            expected_members: 8,
            reconnect_interval_ms: 10_000,
            retry_join_interval_ms: 1_000,
            encrypt: None,
            hasty_failure: false,
            wan: false,
            no_reconnect: false,
        }
    }
}

impl GossipConfig {
    /// The pool's name in logs: `LAN` or `WAN`.
    pub fn pool_name(&self) -> &'static str {
        if self.wan {
            "WAN"
        } else {
            "LAN"
        }
    }

    /// foca's configuration for this pool; `encrypted`: leave room in every datagram for the
    /// seal ([`keyring::SEAL_OVERHEAD_BYTES`]) so sealed datagrams stay within [`MAX_PACKET_BYTES`].
    pub fn foca(&self, encrypted: bool) -> foca::Config {
        debug_assert!(self.reconnect_interval_ms > 0, "a zero reconnect interval would spin");
        let n = std::num::NonZeroU32::new(self.expected_members.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let mut c = if self.wan { foca::Config::new_wan(n) } else { foca::Config::new_lan(n) };
        c.max_packet_size = std::num::NonZeroUsize::new(plaintext_room(encrypted)).unwrap_or(std::num::NonZeroUsize::MIN);
        if let Some(p) = c.periodic_announce_to_down_members.as_mut() {
            p.frequency = Duration::from_millis(self.reconnect_interval_ms);
        }
        if self.no_reconnect {
            c.periodic_announce_to_down_members = None;
        }
        if self.hasty_failure {
            c.num_indirect_probes = std::num::NonZeroUsize::MIN;
            c.suspect_to_down_after = Duration::from_millis(1);
        }
        c
    }
}

/// Most bytes a datagram may carry before sealing, so that sealed it stays within
/// [`MAX_PACKET_BYTES`] (`encrypted`: room is left for [`keyring::SEAL_OVERHEAD_BYTES`]).
pub(crate) fn plaintext_room(encrypted: bool) -> usize {
    MAX_PACKET_BYTES - if encrypted { keyring::SEAL_OVERHEAD_BYTES } else { 0 }
}

/// What the agent asks of its driver.
#[derive(Debug)]
pub(crate) enum Request {
    /// Announce to this gossip address (a join target).
    Announce(SocketAddr),
    /// Leave gracefully; answered once the leave has been sent.
    Leave(oneshot::Sender<()>),
    /// Broadcast this user event item ([`events::encode`]).
    Fire(Vec<u8>),
    /// Force a failed member to leave ([`force_leave`]); answered with what it did.
    ForceLeave { name: String, prune: bool, done: oneshot::Sender<Result<force_leave::ForceLeave, String>> },
}

/// The LAN pool's handle: the membership view the driver keeps current, and requests to it.
pub struct Pool {
    /// This agent's identity at start (the driver takes it from here).
    identity: GossipId,
    view: Mutex<BTreeMap<String, Member>>,
    /// Live members in `view` other than this agent (kept with it, so counting is O(1)).
    live: std::sync::atomic::AtomicUsize,
    /// Bumped on every change of the view (the leader's reconciler waits on it).
    version: watch::Sender<u64>,
    requests: mpsc::UnboundedSender<Request>,
    /// The driver's end, taken when it starts.
    pub(crate) inbox: Mutex<Option<mpsc::UnboundedReceiver<Request>>>,
    /// User events received ([`events`]).
    pub events: Arc<events::EventLog>,
    /// The gossip keyring ([`keyring_sync`]); off unless [`Pool::open`] found a key.
    pub keyring: Arc<keyring_sync::KeyringState>,
    /// Where the driver writes the keyring file on every change (none: not persisted).
    pub(crate) keyring_file: Option<(Arc<dyn crate::io::Disk>, keyring_sync::KeyringFile)>,
    /// This agent's network coordinate, kept current by the driver's pings ([`coord_ping`]).
    pub coordinates: Arc<coord_ping::CoordinateState>,
}

impl Pool {
    /// A pool that knows only `me` (alive) until its driver runs.
    pub fn new(me: &GossipId) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let view = BTreeMap::from([(me.name.clone(), Member::of(me, MemberStatus::Alive))]);
        let events = Arc::new(events::EventLog::new(&me.name, false));
        let keyring = Arc::new(keyring_sync::KeyringState::new(&me.name, me.generation, None, Default::default(), false));
        Self { identity: me.clone(), view: Mutex::new(view), live: 0.into(), version: watch::channel(0).0, requests: tx, inbox: Mutex::new(Some(rx)), events, keyring, keyring_file: None, coordinates: Arc::new(coord_ping::CoordinateState::new(false)) }
    }

    /// The agent's pool: encrypted when the data dir holds its keyring `file` (which wins over
    /// `-encrypt`, as in Consul) or `encrypt` (`-encrypt`) is given (then the file is written);
    /// dropped datagrams counted in `decrypt_failures`. Errors: an unreadable or bad keyring file.
    pub async fn open(
        me: &GossipId,
        encrypt: Option<keyring::GossipKey>,
        file: keyring_sync::KeyringFile,
        disk: Arc<dyn crate::io::Disk>,
        decrypt_failures: prometheus_client::metrics::counter::Counter,
    ) -> Result<Self, String> {
        let saved = disk.read(file.name).await.map_err(|e| format!("{} unreadable: {e}", file.name))?;
        let (ring, from_file) = match saved {
            Some(bytes) => {
                let ring = keyring::Keyring::from_file(&bytes).map_err(|e| format!("{}: {e}", file.name))?;
                if encrypt.is_some() {
                    tracing::warn!(node = %me.name, file = file.name, "the data dir holds a gossip keyring; -encrypt is ignored");
                }
                (Some(ring), true)
            }
            None => (encrypt.map(keyring::Keyring::new), false),
        };
        let mut pool = Self::new(me);
        pool.keyring = Arc::new(keyring_sync::KeyringState::new(&me.name, me.generation, ring, decrypt_failures, !from_file));
        pool.keyring_file = Some((disk, file));
        Ok(pool)
    }

    /// Applies a keyring operation here and gossips it to every member (see [`keyring_sync`]).
    /// Errors: encryption off, a bad key, Consul's refusals (`use` of a key not installed,
    /// removing the primary).
    pub fn keyring_op(&self, kind: keyring_sync::KeyOpKind, key: &str) -> Result<(), String> {
        let op = self.keyring.local_op(kind, key)?;
        tracing::info!(node = %self.identity.name, op = ?kind, "gossip keyring operation");
        let item = broadcast::Item::KeyringOp(op).encode()?;
        self.requests.send(Request::Fire(item)).map_err(|_| "the gossip pool is not running".to_string())
    }

    /// Consul's keyring list entry for this pool (`wan`: it is the WAN pool), counted over the
    /// live members this agent sees. Errors: encryption off.
    pub fn keyring_list(&self, datacenter: &str, wan: bool) -> Result<keyring_sync::KeyringResponse, String> {
        let live: Vec<String> = self.members().into_iter().filter(|m| m.status.is_live()).map(|m| m.name).collect();
        self.keyring.list(datacenter, wan, &live)
    }

    /// Deliberate bug (simulator only): tell user events apart by name instead of ID.
    pub fn with_events_deduped_by_name(mut self, on: bool) -> Self {
        self.events = Arc::new(events::EventLog::new(&self.identity.name, on));
        self
    }

    /// Deliberate bug `vivaldi-ignores-rtt` (simulator only): every coordinate sample counts as 1 ms.
    pub fn with_vivaldi_ignoring_rtt(mut self, on: bool) -> Self {
        self.coordinates = Arc::new(coord_ping::CoordinateState::new(on));
        self
    }

    /// Fires a user event: stamps it with the next Lamport time and hands it to the driver,
    /// which delivers it here and gossips it. Returns the event as stamped. Errors: too large.
    pub fn fire(&self, event: events::UserEvent) -> Result<events::UserEvent, String> {
        let event = self.events.stamp(event);
        let item = events::encode(&event)?;
        self.requests.send(Request::Fire(item)).map_err(|_| "the gossip pool is not running".to_string())?;
        Ok(event)
    }

    /// This agent's node name.
    pub fn me(&self) -> &str {
        &self.identity.name
    }

    /// This agent's identity at start.
    pub fn identity(&self) -> &GossipId {
        &self.identity
    }

    /// Every member this agent knows (itself included), by name.
    pub fn members(&self) -> Vec<Member> {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// How this agent sees the member named `name`, if it knows it: one lookup, without copying
    /// the view (the gossip scale benchmark polls thousands of pools).
    pub fn status_of(&self, name: &str) -> Option<MemberStatus> {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).get(name).map(|m| m.status)
    }

    /// Live members other than this agent.
    pub fn live_peers(&self) -> usize {
        self.live.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A receiver that changes whenever the view does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Sets the entries of the named members (`None`: forgotten), leaving the others as they
    /// are; bumps the version once if any entry changed.
    pub(crate) fn update_view(&self, changes: impl IntoIterator<Item = (String, Option<Member>)>) {
        let mut cur = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        let mut live = self.live.load(std::sync::atomic::Ordering::Relaxed);
        let counts = |m: &Member| m.name != self.identity.name && m.status.is_live();
        for (name, new) in changes {
            let old = match new {
                Some(m) if cur.get(&name) == Some(&m) => continue,
                Some(m) => {
                    live += usize::from(counts(&m));
                    cur.insert(name, m)
                }
                None => match cur.remove(&name) {
                    Some(old) => Some(old),
                    None => continue,
                },
            };
            if let Some(old) = old {
                live -= usize::from(counts(&old));
            }
            changed = true;
        }
        if changed {
            self.live.store(live, std::sync::atomic::Ordering::Relaxed);
            self.version.send_modify(|v| *v += 1);
        }
    }

    /// Asks the driver to announce to `addr`.
    pub(crate) fn announce(&self, addr: SocketAddr) {
        let _ = self.requests.send(Request::Announce(addr));
    }

    /// Forces the failed member `name` to leave (`prune`: erases it from every member list), as
    /// Consul's `force-leave` does; see [`force_leave`]. Errors: Consul's "No node found with
    /// name" when no member carries it, or the pool is not running.
    pub async fn force_leave(&self, name: &str, prune: bool) -> Result<force_leave::ForceLeave, String> {
        tracing::info!(node = %self.identity.name, member = %name, prune, "Force leaving node");
        let (done, rx) = oneshot::channel();
        let req = Request::ForceLeave { name: name.to_string(), prune, done };
        self.requests.send(req).map_err(|_| "the gossip pool is not running".to_string())?;
        rx.await.map_err(|_| "the gossip pool is not running".to_string())?
    }

    /// Leaves the pool gracefully: other members see this agent as `left`. Returns once the leave
    /// has been sent (or at once if the driver is not running).
    pub async fn leave(&self) {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Leave(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
    }
}

/// Consul's LAN member tags for this agent (Consul `agent/consul/server_serf.go`,
/// `client_serf.go`): `role` is `consul` for a server and `node` for a client, `port` the server
/// RPC port, `build` `<consul api version>:<revision>`, `vsn`/`vsn_min`/`vsn_max` the protocol,
/// `wan_join_port` a server's WAN gossip port when it runs the WAN pool (for flood joins).
pub fn agent_tags(config: &crate::config::AgentConfig, node_uuid: &str) -> BTreeMap<String, String> {
    use crate::version::{CONSUL_API_VERSION, RAFT_PROTOCOL_VERSION, REVISION};
    let mut t = BTreeMap::new();
    let mut put = |k: &str, v: String| t.insert(k.to_string(), v);
    put("role", if config.server { "consul" } else { "node" }.into());
    put("dc", config.datacenter.clone());
    put("id", node_uuid.to_string());
    put("build", format!("{CONSUL_API_VERSION}:{REVISION}"));
    put("vsn", "2".into());
    put("vsn_min", "2".into());
    put("vsn_max", "3".into());
    if config.server {
        put("port", config.ports.server.to_string());
        put("expect", config.bootstrap_expect.to_string());
        put("raft_vsn", RAFT_PROTOCOL_VERSION.to_string());
    }
    if config.runs_wan_pool() {
        put(wan::WAN_JOIN_PORT_TAG, config.ports.serf_wan.to_string());
    }
    t
}

/// This agent's first identity: its LAN gossip address and tags, generation = wall time in ms
/// (a restarted agent outranks its previous identity; see [`identity`]).
pub fn agent_identity(config: &crate::config::AgentConfig, node_uuid: &str, wall: std::time::SystemTime) -> GossipId {
    let generation = wall.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    GossipId {
        name: config.node_name.clone(),
        addr: SocketAddr::new(config.bind_addr, config.ports.serf_lan),
        generation,
        left: false,
        pruned: false,
        tags: agent_tags(config, node_uuid),
        no_rejoin: config.bugs.gossip_no_rejoin,
    }
}

/// The gossip addresses to try for one `-retry-join` entry: the entry as given (Consul's
/// `-retry-join` names a LAN gossip address) and, if the entry names a server RPC port, the
/// gossip address that server reported (`reported`), without duplicates.
pub fn join_targets(entry: SocketAddr, reported: Option<SocketAddr>) -> Vec<SocketAddr> {
    let mut out = vec![entry];
    if let Some(r) = reported.filter(|r| *r != entry) {
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consul_status_codes() {
        assert_eq!(MemberStatus::Alive.consul_code(), 1);
        assert_eq!(MemberStatus::Suspect.consul_code(), 1, "serf shows a suspect member as alive");
        assert_eq!(MemberStatus::Leaving.consul_code(), 2);
        assert_eq!(MemberStatus::Left.consul_code(), 3);
        assert_eq!(MemberStatus::Failed.consul_code(), 4);
    }

    #[test]
    fn join_targets_try_the_entry_and_the_reported_gossip_address() {
        let rpc: SocketAddr = "127.0.0.1:9300".parse().unwrap();
        let lan: SocketAddr = "127.0.0.1:9301".parse().unwrap();
        assert_eq!(join_targets(rpc, Some(lan)), vec![rpc, lan]);
        assert_eq!(join_targets(lan, Some(lan)), vec![lan]);
        assert_eq!(join_targets(rpc, None), vec![rpc]);
    }
}

#[cfg(test)]
mod pool_tests;
