//! Server lanes of the timeline: each server's Raft role and term over simulated time, and the
//! instants it crashed, restarted or stopped, computed from the typed trace.
//!
//! Owns: turning [`Record`]s into per-server segments (one per span of constant role, term and
//! known leader) and marks. It reads typed events only ([`Event::RaftState`], the nemesis'
//! [`Nemesis::Crash`] / [`Nemesis::Restart`] / [`Nemesis::FinalHeal`], and the agent's
//! [`Event::RaftFatal`] / [`Event::StartFailed`] / [`Event::StorageAbandoned`]), never parses
//! trace text, and never renders HTML (that is [`crate::timeline`]'s job).

use concord_trace::{Event, Nemesis, RaftRole, Record};

/// What a server was doing during a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Up, in this Raft role.
    Role(RaftRole),
    /// Crashed by the nemesis, not yet restarted.
    Down,
    /// Restarted, but has not reported a Raft state yet.
    Starting,
}

impl Phase {
    /// The lane's short label: `L`, `F`, `C`, `learner`, `stopped`, `down`, `starting`.
    pub fn short(self) -> &'static str {
        match self {
            Phase::Role(RaftRole::Leader) => "L",
            Phase::Role(RaftRole::Follower) => "F",
            Phase::Role(RaftRole::Candidate) => "C",
            Phase::Role(RaftRole::Learner) => "learner",
            Phase::Role(RaftRole::Shutdown) => "stopped",
            Phase::Down => "down",
            Phase::Starting => "starting",
        }
    }

    /// The phase in words, for hover titles: `leader`, `follower`, `crashed`, ….
    pub fn long(self) -> &'static str {
        match self {
            Phase::Role(RaftRole::Leader) => "leader",
            Phase::Role(RaftRole::Follower) => "follower",
            Phase::Role(RaftRole::Candidate) => "candidate",
            Phase::Role(RaftRole::Learner) => "learner",
            Phase::Role(RaftRole::Shutdown) => "raft stopped",
            Phase::Down => "crashed",
            Phase::Starting => "restarted, starting",
        }
    }
}

/// A span of simulated time during which a server's phase, term and known leader held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Start, ms since the run started.
    pub from_ms: u64,
    /// End (exclusive), ms.
    pub to_ms: u64,
    /// What the server was doing.
    pub phase: Phase,
    /// Its Raft term (the last one it reported, while down or starting).
    pub term: u64,
    /// The Raft id of the leader it knew, if any.
    pub leader: Option<u64>,
}

/// An instant on a server's lane: a crash, restart, fatal error or failed start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// When, ms since the run started.
    pub at_ms: u64,
    /// What happened, as the trace renders it (`crash s2`, `raft fatal: …; restarting`).
    pub what: String,
}

/// One server's lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLane {
    /// The server's host name.
    pub name: String,
    /// Its segments, in time order, not overlapping.
    pub segments: Vec<Segment>,
    /// Its marks, in time order.
    pub marks: Vec<Mark>,
}

impl ServerLane {
    fn new(name: &str) -> Self {
        Self { name: name.to_string(), segments: Vec::new(), marks: Vec::new() }
    }

    /// Ends the open segment at `at_ms` and opens one in `phase` (merged if nothing changed).
    fn enter(&mut self, at_ms: u64, phase: Phase, term: Option<u64>, leader: Option<u64>) {
        let last_term = self.segments.last().map_or(0, |s| s.term);
        let term = term.unwrap_or(last_term);
        if let Some(open) = self.segments.last_mut() {
            if open.phase == phase && open.term == term && open.leader == leader {
                return;
            }
            open.to_ms = at_ms;
        }
        self.segments.push(Segment { from_ms: at_ms, to_ms: at_ms, phase, term, leader });
    }

    fn mark(&mut self, at_ms: u64, what: String) {
        self.marks.push(Mark { at_ms, what });
    }
}

