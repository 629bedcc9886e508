//! An in-memory disk that models durability: each file keeps the bytes the agent sees and,
//! separately, the bytes that survived the last sync.
//!
//! Used by `concord agent -dev` (nothing persists) and by the simulator, which calls
//! [`MemDisk::crash`] when the nemesis kills a node: unsynced bytes are lost, exactly as an OS
//! crash loses the page cache. The simulator may also arm one-shot faults
//! ([`MemDisk::fail_next_read`], [`MemDisk::tear_on_crash`]) to exercise checksums.
//!
//! In the simulator ([`MemDisk::with_latency`]) every operation also takes seeded simulated time
//! before it takes effect (fsync, rename and remove slower than reads and writes), so concurrent
//! disk work interleaves as it does on a real disk. `-dev` mode uses [`MemDisk::new`]: no latency.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use async_trait::async_trait;

use super::Disk;

/// What survives a crash. Kept as a prefix length while the file only grows, so syncing an
/// append-only log costs nothing (no copy per fsync).
#[derive(Clone, Debug)]
enum Durable {
    /// The durable bytes are `current[..len]`.
    Prefix(usize),
    /// The file was rewritten or truncated below its synced length since the last sync.
    Copy(Vec<u8>),
}

#[derive(Clone, Debug)]
struct File {
    /// What reads return now.
    current: Vec<u8>,
    durable: Durable,
}

impl Default for File {
    fn default() -> Self {
        Self { current: Vec::new(), durable: Durable::Prefix(0) }
    }
}

impl File {
    fn durable_bytes(&self) -> &[u8] {
        match &self.durable {
            Durable::Prefix(len) => &self.current[..(*len).min(self.current.len())],
            Durable::Copy(bytes) => bytes,
        }
    }
    /// Before a non-append change: pin the durable bytes if the change would alter them.
    fn pin_durable(&mut self, keep_len: usize) {
        if let Durable::Prefix(len) = self.durable {
            if keep_len < len {
                self.durable = Durable::Copy(self.current[..len.min(self.current.len())].to_vec());
            }
        }
    }
    fn sync(&mut self) {
        self.durable = Durable::Prefix(self.current.len());
    }
}

#[derive(Default, Debug)]
struct State {
    files: BTreeMap<String, File>,
    fail_next_read: bool,
    tear_on_crash: bool,
}

/// Simulated service time of a read, write, append or truncate, in µs.
pub const IO_LATENCY_US: Range<u64> = 20..300;
/// Simulated service time of an fsync, rename or remove (a flush to stable media), in µs.
pub const SYNC_LATENCY_US: Range<u64> = 500..5_000;

/// A crash-consistent in-memory disk, optionally with seeded per-operation latency.
#[derive(Default, Debug)]
pub struct MemDisk {
    state: Mutex<State>,
    /// Seeded service times (simulator only); `None` completes every operation at once.
    latency: Option<Mutex<ChaCha8Rng>>,
}

fn poisoned() -> std::io::Error {
    std::io::Error::other("mem disk lock poisoned")
}

impl MemDisk {
    /// An empty disk whose operations complete at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty disk whose operations each take simulated time ([`IO_LATENCY_US`],
    /// [`SYNC_LATENCY_US`]) drawn from an RNG seeded with `seed`, so a run replays.
    pub fn with_latency(seed: u64) -> Self {
        Self { state: Mutex::default(), latency: Some(Mutex::new(ChaCha8Rng::seed_from_u64(seed))) }
    }

    /// Waits the operation's service time (before it takes effect: a crash meanwhile loses it).
    async fn service_time(&self, range: Range<u64>) {
        let Some(rng) = &self.latency else { return };
        let us = rng.lock().map(|mut r| r.gen_range(range)).unwrap_or(0);
        tokio::time::sleep(Duration::from_micros(us)).await;
    }

    /// Simulates power loss: every file reverts to its durable bytes. If a torn write was armed,
    /// the first file that had unsynced bytes keeps half of them (a torn last write).
    pub fn crash(&self) {
        let Ok(mut st) = self.state.lock() else { return };
        let mut tear = std::mem::take(&mut st.tear_on_crash);
        for file in st.files.values_mut() {
            if let (true, Durable::Prefix(len)) = (tear, &file.durable) {
                let len = *len;
                if file.current.len() > len {
                    let extra = (file.current.len() - len) / 2;
                    file.current.truncate(len + extra.max(1));
                    file.sync();
                    tear = false;
                    continue;
                }
            }
            file.current = file.durable_bytes().to_vec();
            file.sync();
        }
    }

