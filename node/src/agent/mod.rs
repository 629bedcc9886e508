//! The agent: starts the server core and binds its ports — server RPC, the HTTP API, DNS, LAN
//! gossip and, on a server, WAN gossip (the [`crate::gossip`] driver and its retry-join loops).
//!
//! Owns: startup and shutdown ([`start`], [`Agent::shutdown`]) and the agent's configuration
//! ([`config`]). This is the only module that knows every layer: it opens the
//! [`crate::server::Server`] core, hands it to the RPC server as its handler and to the HTTP
//! API, and starts the core's background duties. A client agent (no `-server`) starts here too:
//! the same core without Raft duties or an RPC port, forwarding every RPC to a server it finds
//! through gossip ([`crate::server::router`]).

pub mod rpc;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use crate::config::{AgentConfig, BugSwitches, DnsConfig, Ports, RaftTiming};

use crate::io::Io;
use crate::server::{OpenError, Server};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("config: {0}")]
    Config(String),
    /// The server core could not open (config, storage, Raft).
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A running agent: its server core and the tasks serving its ports.
pub struct Agent {
    pub server: Arc<Server>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Agent {
    /// Resolves when Raft has stopped on a fatal error (see [`Server::wait_fatal`]).
    pub async fn wait_fatal(&self) -> String {
        self.server.wait_fatal().await
    }

    /// Stops the agent: aborts its servers and background tasks (freeing its ports) and shuts
    /// Raft down. Connections already accepted finish on their own.
    pub async fn shutdown(&self) {
        for task in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            task.abort();
        }
        self.server.shutdown().await;
    }
}

/// How long a join target's RPC port gets to report its gossip address.
const GOSSIP_ADDR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Joins the LAN pool through the `-retry-join` entries (see [`crate::gossip::join_targets`]):
/// each entry as given, and the gossip address the server at that RPC address reports.
async fn retry_join_lan(server: Arc<Server>, join: Vec<SocketAddr>) {
    let interval = std::time::Duration::from_millis(server.config.gossip.retry_join_interval_ms.max(1));
    let resolver = server.clone();
    crate::gossip::driver::retry_join(server.gossip.clone(), join, interval, move |entry| {
        let server = resolver.clone();
        async move {
            let reported = server
                .rpc
                .call::<_, String>(entry, crate::server::endpoints::SERVER_GOSSIP_ADDR, &(), GOSSIP_ADDR_TIMEOUT)
                .await
                .ok()
                .and_then(|a| a.parse::<SocketAddr>().ok());
            crate::gossip::join_targets(entry, reported)
        }
    })
    .await
}

