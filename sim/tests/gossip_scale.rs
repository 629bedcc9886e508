//! The gossip scale harness on a small pool: the agent's gossip driver, 20 members over the seeded
//! simulated network, must spread a join to every member and detect a crash at every survivor,
//! and replay the same figures from the same seed.

use std::time::Duration;

use sim::gossip_scale::{run_blocking, ScaleOptions};

#[test]
fn twenty_members_see_a_join_and_detect_a_crash_and_replay_by_seed() {
    let opts = ScaleOptions::new(20, 7);
    let r = run_blocking(&opts);
    assert!(r.bootstrapped, "19 members converge through member 0");
    assert_eq!(r.join.observers, 19);
    assert!(r.join.complete(), "every member lists the joiner alive: {:?}", r.join);
    assert!(r.join.at(1.0).unwrap() < Duration::from_secs(10), "join spread in {:?}", r.join.at(1.0));
    assert_eq!(r.crash_failed.observers, 19);
    assert!(r.crash_failed.complete(), "every survivor lists the crashed member failed: {:?}", r.crash_failed);
    let suspicion = r.config.foca(false).suspect_to_down_after;
    let all = r.crash_failed.at(1.0).unwrap();
    assert!(all >= suspicion, "failed only after the suspicion timeout ({suspicion:?}), not {all:?}");
    assert!(all < suspicion + Duration::from_secs(20), "crash detected by all in {all:?}");

    let again = run_blocking(&opts);
    assert_eq!((&again.join.seen, &again.crash_failed.seen, again.bootstrap_time), (&r.join.seen, &r.crash_failed.seen, r.bootstrap_time), "same seed, same run");
}
