//! The KV table's memory per key, counted exactly (issue 12 item 5: a server holding 100k keys of
//! 256 B stays under 2x the data plus a fixed base).
//!
//! This test binary installs a counting global allocator, loads keys through the same path a
//! committed write takes (an encoded [`Command`], decoded and applied to the [`Store`]), and
//! counts the heap the store holds afterwards: both the bytes asked for and the malloc chunks
//! that back them (glibc's `malloc_usable_size` plus its 8-byte chunk header), so the figure is
//! what the process's RSS pays, not what the types declare. Allocation counts do not depend on
//! timing, so a bound here is a real regression test, unlike a timed one. `kv-bench --memory`
//! measures the whole server's RSS.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use node::state::Store;
use node::structs::{Command, DirEntry, KvsOp, KvsRequest};

/// Counts live heap bytes: requested, and the malloc chunks behind them.
struct Counting;

static REQUESTED: AtomicUsize = AtomicUsize::new(0);
static CHUNKS: AtomicUsize = AtomicUsize::new(0);

/// glibc's per-chunk header, not included in `malloc_usable_size`.
const CHUNK_HEADER_BYTES: usize = 8;

fn chunk_bytes(p: *mut u8) -> usize {
    // SAFETY: `p` was returned by the system allocator and is not yet freed.
    unsafe { libc::malloc_usable_size(p.cast()) + CHUNK_HEADER_BYTES }
}

// SAFETY: delegates to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            REQUESTED.fetch_add(layout.size(), Ordering::Relaxed);
            CHUNKS.fetch_add(chunk_bytes(p), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        REQUESTED.fetch_sub(layout.size(), Ordering::Relaxed);
        CHUNKS.fetch_sub(chunk_bytes(p), Ordering::Relaxed);
        System.dealloc(p, layout)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// kv-bench's key and value shapes (`tests::kvbench::load`): `bench/k000042`, 256 B.
const VALUE_BYTES: usize = 256;
const KEYS: usize = 100_000;

fn key_name(n: usize) -> String {
    format!("bench/k{n:06}")
}

/// Heap the store holds after `keys` sets in `order`, per key: (requested, chunks) in bytes.
fn store_bytes_per_key(order: impl Iterator<Item = usize>) -> (f64, f64, Store) {
    let before = (REQUESTED.load(Ordering::Relaxed), CHUNKS.load(Ordering::Relaxed));
    let mut store = Store::new();
    let value = vec![b'v'; VALUE_BYTES];
    for (i, n) in order.enumerate() {
        let req = KvsRequest { op: KvsOp::Set, dir_ent: DirEntry::new(key_name(n), value.clone()) };
        let cmd = Command::kvs(&req).expect("encodes");
        let decoded = cmd.decode().expect("decodes");
        let (result, _) = store.apply(i as u64 + 1, &decoded);
        assert!(result.ok(), "set {n}: {result:?}");
    }
    let requested = REQUESTED.load(Ordering::Relaxed) - before.0;
    let chunks = CHUNKS.load(Ordering::Relaxed) - before.1;
    (requested as f64 / KEYS as f64, chunks as f64 / KEYS as f64, store)
}

/// `store` (holding `chunks` B/key) compacted: its B/key in malloc chunks.
fn compacted_bytes_per_key(mut store: Store, chunks: f64) -> f64 {
    let before = CHUNKS.load(Ordering::Relaxed) as f64;
    store.compact();
    let after = CHUNKS.load(Ordering::Relaxed) as f64;
    chunks + (after - before) / KEYS as f64
}

/// One key and value as kv-bench counts data: 13 B of key plus 256 B of value.
fn data_bytes_per_key() -> f64 {
    (key_name(0).len() + VALUE_BYTES) as f64
}

#[test]
fn kv_rows_cost_under_two_times_their_data() {
    let data = data_bytes_per_key();
    let (requested, chunks, store) = store_bytes_per_key(0..KEYS);
    let shuffled = (0..KEYS).map(|i| (i * 7919) % KEYS); // 7919 is prime to KEYS: a permutation
    let (_, chunks_random, store_random) = store_bytes_per_key(shuffled);
    println!(
        "KV table: {requested:.0} B/key requested, {chunks:.0} B/key in malloc chunks in key order \
         ({chunks_random:.0} in scattered order), for {data:.0} B/key of data: {:.2}x",
        chunks / data
    );
    assert_eq!(store.table_sizes(), store_random.table_sizes());
    let compacted = compacted_bytes_per_key(store, chunks);
    println!("after Store::compact (as after a snapshot): {compacted:.0} B/key: {:.2}x", compacted / data);
    // The budget for the whole server is 2x data beyond the empty server's RSS; the KV table
    // must leave room in it for the Raft log behind the newest snapshot and the allocator. Keys
    // written in order leave the B-tree's leaves a little over half full until a snapshot
    // compacts it; scattered keys fill them about 70%. Measured (2026-12-02): 485 B/key in key
    // order (1.80x), 432 scattered (1.61x), 388 compacted (1.44x): the row's share of a full
    // B-tree leaf (~116 B, the 13-byte key inline) and the value's 272-byte malloc chunk. A key
    // in its own allocation again, or a value's share count (a clone of the decoded value
    // instead of a copy), adds 32 B/key and fails the bounds.
    assert!(compacted <= 1.5 * data, "{compacted:.0} B/key once compacted is over 1.5x data");
    assert!(chunks_random <= 1.7 * data, "{chunks_random:.0} B/key in scattered order is over 1.7x data");
    assert!(chunks <= 1.9 * data, "{chunks:.0} B/key in key order is over 1.9x data");
}
