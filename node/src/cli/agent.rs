//! `concord agent`: turns Consul's agent flags into an [`AgentConfig`], starts the agent on a
//! multi-thread tokio runtime, and runs until SIGINT or SIGTERM.
//!
//! Owns: flag validation (with errors that say which flag to pass), logging setup, signal handling
//! and the agent's exit code. It never reaches into the agent beyond [`crate::agent::start`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::EXIT_FAILURE;
use crate::agent::{self, AgentConfig};
use crate::io::tokio::production_io;

/// How long shutdown may take (Raft shutdown, then the runtime's tasks) before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// After a graceful leave, how long the HTTP answer to `PUT /v1/agent/leave` gets to reach the
/// client before the process exits.
const LEAVE_REPLY_GRACE: Duration = Duration::from_millis(200);

/// `concord agent` flags (Consul's names; single or double dash).
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Development mode: one in-memory server on 127.0.0.1 that elects itself leader.
    #[arg(long)]
    pub dev: bool,
    /// Run as a server (a Raft voter). Required: client agents are not implemented yet.
    #[arg(long)]
    pub server: bool,
    /// Wait for this many servers (this one included) before bootstrapping Raft.
    #[arg(long, value_name = "N")]
    pub bootstrap_expect: Option<usize>,
    /// Bootstrap a single-server cluster (same as -bootstrap-expect=1).
    #[arg(long)]
    pub bootstrap: bool,
    /// Node name, unique in the datacenter [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Address for cluster (server RPC) traffic, advertised to peers. Required unless -dev.
    #[arg(long, value_name = "IP")]
    pub bind: Option<IpAddr>,
    /// Address for client interfaces (HTTP, DNS) [default: 127.0.0.1].
    #[arg(long, value_name = "IP")]
    pub client: Option<IpAddr>,
    /// Directory for Raft log, snapshots and state. Required unless -dev.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A server to join at start, `ip` or `ip:port` of its server RPC port. Repeatable.
    #[arg(long, value_name = "ADDR")]
    pub retry_join: Vec<String>,
    /// Datacenter name [default: dc1].
    #[arg(long, value_name = "DC")]
    pub datacenter: Option<String>,
    /// HTTP API port [default: 8500].
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    /// DNS port, UDP and TCP [default: 8600].
    #[arg(long, value_name = "PORT")]
    pub dns_port: Option<u16>,
    /// The DNS domain answered from the catalog [default: consul.].
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// An upstream DNS server for names outside the domain, `ip` or `ip:port` (port 53).
    /// Repeatable; tried in order. Without one such names are REFUSED.
    #[arg(long, value_name = "ADDR")]
    pub recursor: Vec<String>,
    /// Server RPC port [default: 8300].
    #[arg(long, value_name = "PORT")]
    pub server_port: Option<u16>,
    /// Serf LAN port [default: 8301] (gossip is not implemented yet).
    #[arg(long, value_name = "PORT")]
    pub serf_lan_port: Option<u16>,
    /// Serf WAN port [default: 8302] (gossip is not implemented yet).
    #[arg(long, value_name = "PORT")]
    pub serf_wan_port: Option<u16>,
    /// Log level: trace, debug, info, warn, err. Below debug, openraft logs only its errors.
    /// (CONCORD_LOG or RUST_LOG, when set, override it with a tracing filter.)
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log as JSON, one object per line.
    #[arg(long)]
    pub log_json: bool,
    /// Accept script checks (`Args`) registered through the HTTP API.
    #[arg(long)]
    pub enable_script_checks: bool,
}

