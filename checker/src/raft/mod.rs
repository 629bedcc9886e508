//! Raft safety invariants checked over the simulator's trace.
//!
//! The simulator stamps every agent event with simulated time (`{secs:>10.3} {who} {event}`);
//! [`parse_trace`] turns the lines it understands into typed [`TraceEvent`]s and skips the rest, so
//! new event kinds (and the report printed after the trace) never break the checkers. The
//! invariants are the safety properties of Ongaro & Ousterhout, "In Search of an Understandable
//! Consensus Algorithm" (USENIX ATC 2014), Figure 3, one per module:
//!
//! - [`election_safety`]: at most one leader per term (§5.2).
//! - [`log_matching`]: a node applies its log in index order (§5.3).
//! - [`leader_completeness`]: committed entries are never lost (§5.4).
//! - [`state_machine_safety`]: no two nodes apply different entries at one index (§5.4.3).
//!
//! Incarnations: after `nemesis crash nX`, node `nX` emits nothing until `nemesis restart nX` (or
//! the `nemesis final heal …; restart ["nX"]` line), and its later lines come from a new process
//! that re-applies its log from its last snapshot. The host also restarts a node by itself after
//! `start failed: …` or `raft fatal: …; restarting`. [`Lifecycles`] numbers those incarnations.

pub mod election_safety;
pub mod leader_completeness;
mod lifecycle;
pub mod log_matching;
pub mod state_machine_safety;

pub use election_safety::check_election_safety;
pub use leader_completeness::{check_leader_completeness, survivors_that_applied_nothing};
pub use lifecycle::Lifecycles;
pub use log_matching::check_log_matching;
pub use state_machine_safety::check_state_machine_safety;

use crate::invariant::InvariantViolation;

/// The `who` of fault-injection lines.
pub const NEMESIS: &str = "nemesis";

/// A node's Raft role, as printed in `state=` (openraft's `ServerState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftRole {
    /// Non-voting member.
    Learner,
    /// Voter following a leader (or waiting for one).
    Follower,
    /// Voter asking for votes.
    Candidate,
    /// Voter that won an election.
    Leader,
    /// Raft stopped on this node.
    Shutdown,
}

impl RaftRole {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Learner" => Self::Learner,
            "Follower" => Self::Follower,
            "Candidate" => Self::Candidate,
            "Leader" => Self::Leader,
            "Shutdown" => Self::Shutdown,
            _ => return None,
        })
    }
}

/// What a trace line says happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `raft term=T state=S leader=L`: the node's term, role or known leader changed.
    RaftState {
        /// The node's current term.
        term: u64,
        /// Its role in that term.
        role: RaftRole,
        /// The Raft id of the leader it knows (`leader=none` is `None`).
        leader: Option<u64>,
    },
    /// `apply I tT COMMAND…`: the state machine applied the committed entry at log index `index`
    /// created in term `term`. `command` is the rest of the line, result included (`… ok=true`).
    Apply {
        /// Raft log index.
        index: u64,
        /// The entry's term.
        term: u64,
        /// The command text and result, e.g. `set k1 len=10 cas=None ok=true`.
        command: String,
    },
    /// `snapshot installed at N`: the state machine was replaced by a snapshot up to index `N`.
    SnapshotInstalled {
        /// Last log index covered by the snapshot.
        index: u64,
    },
    /// `snapshot built at N`: the node compacted its own state up to index `N`.
    SnapshotBuilt {
        /// Last log index covered by the snapshot.
        index: u64,
    },
    /// `bootstrap with N servers`.
    Bootstrap {
        /// Size of the initial membership.
        servers: usize,
    },
    /// `restarted as leader of its old term; …`: the node came back as leader and steps down.
    RestartedAsLeader,
    /// `start failed: REASON`: this incarnation refused to start (e.g. a corrupt log or a disk
    /// read error); the host retries (a new incarnation) after a back-off.
    StartFailed {
        /// Why, as printed.
        reason: String,
    },
    /// `raft fatal: REASON; restarting`: Raft stopped on a fatal error (e.g. a failed fsync); the
    /// host restarts the process from its disk (a new incarnation) after a back-off.
    RaftFatal {
        /// Why, as printed.
        reason: String,
    },
    /// `nemesis crash nX`: node `nX` stopped (its disk keeps only what was synced).
    Crash {
        /// The crashed node's name.
        node: String,
    },
    /// `nemesis restart nX`: a new incarnation of node `nX` starts.
    Restart {
        /// The restarted node's name.
        node: String,
    },
    /// `nemesis partition [a…] | [b…]`: links between the two sides (host names) cut.
    Partition {
        /// The host names on each side of the cut.
        sides: Vec<Vec<String>>,
    },
    /// `nemesis isolate leader nX`: the leader was cut off from the other servers.
    IsolateLeader {
        /// The isolated node's name.
        node: String,
    },
    /// `nemesis heal all`: every cut link restored.
    HealAll,
    /// `nemesis final heal all; restart [..]; liveness phase begins`: faults end; the listed
    /// crashed nodes restart.
    FinalHeal {
        /// Nodes restarted by the final heal.
        restarted: Vec<String>,
    },
}

