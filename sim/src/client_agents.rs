//! Client-agent hosts (`c1`, `c2`, …): Concord agents without `-server`, one per workload
//! client, for workloads that send their requests through client agents (issue 10's
//! `client-agents` scenario).
//!
//! Each client agent is configured as Consul's are: its only `-retry-join` names one server
//! (`s1`), it finds the rest through LAN gossip, and it forwards every read and write to a server
//! ([`node::server::router`]). It keeps its own memory disk and real-rate clock; the nemesis
//! leaves it alone (a crashed server's links to it are cut like any other host's).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use node::agent::{AgentConfig, BugSwitches, Ports};
use node::io::mem::MemDisk;
use node::io::trace::Event;
use node::io::Io;
use rand_chacha::ChaCha8Rng;

use crate::io::{SimClock, Trace, TraceHandle, TurmoilNet};

/// Pause before a client agent that failed to start is started again.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);
/// Mixed into the seed for each client agent's disk latency stream.
const DISK_SEED_SALT: u64 = 0x636c_6965_6e74_2164;

/// What the client agents share with the run.
pub struct ClientAgentsSpec<'a> {
    /// How many (one per workload client).
    pub count: usize,
    /// The server a client agent's `-retry-join` names (an RPC address: the agent asks it for
    /// its gossip address, as the servers' own retry-join does).
    pub join: String,
    pub http_port: u16,
    pub server_port: u16,
    pub bugs: BugSwitches,
    pub trace: &'a Arc<Trace>,
    pub run_seed: u64,
}

/// Starts the client agents as turmoil hosts; returns each one's name and HTTP address. Draws one
/// seed per agent from `seeds`.
pub fn start(sim: &mut turmoil::Sim<'_>, spec: ClientAgentsSpec<'_>, seeds: &mut ChaCha8Rng) -> Vec<(String, SocketAddr)> {
    let mut out = Vec::with_capacity(spec.count);
    for i in 0..spec.count {
        let name = nemesis::hosts::client_agent(i);
        let agent_seed = rand::Rng::gen::<u64>(seeds);
        let disk = Arc::new(MemDisk::with_latency(spec.run_seed ^ DISK_SEED_SALT.wrapping_mul(i as u64 + 1)));
        let trace = spec.trace.clone();
        let template = (spec.join.clone(), spec.http_port, spec.server_port, spec.bugs.clone());
        let host_name = name.clone();
        sim.host(name.as_str(), move || {
            let (join, http, server, bugs) = template.clone();
            let io = Io {
                net: Arc::new(TurmoilNet::lossless()),
                clock: Arc::new(SimClock::new()),
                disk: disk.clone(),
                trace: Arc::new(TraceHandle(trace.clone())),
                processes: Arc::new(node::io::process::ScriptedProcesses),
                seed: agent_seed,
            };
            let name = host_name.clone();
            async move {
                let ip = turmoil::lookup(name.as_str());
                let config = client_config(&name, ip, join, Ports { http, server, ..Ports::default() }, bugs);
                loop {
                    match node::agent::start(config.clone(), io.clone()).await {
                        Ok(agent) => {
                            // A client agent has no Raft to fail; it runs until the run ends.
                            let why = agent.wait_fatal().await;
                            io.trace.event(&config.node_name, Event::RaftFatal { reason: why });
                            agent.shutdown().await;
                        }
                        Err(e) => io.trace.event(&config.node_name, Event::StartFailed { reason: e.to_string() }),
                    }
                    tokio::time::sleep(RESTART_BACKOFF).await;
                }
            }
        });
        out.push((name.clone(), SocketAddr::new(sim.lookup(name.as_str()), spec.http_port)));
    }
    out
}

/// A client agent's configuration: no `-server`, no bootstrap, one `-retry-join`.
fn client_config(name: &str, ip: IpAddr, join: String, ports: Ports, bugs: BugSwitches) -> AgentConfig {
    let mut c = AgentConfig::dev();
    c.dev = false;
    c.server = false;
    c.bootstrap_expect = 0;
    c.node_name = name.to_string();
    c.datacenter = "dc1".into();
    c.bind_addr = ip;
    c.client_addr = ip;
    c.ports = ports;
    c.data_dir = None;
    c.retry_join = vec![join];
    c.bugs = bugs;
    c
}
