//! `concord agent`: turns Consul's agent flags and config files into an [`AgentConfig`], starts
//! the agent on a multi-thread tokio runtime, and runs until SIGINT or SIGTERM; SIGHUP (and
//! `PUT /v1/agent/reload`) reloads the config files.
//!
//! Owns: reading the config files (`-config-file`, `-config-dir`; parsed and merged by
//! [`crate::config_file`]), flag validation (with errors that say which flag to pass), logging
//! setup, signal handling, the reload ([`Reloader`]) and the agent's exit code. It never reaches
//! into the agent beyond [`crate::agent::start`] and the local state's reload entry points.
//!
//! Precedence, as in Consul: defaults, then config files in order (`-config-file`s as given, then
//! each `-config-dir`'s `*.json` in lexical order; a later file's value wins, lists append), then
//! command-line flags (a flag's value wins; `-retry-join`/`-recursor` append to the files' lists;
//! boolean flags can only turn an option on).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::EXIT_FAILURE;
use crate::agent::{self, AgentConfig};
use crate::config_file::{self, FileConfig, Source};
use crate::local::Local;
use crate::io::tokio::production_io;

/// How long shutdown may take (Raft shutdown, then the runtime's tasks) before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// After a graceful leave, how long the HTTP answer to `PUT /v1/agent/leave` gets to reach the
/// client before the process exits.
const LEAVE_REPLY_GRACE: Duration = Duration::from_millis(200);

