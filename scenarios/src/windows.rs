//! The common shape of a fault phase: alternating fault windows and quiet windows of random
//! length, so the cluster is hit, recovers, and is hit again.

use std::time::Duration;

use nemesis::Schedule;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::Params;

/// Calls `on_fault(rng, schedule, start, end)` for each fault window in the fault phase. Fault
/// windows last `fault_ms`, quiet windows `quiet_ms` (ranges, in simulated milliseconds).
pub fn windows(
    rng: &mut ChaCha8Rng,
    p: &Params,
    fault_ms: std::ops::Range<u64>,
    quiet_ms: std::ops::Range<u64>,
    mut on_fault: impl FnMut(&mut ChaCha8Rng, &mut Schedule, Duration, Duration),
) -> Schedule {
    let mut s = Schedule::new();
    let mut t = Duration::from_millis(rng.gen_range(1_000..3_000));
    while t < p.fault_phase {
        let end = (t + Duration::from_millis(rng.gen_range(fault_ms.clone()))).min(p.fault_phase);
        on_fault(rng, &mut s, t, end);
        t = end + Duration::from_millis(rng.gen_range(quiet_ms.clone()));
    }
    s
}
