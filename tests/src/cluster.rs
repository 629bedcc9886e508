//! Real `concord agent` processes on loopback: one [`AgentProcess`] per agent, and [`Cluster`] for
//! N servers that bootstrap together with `-bootstrap-expect=N` and `-retry-join`.
//!
//! Owns: command lines, per-agent temp directories (data dir and log file), bounded waits for a
//! leader, and cleanup. Every process is SIGKILLed when its guard drops; when a test is panicking,
//! the tail of each agent's log is printed first so the failure explains itself.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::http::curl;
use crate::{concord_bin, free_ports, wait_until, POLL_INTERVAL};

/// How long a fresh cluster may take to elect a leader that every server knows.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of each agent's log printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// One `concord` agent process. Killed (SIGKILL) on drop.
pub struct AgentProcess {
    pub name: String,
    pub http_port: u16,
    pub server_port: u16,
    args: Vec<String>,
    log_path: PathBuf,
    child: Option<Child>,
}

impl AgentProcess {
    /// The DNS port this agent was started with (its `-dns-port` flag), if any.
    pub fn dns_port(&self) -> Option<u16> {
        self.args.iter().find_map(|a| a.strip_prefix("-dns-port=")?.parse().ok())
    }

    /// Starts `concord <args>`, appending stdout and stderr to `log_path`.
    pub fn spawn(name: &str, args: Vec<String>, http_port: u16, server_port: u16, log_path: &Path) -> Self {
        let mut p = Self {
            name: name.to_string(),
            http_port,
            server_port,
            args,
            log_path: log_path.to_path_buf(),
            child: None,
        };
        p.start();
        p
    }

