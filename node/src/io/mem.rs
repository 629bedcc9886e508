//! An in-memory disk that models durability: each file keeps the bytes the agent sees and,
//! separately, the bytes that survived the last sync.
//!
//! Used by `concord agent -dev` (nothing persists) and by the simulator, which calls
//! [`MemDisk::crash`] when the nemesis kills a node: unsynced bytes are lost, exactly as an OS
//! crash loses the page cache. Names are modelled apart from bytes, as a directory is on a real
//! filesystem: a create, rename or remove changes the namespace at once, but a crash reverts the
//! namespace to what it was at the last [`Disk::sync_dir`] (a new file vanishes, a renamed-over
//! file comes back with its synced bytes). The simulator may also arm one-shot faults
//! ([`MemDisk::fail_next_read`], [`MemDisk::tear_on_crash`]) to exercise checksums.
//!
//! In the simulator ([`MemDisk::with_latency`]) every operation also takes seeded simulated time
//! before it takes effect (an fsync of a file or of the directory slower than anything else), so
//! concurrent disk work interleaves as it does on a real disk. `-dev` mode uses [`MemDisk::new`]: no latency.

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

/// A file's identity apart from its name (an inode): a rename moves the name, not the file.
type Inode = u64;

#[derive(Default, Debug)]
struct State {
    /// Every file some name (current or durable) still refers to.
    inodes: BTreeMap<Inode, File>,
    /// The namespace reads see now.
    names: BTreeMap<String, Inode>,
    /// The namespace as of the last `sync_dir`: what a crash reverts to.
    durable_names: BTreeMap<String, Inode>,
    next_inode: Inode,
    fail_next_read: bool,
    tear_on_crash: bool,
}

impl State {
    fn file(&self, path: &str) -> Option<&File> {
        self.names.get(path).and_then(|ino| self.inodes.get(ino))
    }
    fn file_mut(&mut self, path: &str) -> Option<&mut File> {
        let ino = *self.names.get(path)?;
        self.inodes.get_mut(&ino)
    }
    /// The file at `path`, created empty (a new, not yet durable name) if missing.
    fn file_or_create(&mut self, path: &str) -> &mut File {
        let ino = match self.names.get(path) {
            Some(ino) => *ino,
            None => {
                let ino = self.next_inode;
                self.next_inode += 1;
                self.names.insert(path.to_string(), ino);
                ino
            }
        };
        self.inodes.entry(ino).or_default()
    }
    /// Drops the files no name refers to any more, current or durable.
    fn collect_garbage(&mut self) {
        let (names, durable) = (&self.names, &self.durable_names);
        self.inodes.retain(|ino, _| names.values().any(|n| n == ino) || durable.values().any(|n| n == ino));
    }
}

