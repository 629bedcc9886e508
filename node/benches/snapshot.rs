//! Snapshot size and encode/decode time for 100k KV keys (256-byte values), in today's sectioned
//! binary format and in the format it replaced (JSON with base64 values, base64'd again inside a
//! JSON envelope), measured in the same process so the ratio means something on a noisy machine.
//!
//! `cargo bench -p node --bench snapshot`

use std::time::Instant;

use base64::Engine;
use node::state::snapshot::{decode_sections, encode_sections};
use node::state::Store;
use node::structs::{DirEntry, KvsOp, KvsRequest, Request};

const KEYS: usize = 100_000;
const VALUE_BYTES: usize = 256;
const ROUNDS: usize = 3;

fn store() -> Store {
    let mut s = Store::new();
    for i in 0..KEYS {
        let value: Vec<u8> = (0..VALUE_BYTES).map(|b| (i * 31 + b * 7) as u8).collect();
        let req = KvsRequest { op: KvsOp::Set, dir_ent: DirEntry::new(format!("app/config/{i:08}"), value) };
        s.apply(i as u64 + 1, &Request::Kvs(req));
    }
    s
}

/// The replaced format: the store as JSON (values base64), base64'd into a JSON envelope.
fn old_format(s: &Store) -> Vec<u8> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let (entries, _) = s.kv_list("");
    let map: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|e| {
            let v = serde_json::json!({"create_index": e.create_index, "modify_index": e.modify_index,
                "lock_index": e.lock_index, "flags": e.flags, "value": b64(&e.value[..]), "session": e.session});
            (e.key.clone(), v)
        })
        .collect();
    let inner = serde_json::json!({"kv": {"entries": map, "tombstones": {}, "table_index": KEYS},
        "last_applied": null, "last_membership": null});
    let data = serde_json::to_vec(&inner).expect("json");
    let outer = serde_json::json!({"meta": {"snapshot_id": "x"}, "data": b64(&data)});
    node::codec::frame(&serde_json::to_vec(&outer).expect("json"))
}

fn best_ms(mut f: impl FnMut()) -> f64 {
    (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let s = store();
    let mut old = Vec::new();
    let old_ms = best_ms(|| old = old_format(&s));
    let mut new = Vec::new();
    let clone_ms = best_ms(|| drop(std::hint::black_box(s.clone())));
    let new_ms = best_ms(|| new = encode_sections(&s).expect("encode"));
    let decode_ms = best_ms(|| drop(decode_sections(&new).expect("decode")));
    println!("snapshot of {KEYS} keys x {VALUE_BYTES} B values (best of {ROUNDS}):");
    println!("  before (JSON+base64):   {:>10} bytes  encode {old_ms:>8.1} ms", old.len());
    println!("  after  (sections, MessagePack): {:>10} bytes  encode {new_ms:>8.1} ms  decode {decode_ms:.1} ms", new.len());
    println!("  store copy taken under the apply lock: {clone_ms:.1} ms (the encode runs without the lock)");
    println!("  ratios after/before: size {:.2}x, encode time {:.2}x", new.len() as f64 / old.len() as f64, new_ms / old_ms);
}
