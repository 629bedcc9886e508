//! Faults while the cluster forms (issue: "start-up is barely explored"). Servers boot within a
//! few hundred milliseconds of each other and bootstrap Raft once `-bootstrap-expect` of them
//! found each other; this scenario hits that window with one of:
//! - a partition that cuts one server (or a minority) off from the start, healed seconds later;
//! - a server crashed mid-bootstrap (after it may have joined) and restarted from its disk;
//! - a late server: crashed before it booted, started seconds after the others formed;
//! - a partition that leaves each server alone, so nobody sees `bootstrap-expect` peers, healed
//!   later (everyone must still form one cluster, not one each);
//! - a server whose gossip datagrams are all dropped (RPC and Raft untouched) until seconds
//!   later: bootstrap counts servers in the LAN pool, so the pools disagree on who is there
//!   while the server's RPC still answers.
//!
//! Whatever happens, one cluster must form: the Raft invariants catch two (two leaders in a term,
//! or two different entries applied at one index, the membership entry included). After the
//! start-up faults the usual partition windows run, so the formed cluster is exercised too.
use std::time::Duration;

use nemesis::{hosts, random_halves, Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    let victim = rng.gen_range(0..p.servers);
    let others: Vec<String> = (0..p.servers).filter(|i| *i != victim).map(hosts::server).collect();
    let mut s = Schedule::new();
    let formed_by = match rng.gen_range(0..5) {
        0 => {
            let cut = ms(rng.gen_range(0..200));
            let heal = ms(rng.gen_range(1_500..5_000));
            s.at(cut, Fault::Partition { a: vec![hosts::server(victim)], b: others });
            s.at(heal, Fault::HealAll);
            heal
        }
        1 => {
            let crash = ms(rng.gen_range(50..1_200));
            let restart = crash + ms(rng.gen_range(300..3_000));
            s.at(crash, Fault::Crash(Target::server(victim)));
            s.at(restart, Fault::Restart(Target::server(victim)));
            restart
        }
        2 => {
            let restart = ms(rng.gen_range(3_000..8_000));
            s.at(Duration::ZERO, Fault::Crash(Target::server(victim)));
            s.at(restart, Fault::Restart(Target::server(victim)));
            restart
        }
        3 => {
            let heal = ms(rng.gen_range(2_000..6_000));
            s.at(Duration::ZERO, Fault::UdpLoss { host: Target::server(victim), per_mille: 1_000 });
            s.at(heal, Fault::UdpLoss { host: Target::server(victim), per_mille: 0 });
            heal
        }
        _ => {
            let cut = ms(rng.gen_range(0..200));
            let heal = ms(rng.gen_range(2_000..6_000));
            for i in 0..p.servers {
                let rest: Vec<String> = (0..p.servers).filter(|j| *j != i).map(hosts::server).collect();
                s.at(cut, Fault::Partition { a: vec![hosts::server(i)], b: rest });
            }
            s.at(heal, Fault::HealAll);
            heal
        }
    };
    s.options = Some(format!("start-up fault until {:.1}s", formed_by.as_secs_f64()));
    // Then ordinary partition windows on the formed cluster.
    let later = windows(rng, p, 1_000..5_000, 1_000..4_000, |rng, w, start, end| {
        let (a, b) = random_halves(rng, p.servers);
        w.at(start, Fault::Partition { a, b });
        w.at(end, Fault::HealAll);
    });
    for (at, fault) in later.events() {
        if *at > formed_by + ms(2_000) {
            s.at(*at, fault.clone());
        }
    }
    s
}