/// The host name, for the default node name (as Consul does).
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// Builds the agent configuration. Errors name the flag to fix.
pub fn config_from_args(a: &AgentArgs) -> Result<AgentConfig, String> {
    let mut c = if a.dev {
        if a.data_dir.is_some() {
            return Err("-data-dir cannot be used with -dev: dev mode keeps all state in memory".into());
        }
        if a.bootstrap_expect.is_some() || a.bootstrap {
            return Err("-bootstrap and -bootstrap-expect cannot be used with -dev".into());
        }
        AgentConfig::dev()
    } else {
        if !a.server {
            return Err("client mode is not implemented yet: pass -server (or -dev)".into());
        }
        let Some(data_dir) = a.data_dir.clone() else {
            return Err("-data-dir is required (or pass -dev for an in-memory agent)".into());
        };
        let Some(bind) = a.bind else {
            return Err("-bind is required: the address peers reach this server's RPC port on".into());
        };
        if bind.is_unspecified() {
            return Err(format!("-bind={bind} is advertised to peers; give an address they can reach"));
        }
        let bootstrap_expect = match (a.bootstrap, a.bootstrap_expect) {
            (true, Some(_)) => return Err("-bootstrap and -bootstrap-expect are mutually exclusive".into()),
            (true, None) => 1,
            (false, Some(0)) => return Err("-bootstrap-expect must be at least 1".into()),
            (false, Some(n)) => n,
            (false, None) => {
                return Err("-bootstrap-expect=N (or -bootstrap for one server) is required: joining an \
                            existing cluster is not implemented yet"
                    .into())
            }
        };
        let mut c = AgentConfig::dev();
        c.dev = false;
        c.server = true;
        c.bootstrap_expect = bootstrap_expect;
        c.bind_addr = bind;
        c.data_dir = Some(data_dir);
        c.node_name = host_name().unwrap_or_else(|| format!("concord-{bind}"));
        c
    };
    if let Some(node) = &a.node {
        if node.trim().is_empty() {
            return Err("-node must not be empty".into());
        }
        c.node_name = node.clone();
    }
    if a.dev {
        if let Some(bind) = a.bind {
            c.bind_addr = bind;
        }
    }
    if let Some(client) = a.client {
        c.client_addr = client;
    }
    if let Some(dc) = &a.datacenter {
        c.datacenter = dc.clone();
    }
    c.retry_join = a.retry_join.clone();
    c.enable_script_checks = a.enable_script_checks;
    let p = &mut c.ports;
    for (flag, port) in [
        (a.http_port, &mut p.http),
        (a.dns_port, &mut p.dns),
        (a.server_port, &mut p.server),
        (a.serf_lan_port, &mut p.serf_lan),
        (a.serf_wan_port, &mut p.serf_wan),
    ] {
        if let Some(v) = flag {
            *port = v;
        }
    }
    if let Some(domain) = &a.domain {
        c.dns.domain = parse_domain(domain)?;
    }
    c.dns.recursors = a.recursor.iter().map(|r| parse_recursor(r)).collect::<Result<_, _>>()?;
    c.join_addrs()?;
    Ok(c)
}

/// Consul's default port for a recursor given without one.
const RECURSOR_DEFAULT_PORT: u16 = 53;

/// `-domain`: lowercase, one trailing dot, labels of 1–63 characters.
fn parse_domain(s: &str) -> Result<String, String> {
    let trimmed = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !trimmed.is_empty() && trimmed.split('.').all(|l| !l.is_empty() && l.len() <= 63 && !l.contains(char::is_whitespace));
    if !ok {
        return Err(format!("-domain={s:?} is not a DNS domain (e.g. consul)"));
    }
    Ok(format!("{trimmed}."))
}

/// `-recursor`: `ip` or `ip:port`.
fn parse_recursor(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok(sa);
    }
    s.parse::<IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, RECURSOR_DEFAULT_PORT))
        .map_err(|_| format!("-recursor={s:?} is not ip or ip:port"))
}

/// Consul-style start-up banner on stdout.
fn print_banner(c: &AgentConfig) {
    println!("==> Starting Concord agent...");
    println!("{:>20}: '{}'", "Node name", c.node_name);
    println!("{:>20}: '{}'", "Datacenter", c.datacenter);
    println!("{:>20}: {} (Bootstrap-expect: {})", "Server", c.server, c.bootstrap_expect);
    println!("{:>20}: [{}] (HTTP: {}, DNS: {})", "Client Addr", c.client_addr, c.ports.http, c.ports.dns);
    println!("{:>20}: {} (RPC: {})", "Cluster Addr", c.bind_addr, c.ports.server);
    match &c.data_dir {
        Some(dir) => println!("{:>20}: {}", "Data Dir", dir.display()),
        None => println!("{:>20}: (in memory, -dev)", "Data Dir"),
    }
    println!("==> Concord agent running!");
}

/// SIGINT and SIGTERM handlers, installed before the agent starts so an early signal still
/// means a clean exit rather than the default (killed by signal).
struct ShutdownSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers. Errors: the OS refused (rare; reported and exit 1).
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self { int: signal(SignalKind::interrupt())?, term: signal(SignalKind::terminate())? })
    }

    /// Waits for the first of SIGINT or SIGTERM; returns its name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// Runs `concord agent`; returns the exit code (0 after a signal, 1 if the agent cannot start).
