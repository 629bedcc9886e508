//! The leader lease: how long a leader may answer default-mode reads from its own state after a
//! quorum acknowledged one of its heartbeats, timed with this host's own monotonic clock
//! ([`crate::io::Clock::monotonic`]), which may drift.
//!
//! Why the bound is what it is. Let `t0` be when the acknowledged heartbeat was sent. Every
//! follower that acknowledged it heard from this leader at or after `t0`, and votes for another
//! candidate only after its own election timer, at least `election_timeout_min` on *its* clock,
//! runs out; so no other leader exists before `t0 + min / (1 + d)` in real time, if every clock
//! runs within `±d` of real time. This leader's lease of `L` on its own clock ends by
//! `t0 + L / (1 - d)` real time. The lease is safe iff `L ≤ min · (1 - d) / (1 + d)`. Concord
//! assumes `d` = [`MAX_CLOCK_DRIFT_PPM`] (25%: far beyond real quartz, so VM pauses and timer
//! slack fit too) and takes half the minimum election timeout, which is safe for any `d ≤ 1/3`
//! ([`lease_duration`]). The simulator drifts clock rates within the bound (`clock-drift`).
//!
//! openraft adds margin: a follower refuses votes for one maximum election timeout after it last
//! heard from the leader, and campaigns only a randomised election timeout after that, so with
//! perfect clocks no other leader can exist before `t0 + max + min`. The deliberate bug
//! `lease-ignores-drift` trusts exactly that: its lease, and its quorum-contact step-down, last
//! `max + min` on the leader's own clock. Under drift `d` that ends at `(max + min) / (1 - d)`
//! real time, while a fast-clocked follower can win at `(max + min) / (1 + d)`: with 25% drift
//! the leader serves reads for up to 800 ms after its successor took over.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::io::Clock;

/// The drift bound the lease assumes: every host's monotonic clock runs within ±25% of real time
/// (250_000 parts per million).
pub const MAX_CLOCK_DRIFT_PPM: u64 = 250_000;

const PPM: u64 = 1_000_000;

/// The lease for a cluster with these election timeouts: half the minimum, which is within the
/// safe bound `min · (1 - d) / (1 + d)` for `d` = [`MAX_CLOCK_DRIFT_PPM`]. With `ignore_drift`
/// (the deliberate bug `lease-ignores-drift`), `max + min`: the earliest a follower could elect
/// someone else if every clock kept real time (see the module docs).
pub fn lease_duration(election_timeout_min: Duration, election_timeout_max: Duration, ignore_drift: bool) -> Duration {
    if ignore_drift {
        election_timeout_max + election_timeout_min
    } else {
        election_timeout_min / 2
    }
}

/// The longest lease that is safe for drift `drift_ppm` (see the module docs).
pub fn safe_lease_bound(election_timeout_min: Duration, drift_ppm: u64) -> Duration {
    let nanos = election_timeout_min.as_nanos() * u128::from(PPM - drift_ppm) / u128::from(PPM + drift_ppm);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// When the newest heartbeat a quorum acknowledged was sent, as this host's clock read it.
pub struct Lease {
    clock: Arc<dyn Clock>,
    acked_at: Mutex<Option<Duration>>,
}

impl Lease {
    /// A lease that is not held.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, acked_at: Mutex::new(None) }
    }

    /// Records openraft's `millis_since_quorum_ack` as observed now (`None`: not leader, or no
    /// acknowledgement yet). The metric is a snapshot that is not refreshed while no replies
    /// arrive, so it is turned into a point on this host's clock at once.
    pub fn observe(&self, millis_since_quorum_ack: Option<u64>) {
        let at = millis_since_quorum_ack.and_then(|ms| self.clock.monotonic().checked_sub(Duration::from_millis(ms)));
        *self.acked_at.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// Whether a quorum acknowledged a heartbeat sent less than `lease` ago (on this host's clock).
    pub fn held(&self, lease: Duration) -> bool {
        let acked = *self.acked_at.lock().unwrap_or_else(|e| e.into_inner());
        acked.is_some_and(|at| self.clock.monotonic().saturating_sub(at) < lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_safe_under_the_assumed_drift_and_the_bug_is_not() {
        let (min, max) = (Duration::from_millis(500), Duration::from_millis(1000));
        let bound = safe_lease_bound(min, MAX_CLOCK_DRIFT_PPM);
        assert_eq!(bound, Duration::from_millis(300), "500 ms x 0.75 / 1.25");
        assert!(lease_duration(min, max, false) <= bound);
        // The bug: safe only with perfect clocks, where no one is elected before max + min.
        let buggy = lease_duration(min, max, true);
        assert!(buggy > safe_lease_bound(max + min, MAX_CLOCK_DRIFT_PPM), "the deliberate bug exceeds the bound");
        assert!(buggy <= safe_lease_bound(max + min, 0));
        assert_eq!(safe_lease_bound(min, 0), min, "without drift the whole timeout would do");
    }
}