/// One recognised trace line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Simulated time in milliseconds since the run started.
    pub time_ms: u64,
    /// Who emitted it: a node name (`n1`) or [`NEMESIS`].
    pub node: String,
    /// What happened.
    pub kind: EventKind,
    /// 0-based position of the line in the parsed input.
    pub line: usize,
    /// The line as recorded, for evidence.
    pub raw: String,
}

/// Parses the trace lines it recognises, in input order; unknown or malformed lines are skipped.
pub fn parse_trace(lines: &[String]) -> Vec<TraceEvent> {
    lines.iter().enumerate().filter_map(|(i, l)| parse_line(i, l)).collect()
}

/// Parses the lines and runs all four Raft invariants.
pub fn check_raft_trace(lines: &[String]) -> Vec<InvariantViolation> {
    let events = parse_trace(lines);
    let mut out = check_election_safety(&events);
    out.extend(check_state_machine_safety(&events));
    out.extend(check_log_matching(&events));
    out.extend(check_leader_completeness(&events));
    out
}

fn parse_line(line: usize, raw: &str) -> Option<TraceEvent> {
    let (time, rest) = raw.trim_start().split_once(' ')?;
    let time_ms = parse_time_ms(time)?;
    let (who, event) = rest.trim_start().split_once(' ')?;
    let event = event.trim();
    let kind = if who == NEMESIS { parse_nemesis(event)? } else { parse_node_event(event)? };
    Some(TraceEvent { time_ms, node: who.to_string(), kind, line, raw: raw.to_string() })
}

/// `"12.345"` → 12345 (exact: no floating point).
fn parse_time_ms(s: &str) -> Option<u64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ms = 0u64;
    for i in 0..3 {
        ms = ms * 10 + frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
    }
    whole.parse::<u64>().ok()?.checked_mul(1000)?.checked_add(ms)
}

fn parse_node_event(event: &str) -> Option<EventKind> {
    // Before `raft `, which it also starts with.
    if let Some(rest) = event.strip_prefix("raft fatal: ") {
        let reason = rest.strip_suffix("; restarting").unwrap_or(rest);
        return Some(EventKind::RaftFatal { reason: reason.to_string() });
    }
    if let Some(rest) = event.strip_prefix("raft ") {
        let (mut term, mut role, mut leader) = (None, None, None);
        for field in rest.split_whitespace() {
            match field.split_once('=') {
                Some(("term", v)) => term = v.parse().ok(),
                Some(("state", v)) => role = RaftRole::parse(v),
                Some(("leader", v)) => leader = v.parse().ok(), // `none` (or garbage): no leader known
                _ => {}
            }
        }
        return Some(EventKind::RaftState { term: term?, role: role?, leader });
    }
    if let Some(rest) = event.strip_prefix("apply ") {
        let (index, rest) = rest.split_once(' ')?;
        let (term, command) = rest.split_once(' ')?;
        let term = term.strip_prefix('t')?.parse().ok()?;
        return Some(EventKind::Apply { index: index.parse().ok()?, term, command: command.to_string() });
    }
    if let Some(n) = event.strip_prefix("snapshot installed at ") {
        return Some(EventKind::SnapshotInstalled { index: n.parse().ok()? });
    }
    if let Some(n) = event.strip_prefix("snapshot built at ") {
        return Some(EventKind::SnapshotBuilt { index: n.parse().ok()? });
    }
    if let Some(rest) = event.strip_prefix("bootstrap with ") {
        return Some(EventKind::Bootstrap { servers: rest.strip_suffix(" servers")?.parse().ok()? });
    }
    if event.starts_with("restarted as leader of its old term") {
        return Some(EventKind::RestartedAsLeader);
    }
    if let Some(reason) = event.strip_prefix("start failed: ") {
        return Some(EventKind::StartFailed { reason: reason.to_string() });
    }

    None
}

/// The node a fault names: the first token (`crash s3 with a torn last write` names `s3`), unless
/// the fault was skipped (`crash s1: s1 already down, skipped`; `crash the leader: no leader now,
/// skipped`).
fn node_name(s: &str) -> Option<String> {
    if s.ends_with(", skipped") {
        return None;
    }
    let name = s.split_whitespace().next()?;
    (!name.contains(':')).then(|| name.to_string())
}

