//! The I/O abstraction: everything the agent does to the outside world goes through here.
//!
//! Owns: network ([`Net`]), clocks ([`Clock`]: wall and drifting monotonic), entropy (a seeded
//! ChaCha RNG), disk ([`Disk`]), child processes ([`process::Processes`]) and the event trace ([`TraceSink`]; its typed events are
//! [`trace`]). The `concord` binary uses [`tokio`] (real sockets, files, system clock); the
//! simulator supplies turmoil sockets, an in-memory crash-able disk ([`mem::MemDisk`]), and a
//! skewable clock. Agent code must never reach for `std::net`, `std::fs`, `SystemTime::now()` or
//! OS randomness directly, or a seed stops being a run.
//!
//! Monotonic time and sleeps come from `tokio::time`, which turmoil already virtualises.

pub mod mem;
pub mod process;
pub mod tokio;

/// The typed trace events (the `concord-trace` crate), shared with the simulator's checkers.
pub use concord_trace as trace;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ::tokio::io::{AsyncRead, AsyncWrite};
use async_trait::async_trait;

/// A bidirectional byte stream (a TCP connection in production or in turmoil).
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A boxed connection.
pub type BoxStream = Box<dyn Stream>;

/// A bound TCP listener.
#[async_trait]
pub trait Listener: Send {
    /// Waits for the next connection. Errors are the listener's (the caller logs and retries).
    async fn accept(&mut self) -> std::io::Result<(BoxStream, SocketAddr)>;
    /// The address actually bound (resolves port 0).
    fn local_addr(&self) -> std::io::Result<SocketAddr>;
}

/// A bound UDP socket, shaped like tokio's (and turmoil's). Datagrams may be lost, duplicated or
/// reordered (the simulator drops them across partitions); callers that need an answer put a
/// deadline around `recv_from`.
#[async_trait]
pub trait UdpSocket: Send + Sync {
    /// Sends one datagram to `target`; returns the bytes sent (all of `buf`). Success means only
    /// that it left, not that it arrived.
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> std::io::Result<usize>;
    /// Waits for the next datagram; copies it into `buf` and returns its length and sender. A
    /// datagram longer than `buf` is truncated to `buf.len()` (size `buf` for the largest
    /// expected datagram: 512 bytes for classic DNS, the gossip packet size for gossip).
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)>;
    /// The address actually bound (resolves port 0). In the simulator the IP is the unspecified
    /// address, as turmoil reports it.
    fn local_addr(&self) -> std::io::Result<SocketAddr>;
}

/// TCP and UDP networking, shaped like tokio's (and turmoil's, which mirrors it).
#[async_trait]
pub trait Net: Send + Sync + 'static {
    /// Binds a TCP listener on `addr`.
    async fn bind(&self, addr: SocketAddr) -> std::io::Result<Box<dyn Listener>>;
    /// Opens a TCP connection to `addr`. Callers put a deadline around it: in turmoil a partition
    /// can swallow the SYN and the call would otherwise hang.
    async fn connect(&self, addr: SocketAddr) -> std::io::Result<BoxStream>;
    /// Binds a UDP socket on `addr` (DNS on 8600, gossip on 8301/8302).
    async fn bind_udp(&self, addr: SocketAddr) -> std::io::Result<Box<dyn UdpSocket>>;
}

/// This host's clocks.
///
/// - [`Clock::wall_now`]: wall time, used only where Consul exposes wall time (session and event
///   timestamps, logs); never for ordering, which comes from Raft indexes.
/// - [`Clock::monotonic`]: this host's own monotonic reading, used to time leases and TTLs. A real
///   oscillator runs a little fast or slow; in the simulator the nemesis sets its *rate*
///   (`ClockDrift`), so every duration timed with it is stretched or shrunk as on a drifting
///   machine. Code that times a lease must assume the rate is off by up to
///   `server::lease::MAX_CLOCK_DRIFT_PPM`.
///
/// Sleeps and timeouts still come from `tokio::time` (turmoil virtualises it).
pub trait Clock: Send + Sync + 'static {
    /// Current wall-clock time.
    fn wall_now(&self) -> SystemTime;
    /// Time since this clock started, as this host's oscillator counts it. Never goes backwards;
    /// continuous when the simulator changes its rate.
    fn monotonic(&self) -> Duration;
}