    /// (Re)starts the process with the same arguments. Panics if it is already running.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = File::options().create(true).append(true).open(&self.log_path).expect("open agent log");
        let child = Command::new(concord_bin())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start concord for {}: {e}", self.name));
        self.child = Some(child);
    }

    /// SIGKILLs the process (a crash: no shutdown code runs) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status. Panics if it does not exit in time.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("agent is running");
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not exit within {timeout:?} of SIGTERM\n{}", self.name, self.log_tail());
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends `signal` (a `kill -s` name such as `HUP`) to the running process. Panics if it is
    /// not running or `kill` fails.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("agent is running");
        let status = Command::new("kill").args(["-s", signal, &child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// The running process's OS id (for /proc figures such as CPU time and peak RSS).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (not exited).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `http://127.0.0.1:<http-port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// `http://127.0.0.1:<http-port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// This server's RPC address as peers and `/v1/status/leader` name it.
    pub fn rpc_addr(&self) -> String {
        format!("127.0.0.1:{}", self.server_port)
    }

    /// The last lines of this agent's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!("--- {} log ({}) ---\n{}", self.name, self.log_path.display(), lines[from..].join("\n"))
    }

    /// This agent's view of the leader: `Ok(addr)` when non-empty.
    pub fn leader(&self) -> Result<String, String> {
        let r = curl("GET", &self.url("/v1/status/leader"), None)?;
        if r.status != 200 {
            return Err(format!("{}: status {} {}", self.name, r.status, r.text()));
        }
        match r.json().as_str() {
            Some(addr) if !addr.is_empty() => Ok(addr.to_string()),
            _ => Err(format!("{}: no leader yet ({})", self.name, r.text())),
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        self.kill();
    }
}

/// N servers on 127.0.0.1, each with its own data dir, joined to the others; optionally client
/// agents ([`Cluster::add_client`]).
pub struct Cluster {
    pub servers: Vec<AgentProcess>,
    /// Client agents, in the order added.
    pub clients: Vec<AgentProcess>,
    /// Each server's LAN gossip port.
    pub serf_lan_ports: Vec<u16>,
    /// Each server's WAN gossip port.
    pub serf_wan_ports: Vec<u16>,
    dirs: Vec<TempDir>,
}

impl Cluster {
    /// Starts `n` servers with `-bootstrap-expect=n` and waits (up to [`LEADER_TIMEOUT`]) until all of them name the same leader.
    pub fn start(n: usize) -> Self {
        Self::start_with_args(n, &[])
    }

    /// [`Cluster::start`], with `extra` flags given to every server (e.g. `-encrypt=KEY`).
    pub fn start_with_args(n: usize, extra: &[String]) -> Self {
        let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        Self::start_datacenter(&names, None, extra)
    }

    /// Starts the servers `names` of datacenter `dc` (`None`: the default, dc1) as
    /// [`Cluster::start_with_args`] does, and waits for their leader.
    pub fn start_datacenter(names: &[String], dc: Option<&str>, extra: &[String]) -> Self {
        let n = names.len();
        // http, dns, server, serf_lan, serf_wan per server.
        let ports = free_ports(5 * n);
        let server_port = |i: usize| ports[5 * i + 2];
        let mut servers = Vec::with_capacity(n);
        let mut dirs = Vec::with_capacity(n);
        let serf_lan_ports = (0..n).map(|i| ports[5 * i + 3]).collect();
        let serf_wan_ports = (0..n).map(|i| ports[5 * i + 4]).collect();
        for i in 0..n {
            let name = names[i].clone();
            let dir = tempfile::Builder::new().prefix(&format!("concord-{name}-")).tempdir().expect("tempdir");
            let p = &ports[5 * i..5 * i + 5];
            let mut args = vec!["agent".to_string(), "-server".into(), format!("-bootstrap-expect={n}")];
            if let Some(dc) = dc {
                args.push(format!("-datacenter={dc}"));
            }
            args.extend(loopback_agent_flags(&name, dir.path(), p));
            // Consul's form: `-retry-join` names the other servers' LAN gossip ports, and Raft
            // bootstraps from the servers the pool shows. s0 names s1 by its server RPC port
            // instead, which works too (s1 reports its gossip address over RPC).
            args.extend((0..n).filter(|&j| j != i).map(|j| {
                let port = if (i, j) == (0, 1) { server_port(j) } else { ports[5 * j + 3] };
                format!("-retry-join=127.0.0.1:{port}")
            }));
            args.extend(extra.iter().cloned());
            servers.push(AgentProcess::spawn(&name, args, p[0], p[2], &dir.path().join("agent.log")));
            dirs.push(dir);
        }
        let cluster = Self { servers, clients: Vec::new(), serf_lan_ports, serf_wan_ports, dirs };
        cluster.wait_for_leader(LEADER_TIMEOUT);
        cluster
    }

    /// Starts a client agent (no `-server`) named `name` whose only `-retry-join` is server
    /// `join`'s LAN gossip address, as Consul's clients are configured; returns its index in
    /// [`Cluster::clients`].
    pub fn add_client(&mut self, name: &str, join: usize) -> usize {
        let dir = tempfile::Builder::new().prefix(&format!("concord-{name}-")).tempdir().expect("tempdir");
        // http, dns, server, serf_lan, serf_wan (a client serves no RPC; its server port only fills the flag).
        let p = free_ports(5);
        let mut args = vec!["agent".to_string()];
        args.extend(loopback_agent_flags(name, dir.path(), &p));
        args.push(format!("-retry-join=127.0.0.1:{}", self.serf_lan_ports[join]));
        self.clients.push(AgentProcess::spawn(name, args, p[0], p[2], &dir.path().join("agent.log")));
        self.dirs.push(dir);
        self.clients.len() - 1
    }

    /// Waits until every running server names the same, non-empty leader, which is one of the
    /// running servers; returns its index.
    pub fn wait_for_leader(&self, timeout: Duration) -> usize {
        let running: Vec<usize> = (0..self.servers.len()).filter(|&i| self.servers[i].child.is_some()).collect();
        wait_until(timeout, "every running server to name the same live leader", || {
            let mut views = Vec::new();
            for &i in &running {
                views.push(self.servers[i].leader()?);
            }
            let first = views[0].clone();
            if views.iter().any(|v| *v != first) {
                return Err(format!("servers disagree on the leader: {views:?}"));
            }
            running
                .iter()
                .copied()
                .find(|&i| self.servers[i].rpc_addr() == first)
                .ok_or_else(|| format!("leader {first} is not a running server"))
        })
    }

    /// Server `i`'s `-data-dir`.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dirs[i].path().join("data")
    }

    /// The index of the server every running server currently names as leader.
    pub fn leader_index(&self) -> usize {
        self.wait_for_leader(LEADER_TIMEOUT)
    }
}

/// The flags every test agent gets: its node name, loopback bind and client addresses, a data dir
/// under `dir`, and the ports `p` (http, dns, server, serf_lan, serf_wan).
fn loopback_agent_flags(name: &str, dir: &Path, p: &[u16]) -> Vec<String> {
    vec![
        format!("-node={name}"),
        "-bind=127.0.0.1".into(),
        "-client=127.0.0.1".into(),
        format!("-data-dir={}", dir.join("data").display()),
        format!("-http-port={}", p[0]),
        format!("-dns-port={}", p[1]),
        format!("-server-port={}", p[2]),
        format!("-serf-lan-port={}", p[3]),
        format!("-serf-wan-port={}", p[4]),
    ]
}
