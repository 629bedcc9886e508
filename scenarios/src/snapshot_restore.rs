//! Snapshot restore under faults: the workload saves a snapshot early; the first fault is a
//! partition into random halves, during which its snapshot client restores the snapshot through
//! the majority side (sometimes trying the minority first, which must fail or stay unknown);
//! after the heal, KV writes go on under leader isolations and more partitions. Judged by the
//! snapshot-restore oracles (`checker::oracles::snapshot_restore`): the restore as a write of the
//! archive to every key inside per-key linearizability, the KV tables' index, and every server
//! converging on one state after the final heal.
use std::time::Duration;

use nemesis::{random_halves, Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::Params;

/// Where the restore's partition starts, in percent of the fault phase: late enough for writes
/// to move every key past the snapshot, early enough for faults after the heal.
const PARTITION_START_PERCENT: std::ops::RangeInclusive<u64> = 35..=50;
/// How long the restore's partition lasts (ms): long enough for the majority to elect a leader
/// (when the old one is cut off) and for the restore to be retried there.
const PARTITION_MS: std::ops::Range<u64> = 4_000..8_000;
/// Fault and quiet windows after the heal (ms).
const LATER_FAULT_MS: std::ops::Range<u64> = 1_000..4_000;
const LATER_QUIET_MS: std::ops::Range<u64> = 1_000..3_000;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    let mut s = Schedule::new();
    let phase_ms = p.fault_phase.as_millis() as u64;
    let start = Duration::from_millis(phase_ms * rng.gen_range(PARTITION_START_PERCENT) / 100);
    let end = (start + Duration::from_millis(rng.gen_range(PARTITION_MS))).min(p.fault_phase);
    let (a, b) = random_halves(rng, p.servers);
    s.at(start, Fault::Partition { a, b });
    s.at(end, Fault::HealAll);
    let mut t = end + Duration::from_millis(rng.gen_range(LATER_QUIET_MS));
    while t + Duration::from_millis(LATER_FAULT_MS.start) < p.fault_phase {
        let stop = (t + Duration::from_millis(rng.gen_range(LATER_FAULT_MS))).min(p.fault_phase);
        if rng.gen_bool(0.5) {
            s.at(t, Fault::Isolate(Target::Leader));
        } else {
            let (a, b) = random_halves(rng, p.servers);
            s.at(t, Fault::Partition { a, b });
        }
        s.at(stop, Fault::HealAll);
        t = stop + Duration::from_millis(rng.gen_range(LATER_QUIET_MS));
    }
    s
}