/// Simulated service time of a read, write, append, truncate, rename or remove, in µs.
pub const IO_LATENCY_US: Range<u64> = 20..300;
/// Simulated service time of an fsync of a file or of the directory (a flush to stable media), in µs.
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

    /// Simulates power loss: the namespace reverts to its last `sync_dir` (files created since
    /// vanish, files renamed over or removed since come back) and every file to its durable
    /// bytes. If a torn write was armed, the first file (by name) that had unsynced bytes keeps
    /// half of them (a torn last write).
    pub fn crash(&self) {
        let Ok(mut guard) = self.state.lock() else { return };
        let st = &mut *guard;
        st.names = st.durable_names.clone();
        st.collect_garbage();
        let mut tear = std::mem::take(&mut st.tear_on_crash);
        for ino in st.names.values() {
            let Some(file) = st.inodes.get_mut(ino) else { continue };
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
        let Some(file) = st.file_mut(path) else { return false };
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
        self.state.lock().ok().and_then(|st| st.file(path).map(|f| f.current.len())).unwrap_or(0)
    }

    /// Total bytes held (current), for memory reports.
    pub fn total_bytes(&self) -> usize {
        self.state.lock().map(|st| st.inodes.values().map(|f| f.current.len()).sum()).unwrap_or(0)
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
        Ok(st.file(path).map(|f| f.current.clone()))
    }
    async fn read_at(&self, path: &str, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.service_time(IO_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        if std::mem::take(&mut st.fail_next_read) {
            return Err(std::io::Error::other("injected read error"));
        }
        let file = st.file(path).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let range = start..start.saturating_add(len);
        file.current.get(range).map(<[u8]>::to_vec).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
    }
    async fn append(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.service_time(IO_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        st.file_or_create(path).current.extend_from_slice(bytes);
        Ok(())
    }
    async fn write(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.service_time(IO_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        let file = st.file_or_create(path);
        file.pin_durable(0);
        file.current = bytes.to_vec();
        Ok(())
    }
    async fn truncate(&self, path: &str, len: u64) -> std::io::Result<()> {
        self.service_time(IO_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        let file = st.file_mut(path).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        file.pin_durable(len as usize);
        file.current.truncate(len as usize);
        Ok(())
    }
    async fn sync(&self, path: &str) -> std::io::Result<()> {
        self.service_time(SYNC_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        if let Some(file) = st.file_mut(path) {
            file.sync();
        }
        Ok(())
    }
    async fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.service_time(IO_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        // Moves the name only: the file's unsynced bytes stay unsynced, and the old and new names
        // stay as they were durably until `sync_dir`.
        let ino = st.names.remove(from).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        st.names.insert(to.to_string(), ino);
        st.collect_garbage();
        Ok(())
    }
    async fn remove(&self, path: &str) -> std::io::Result<()> {
        self.service_time(IO_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        st.names.remove(path);
        st.collect_garbage();
        Ok(())
    }
    async fn sync_dir(&self) -> std::io::Result<()> {
        self.service_time(SYNC_LATENCY_US).await;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        st.durable_names = st.names.clone();
        st.collect_garbage();
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
        disk.sync_dir().await.unwrap();
        disk.append("log", b"def").await.unwrap();
        disk.crash();
        assert_eq!(disk.read("log").await.unwrap().unwrap(), b"abc");
    }

    #[tokio::test]
    async fn read_at_reads_a_range_and_refuses_one_past_the_end() {
        let disk = MemDisk::new();
        disk.append("log", b"abcdef").await.unwrap();
        assert_eq!(disk.read_at("log", 2, 3).await.unwrap(), b"cde");
        assert_eq!(disk.read_at("log", 6, 0).await.unwrap(), b"");
        assert_eq!(disk.read_at("log", 4, 3).await.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(disk.read_at("nope", 0, 1).await.unwrap_err().kind(), std::io::ErrorKind::NotFound);
        disk.fail_next_read();
        assert!(disk.read_at("log", 0, 1).await.is_err(), "an injected read error hits read_at too");
        assert_eq!(disk.read_at("log", 0, 1).await.unwrap(), b"a", "and only once");
    }

    #[tokio::test]
    async fn crash_after_unsynced_truncate_restores_synced_bytes() {
        let disk = MemDisk::new();
        disk.append("log", b"abcdef").await.unwrap();
        disk.sync("log").await.unwrap();
        disk.sync_dir().await.unwrap();
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
        disk.sync_dir().await.unwrap();
        disk.append("log", b"cdefgh").await.unwrap();
        disk.tear_on_crash();
        disk.crash();
        let bytes = disk.read("log").await.unwrap().unwrap();
        assert!(bytes.len() > 2 && bytes.len() < 8, "torn length {}", bytes.len());
        assert!(bytes.starts_with(b"abc"));
    }

    async fn synced_file(disk: &MemDisk, path: &str, bytes: &[u8]) {
        disk.write(path, bytes).await.unwrap();
        disk.sync(path).await.unwrap();
    }

    /// A disk where a durable `vote` ("old") was just replaced by renaming a synced `vote.tmp`
    /// ("new") over it, the directory not yet synced.
    async fn vote_renamed_over() -> MemDisk {
        let disk = MemDisk::new();
        synced_file(&disk, "vote", b"old").await;
        disk.sync_dir().await.unwrap();
        synced_file(&disk, "vote.tmp", b"new").await;
        disk.rename("vote.tmp", "vote").await.unwrap();
        assert_eq!(disk.read("vote").await.unwrap().as_deref(), Some(&b"new"[..]), "visible at once");
        disk
    }

    /// A rename is a change to the directory: without a directory sync a crash undoes it, and
    /// the renamed-over file comes back with its synced bytes.
    #[tokio::test]
    async fn crash_undoes_a_rename_not_followed_by_sync_dir() {
        let disk = vote_renamed_over().await;
        disk.crash();
        assert_eq!(disk.read("vote").await.unwrap().as_deref(), Some(&b"old"[..]));
        assert_eq!(disk.read("vote.tmp").await.unwrap(), None, "tmp was never a durable name");
    }

    #[tokio::test]
    async fn rename_followed_by_sync_dir_survives_a_crash() {
        let disk = vote_renamed_over().await;
        disk.sync_dir().await.unwrap();
        disk.crash();
        assert_eq!(disk.read("vote").await.unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(disk.read("vote.tmp").await.unwrap(), None);
    }

    #[tokio::test]
    async fn crash_drops_a_synced_new_file_whose_name_was_never_synced() {
        let disk = MemDisk::new();
        synced_file(&disk, "log", b"abc").await;
        disk.crash();
        assert_eq!(disk.read("log").await.unwrap(), None);
        synced_file(&disk, "log", b"abc").await;
        disk.sync_dir().await.unwrap();
        disk.crash();
        assert_eq!(disk.read("log").await.unwrap().as_deref(), Some(&b"abc"[..]));
    }

    #[tokio::test]
    async fn crash_brings_back_a_removed_file_until_sync_dir() {
        let disk = MemDisk::new();
        synced_file(&disk, "snap", b"s1").await;
        disk.sync_dir().await.unwrap();
        disk.remove("snap").await.unwrap();
        assert_eq!(disk.read("snap").await.unwrap(), None);
        disk.crash();
        assert_eq!(disk.read("snap").await.unwrap().as_deref(), Some(&b"s1"[..]));
        disk.remove("snap").await.unwrap();
        disk.sync_dir().await.unwrap();
        disk.crash();
        assert_eq!(disk.read("snap").await.unwrap(), None);
        assert_eq!(disk.total_bytes(), 0, "an unreachable file is dropped");
    }
}
