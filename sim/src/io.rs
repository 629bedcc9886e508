//! The simulator's implementation of the agent's I/O traits: turmoil sockets, a per-host clock
//! whose rate the nemesis can drift, and a trace sink that timestamps every event with simulated time and hashes it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use node::io::trace::{Event, Record};
use node::io::{BoxStream, Clock, Listener, Net, TraceSink, UdpSocket};

/// TCP and UDP over turmoil's simulated network; the host's UDP datagrams also pass its
/// [`UdpLoss`] (the nemesis's gossip-only packet loss).
pub struct TurmoilNet {
    pub udp_loss: Arc<UdpLoss>,
}

impl TurmoilNet {
    /// A host whose datagrams are never dropped by [`UdpLoss`] (client agents, workload tools).
    pub fn lossless() -> Self {
        Self { udp_loss: UdpLoss::new(0) }
    }
}

/// A host's gossip-only packet loss: the share (per mille) of the UDP datagrams it sends that
/// are dropped, each independently, drawn from the host's own seeded stream (no draw while the
/// share is 0, so runs without this fault keep their schedules). TCP is untouched. Unlike
/// turmoil's link fail rate, which breaks a link for a burst of messages, this is the uniform
/// per-packet loss SWIM's failure detector is specified against.
#[derive(Debug)]
pub struct UdpLoss {
    per_mille: std::sync::atomic::AtomicU32,
    rng: Mutex<rand_chacha::ChaCha8Rng>,
}

impl UdpLoss {
    /// No loss yet; `seed` starts the host's drop stream.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self { per_mille: 0.into(), rng: Mutex::new(rand::SeedableRng::seed_from_u64(seed)) })
    }
    /// Sets the share of datagrams dropped, per mille (0: none).
    pub fn set(&self, per_mille: u32) {
        self.per_mille.store(per_mille.min(1000), std::sync::atomic::Ordering::Relaxed);
    }
    /// Whether the next datagram is dropped.
    fn drops(&self) -> bool {
        let per_mille = self.per_mille.load(std::sync::atomic::Ordering::Relaxed);
        per_mille > 0 && rand::Rng::gen_range(&mut *self.rng.lock().unwrap_or_else(|e| e.into_inner()), 0..1000) < per_mille
    }
}

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
    async fn bind_udp(&self, addr: SocketAddr) -> std::io::Result<Box<dyn UdpSocket>> {
        // As for TCP: turmoil binds the unspecified address (or loopback), never a host IP.
        let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
        Ok(Box::new(TurmoilUdp(turmoil::net::UdpSocket::bind(any).await?, self.udp_loss.clone())))
    }
}

/// A UDP socket in turmoil's simulated network (datagrams obey partitions, loss and latency).
struct TurmoilUdp(turmoil::net::UdpSocket, Arc<UdpLoss>);

