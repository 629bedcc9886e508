//! FoundationDB's swizzle-clog: clog a random subset of links one by one, then unclog them in a
//! different random order. Messages on a clogged link queue and arrive late, in a burst.
use std::time::Duration;

use nemesis::hosts::server;
use nemesis::{Fault, Schedule};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 2_000..6_000, 1_000..3_000, |rng, s, start, end| {
        let mut links: Vec<(usize, usize)> =
            (0..p.servers).flat_map(|a| (a + 1..p.servers).map(move |b| (a, b))).collect();
        links.shuffle(rng);
        let k = rng.gen_range(1..=links.len());
        let chosen = &links[..k];
        let step = (end - start) / (2 * k as u32 + 1);
        for (i, (a, b)) in chosen.iter().enumerate() {
            s.at(start + step * i as u32, Fault::Clog(server(*a), server(*b)));
        }
        let mut order = chosen.to_vec();
        order.shuffle(rng);
        for (i, (a, b)) in order.iter().enumerate() {
            s.at(start + step * (k + i) as u32 + Duration::from_millis(1), Fault::Unclog(server(*a), server(*b)));
        }
    })
}