/// Durable files with explicit sync, named by relative path inside the agent's data directory
/// (one flat directory: no path has a `/`).
///
/// Contract (what the Raft storage relies on), as POSIX gives it on a real filesystem:
/// - Bytes written are visible to later reads at once but are durable only after [`Disk::sync`]
///   on that file returns; a crash may drop any unsynced suffix (and the simulator may tear the
///   last write).
/// - Names are durable apart from bytes: a file created (by `write` or `append`), renamed or
///   removed is visible at once, but the change survives a crash only after [`Disk::sync_dir`]
///   returns. Until then a crash may bring back the directory as it was at the last `sync_dir`
///   (a new file gone, a renamed-over or removed file back with its synced bytes). Use
///   [`replace_durably`] for the write-tmp, sync, rename, sync-directory sequence.
#[async_trait]
pub trait Disk: Send + Sync + 'static {
    /// Reads a whole file; `Ok(None)` if it does not exist.
    async fn read(&self, path: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// Reads exactly `len` bytes of `path` starting at byte `offset` (what reads see now, as
    /// [`Disk::read`]). Errors: `NotFound` if the file does not exist, `UnexpectedEof` if it ends
    /// before `offset + len`, or any I/O error. Lets the Raft log serve an old entry without
    /// holding the whole log in memory.
    async fn read_at(&self, path: &str, offset: u64, len: usize) -> std::io::Result<Vec<u8>>;
    /// Appends bytes to a file, creating it if missing. Not durable until `sync` (and, for a new
    /// file, `sync_dir`).
    async fn append(&self, path: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// Replaces the file's contents (create or truncate, then write). Not durable until `sync`
    /// (and, for a new file, `sync_dir`).
    async fn write(&self, path: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// Truncates a file to `len` bytes. Not durable until `sync`.
    async fn truncate(&self, path: &str, len: u64) -> std::io::Result<()>;
    /// Makes everything written to `path` so far durable (fsync). Does not make its name durable.
    async fn sync(&self, path: &str) -> std::io::Result<()>;
    /// Atomically renames `from` to `to`, replacing `to`: a reader sees the old or the new file,
    /// never neither. Durable only after [`Disk::sync_dir`]; a crash before it may leave `from`
    /// and the old `to` in place.
    async fn rename(&self, from: &str, to: &str) -> std::io::Result<()>;
    /// Removes a file if present. Durable only after [`Disk::sync_dir`].
    async fn remove(&self, path: &str) -> std::io::Result<()>;
    /// Makes the data directory's current set of names durable (fsync of the directory): every
    /// create, rename and remove done before the call survives a crash once it returns. Costs one
    /// flush to stable media, like [`Disk::sync`].
    async fn sync_dir(&self) -> std::io::Result<()>;
}

/// Replaces `dst` with `bytes` so that a crash at any point leaves either its old or its new
/// contents, and the new contents survive any crash once this returns: write `tmp`, sync it,
/// rename it over `dst`, sync the directory. Also makes durable any earlier rename or remove
/// (the directory sync covers the whole namespace). `tmp` must be used by one writer at a time.
/// Errors: any I/O failure; `dst` is then old or new, never torn.
pub async fn replace_durably(disk: &dyn Disk, tmp: &str, dst: &str, bytes: &[u8]) -> std::io::Result<()> {
    debug_assert!(tmp != dst, "replacing {dst} through itself is not atomic");
    disk.write(tmp, bytes).await?;
    disk.sync(tmp).await?;
    disk.rename(tmp, dst).await?;
    disk.sync_dir().await
}

/// I/O for unit tests: real loopback sockets, the system clock, `disk`, no trace, scripted
/// processes, and `seed`.
#[cfg(test)]
pub(crate) fn test_io(disk: Arc<dyn Disk>, seed: u64) -> Io {
    Io {
        net: Arc::new(tokio::TokioNet),
        clock: Arc::new(tokio::SystemClock::new()),
        disk,
        trace: Arc::new(NoTrace),
        processes: Arc::new(process::ScriptedProcesses),
        seed,
    }
}

/// The deliberate bug `non-durable-rename` (`BugSwitches::non_durable_rename`): wraps a disk so
/// that `sync_dir` returns without syncing. [`replace_durably`] is its only caller, so every
/// atomic replacement then renames without making the rename durable, and a crash can bring back
/// the old file, or take away a file created since the last real directory sync.
pub struct SkipDirSync(pub Arc<dyn Disk>);

#[async_trait]
impl Disk for SkipDirSync {
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
        Ok(())
    }
}

/// Receives the agent's compact trace: one typed event per notable change (Raft role changes,
/// applied entries, snapshots, start-up recovery). The simulator timestamps and hashes it to prove
/// a seed replays identically, and its checkers judge Raft safety on it.
pub trait TraceSink: Send + Sync + 'static {
    /// Records one event for `node`. Must not carry wall-clock time.
    fn event(&self, node: &str, event: trace::Event);
}

/// A trace sink that discards everything (production).
pub struct NoTrace;
impl TraceSink for NoTrace {
    fn event(&self, _node: &str, _event: trace::Event) {}
}

/// The bundle of I/O handles one agent runs with.
#[derive(Clone)]
pub struct Io {
    pub net: Arc<dyn Net>,
    pub clock: Arc<dyn Clock>,
    pub disk: Arc<dyn Disk>,
    pub trace: Arc<dyn TraceSink>,
    /// Child processes (script checks): real ones in production, [`process::ScriptedProcesses`]
    /// in the simulator and unit tests.
    pub processes: Arc<dyn process::Processes>,
    /// Seed for this agent's RNG (election timeouts, jitter). Production draws it from the OS once.
    pub seed: u64,
}

impl fmt::Debug for Io {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Io").field("seed", &self.seed).finish_non_exhaustive()
    }
}