/// The lanes of `servers` (in that order) from `trace`, the last segment of each running to
/// `end_ms`. A server's lane starts at its first Raft state; segments of zero length (two state
/// changes in the same millisecond) are dropped.
pub fn server_lanes(servers: &[String], trace: &[Record], end_ms: u64) -> Vec<ServerLane> {
    let mut lanes: Vec<ServerLane> = servers.iter().map(|s| ServerLane::new(s)).collect();
    let index = |name: &str| servers.iter().position(|s| s == name);
    for record in trace {
        let at = record.time_ms;
        match &record.event {
            Event::RaftState { term, role, leader } => {
                if let Some(i) = index(&record.who) {
                    lanes[i].enter(at, Phase::Role(*role), Some(*term), *leader);
                }
            }
            Event::RaftFatal { .. } | Event::StartFailed { .. } | Event::StorageAbandoned { .. } => {
                if let Some(i) = index(&record.who) {
                    lanes[i].mark(at, record.event.to_string());
                }
            }
            Event::Nemesis(n @ Nemesis::Crash { node, .. }) => {
                if let Some(i) = index(node) {
                    lanes[i].enter(at, Phase::Down, None, None);
                    lanes[i].mark(at, n.to_string());
                }
            }
            Event::Nemesis(n @ Nemesis::Restart { node }) => {
                if let Some(i) = index(node) {
                    lanes[i].enter(at, Phase::Starting, None, None);
                    lanes[i].mark(at, n.to_string());
                }
            }
            Event::Nemesis(Nemesis::FinalHeal { restarted }) => {
                for node in restarted {
                    if let Some(i) = index(node) {
                        lanes[i].enter(at, Phase::Starting, None, None);
                        lanes[i].mark(at, format!("restart {node} (final heal)"));
                    }
                }
            }
            _ => {}
        }
    }
    for lane in &mut lanes {
        if let Some(open) = lane.segments.last_mut() {
            open.to_ms = end_ms.max(open.from_ms);
        }
        lane.segments.retain(|s| s.to_ms > s.from_ms);
        debug_assert!(lane.segments.windows(2).all(|w| w[0].to_ms <= w[1].from_ms), "segments overlap");
    }
    lanes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(time_ms: u64, who: &str, event: Event) -> Record {
        Record { time_ms, who: who.into(), event }
    }

    fn state(term: u64, role: RaftRole, leader: Option<u64>) -> Event {
        Event::RaftState { term, role, leader }
    }

    fn phases(lane: &ServerLane) -> Vec<(u64, u64, &'static str, u64)> {
        lane.segments.iter().map(|s| (s.from_ms, s.to_ms, s.phase.short(), s.term)).collect()
    }

    #[test]
    fn roles_terms_and_crashes_become_segments() {
        let servers = vec!["s1".to_string(), "s2".to_string()];
        let trace = vec![
            rec(10, "s1", state(0, RaftRole::Learner, None)),
            rec(100, "s1", state(1, RaftRole::Candidate, None)),
            rec(120, "s1", state(1, RaftRole::Leader, Some(7))),
            rec(130, "s2", state(1, RaftRole::Follower, Some(7))),
            rec(500, concord_trace::NEMESIS, Event::Nemesis(Nemesis::Crash { node: "s1".into(), torn: false })),
            rec(700, concord_trace::NEMESIS, Event::Nemesis(Nemesis::Restart { node: "s1".into() })),
            rec(750, "s1", state(1, RaftRole::Follower, None)),
            rec(800, "s1", state(2, RaftRole::Follower, Some(9))),
            // A change in the same millisecond leaves no empty segment behind.
            rec(800, "s2", state(2, RaftRole::Candidate, None)),
            rec(800, "s2", state(2, RaftRole::Leader, Some(9))),
        ];
        let lanes = server_lanes(&servers, &trace, 1000);
        assert_eq!(
            phases(&lanes[0]),
            [(10, 100, "learner", 0), (100, 120, "C", 1), (120, 500, "L", 1), (500, 700, "down", 1), (700, 750, "starting", 1), (750, 800, "F", 1), (800, 1000, "F", 2)]
        );
        assert_eq!(phases(&lanes[1]), [(130, 800, "F", 1), (800, 1000, "L", 2)]);
        let marks: Vec<&str> = lanes[0].marks.iter().map(|m| m.what.as_str()).collect();
        assert_eq!(marks, ["crash s1", "restart s1"]);
        assert!(lanes[1].marks.is_empty());
    }

    #[test]
    fn the_final_heal_restarts_crashed_servers_and_fatal_errors_are_marked() {
        let servers = vec!["s1".to_string()];
        let trace = vec![
            rec(10, "s1", state(3, RaftRole::Follower, None)),
            rec(20, "s1", Event::RaftFatal { reason: "fsync failed".into() }),
            rec(30, concord_trace::NEMESIS, Event::Nemesis(Nemesis::Crash { node: "s1".into(), torn: true })),
            rec(40, concord_trace::NEMESIS, Event::Nemesis(Nemesis::FinalHeal { restarted: vec!["s1".into()] })),
        ];
        let lanes = server_lanes(&servers, &trace, 50);
        assert_eq!(phases(&lanes[0]), [(10, 30, "F", 3), (30, 40, "down", 3), (40, 50, "starting", 3)]);
        let marks: Vec<&str> = lanes[0].marks.iter().map(|m| m.what.as_str()).collect();
        assert_eq!(marks, ["raft fatal: fsync failed; restarting", "crash s1 with a torn last write", "restart s1 (final heal)"]);
    }
}
