//! The `concord` binary: see [`node::cli`] for the commands and flags.

fn main() {
    tune_malloc();
    std::process::exit(node::cli::main())
}

/// glibc malloc settings for a long-running server (the production binary only; the simulator
/// never runs this). By default glibc raises its mmap threshold each time a large buffer is
/// freed, so later snapshot and response buffers come from the heap and stay resident after
/// they are freed, and each worker thread gets its own arena that keeps its own free memory:
/// holding 100k keys of 256 B, that left 142 MB resident where these settings left about 90,
/// before the KV table and log changes and the trim below brought it to 74-77 (issue 12,
/// `kv-bench --memory 100000`). Source: mallopt(3), malloc_trim(3).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    /// Arenas: one per core of the 2-core machines measured, not glibc's 8 per core.
    const ARENA_MAX: libc::c_int = 2;
    /// Buffers from 64 KiB up are mmapped and so returned to the OS when freed; a fixed value
    /// also turns off glibc's dynamic raising of it.
    const MMAP_THRESHOLD_BYTES: libc::c_int = 64 * 1024;
    /// Free memory at the top of the heap past this is given back at once.
    const TRIM_THRESHOLD_BYTES: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only changes allocator parameters; called first thing in main, before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
    }
    // glibc gives back only free memory at the top of the heap. Memory freed below live data
    // (Raft log entries purged after a snapshot, the old B-tree nodes a compaction replaced,
    // request buffers) stays resident until malloc_trim hands its whole pages back, as Go's
    // scavenger or jemalloc's decay do on their own: holding 100k keys of 256 B, that is about a
    // quarter of the server's RSS. A thread of the production binary only, outside the
    // simulated agent.
    let trim = std::thread::Builder::new().name("malloc-trim".into()).spawn(|| loop {
        std::thread::sleep(TRIM_EVERY);
        // SAFETY: malloc_trim is thread-safe; it only releases free pages.
        unsafe { libc::malloc_trim(0) };
    });
    if let Err(e) = trim {
        eprintln!("concord: cannot start the malloc-trim thread: {e}");
    }
}

/// How often free heap pages are handed back to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}
