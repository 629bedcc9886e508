//! openraft's clock, drifted per host in the simulator.
//!
//! openraft times elections, heartbeats, vote leases and `millis_since_quorum_ack` with its
//! runtime's `Instant`, `sleep` and `timeout`. On a real machine all of those run on the host's
//! own oscillator, the same one that times the leader lease ([`crate::io::Clock::monotonic`]).
//! In the simulator the nemesis drifts that oscillator (`ClockDrift`); this module makes openraft
//! see the same drift, so a slow leader's quorum-ack age and a fast follower's election timer are
//! as wrong as on a drifting machine.
//!
//! How a host is found: turmoil gives every host its own tokio runtime, so the simulator
//! [`register_host_rate`]s the host's clock for the runtime it is running in, and openraft's
//! timers look up the current runtime's entry. Nothing is registered in production (or in a
//! simulated host whose clock never drifted, whose rate reports [`HostRate::drift`] `None`): then
//! every call goes straight to `tokio::time` with the same arguments as before, so runs without
//! drift replay exactly as they did before this module existed.
//!
//! A drifted instant is `tokio now + offset`, where the offset is how far the host's clock reading
//! is ahead of (or behind) simulated time. A sleep is converted to real time at the current rate
//! when it is created; a later rate change does not stretch a sleep already running (openraft's
//! timers are short and re-armed every tick).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::sync::Arc;
use std::time::Duration;

/// Real time, in parts per million (a clock running at this rate keeps real time).
const RATE_REAL_PPM: u32 = 1_000_000;

/// A host's oscillator, as the simulator drifts it.
pub trait HostRate {
    /// `None` while the clock reads exactly simulated time (it never drifted); otherwise how far
    /// its reading is ahead of simulated time (nanoseconds, negative when behind) and the rate it
    /// runs at now (parts per million of real time).
    fn drift(&self) -> Option<(i128, u32)>;
}

thread_local! {
    /// The drifting clock of each simulated host, by the id of the tokio runtime it runs on.
    /// Looked up only, never iterated.
    static HOSTS: RefCell<HashMap<tokio::runtime::Id, Arc<dyn HostRate>>> = RefCell::new(HashMap::new());
}

/// Makes openraft's timers on the current tokio runtime (one simulated host) follow `rate`.
/// Call it from inside the host's runtime, each time the host (re)starts. No-op outside a runtime.
pub fn register_host_rate(rate: Arc<dyn HostRate>) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        HOSTS.with(|h| h.borrow_mut().insert(handle.id(), rate));
    }
}

/// Forgets every registered host; the simulator calls it at the start of each run.
pub fn clear_host_rates() {
    HOSTS.with(|h| h.borrow_mut().clear());
}

/// The current host's drift, if it has drifted.
fn current_drift() -> Option<(i128, u32)> {
    HOSTS.with(|h| {
        let hosts = h.borrow();
        if hosts.is_empty() {
            return None;
        }
        let id = tokio::runtime::Handle::try_current().ok()?.id();
        hosts.get(&id).and_then(|r| r.drift())
    })
}

fn shift(at: tokio::time::Instant, offset_nanos: i128) -> tokio::time::Instant {
    let by = Duration::from_nanos(u64::try_from(offset_nanos.unsigned_abs()).unwrap_or(u64::MAX));
    if offset_nanos >= 0 {
        at + by
    } else {
        at.checked_sub(by).unwrap_or(at)
    }
}

/// `d` of this host's clock, in real time, at `rate_ppm`.
pub(crate) fn to_real(d: Duration, rate_ppm: u32) -> Duration {
    if rate_ppm == RATE_REAL_PPM {
        return d;
    }
    let nanos = d.as_nanos() * u128::from(RATE_REAL_PPM) / u128::from(rate_ppm.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// An instant on this host's (possibly drifted) clock: exactly `tokio::time::Instant` while the
/// host's clock has never drifted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DriftInstant(tokio::time::Instant);

impl DriftInstant {
    /// The tokio instant at which this host's clock reads `self`, at the current rate.
    pub(crate) fn to_real(self) -> tokio::time::Instant {
        match current_drift() {
            None => self.0,
            Some((offset, rate)) => {
                let real_now = tokio::time::Instant::now();
                let drifted_now = shift(real_now, offset);
                real_now + to_real(self.0.saturating_duration_since(drifted_now), rate)
            }
        }
    }
}

impl openraft::Instant for DriftInstant {
    fn now() -> Self {
        let real_now = tokio::time::Instant::now();
        match current_drift() {
            None => Self(real_now),
            Some((offset, _)) => Self(shift(real_now, offset)),
        }
    }
}

impl Add<Duration> for DriftInstant {
    type Output = Self;
    fn add(self, d: Duration) -> Self {
        Self(self.0 + d)
    }
}

impl AddAssign<Duration> for DriftInstant {
    fn add_assign(&mut self, d: Duration) {
        self.0 += d;
    }
}

impl Sub<Duration> for DriftInstant {
    type Output = Self;
    fn sub(self, d: Duration) -> Self {
        Self(self.0 - d)
    }
}

impl Sub<DriftInstant> for DriftInstant {
    type Output = Duration;
    fn sub(self, other: Self) -> Duration {
        self.0.saturating_duration_since(other.0)
    }
}

impl SubAssign<Duration> for DriftInstant {
    fn sub_assign(&mut self, d: Duration) {
        self.0 -= d;
    }
}

/// `duration` of this host's clock, in real time.
pub(crate) fn real_duration(duration: Duration) -> Duration {
    match current_drift() {
        None => duration,
        Some((_, rate)) => to_real(duration, rate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::Instant as _;
    use std::sync::Mutex;

    struct Fixed(Mutex<Option<(i128, u32)>>);
    impl HostRate for Fixed {
        fn drift(&self) -> Option<(i128, u32)> {
            *self.0.lock().unwrap()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn undrifted_hosts_read_tokio_time_and_drifted_ones_are_scaled() {
        clear_host_rates();
        let real = tokio::time::Instant::now();
        assert_eq!(DriftInstant::now().0, real, "nothing registered: plain tokio time");
        let rate = Arc::new(Fixed(Mutex::new(None)));
        register_host_rate(rate.clone());
        assert_eq!(DriftInstant::now().0, real, "registered but never drifted: plain tokio time");
        assert_eq!(real_duration(Duration::from_millis(300)), Duration::from_millis(300));

        // Half speed, 100 ms behind real time.
        *rate.0.lock().unwrap() = Some((-100_000_000, 500_000));
        let now = DriftInstant::now();
        assert_eq!(now.0 + Duration::from_millis(100), real);
        assert_eq!(real_duration(Duration::from_millis(300)), Duration::from_millis(600));
        let deadline = now + Duration::from_millis(50);
        assert_eq!(deadline.to_real(), real + Duration::from_millis(100), "50 ms of a half-speed clock");
        assert_eq!(now.to_real(), real, "a deadline due now is due now in real time");
        clear_host_rates();
    }

    /// openraft's `Instant` contract: `+=` and `-=` move an instant as `+` and `-` do. openraft
    /// 0.9 only uses `+` and `-` on the paths a simulation reaches, so no sweep sees a broken `+=`.
    #[tokio::test(start_paused = true)]
    async fn assigning_operators_move_an_instant_as_the_plain_ones_do() {
        let d = Duration::from_millis(250);
        let start = DriftInstant::now();
        let mut t = start;
        t += d;
        assert_eq!(t, start + d);
        assert_eq!(t - start, d);
        t -= d;
        assert_eq!(t, start);
    }
}
