//! Named simulation scenarios. Each is a short function that builds a nemesis [`Schedule`] from
//! the run's RNG; the simulator appends the final heal and the liveness phase to every scenario.
//!
//! To add a scenario: write a `fn(&mut ChaCha8Rng, &Params) -> Schedule` below (or in its own
//! module) and add one line to [`REGISTRY`].

use std::time::Duration;

use nemesis::{random_halves, Fault, Schedule};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What a scenario may depend on.
#[derive(Clone, Debug)]
pub struct Params {
    /// Number of servers.
    pub servers: usize,
    /// Length of the fault (safety) phase.
    pub fault_phase: Duration,
}

/// A scenario: name, one-line description, schedule builder.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub build: fn(&mut ChaCha8Rng, &Params) -> Schedule,
}

/// Every scenario, by name.
pub const REGISTRY: &[Scenario] = &[
    Scenario { name: "partition-heal", about: "random halves, then heal, repeatedly", build: partition_heal },
    Scenario { name: "leader-isolation", about: "cut the current leader off, then heal, repeatedly", build: leader_isolation },
    Scenario { name: "crash-restart", about: "kill a server (losing unsynced writes), then restart it", build: crash_restart },
];

/// Looks a scenario up by name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    REGISTRY.iter().find(|s| s.name == name)
}

/// Alternating fault and quiet windows of random length across the fault phase.
fn windows(rng: &mut ChaCha8Rng, p: &Params, mut on_fault: impl FnMut(&mut ChaCha8Rng, &mut Schedule, Duration, Duration)) -> Schedule {
    let mut s = Schedule::new();
    let mut t = Duration::from_millis(rng.gen_range(1_000..3_000));
    while t < p.fault_phase {
        let fault_len = Duration::from_millis(rng.gen_range(1_000..6_000));
        let end = (t + fault_len).min(p.fault_phase);
        on_fault(rng, &mut s, t, end);
        t = end + Duration::from_millis(rng.gen_range(1_000..4_000));
    }
    s
}

fn partition_heal(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, |rng, s, start, end| {
        let (a, b) = random_halves(rng, p.servers);
        s.at(start, Fault::Partition { a, b });
        s.at(end, Fault::HealAll);
    })
}

fn leader_isolation(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, |_, s, start, end| {
        s.at(start, Fault::IsolateLeader);
        s.at(end, Fault::HealAll);
    })
}

fn crash_restart(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, |rng, s, start, end| {
        let victim = rng.gen_range(0..p.servers);
        s.at(start, Fault::Crash(victim));
        s.at(end, Fault::Restart(victim));
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_scenario_is_deterministic_and_ends_inside_the_fault_phase() {
        let p = Params { servers: 3, fault_phase: Duration::from_secs(30) };
        for sc in REGISTRY {
            let a = (sc.build)(&mut ChaCha8Rng::seed_from_u64(1), &p);
            let b = (sc.build)(&mut ChaCha8Rng::seed_from_u64(1), &p);
            assert_eq!(a, b, "{} must be a function of the seed", sc.name);
            assert!(!a.events().is_empty(), "{} schedules faults", sc.name);
            assert!(a.end() <= p.fault_phase, "{} ends within the fault phase", sc.name);
        }
    }

    #[test]
    fn crash_restart_restarts_every_crashed_server() {
        let p = Params { servers: 3, fault_phase: Duration::from_secs(60) };
        let s = crash_restart(&mut ChaCha8Rng::seed_from_u64(3), &p);
        let crashes = s.events().iter().filter(|(_, f)| matches!(f, Fault::Crash(_))).count();
        let restarts = s.events().iter().filter(|(_, f)| matches!(f, Fault::Restart(_))).count();
        assert_eq!(crashes, restarts);
    }
}
