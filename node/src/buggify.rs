//! `buggify!`: fault points in node code that fire only inside the simulator (FoundationDB's
//! BUGGIFY).
//!
//! A fault point is `if buggify!("what-goes-wrong") { ...misbehave... }`, named by what it does
//! (the name is what the report's "buggify fired" line shows), placed where real systems break (around
//! fsync, snapshot install, leader forwarding, blocking-query wake-ups, RPC deadlines). The
//! simulator calls [`enable`] with the run's seed: each site is then switched on for the whole
//! run with probability 1/4 (decided the first time it is reached), and an enabled site fires
//! with probability [`FIRE_PER_MILLE`]. Everything derives from the seed, so runs replay.
//!
//! In the shipped binary the `buggify` cargo feature is off and the macro is the constant
//! `false`, so the compiler removes the fault code. (When the whole workspace is built together,
//! cargo unifies features and the code is compiled in, but stays inert: nothing calls `enable`.)

use std::cell::RefCell;
use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Chance that an enabled site fires each time it is reached, per mille.
pub const FIRE_PER_MILLE: u32 = 250;
/// Chance that a site is enabled for a run, per mille.
pub const SITE_ENABLED_PER_MILLE: u32 = 250;

struct State {
    rng: ChaCha8Rng,
    sites: BTreeMap<&'static str, bool>,
    fired: BTreeMap<&'static str, u64>,
}

thread_local! {
    // The simulator runs every host on one thread, so one state per thread is one per run.
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Enables fault points for this thread's simulation run, seeded. Sites are decided afresh.
pub fn enable(seed: u64) {
    STATE.with(|s| {
        *s.borrow_mut() = Some(State {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6275_6767_6966_7921),
            sites: BTreeMap::new(),
            fired: BTreeMap::new(),
        })
    });
}

/// Disables fault points on this thread.
pub fn disable() {
    STATE.with(|s| *s.borrow_mut() = None);
}

/// Sites that fired in this run and how often (a CODE_PROBE-style coverage report).
pub fn fired() -> Vec<(&'static str, u64)> {
    STATE.with(|s| s.borrow().as_ref().map(|st| st.fired.iter().map(|(k, v)| (*k, *v)).collect()).unwrap_or_default())
}

/// Whether the fault point `site` fires now. Use the [`buggify!`](crate::buggify!) macro.
pub fn fires(site: &'static str) -> bool {
    STATE.with(|s| {
        let mut guard = s.borrow_mut();
        let Some(st) = guard.as_mut() else { return false };
        let enabled = match st.sites.get(site) {
            Some(e) => *e,
            None => {
                let e = st.rng.gen_range(0..1000) < SITE_ENABLED_PER_MILLE;
                st.sites.insert(site, e);
                e
            }
        };
        let fire = enabled && st.rng.gen_range(0..1000) < FIRE_PER_MILLE;
        if fire {
            *st.fired.entry(site).or_default() += 1;
        }
        fire
    })
}

/// A delay to inject at a fault point: 1..=`max_ms` ms, drawn from the seeded state.
pub fn delay_ms(max_ms: u64) -> u64 {
    STATE.with(|s| s.borrow_mut().as_mut().map(|st| st.rng.gen_range(1..=max_ms.max(1))).unwrap_or(1))
}

/// `buggify!("site-name")` is true when the fault point named by its purpose (a string literal,
/// e.g. `"forwarded-write-reply-lost"`, unique in the code base) should misbehave now (simulator
/// only).
#[macro_export]
macro_rules! buggify {
    ($site:literal) => {{
        #[cfg(feature = "buggify")]
        {
            $crate::buggify::fires($site)
        }
        #[cfg(not(feature = "buggify"))]
        {
            false
        }
    }};
}

/// `buggify_delay!("site-name", max_ms)`: sleeps a seeded 1..=`max_ms` ms if this fault point fires.
#[macro_export]
macro_rules! buggify_delay {
    ($site:literal, $max_ms:expr) => {{
        if $crate::buggify!($site) {
            ::tokio::time::sleep(::std::time::Duration::from_millis($crate::buggify::delay_ms($max_ms))).await;
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_fire_only_when_enabled_and_replay_with_the_seed() {
        disable();
        assert!(!fires("a"));
        let draw = |seed| {
            enable(seed);
            let v: Vec<bool> = (0..200).map(|i| fires(if i % 2 == 0 { "a" } else { "b" })).collect();
            disable();
            v
        };
        assert_eq!(draw(9), draw(9));
        let any_seed_fires = (0..20).any(|seed| draw(seed).iter().any(|f| *f));
        assert!(any_seed_fires, "with 20 seeds some site must be enabled and fire");
    }
}