pub fn run(args: AgentArgs) -> i32 {
    let level = match crate::telemetry::logs::LogLevel::parse(&args.log_level) {
        Ok(level) => level,
        Err(e) => {
            eprintln!("==> {e}");
            return EXIT_FAILURE;
        }
    };
    super::logging::init(level, args.log_json);
    let config = match config_from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("==> Error: {e}");
            return EXIT_FAILURE;
        }
    };
    if let Some(dir) = &config.data_dir {
        if let Err(e) = super::datadir::check(dir) {
            eprintln!("==> Error: {e}");
            return EXIT_FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("==> Error: cannot build the tokio runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let io = match production_io(config.data_dir.as_deref()) {
            Ok(io) => io,
            Err(e) => {
                let dir = config.data_dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default();
                eprintln!("==> Error: cannot open data directory {dir:?}: {e}");
                return EXIT_FAILURE;
            }
        };
        let mut signals = match ShutdownSignals::install() {
            Ok(signals) => signals,
            Err(e) => {
                eprintln!("==> Error: cannot install signal handlers: {e}");
                return EXIT_FAILURE;
            }
        };
        let banner_config = config.clone();
        let agent = match agent::start(config, io).await {
            Ok(agent) => agent,
            Err(e) => {
                eprintln!("==> Error starting agent: {e}");
                return EXIT_FAILURE;
            }
        };
        print_banner(&banner_config);
        // A fatal Raft error (e.g. a failed fsync) means the log can no longer be trusted to be
        // durable: exit non-zero so the service manager restarts the agent from its disk.
        let code = tokio::select! {
            signal = signals.recv() => {
                tracing::info!(signal, "shutting down");
                0
            }
            _ = agent.server.leave.wait() => {
                // Let the answer to `PUT /v1/agent/leave` reach the client before exiting.
                tokio::time::sleep(LEAVE_REPLY_GRACE).await;
                tracing::info!("left the cluster; shutting down");
                0
            }
            why = agent.wait_fatal() => {
                tracing::error!(%why, "raft stopped on a fatal error; exiting so the agent restarts from disk");
                EXIT_FAILURE
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, agent.shutdown()).await.is_err() {
            tracing::warn!("raft did not shut down within {SHUTDOWN_GRACE:?}");
        }
        code
    });
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    code
}

#[cfg(test)]
mod tests {
    use super::super::{parse_from, Command};
    use super::*;

    fn agent_args(args: &[&str]) -> AgentArgs {
        let argv = std::iter::once("concord").chain(std::iter::once("agent")).chain(args.iter().copied());
        match parse_from(argv.map(Into::into).collect()).unwrap().command {
            Command::Agent(a) => a,
            other => panic!("expected agent, got {other:?}"),
        }
    }

    #[test]
    fn dev_mode_keeps_defaults_but_honours_port_flags() {
        let c = config_from_args(&agent_args(&["-dev", "-http-port=18500", "-server-port=18300"])).unwrap();
        assert!(c.dev && c.server && c.data_dir.is_none());
        assert_eq!((c.ports.http, c.ports.server, c.ports.dns), (18500, 18300, 8600));
    }

    #[test]
    fn server_mode_requires_server_data_dir_bind_and_bootstrap() {
        let err = |args: &[&str]| config_from_args(&agent_args(args)).unwrap_err();
        assert!(err(&["-data-dir=/d", "-bind=127.0.0.1", "-bootstrap-expect=3"]).contains("-server"));
        assert!(err(&["-server", "-bind=127.0.0.1", "-bootstrap-expect=3"]).contains("-data-dir"));
        assert!(err(&["-server", "-data-dir=/d", "-bootstrap-expect=3"]).contains("-bind"));
        assert!(err(&["-server", "-data-dir=/d", "-bind=127.0.0.1"]).contains("-bootstrap-expect"));
        assert!(err(&["-server", "-data-dir=/d", "-bind=0.0.0.0", "-bootstrap"]).contains("reach"));
        assert!(err(&["-server", "-data-dir=/d", "-bind=127.0.0.1", "-bootstrap", "-retry-join=x"])
            .contains("retry-join"));
    }

    #[test]
    fn server_mode_builds_the_requested_config() {
        let c = config_from_args(&agent_args(&[
            "-server", "-bootstrap-expect=3", "-node=n1", "-bind=127.0.0.2", "-client=127.0.0.3",
            "-data-dir=/tmp/d", "-retry-join=127.0.0.1:9300", "-datacenter=east", "-server-port=9301",
        ]))
        .unwrap();
        assert!(!c.dev && c.server);
        assert_eq!((c.node_name.as_str(), c.datacenter.as_str(), c.bootstrap_expect), ("n1", "east", 3));
        assert_eq!(c.rpc_addr().to_string(), "127.0.0.2:9301");
        assert_eq!(c.http_addr().to_string(), "127.0.0.3:8500");
        assert_eq!(c.retry_join, ["127.0.0.1:9300"]);
    }

    #[test]
    fn dns_flags_set_domain_and_ordered_recursors_with_port_53_by_default() {
        let c = config_from_args(&agent_args(&["-dev", "-dns-port=18600", "-domain=Example", "-recursor=10.0.0.1", "-recursor=10.0.0.2:5353"])).unwrap();
        assert_eq!((c.ports.dns, c.dns.domain.as_str()), (18600, "example."));
        assert_eq!(c.dns.recursors.iter().map(|r| r.to_string()).collect::<Vec<_>>(), ["10.0.0.1:53", "10.0.0.2:5353"]);
        assert_eq!(config_from_args(&agent_args(&["-dev"])).unwrap().dns, crate::config::DnsConfig::default());
        assert!(config_from_args(&agent_args(&["-dev", "-recursor=nope"])).unwrap_err().contains("-recursor"));
        assert!(config_from_args(&agent_args(&["-dev", "-domain=a..b"])).unwrap_err().contains("-domain"));
    }
}