#[async_trait]
impl UdpSocket for TurmoilUdp {
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> std::io::Result<usize> {
        if self.1.drops() {
            // Lost on the wire: the sender cannot tell.
            return Ok(buf.len());
        }
        self.0.send_to(buf, target).await
    }
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.0.recv_from(buf).await
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A host's simulated clock: its monotonic reading advances at a rate the nemesis may change
/// (`ClockDrift`), continuously at the change; wall time is a fixed epoch plus that reading (one
/// oscillator drives both, as on a real machine). The clock belongs to the host's hardware, so it
/// survives a crash and restart of the agent.
pub struct SimClock {
    drift: Mutex<Drift>,
}

#[derive(Clone, Copy, Debug)]
struct Drift {
    /// Parts per million of real (simulated) time.
    rate_ppm: u32,
    /// Simulated time of the last rate change.
    changed_at: Duration,
    /// The clock's reading at that moment.
    reading_at_change: Duration,
}

impl Drift {
    fn reading(&self, real: Duration) -> Duration {
        let since = real.saturating_sub(self.changed_at);
        let scaled = since.as_nanos() * u128::from(self.rate_ppm) / u128::from(nemesis::RATE_REAL);
        self.reading_at_change + Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl SimClock {
    /// A clock running at real rate, reading zero at the start of the simulation.
    pub fn new() -> Self {
        Self { drift: Mutex::new(Drift { rate_ppm: nemesis::RATE_REAL, changed_at: Duration::ZERO, reading_at_change: Duration::ZERO }) }
    }

    /// Changes the rate from simulated time `now` on; the reading is continuous at `now`.
    pub fn set_rate_ppm(&self, rate_ppm: u32, now: Duration) {
        let mut d = self.drift.lock().unwrap_or_else(|e| e.into_inner());
        let reading = d.reading(now);
        *d = Drift { rate_ppm, changed_at: now, reading_at_change: reading };
    }

    /// The reading at simulated time `real`.
    pub fn reading_at(&self, real: Duration) -> Duration {
        self.drift.lock().unwrap_or_else(|e| e.into_inner()).reading(real)
    }
}

/// The simulated epoch: 2026-01-01T00:00:00Z, fixed so timestamps replay.
pub const SIM_EPOCH_SECS: u64 = 1_767_225_600;

/// openraft's timers on this host follow the same oscillator (`node::raft::drift`).
impl node::raft::drift::HostRate for SimClock {
    fn drift(&self) -> Option<(i128, u32)> {
        let d = *self.drift.lock().unwrap_or_else(|e| e.into_inner());
        if d.rate_ppm == nemesis::RATE_REAL && d.reading_at_change == d.changed_at {
            return None;
        }
        let real = turmoil::sim_elapsed().unwrap_or_default();
        Some((d.reading(real).as_nanos() as i128 - real.as_nanos() as i128, d.rate_ppm))
    }
}

impl Clock for SimClock {
    fn wall_now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(SIM_EPOCH_SECS) + self.monotonic()
    }
    fn monotonic(&self) -> Duration {
        self.reading_at(turmoil::sim_elapsed().unwrap_or_default())
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn drift_changes_the_rate_and_keeps_the_reading_continuous() {
        let c = SimClock::new();
        assert_eq!(c.reading_at(Duration::from_secs(10)), Duration::from_secs(10));
        c.set_rate_ppm(900_000, Duration::from_secs(10));
        assert_eq!(c.reading_at(Duration::from_secs(10)), Duration::from_secs(10), "continuous at the change");
        assert_eq!(c.reading_at(Duration::from_secs(20)), Duration::from_secs(19), "10 s at 90% reads 9 s");
        c.set_rate_ppm(1_100_000, Duration::from_secs(20));
        assert_eq!(c.reading_at(Duration::from_secs(30)), Duration::from_secs(30));
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
/// for the trace checkers (Raft invariants), `--trace` and `--trace-json`.
#[derive(Default)]
pub struct Trace {
    state: Mutex<TraceState>,
}

#[derive(Default)]
struct TraceState {
    hash: Fnv64,
    events: u64,
    records: Vec<Record>,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Self::default()
    }
    /// Records `who`'s `event` at simulated time `at` (whole milliseconds: the simulation steps
    /// in whole ms). The hash covers the record's rendered line, so it is stable as long as the
    /// rendering is.
    pub fn record(&self, at: Duration, who: &str, event: Event) {
        let time_ms = u64::try_from(at.as_millis()).unwrap_or(u64::MAX);
        debug_assert_eq!(Duration::from_millis(time_ms), at, "trace time is not whole milliseconds");
        let record = Record { time_ms, who: who.to_string(), event };
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.hash.write(record.to_string().as_bytes());
        st.hash.write(b"\n");
        st.events += 1;
        st.records.push(record);
    }
    /// (hash, event count).
    pub fn summary(&self) -> (u64, u64) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (st.hash.0, st.events)
    }
    /// Takes the records kept so far, in the order they were recorded (the hash and count stay).
    pub fn take_records(&self) -> Vec<Record> {
        std::mem::take(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()).records)
    }
}

/// The agent-facing side of [`Trace`].
pub struct TraceHandle(pub Arc<Trace>);

impl TraceSink for TraceHandle {
    fn event(&self, node: &str, event: Event) {
        self.0.record(turmoil::sim_elapsed().unwrap_or_default(), node, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: u16 = 8301;

    /// Runs a world where "b" echoes datagrams on [`PORT`] and "a" sends `ping` to it; returns
    /// what "a" received, or `None` if nothing came back within a second.
    fn ping(partitioned: bool) -> Option<(Vec<u8>, SocketAddr, SocketAddr)> {
        let mut sim = turmoil::Builder::new().build();
        sim.host("b", || async {
            let sock = TurmoilNet { udp_loss: UdpLoss::new(0) }.bind_udp(SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT))).await?;
            let mut buf = [0u8; 64];
            loop {
                let (n, from) = sock.recv_from(&mut buf).await?;
                sock.send_to(&buf[..n], from).await?;
            }
        });
        let got = Arc::new(Mutex::new(None));
        let out = got.clone();
        sim.client("a", async move {
            let sock = TurmoilNet { udp_loss: UdpLoss::new(0) }.bind_udp(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).await?;
            assert_eq!(sock.send_to(b"ping", SocketAddr::new(turmoil::lookup("b"), PORT)).await?, 4);
            let mut buf = [0u8; 64];
            if let Ok(r) = tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await {
                let (n, from) = r?;
                *out.lock().unwrap() = Some((buf[..n].to_vec(), from, SocketAddr::new(turmoil::lookup("b"), PORT)));
            }
            Ok(())
        });
        if partitioned {
            sim.partition("a", "b");
        }
        sim.run().unwrap();
        let result = got.lock().unwrap().take();
        result
    }

    #[test]
    fn udp_datagram_round_trips_in_turmoil() {
        let (bytes, from, b) = ping(false).expect("an echo");
        assert_eq!(bytes, b"ping");
        assert_eq!(from, b, "the reply comes from b's address and port");
    }

    #[test]
    fn udp_datagram_is_lost_across_a_turmoil_partition() {
        assert_eq!(ping(true), None);
    }
}