/// Starts an agent and returns once its ports are bound; it runs on spawned tasks until the
/// process (or simulated host) stops. Errors: bad config, unreadable, corrupt or old-format
/// storage, a port that cannot be bound.
pub async fn start(config: AgentConfig, io: Io) -> Result<Arc<Agent>, StartError> {
    let join = config.join_addrs().map_err(StartError::Config)?;
    let (rpc_addr, http_addr, dns_addr) = (config.rpc_addr(), config.http_addr(), config.dns_addr());
    let serf_lan_addr = config.serf_lan_addr();
    let serf_wan_addr = config.serf_wan_addr();
    let wan_join = if config.runs_wan_pool() {
        let port = config.ports.serf_wan;
        let parse = |entries: &[String]| crate::gossip::wan::WanSettings::parse(entries, port).map_err(StartError::Config);
        Some((parse(&config.wan.start_join)?, parse(&config.wan.retry_join)?))
    } else {
        None
    };
    let net = io.net.clone();
    let server = Server::open(config, io).await?;
    let bind = |addr: SocketAddr| {
        let net = net.clone();
        async move { net.bind(addr).await.map_err(|source| StartError::Bind { addr, source }) }
    };
    let client = !server.config.server;
    let bound = async {
        // A client agent serves no RPC (Consul clients have no server port): it only calls servers.
        let rpc = if client { None } else { Some(bind(rpc_addr).await?) };
        let http = bind(http_addr).await?;
        let dns_tcp = bind(dns_addr).await?;
        let dns_udp = net.bind_udp(dns_addr).await.map_err(|source| StartError::Bind { addr: dns_addr, source })?;
        let serf_lan = net.bind_udp(serf_lan_addr).await.map_err(|source| StartError::Bind { addr: serf_lan_addr, source })?;
        let serf_wan = match wan_join {
            Some(_) => Some(net.bind_udp(serf_wan_addr).await.map_err(|source| StartError::Bind { addr: serf_wan_addr, source })?),
            None => None,
        };
        Ok::<_, StartError>((rpc, http, dns_tcp, dns_udp, (serf_lan, serf_wan)))
    };
    let (rpc_listener, http_listener, dns_tcp, dns_udp, (serf_lan, serf_wan)) = match bound.await {
        Ok(bound) => bound,
        Err(e) => {
            server.shutdown().await;
            return Err(e);
        }
    };
    let dns_udp_addr = dns_udp.local_addr().unwrap_or(dns_addr);
    let gossip_seed = server.io.seed;
    let mut tasks = vec![
        tokio::spawn(crate::gossip::driver::run(server.gossip.clone(), serf_lan, gossip_config(&server.config), gossip_seed, server.io.trace.clone())),
        tokio::spawn(retry_join_lan(server.clone(), join.clone())),
        tokio::spawn(crate::server::coordinate::sync_coordinate(server.clone())),
        tokio::spawn(crate::http::serve(server.clone(), http_listener)),
        tokio::spawn(crate::dns::serve_udp(server.clone(), dns_udp)),
        tokio::spawn(crate::dns::serve_tcp(server.clone(), dns_tcp)),
    ];
    if let Some(rpc_listener) = rpc_listener {
        tasks.push(tokio::spawn(crate::rpc::serve(Arc::new(rpc::AgentRpc(server.clone())), rpc_listener)));
    }
    if let (Some(wan), Some(socket), Some((start_join, retry_join))) = (server.wan.clone(), serf_wan, wan_join) {
        let seed = gossip_seed ^ crate::gossip::wan::WAN_SEED_SALT;
        let interval = std::time::Duration::from_millis(server.config.gossip.retry_join_interval_ms.max(1));
        for addr in start_join {
            wan.announce(addr);
        }
        tasks.push(tokio::spawn(crate::gossip::driver::run(wan.clone(), socket, crate::gossip::wan::gossip_config(&server.config), seed, server.io.trace.clone())));
        tasks.push(tokio::spawn(crate::gossip::wan::flood_joins(server.gossip.clone(), wan.clone(), server.config.datacenter.clone())));
        if server.config.bugs.wan_no_reconnect {
            tasks.push(tokio::spawn(join_wan_once(wan, retry_join, interval)));
        } else {
            tasks.push(tokio::spawn(crate::gossip::driver::retry_join(wan, retry_join, interval, |entry| async move { vec![entry] })));
        }
        tracing::info!(node = %server.config.node_name, addr = %serf_wan_addr, "WAN gossip started");
    }
    tracing::info!(udp = %dns_udp_addr, tcp = %dns_addr, domain = %server.config.dns.domain, "DNS server started");
    tracing::info!(node = %server.config.node_name, addr = %serf_lan_addr, "LAN gossip started");
    server.start_background();
    let c = &server.config;
    let mode = if client { "client" } else { "server" };
    tracing::info!(node = %c.node_name, mode, id = %format!("{:016x}", server.id), rpc = %rpc_addr, http = %http_addr,
        datacenter = %c.datacenter, "agent started");
    Ok(Arc::new(Agent { server, tasks: Mutex::new(tasks) }))
}

/// Deliberate bug `wan_no_reconnect`: announces to the WAN join targets until the first member
/// answers, then never again (as Consul's `retry_join_wan` stops after its first success, but
/// without Serf's reconnect behind it).
async fn join_wan_once(wan: Arc<crate::gossip::Pool>, targets: Vec<SocketAddr>, interval: std::time::Duration) {
    while wan.live_peers() == 0 {
        for target in &targets {
            wan.announce(*target);
        }
        tokio::time::sleep(interval).await;
    }
}

/// The pool's timing from the agent's config, with the deliberate bug `gossip_hasty_failure`.
fn gossip_config(config: &crate::config::AgentConfig) -> crate::gossip::GossipConfig {
    crate::gossip::GossipConfig { hasty_failure: config.bugs.gossip_hasty_failure, ..config.gossip.clone() }
}