    /// Arms a one-shot read error on the next read.
    pub fn fail_next_read(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.fail_next_read = true;
        }
    }

    /// On the next crash, keep a torn part of the first unsynced write instead of dropping it.
    pub fn tear_on_crash(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.tear_on_crash = true;
        }
    }

    /// Flips one bit at `offset` of both the current and durable bytes of `path` (silent media
    /// corruption). Returns false if the file is shorter than `offset`.
    pub fn flip_bit(&self, path: &str, offset: usize, bit: u8) -> bool {
        let Ok(mut st) = self.state.lock() else { return false };
        let Some(file) = st.files.get_mut(path) else { return false };
        if offset >= file.current.len() {
            return false;
        }
        file.current[offset] ^= 1 << (bit % 8);
        if let Durable::Copy(bytes) = &mut file.durable {
            if offset < bytes.len() {
                bytes[offset] ^= 1 << (bit % 8);
            }
        }
        true
    }

    /// Length of a file's current bytes (for choosing fault offsets).
    pub fn len(&self, path: &str) -> usize {
        self.state.lock().ok().and_then(|st| st.files.get(path).map(|f| f.current.len())).unwrap_or(0)
    }

    /// Total bytes held (current), for memory reports.
    pub fn total_bytes(&self) -> usize {
        self.state.lock().map(|st| st.files.values().map(|f| f.current.len()).sum()).unwrap_or(0)
    }
}

#[async_trait]
impl Disk for MemDisk {
    async fn read(&self, path: &str) -> std::io::Result<Option<Vec<u8>>> {
        self.service_time(IO_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        if std::mem::take(&mut st.fail_next_read) {
            return Err(std::io::Error::other("injected read error"));
        }
        Ok(st.files.get(path).map(|f| f.current.clone()))
    }
    async fn append(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.service_time(IO_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        st.files.entry(path.to_string()).or_default().current.extend_from_slice(bytes);
        Ok(())
    }
    async fn write(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.service_time(IO_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        let file = st.files.entry(path.to_string()).or_default();
        file.pin_durable(0);
        file.current = bytes.to_vec();
        Ok(())
    }
    async fn truncate(&self, path: &str, len: u64) -> std::io::Result<()> {
        self.service_time(IO_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        let file = st.files.get_mut(path).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        file.pin_durable(len as usize);
        file.current.truncate(len as usize);
        Ok(())
    }
    async fn sync(&self, path: &str) -> std::io::Result<()> {
        self.service_time(SYNC_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        if let Some(file) = st.files.get_mut(path) {
            file.sync();
        }
        Ok(())
    }
    async fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.service_time(SYNC_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        // The rename itself is durable; the renamed file's unsynced bytes stay unsynced.
        let file = st.files.remove(from).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        st.files.insert(to.to_string(), file);
        Ok(())
    }
    async fn remove(&self, path: &str) -> std::io::Result<()> {
        self.service_time(SYNC_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        st.files.remove(path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn crash_drops_unsynced_suffix_and_keeps_synced_prefix() {
        let disk = MemDisk::new();
        disk.append("log", b"abc").await.unwrap();
        disk.sync("log").await.unwrap();
        disk.append("log", b"def").await.unwrap();
        disk.crash();
        assert_eq!(disk.read("log").await.unwrap().unwrap(), b"abc");
    }

    #[tokio::test]
    async fn crash_after_unsynced_truncate_restores_synced_bytes() {
        let disk = MemDisk::new();
        disk.append("log", b"abcdef").await.unwrap();
        disk.sync("log").await.unwrap();
        disk.truncate("log", 2).await.unwrap();
        disk.append("log", b"XY").await.unwrap();
        assert_eq!(disk.read("log").await.unwrap().unwrap(), b"abXY");
        disk.crash();
        assert_eq!(disk.read("log").await.unwrap().unwrap(), b"abcdef");
    }

    #[tokio::test]
    async fn torn_crash_keeps_part_of_the_unsynced_write() {
        let disk = MemDisk::new();
        disk.append("log", b"ab").await.unwrap();
        disk.sync("log").await.unwrap();
        disk.append("log", b"cdefgh").await.unwrap();
        disk.tear_on_crash();
        disk.crash();
        let bytes = disk.read("log").await.unwrap().unwrap();
        assert!(bytes.len() > 2 && bytes.len() < 8, "torn length {}", bytes.len());
        assert!(bytes.starts_with(b"abc"));
    }
}