/// `concord agent` flags (Consul's names; single or double dash).
#[derive(Clone, Debug, Default, Args)]
pub struct AgentArgs {
    /// A JSON config file (Consul's format; HCL is not supported). Repeatable; later files win.
    #[arg(long, value_name = "FILE")]
    pub config_file: Vec<PathBuf>,
    /// A directory whose `*.json` files are loaded in lexical order, after every -config-file.
    /// Repeatable. Other files are ignored.
    #[arg(long, value_name = "DIR")]
    pub config_dir: Vec<PathBuf>,
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
    /// Gossip encryption key, base64 of 16, 24 or 32 bytes (`concord keygen`); a keyring file
    /// in the data dir wins over it.
    #[arg(long, value_name = "KEY")]
    pub encrypt: Option<String>,
    /// An agent to join the LAN pool through at start, `ip` (LAN gossip port 8301) or `ip:port`
    /// (a LAN gossip or server RPC port). Repeatable.
    #[arg(long, value_name = "ADDR")]
    pub retry_join: Vec<String>,
    /// A server of another datacenter to join in the WAN pool at start, `ip` or `ip:port` of its
    /// WAN gossip port (8302). Repeatable; servers only.
    #[arg(long, value_name = "ADDR")]
    pub join_wan: Vec<String>,
    /// Like -join-wan, announced to again whenever this server sees no other live WAN member.
    /// Repeatable; servers only.
    #[arg(long, value_name = "ADDR")]
    pub retry_join_wan: Vec<String>,
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
    /// Serf LAN port [default: 8301].
    #[arg(long, value_name = "PORT")]
    pub serf_lan_port: Option<u16>,
    /// Serf WAN port [default: 8302] (servers only).
    #[arg(long, value_name = "PORT")]
    pub serf_wan_port: Option<u16>,
    /// Log level: trace, debug, info, warn, err [default: info]. Below debug, openraft logs only
    /// its errors. (CONCORD_LOG or RUST_LOG, when set, override it with a tracing filter.)
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
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

/// The log level: the flag's, else the config files', else info.
fn log_level(a: &AgentArgs, f: &FileConfig) -> String {
    a.log_level.clone().or_else(|| f.log_level.clone()).unwrap_or_else(|| "info".to_string())
}

/// The flags with every option they leave unset taken from the config files (see the module
/// header for the precedence).
fn with_file_defaults(a: &AgentArgs, f: &FileConfig) -> AgentArgs {
    let mut out = a.clone();
    out.server |= f.server == Some(true);
    out.bootstrap |= f.bootstrap == Some(true);
    out.enable_script_checks |= f.enable_script_checks == Some(true);
    out.bootstrap_expect = a.bootstrap_expect.or(f.bootstrap_expect);
    out.node = a.node.clone().or_else(|| f.node_name.clone());
    out.bind = a.bind.or(f.bind_addr);
    out.client = a.client.or(f.client_addr);
    out.data_dir = a.data_dir.clone().or_else(|| f.data_dir.clone());
    out.datacenter = a.datacenter.clone().or_else(|| f.datacenter.clone());
    out.http_port = a.http_port.or(f.ports.http);
    out.dns_port = a.dns_port.or(f.ports.dns);
    out.server_port = a.server_port.or(f.ports.server);
    out.serf_lan_port = a.serf_lan_port.or(f.ports.serf_lan);
    out.serf_wan_port = a.serf_wan_port.or(f.ports.serf_wan);
    out.domain = a.domain.clone().or_else(|| f.domain.clone());
    out.retry_join = f.retry_join.iter().chain(&a.retry_join).cloned().collect();
    out.retry_join_wan = f.retry_join_wan.iter().chain(&a.retry_join_wan).cloned().collect();
    out.join_wan = f.start_join_wan.iter().chain(&a.join_wan).cloned().collect();
    out.encrypt = a.encrypt.clone().or_else(|| f.encrypt.clone());
    out.recursor = f.recursors.iter().map(|r| r.to_string()).chain(a.recursor.iter().cloned()).collect();
    out.log_level = Some(log_level(a, f));
    out
}

/// Builds the agent configuration from the flags over the merged config files `f`. Errors name
/// the flag to fix, or the config file and field.
pub fn config_from_args(a: &AgentArgs, f: &FileConfig) -> Result<AgentConfig, String> {
    let a = &with_file_defaults(a, f);
    let mut c = if a.dev {
        if a.data_dir.is_some() {
            return Err("-data-dir cannot be used with -dev: dev mode keeps all state in memory".into());
        }
        if a.bootstrap_expect.is_some() || a.bootstrap {
            return Err("-bootstrap and -bootstrap-expect cannot be used with -dev".into());
        }
        AgentConfig::dev()
    } else {
        if !a.server && a.bootstrap_expect.is_some() {
            return Err("'bootstrap_expect > 0' requires 'server = true' (pass -server)".into());
        }
        if !a.server && a.bootstrap {
            return Err("'bootstrap = true' requires 'server = true' (pass -server)".into());
        }
        let Some(data_dir) = a.data_dir.clone() else {
            return Err("-data-dir is required (or pass -dev for an in-memory agent)".into());
        };
        let Some(bind) = a.bind else {
            return Err("-bind is required: the address other agents reach this one on".into());
        };
        if bind.is_unspecified() {
            return Err(format!("-bind={bind} is advertised to peers; give an address they can reach"));
        }
        let bootstrap_expect = match (a.bootstrap, a.bootstrap_expect) {
            // A client agent: no Raft, it finds servers through -retry-join and gossip.
            _ if !a.server => 0,
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
        c.server = a.server;
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
    c.wan.retry_join = a.retry_join_wan.clone();
    c.wan.start_join = a.join_wan.clone();
    if !c.server && !(c.wan.retry_join.is_empty() && c.wan.start_join.is_empty()) {
        return Err("-join-wan and -retry-join-wan need -server: client agents have no WAN pool".into());
    }
    c.enable_script_checks = a.enable_script_checks;
    c.gossip.encrypt = a.encrypt.as_deref().map(crate::gossip::keyring::GossipKey::parse).transpose().map_err(|e| format!("-encrypt: {e}"))?;
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
    let d = &f.dns_config;
    c.dns.only_passing = d.only_passing.unwrap_or(c.dns.only_passing);
    c.dns.enable_truncate = d.enable_truncate.unwrap_or(c.dns.enable_truncate);
    c.dns.node_ttl_ms = d.node_ttl_ms.unwrap_or(c.dns.node_ttl_ms);
    c.dns.service_ttl_ms = d.service_ttl_ms.unwrap_or(c.dns.service_ttl_ms);
    c.dns.udp_answer_limit = d.udp_answer_limit.unwrap_or(c.dns.udp_answer_limit);
    c.join_addrs()?;
    crate::gossip::wan::WanSettings::parse(&c.wan.retry_join, c.ports.serf_wan)?;
    crate::gossip::wan::WanSettings::parse(&c.wan.start_join, c.ports.serf_wan)?;
    c.config_entries = f.entries(c.enable_script_checks).map_err(|e| e.to_string())?;
    Ok(c)
}

/// `-domain`.
fn parse_domain(s: &str) -> Result<String, String> {
    config_file::parse_domain(s).map_err(|e| format!("-domain: {e}"))
}

/// `-recursor`.
fn parse_recursor(s: &str) -> Result<std::net::SocketAddr, String> {
    config_file::parse_recursor(s).map_err(|e| format!("-recursor: {e}"))
}

/// Reads the config files the flags name: each `-config-file` (a `.hcl` one is refused by the
/// loader), then each `-config-dir`'s `*.json` files in lexical order. Returns them with notes
/// on skipped `.hcl` files, to log once logging is up. Errors: an unreadable file or directory.
fn read_sources(a: &AgentArgs) -> Result<(Vec<Source>, Vec<String>), String> {
    let read = |path: &Path| {
        std::fs::read(path)
            .map(|bytes| Source { name: path.display().to_string(), bytes })
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))
    };
    let mut sources = a.config_file.iter().map(|p| read(p)).collect::<Result<Vec<_>, _>>()?;
    let mut notes = Vec::new();
    for dir in &a.config_dir {
        let listing = std::fs::read_dir(dir).map_err(|e| format!("cannot read config dir {}: {e}", dir.display()))?;
        let mut paths = Vec::new();
        for entry in listing {
            let path = entry.map_err(|e| format!("cannot read config dir {}: {e}", dir.display()))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if !path.is_file() {
                continue;
            }
            if config_file::is_hcl(&name) {
                notes.push(format!("skipping {}: HCL config files are not supported, only JSON", path.display()));
            } else if config_file::loads_from_dir(&name) {
                paths.push(path);
            }
        }
        paths.sort();
        for p in paths {
            sources.push(read(&p)?);
        }
    }
    Ok((sources, notes))
}

/// Reads and merges the config files. Errors: unreadable or invalid (naming the file).
fn load_files(a: &AgentArgs) -> Result<(FileConfig, Vec<String>), String> {
    let (sources, notes) = read_sources(a)?;
    let file = config_file::load(&sources).map_err(|e| e.to_string())?;
    Ok((file, notes))
}

/// The options a reload cannot apply (they need a restart) that differ between `old` and `new`.
fn restart_only_changes(old: &AgentConfig, new: &AgentConfig) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut diff = |name, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    diff("node_name", old.node_name != new.node_name);
    diff("datacenter", old.datacenter != new.datacenter);
    diff("server", old.server != new.server);
    diff("bootstrap_expect", old.bootstrap_expect != new.bootstrap_expect);
    diff("bind_addr", old.bind_addr != new.bind_addr);
    diff("client_addr", old.client_addr != new.client_addr);
    diff("ports", old.ports != new.ports);
    diff("retry_join_wan", old.wan != new.wan);
    diff("data_dir", old.data_dir != new.data_dir);
    diff("retry_join", old.retry_join != new.retry_join);
    diff("domain, recursors or dns_config", old.dns != new.dns);
    diff("enable_script_checks", old.enable_script_checks != new.enable_script_checks);
    changed
}

