//! One `concord agent -dev` on free loopback ports, with its log in a temp dir.

use std::process::Command;
use std::time::Duration;

use crate::cluster::AgentProcess;
use crate::{concord_bin, free_ports, run_with_timeout, wait_until, Finished};

/// How long a dev agent may take to listen and elect itself.
pub const DEV_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Deadline for one CLI invocation.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(20);

/// A running dev agent; SIGKILLed on drop.
pub struct DevAgent {
    pub agent: AgentProcess,
    /// The DNS port (UDP and TCP) on 127.0.0.1.
    pub dns_port: u16,
    _dir: tempfile::TempDir,
}

impl DevAgent {
    /// Starts `concord agent -dev` plus `extra` flags and waits until it elects itself.
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new().prefix("concord-dev-").tempdir().expect("tempdir");
        let p = free_ports(5);
        let mut args = vec![
            "agent".to_string(),
            "-dev".to_string(),
            format!("-http-port={}", p[0]),
            format!("-server-port={}", p[1]),
            format!("-dns-port={}", p[2]),
            format!("-serf-lan-port={}", p[3]),
            format!("-serf-wan-port={}", p[4]),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let agent = AgentProcess::spawn("dev", args, p[0], p[1], &dir.path().join("agent.log"));
        wait_until(DEV_READY_TIMEOUT, "the dev agent to elect itself", || agent.leader());
        Self { agent, dns_port: p[2], _dir: dir }
    }

    /// Starts `concord agent -dev`.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// `127.0.0.1:<http-port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.agent.http_port)
    }

    /// Runs `concord <args>` with `CONSUL_HTTP_ADDR` pointing at this agent.
    pub fn cli(&self, args: &[&str]) -> Finished {
        cli(args, Some(&self.addr()))
    }
}

/// Runs `concord <args>`, with `CONSUL_HTTP_ADDR` set to `env_addr` or removed (and
/// `CONSUL_HTTP_TOKEN` removed).
pub fn cli(args: &[&str], env_addr: Option<&str>) -> Finished {
    let mut cmd = Command::new(concord_bin());
    cmd.args(args).env_remove("CONSUL_HTTP_TOKEN");
    match env_addr {
        Some(addr) => cmd.env("CONSUL_HTTP_ADDR", addr),
        None => cmd.env_remove("CONSUL_HTTP_ADDR"),
    };
    run_with_timeout(&mut cmd, CLI_TIMEOUT)
}