fn parse_nemesis(event: &str) -> Option<EventKind> {
    if let Some(rest) = event.strip_prefix("final ") {
        let restarted = rest
            .split_once("restart [")
            .and_then(|(_, tail)| tail.split_once(']'))
            .map(|(list, _)| {
                list.split(',').map(|s| s.trim().trim_matches('"').to_string()).filter(|s| !s.is_empty()).collect()
            })
            .unwrap_or_default();
        return Some(EventKind::FinalHeal { restarted });
    }
    if event == "heal all" {
        return Some(EventKind::HealAll);
    }
    if let Some(n) = event.strip_prefix("crash ") {
        return Some(EventKind::Crash { node: node_name(n)? });
    }
    if let Some(n) = event.strip_prefix("restart ") {
        return Some(EventKind::Restart { node: node_name(n)? });
    }
    if let Some(n) = event.strip_prefix("isolate leader ") {
        return Some(EventKind::IsolateLeader { node: node_name(n)? });
    }
    if let Some(rest) = event.strip_prefix("partition ") {
        let mut sides = Vec::new();
        for side in rest.split('|') {
            let inner = side.trim().strip_prefix('[')?.strip_suffix(']')?;
            let members: Vec<String> = inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
            sides.push(members);
        }
        return Some(EventKind::Partition { sides });
    }
    None
}

#[cfg(test)]
pub(crate) fn lines(text: &str) -> Vec<String> {
    text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
     0.007 n3 bootstrap with 3 servers
     0.600 n2 raft term=2 state=Candidate leader=none
     0.603 n2 raft term=2 state=Leader leader=626983344707000793
     0.607 n2 apply 0 t0 membership [626980046172116160, 626982245195372582, 626983344707000793]
     0.622 n2 apply 2 t2 set k1 len=10 cas=None ok=true
     0.639 n2 apply 4 t2 delete k1 recurse=false cas=None ok=true
     1.000 nemesis partition [s1] | [s2, s3]
     1.000 nemesis heal all
     2.565 nemesis crash n1 with a torn last write
     2.600 nemesis crash n1: already down, skipped
     7.973 nemesis restart n1
    12.000 n3 snapshot built at 600
    12.100 n3 snapshot installed at 640
    28.000 n1 restarted as leader of its old term; calling an election
    28.500 n2 start failed: storage: raft log corrupted; refusing to start
    28.600 n3 raft fatal: fsync failed; restarting
    29.000 nemesis final heal all; restart ["n2", "n3"]; liveness phase begins
     3.000 n1 some future event kind
concord sim  seed=1  scenario=partition-heal
  t=   2.633s  partition [2] | [0, 1]
"#;

    #[test]
    fn every_documented_line_shape_parses_and_unknown_lines_are_skipped() {
        let events = parse_trace(&lines(SAMPLE));
        let kinds: Vec<&EventKind> = events.iter().map(|e| &e.kind).collect();
        assert_eq!(events.len(), 16, "{kinds:#?}");
        assert_eq!(events[0].kind, EventKind::Bootstrap { servers: 3 });
        assert_eq!(events[1].kind, EventKind::RaftState { term: 2, role: RaftRole::Candidate, leader: None });
        assert_eq!(
            events[2].kind,
            EventKind::RaftState { term: 2, role: RaftRole::Leader, leader: Some(626983344707000793) }
        );
        assert_eq!((events[2].time_ms, events[2].node.as_str()), (603, "n2"));
        assert!(matches!(&events[3].kind, EventKind::Apply { index: 0, term: 0, command } if command.starts_with("membership [")));
        assert_eq!(
            events[4].kind,
            EventKind::Apply { index: 2, term: 2, command: "set k1 len=10 cas=None ok=true".into() }
        );
        assert_eq!(events[6].kind, EventKind::Partition { sides: vec![vec!["s1".to_string()], vec!["s2".to_string(), "s3".to_string()]] });
        assert_eq!(events[7].kind, EventKind::HealAll);
        assert_eq!(events[8].kind, EventKind::Crash { node: "n1".into() });
        assert_eq!(events[9].kind, EventKind::Restart { node: "n1".into() });
        assert_eq!(events[10].kind, EventKind::SnapshotBuilt { index: 600 });
        assert_eq!(events[11].kind, EventKind::SnapshotInstalled { index: 640 });
        assert_eq!(events[12].kind, EventKind::RestartedAsLeader);
        assert_eq!(events[13].kind, EventKind::StartFailed { reason: "storage: raft log corrupted; refusing to start".into() });
        assert_eq!(events[14].kind, EventKind::RaftFatal { reason: "fsync failed".into() });
        assert_eq!(events[15].kind, EventKind::FinalHeal { restarted: vec!["n2".into(), "n3".into()] });
        assert_eq!(events[15].time_ms, 29_000);
    }

    #[test]
    fn times_are_parsed_exactly_in_milliseconds() {
        assert_eq!(parse_time_ms("0.007"), Some(7));
        assert_eq!(parse_time_ms("29.000"), Some(29_000));
        assert_eq!(parse_time_ms("1.5"), Some(1_500));
        assert_eq!(parse_time_ms("12"), Some(12_000));
        assert_eq!(parse_time_ms("t="), None);
        assert_eq!(parse_time_ms("-1.0"), None);
    }
}