/// Reloads the config files into a running agent (SIGHUP, `PUT /v1/agent/reload`): re-reads the
/// same files, replaces the services and checks that came from them (API-registered ones are
/// untouched), and logs the options that changed but need a restart. A bad file keeps the
/// running config: the error is logged at ERROR and returned. Reloads run one at a time.
pub struct Reloader {
    /// The command-line flags, as given at start.
    args: AgentArgs,
    /// The configuration the agent runs with (from start; a reload changes only local entries).
    running: AgentConfig,
    running_log_level: String,
    local: Arc<Local>,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(args: AgentArgs, running: AgentConfig, running_log_level: String, local: Arc<Local>) -> Arc<Self> {
        Arc::new(Self { args, running, running_log_level, local, one_at_a_time: tokio::sync::Mutex::new(()) })
    }

    /// Registers this reloader as the agent's reload hook (for `PUT /v1/agent/reload`).
    pub fn install(self: &Arc<Self>) {
        let me = self.clone();
        self.local.set_reload_hook(Arc::new(move || {
            let me = me.clone();
            Box::pin(async move { me.reload().await })
        }));
    }

    /// One reload. Errors: the message to answer with (also logged at ERROR).
    pub async fn reload(&self) -> Result<(), String> {
        let _one = self.one_at_a_time.lock().await;
        tracing::info!("reloading configuration");
        let result = self.apply().await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
        }
        result
    }

    async fn apply(&self) -> Result<(), String> {
        let (file, notes) = load_files(&self.args)?;
        for note in notes {
            tracing::warn!("{note}");
        }
        let new = config_from_args(&self.args, &file)?;
        // Definitions are judged by the running agent's rules (a newly enabled
        // enable_script_checks needs a restart like any other option).
        let entries = file.entries(self.running.enable_script_checks).map_err(|e| e.to_string())?;
        let mut not_applied = restart_only_changes(&self.running, &new);
        if log_level(&self.args, &file) != self.running_log_level {
            not_applied.push("log_level");
        }
        if !not_applied.is_empty() {
            tracing::warn!(options = %not_applied.join(", "), "changed options need a restart to take effect; not applied");
        }
        let change = self.local.replace_config_entries(entries).await.map_err(|e| format!("config files: {e}"))?;
        tracing::info!(services = change.services, checks = change.checks, removed_services = ?change.removed_services,
            removed_checks = ?change.removed_checks, "configuration reloaded");
        Ok(())
    }
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

