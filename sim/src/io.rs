//! The simulator's implementation of the agent's I/O traits: turmoil sockets, a skewable wall
//! clock, and a trace sink that timestamps every event with simulated time and hashes it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use node::io::{BoxStream, Clock, Listener, Net, TraceSink};

/// TCP over turmoil's simulated network.
pub struct TurmoilNet;

struct TurmoilListener(turmoil::net::TcpListener);

#[async_trait]
impl Listener for TurmoilListener {
    async fn accept(&mut self) -> std::io::Result<(BoxStream, SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        Ok((Box::new(stream), peer))
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

#[async_trait]
impl Net for TurmoilNet {
    async fn bind(&self, addr: SocketAddr) -> std::io::Result<Box<dyn Listener>> {
        // turmoil binds only the unspecified address; the host's own IP is implied.
        let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
        Ok(Box::new(TurmoilListener(turmoil::net::TcpListener::bind(any).await?)))
    }
    async fn connect(&self, addr: SocketAddr) -> std::io::Result<BoxStream> {
        Ok(Box::new(turmoil::net::TcpStream::connect(addr).await?))
    }
}

/// Simulated wall clock: a fixed epoch plus simulated elapsed time plus a per-node skew that the
/// nemesis may change.
pub struct SimClock {
    pub skew_ms: Mutex<i64>,
}

/// The simulated epoch: 2026-01-01T00:00:00Z, fixed so timestamps replay.
pub const SIM_EPOCH_SECS: u64 = 1_767_225_600;

impl Clock for SimClock {
    fn wall_now(&self) -> SystemTime {
        let elapsed = turmoil::sim_elapsed().unwrap_or_default();
        let skew = *self.skew_ms.lock().unwrap_or_else(|e| e.into_inner());
        let base = UNIX_EPOCH + Duration::from_secs(SIM_EPOCH_SECS) + elapsed;
        if skew >= 0 {
            base + Duration::from_millis(skew as u64)
        } else {
            base - Duration::from_millis(skew.unsigned_abs())
        }
    }
}

/// FNV-1a, 64 bit: a stable hash (unlike std's, it is specified and never changes between
/// Rust releases), so trace hashes can be compared across machines.
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(pub u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    /// Mixes `bytes` into the hash.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The run's trace: every agent event, stamped with simulated time, folded into a hash and kept
/// for the trace checkers (Raft invariants) and `--trace`.
#[derive(Default)]
pub struct Trace {
    state: Mutex<TraceState>,
}

#[derive(Default)]
struct TraceState {
    hash: Fnv64,
    events: u64,
    lines: Vec<String>,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Self::default()
    }
    /// Records a line at simulated time `at`.
    pub fn record(&self, at: Duration, who: &str, event: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let line = format!("{:>10.3} {who} {event}", at.as_secs_f64());
        st.hash.write(line.as_bytes());
        st.hash.write(b"\n");
        st.events += 1;
        st.lines.push(line);
    }
    /// (hash, event count).
    pub fn summary(&self) -> (u64, u64) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (st.hash.0, st.events)
    }
    /// The kept lines.
    pub fn lines(&self) -> Vec<String> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).lines.clone()
    }
}

/// The agent-facing side of [`Trace`].
pub struct TraceHandle(pub Arc<Trace>);

impl TraceSink for TraceHandle {
    fn event(&self, node: &str, event: &str) {
        self.0.record(turmoil::sim_elapsed().unwrap_or_default(), node, event);
    }
}
