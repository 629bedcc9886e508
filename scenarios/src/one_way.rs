//! Asymmetric partitions: one server can send but not receive (or the reverse), the case that
//! makes a deposed leader keep sending heartbeats nobody answers.
use nemesis::hosts::server;
use nemesis::{Fault, Host, Schedule};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 1_000..6_000, 1_000..4_000, |rng, s, start, end| {
        let node = rng.gen_range(0..p.servers);
        let others: Vec<Host> = (0..p.servers).filter(|i| *i != node).map(server).collect();
        let node = server(node);
        let fault = if rng.gen_bool(0.5) {
            Fault::PartitionOneWay { from: vec![node], to: others }
        } else {
            Fault::PartitionOneWay { from: others, to: vec![node] }
        };
        s.at(start, fault);
        s.at(end, Fault::HealAll);
    })
}
