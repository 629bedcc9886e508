//! The datacenters of a simulated world. Every scenario runs one datacenter, `dc1`, except those
//! whose workload asks for more ([`scenarios::WorkloadKind::datacenters`]): then datacenter `d`
//! (0-based) is servers `d*N .. (d+1)*N` in host order (N = `--servers`), named `dc{d+1}`, each
//! its own Raft cluster, LAN pool and bootstrap, all of them in one WAN pool.
//!
//! Owns: which server is in which datacenter, and each datacenter's view of the trace for the
//! Raft invariants (which hold per Raft cluster: two clusters both have a term-2 leader and an
//! entry at index 5). Never does: change anything for a one-datacenter run (the servers, their
//! order and the seeds drawn for them stay exactly what they were).

use checker::Record;

/// The name of datacenter `d` (0-based): `dc1`, `dc2`, …
pub fn name(d: usize) -> String {
    format!("dc{}", d + 1)
}

/// How many datacenters `scenario`'s world has (1 for unknown names).
pub fn count(scenario: &str) -> usize {
    scenarios::find(scenario).map_or(1, |s| s.workload.datacenters())
}

/// The 0-based datacenter of server `i` (0-based), with `per_dc` servers in each.
pub fn of_server(i: usize, per_dc: usize) -> usize {
    i / per_dc.max(1)
}

/// `servers` (in host order, every datacenter's in turn, equally many each) split into their
/// datacenters: `(name, servers)` per datacenter, `dc1` first.
pub fn split<T: Clone>(servers: &[T], datacenters: usize) -> Vec<(String, Vec<T>)> {
    let per_dc = servers.len() / datacenters.max(1);
    (0..datacenters.max(1)).map(|d| (name(d), servers[d * per_dc..(d + 1) * per_dc].to_vec())).collect()
}

/// The trace as datacenter `own`'s Raft cluster sees it: every record except those of servers
/// in `others` (other datacenters' servers); the nemesis's and operator's records stay.
pub fn trace_of(trace: &[Record], others: &[String]) -> Vec<Record> {
    trace.iter().filter(|r| !others.contains(&r.who)).cloned().collect()
}

/// The Raft invariants ([`checker::check_raft_trace`]) for a world of `datacenters` of the
/// `servers` (host names, in order): over the whole trace for one datacenter, else over each
/// datacenter's own view ([`trace_of`]).
pub fn check_raft_trace(trace: &[Record], servers: &[String], datacenters: usize) -> Vec<checker::InvariantViolation> {
    if datacenters <= 1 {
        return checker::check_raft_trace(trace);
    }
    let dcs = split(servers, datacenters);
    let mut out = Vec::new();
    for (d, _) in dcs.iter().enumerate() {
        let others: Vec<String> = dcs.iter().enumerate().filter(|(e, _)| *e != d).flat_map(|(_, (_, s))| s.clone()).collect();
        out.extend(checker::check_raft_trace(&trace_of(trace, &others)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_split_into_datacenters_in_host_order() {
        let servers: Vec<String> = nemesis::hosts::servers(6);
        let dcs = split(&servers, 2);
        assert_eq!(dcs[0], ("dc1".to_string(), vec!["s1".to_string(), "s2".into(), "s3".into()]));
        assert_eq!(dcs[1], ("dc2".to_string(), vec!["s4".to_string(), "s5".into(), "s6".into()]));
        assert_eq!(split(&servers[..3], 1), vec![("dc1".to_string(), servers[..3].to_vec())]);
        assert_eq!((of_server(2, 3), of_server(3, 3)), (0, 1));
    }

    #[test]
    fn only_the_federation_scenario_has_two_datacenters() {
        assert_eq!(count("wan-federation"), 2);
        assert_eq!(count("wan-gossip"), 1);
        assert_eq!(count("partition-heal"), 1);
    }

    #[test]
    fn each_datacenter_judges_its_own_raft_cluster() {
        use concord_trace::{Event, RaftRole};
        let leader = |who: &str| Record { time_ms: 10, who: who.into(), event: Event::RaftState { term: 2, role: RaftRole::Leader, leader: None } };
        // Two clusters each elect a term-2 leader: a violation of election safety only if they
        // were one cluster.
        let trace = vec![leader("s1"), leader("s4")];
        let servers = nemesis::hosts::servers(6);
        assert!(!checker::check_raft_trace(&trace).is_empty(), "one cluster with two term-2 leaders is a violation");
        assert!(check_raft_trace(&trace, &servers, 2).is_empty(), "two clusters, one term-2 leader each");
    }
}