/// SIGINT, SIGTERM and SIGHUP handlers, installed before the agent starts so an early signal
/// still means a clean exit rather than the default (killed by signal).
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// What a signal asks for.
enum SignalAction {
    /// SIGINT or SIGTERM (named).
    Shutdown(&'static str),
    /// SIGHUP: reload the config files.
    Reload,
}

impl Signals {
    /// Installs the handlers. Errors: the OS refused (rare; reported and exit 1).
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self { int: signal(SignalKind::interrupt())?, term: signal(SignalKind::terminate())?, hup: signal(SignalKind::hangup())? })
    }

    /// Waits for the next signal.
    async fn recv(&mut self) -> SignalAction {
        tokio::select! {
            _ = self.int.recv() => SignalAction::Shutdown("SIGINT"),
            _ = self.term.recv() => SignalAction::Shutdown("SIGTERM"),
            _ = self.hup.recv() => SignalAction::Reload,
        }
    }
}

/// Runs `concord agent`; returns the exit code (0 after a signal, 1 if the agent cannot start).
pub fn run(args: AgentArgs) -> i32 {
    let (files, notes) = match load_files(&args) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("==> Error: {e}");
            return EXIT_FAILURE;
        }
    };
    let level_name = log_level(&args, &files);
    let level = match crate::telemetry::logs::LogLevel::parse(&level_name) {
        Ok(level) => level,
        Err(e) => {
            eprintln!("==> {e}");
            return EXIT_FAILURE;
        }
    };
    super::logging::init(level, args.log_json);
    for note in notes {
        tracing::warn!("{note}");
    }
    let config = match config_from_args(&args, &files) {
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
        let mut signals = match Signals::install() {
            Ok(signals) => signals,
            Err(e) => {
                eprintln!("==> Error: cannot install signal handlers: {e}");
                return EXIT_FAILURE;
            }
        };
        let banner_config = config.clone();
        let running = config.clone();
        let agent = match agent::start(config, io).await {
            Ok(agent) => agent,
            Err(e) => {
                eprintln!("==> Error starting agent: {e}");
                return EXIT_FAILURE;
            }
        };
        print_banner(&banner_config);
        let reloader = Reloader::new(args, running, level_name, agent.server.local.clone());
        reloader.install();
        // A fatal Raft error (e.g. a failed fsync) means the log can no longer be trusted to be
        // durable: exit non-zero so the service manager restarts the agent from its disk.
        let code = loop {
            tokio::select! {
                action = signals.recv() => match action {
                    SignalAction::Shutdown(signal) => {
                        tracing::info!(signal, "shutting down");
                        break 0;
                    }
                    SignalAction::Reload => {
                        // A failure is logged by the reloader; the agent keeps running.
                        let _ = reloader.reload().await;
                    }
                },
                _ = agent.server.leave.wait() => {
                    // Let the answer to `PUT /v1/agent/leave` reach the client before exiting.
                    tokio::time::sleep(LEAVE_REPLY_GRACE).await;
                    tracing::info!("left the cluster; shutting down");
                    break 0;
                }
                why = agent.wait_fatal() => {
                    tracing::error!(%why, "raft stopped on a fatal error; exiting so the agent restarts from disk");
                    break EXIT_FAILURE;
                }
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

    fn from_args(a: &AgentArgs) -> Result<AgentConfig, String> {
        config_from_args(a, &FileConfig::default())
    }

    fn agent_args(args: &[&str]) -> AgentArgs {
        let argv = std::iter::once("concord").chain(std::iter::once("agent")).chain(args.iter().copied());
        match parse_from(argv.map(Into::into).collect()).unwrap().command {
            Command::Agent(a) => a,
            other => panic!("expected agent, got {other:?}"),
        }
    }

    #[test]
    fn dev_mode_keeps_defaults_but_honours_port_flags() {
        let c = from_args(&agent_args(&["-dev", "-http-port=18500", "-server-port=18300"])).unwrap();
        assert!(c.dev && c.server && c.data_dir.is_none());
        assert_eq!((c.ports.http, c.ports.server, c.ports.dns), (18500, 18300, 8600));
    }

    #[test]
    fn server_mode_requires_server_data_dir_bind_and_bootstrap() {
        let err = |args: &[&str]| from_args(&agent_args(args)).unwrap_err();
        assert!(err(&["-data-dir=/d", "-bind=127.0.0.1", "-bootstrap-expect=3"]).contains("-server"));
        assert!(err(&["-server", "-bind=127.0.0.1", "-bootstrap-expect=3"]).contains("-data-dir"));
        assert!(err(&["-server", "-data-dir=/d", "-bootstrap-expect=3"]).contains("-bind"));
        assert!(err(&["-server", "-data-dir=/d", "-bind=127.0.0.1"]).contains("-bootstrap-expect"));
        assert!(err(&["-server", "-data-dir=/d", "-bind=0.0.0.0", "-bootstrap"]).contains("reach"));
        assert!(err(&["-server", "-data-dir=/d", "-bind=127.0.0.1", "-bootstrap", "-retry-join=x"])
            .contains("retry-join"));
    }

    #[test]
    fn client_mode_needs_no_bootstrap_and_refuses_one() {
        let c = from_args(&agent_args(&["-data-dir=/d", "-bind=127.0.0.4", "-node=c1", "-retry-join=127.0.0.1:8301"])).unwrap();
        assert!(!c.server && !c.dev);
        assert_eq!((c.node_name.as_str(), c.bootstrap_expect), ("c1", 0));
        let err = |args: &[&str]| from_args(&agent_args(args)).unwrap_err();
        assert!(err(&["-data-dir=/d", "-bind=127.0.0.1", "-bootstrap"]).contains("requires 'server = true'"));
        assert!(err(&["-bind=127.0.0.1"]).contains("-data-dir"));
    }

    #[test]
    fn server_mode_builds_the_requested_config() {
        let c = from_args(&agent_args(&[
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
        let c = from_args(&agent_args(&["-dev", "-dns-port=18600", "-domain=Example", "-recursor=10.0.0.1", "-recursor=10.0.0.2:5353"])).unwrap();
        assert_eq!((c.ports.dns, c.dns.domain.as_str()), (18600, "example."));
        assert_eq!(c.dns.recursors.iter().map(|r| r.to_string()).collect::<Vec<_>>(), ["10.0.0.1:53", "10.0.0.2:5353"]);
        assert_eq!(from_args(&agent_args(&["-dev"])).unwrap().dns, crate::config::DnsConfig::default());
        assert!(from_args(&agent_args(&["-dev", "-recursor=nope"])).unwrap_err().contains("-recursor"));
        assert!(from_args(&agent_args(&["-dev", "-domain=a..b"])).unwrap_err().contains("-domain"));
    }

    fn files(json: &[&str]) -> FileConfig {
        let sources: Vec<Source> =
            json.iter().enumerate().map(|(i, j)| Source { name: format!("{i}.json"), bytes: j.as_bytes().to_vec() }).collect();
        config_file::load(&sources).unwrap()
    }

    #[test]
    fn flags_override_config_files_and_list_flags_append() {
        let f = files(&[
            r#"{"datacenter":"east","node_name":"from-file","ports":{"http":1111,"dns":2222},"retry_join":["10.0.0.1"],
                "recursors":["10.0.0.53"],"dns_config":{"only_passing":true,"udp_answer_limit":5},"log_level":"debug"}"#,
        ]);
        let c = config_from_args(&agent_args(&["-dev", "-datacenter=west", "-http-port=3333", "-recursor=10.0.0.54"]), &f).unwrap();
        assert_eq!((c.datacenter.as_str(), c.node_name.as_str()), ("west", "from-file"), "the flag wins; the file fills the rest");
        assert_eq!((c.ports.http, c.ports.dns), (3333, 2222));
        assert_eq!(c.retry_join, ["10.0.0.1"]);
        assert_eq!(c.dns.recursors.iter().map(|r| r.to_string()).collect::<Vec<_>>(), ["10.0.0.53:53", "10.0.0.54:53"]);
        assert!(c.dns.only_passing);
        assert_eq!(c.dns.udp_answer_limit, 5);
        assert_eq!(log_level(&agent_args(&["-dev"]), &f), "debug");
        assert_eq!(log_level(&agent_args(&["-dev", "-log-level=warn"]), &f), "warn");
    }

    #[test]
    fn a_server_can_be_configured_entirely_from_a_file() {
        let f = files(&[r#"{"server":true,"bootstrap_expect":3,"data_dir":"/var/concord","bind_addr":"127.0.0.9","node_name":"s1",
            "enable_script_checks":true,"service":{"name":"web","check":{"args":["true"],"interval":"10s"}}}"#]);
        let c = config_from_args(&agent_args(&[]), &f).unwrap();
        assert!(c.server && c.enable_script_checks);
        assert_eq!((c.bootstrap_expect, c.node_name.as_str()), (3, "s1"));
        assert_eq!(c.rpc_addr().to_string(), "127.0.0.9:8300");
        assert_eq!(c.config_entries.services[0].service.service, "web");
        let no_scripts = files(&[r#"{"service":{"name":"web","check":{"args":["true"],"interval":"10s"}}}"#]);
        let e = config_from_args(&agent_args(&["-dev"]), &no_scripts).unwrap_err();
        assert!(e.contains("0.json") && e.contains("Scripts are disabled"), "{e}");
    }

    #[test]
    fn a_config_dir_loads_only_json_in_lexical_order_after_config_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.json"), r#"{"datacenter":"from-b"}"#).unwrap();
        std::fs::write(dir.path().join("a.json"), r#"{"datacenter":"from-a","node_name":"a"}"#).unwrap();
        std::fs::write(dir.path().join("c.hcl"), "datacenter = \"hcl\"").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not config").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let file = elsewhere.path().join("first.json");
        std::fs::write(&file, r#"{"node_name":"first","datacenter":"first"}"#).unwrap();
        let mut a = agent_args(&["-dev"]);
        a.config_dir = vec![dir.path().to_path_buf()];
        a.config_file = vec![file];
        let (f, notes) = load_files(&a).unwrap();
        assert_eq!((f.datacenter.as_deref(), f.node_name.as_deref()), (Some("from-b"), Some("a")));
        assert_eq!(notes.len(), 1, "the .hcl file is skipped with a note: {notes:?}");
        a.config_file = vec![dir.path().join("c.hcl")];
        assert!(load_files(&a).unwrap_err().contains("HCL is not supported"));
        a.config_file = vec![dir.path().join("missing.json")];
        assert!(load_files(&a).unwrap_err().contains("missing.json"));
    }

    #[test]
    fn a_reload_reports_options_that_need_a_restart() {
        let old = config_from_args(&agent_args(&["-dev"]), &FileConfig::default()).unwrap();
        let new = config_from_args(&agent_args(&["-dev"]), &files(&[r#"{"datacenter":"x","ports":{"dns":1},"service":{"name":"w"}}"#])).unwrap();
        assert_eq!(restart_only_changes(&old, &new), ["datacenter", "ports"], "services are not a restart-only option");
    }
}
