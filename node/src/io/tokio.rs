//! Production I/O: real tokio sockets, real files with fsync, the system clock.
//!
//! This is the one module of agent code allowed to touch `tokio::net`, `std::fs`-like APIs and
//! `SystemTime::now()`; everything else goes through the traits in [`crate::io`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{BoxStream, Clock, Disk, Io, Listener, Net, NoTrace, UdpSocket};

/// Real TCP over tokio.
pub struct TokioNet;

struct TokioListener(tokio::net::TcpListener);

#[async_trait]
impl Listener for TokioListener {
    async fn accept(&mut self) -> std::io::Result<(BoxStream, SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        stream.set_nodelay(true)?;
        Ok((Box::new(stream), peer))
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

#[async_trait]
impl Net for TokioNet {
    async fn bind(&self, addr: SocketAddr) -> std::io::Result<Box<dyn Listener>> {
        Ok(Box::new(TokioListener(tokio::net::TcpListener::bind(addr).await?)))
    }
    async fn connect(&self, addr: SocketAddr) -> std::io::Result<BoxStream> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Box::new(stream))
    }
    async fn bind_udp(&self, addr: SocketAddr) -> std::io::Result<Box<dyn UdpSocket>> {
        Ok(Box::new(TokioUdp(tokio::net::UdpSocket::bind(addr).await?)))
    }
}

/// A real UDP socket.
struct TokioUdp(tokio::net::UdpSocket);

#[async_trait]
impl UdpSocket for TokioUdp {
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> std::io::Result<usize> {
        self.0.send_to(buf, target).await
    }
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.0.recv_from(buf).await
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// The system clocks: wall time from the OS, monotonic time from tokio since this clock was made.
pub struct SystemClock {
    start: tokio::time::Instant,
}

impl SystemClock {
    /// A clock whose monotonic reading starts at zero now.
    pub fn new() -> Self {
        Self { start: tokio::time::Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn wall_now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn monotonic(&self) -> std::time::Duration {
        self.start.elapsed()
    }
}

/// Files under a data directory, with real fsync.
pub struct FileDisk {
    root: PathBuf,
}

impl FileDisk {
    /// Creates (if needed) and uses `root` as the data directory.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self { root: root.to_path_buf() })
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

#[async_trait]
impl Disk for FileDisk {
    async fn read(&self, path: &str) -> std::io::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.path(path)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    async fn read_at(&self, path: &str, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut f = tokio::fs::File::open(self.path(path)).await?;
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut buf = vec![0; len];
        f.read_exact(&mut buf).await?;
        Ok(buf)
    }
    async fn append(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        let mut f = tokio::fs::OpenOptions::new().create(true).append(true).open(self.path(path)).await?;
        f.write_all(bytes).await?;
        f.flush().await
    }
    async fn write(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        let mut f = tokio::fs::File::create(self.path(path)).await?;
        f.write_all(bytes).await?;
        f.flush().await
    }
    async fn truncate(&self, path: &str, len: u64) -> std::io::Result<()> {
        let f = tokio::fs::OpenOptions::new().write(true).open(self.path(path)).await?;
        f.set_len(len).await
    }
    async fn sync(&self, path: &str) -> std::io::Result<()> {
        let f = tokio::fs::OpenOptions::new().write(true).open(self.path(path)).await?;
        f.sync_all().await
    }
    async fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        tokio::fs::rename(self.path(from), self.path(to)).await
    }
    async fn remove(&self, path: &str) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.path(path)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
    /// Opens the data directory read-only and fsyncs it (Linux and the BSDs accept `fsync` on a
    /// directory descriptor; it flushes the directory's entries).
    async fn sync_dir(&self) -> std::io::Result<()> {
        tokio::fs::File::open(&self.root).await?.sync_all().await
    }
}

/// The production I/O bundle. `data_dir = None` keeps state in memory (`-dev` mode).
/// The RNG seed comes from the OS, once.
pub fn production_io(data_dir: Option<&Path>) -> std::io::Result<Io> {
    let disk: Arc<dyn Disk> = match data_dir {
        Some(dir) => Arc::new(FileDisk::open(dir)?),
        None => Arc::new(super::mem::MemDisk::new()),
    };
    let mut seed = [0u8; 8];
    getrandom_seed(&mut seed);
    Ok(Io {
        net: Arc::new(TokioNet),
        clock: Arc::new(SystemClock::new()),
        disk,
        trace: Arc::new(NoTrace),
        processes: Arc::new(super::process::OsProcesses),
        seed: u64::from_le_bytes(seed),
    })
}

fn getrandom_seed(buf: &mut [u8; 8]) {
    use rand::RngCore;
    rand::rngs::OsRng.fill_bytes(buf);
}

#[cfg(test)]
mod udp_tests {
    use super::*;

    #[tokio::test]
    async fn udp_datagram_round_trips_on_loopback() {
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = TokioNet.bind_udp(loopback).await.unwrap();
        let client = TokioNet.bind_udp(loopback).await.unwrap();
        let (server_addr, client_addr) = (server.local_addr().unwrap(), client.local_addr().unwrap());
        assert_ne!(server_addr.port(), 0, "port 0 resolves to the bound port");
        assert_eq!(client.send_to(b"ping", server_addr).await.unwrap(), 4);
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], client_addr));
        server.send_to(b"pong", from).await.unwrap();
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"pong"[..], server_addr));
    }
}

#[cfg(test)]
mod disk_tests {
    use super::*;

    #[tokio::test]
    async fn read_at_reads_a_range_and_refuses_one_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FileDisk::open(dir.path()).unwrap();
        disk.append("log", b"abcdef").await.unwrap();
        assert_eq!(disk.read_at("log", 2, 3).await.unwrap(), b"cde");
        assert_eq!(disk.read_at("log", 4, 3).await.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(disk.read_at("nope", 0, 1).await.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }
}
