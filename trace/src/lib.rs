//! The typed events of Concord's trace: what an agent (or the simulator's nemesis and operator)
//! reports happened, shared by the code that emits events and the checkers that judge them.
//!
//! This crate owns the event vocabulary and its one-line rendering ([`fmt::Display`]), which is
//! what the simulator hashes to prove a seed replays identically and what reports and the HTML
//! timeline show. It must never carry wall-clock time, depend on the agent or the simulator, or be
//! parsed back from text: consumers match on the types.

use std::fmt;

pub mod nemesis;

pub use nemesis::Nemesis;

/// One event, stamped with simulated time and the host that reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Record {
    /// Simulated time since the run started, in milliseconds (the simulator steps whole ms).
    pub time_ms: u64,
    /// Who reported it: a server's host name (`s1`), [`NEMESIS`] or [`OPERATOR`].
    pub who: String,
    /// What happened.
    pub event: Event,
}

/// The `who` of fault-injection events.
pub const NEMESIS: &str = "nemesis";
/// The `who` of the simulator's operator (Raft peer add/remove through the HTTP API).
pub const OPERATOR: &str = "operator";

/// Renders `{secs:>10.3} {who} {event}`, e.g. `     0.603 s2 raft term=2 state=Leader leader=22`.
impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Seconds right-aligned so that `secs.mmm` is 10 wide, as `{:>10.3}` of the seconds prints.
        write!(f, "{:>6}.{:03} {} {}", self.time_ms / 1000, self.time_ms % 1000, self.who, self.event)
    }
}

/// A node's Raft role (openraft's `ServerState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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

/// What a state machine applied at one log index.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AppliedEntry {
    /// A client command, summarised by the state machine (`set k1 len=10 cas=None`), and whether
    /// it succeeded (a failed check-and-set is applied too, with `ok=false`).
    Command {
        /// The command without its payload: verb, key and the arguments that decide its result.
        summary: String,
        /// The command's result.
        ok: bool,
    },
    /// A membership change.
    Membership {
        /// The Raft ids of the voters it names, in id order.
        voters: Vec<u64>,
    },
    /// A blank entry (a new leader's first entry of its term): applied, changes nothing.
    Blank,
}

impl fmt::Display for AppliedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppliedEntry::Command { summary, ok } => write!(f, "{summary} ok={ok}"),
            AppliedEntry::Membership { voters } => write!(f, "membership {voters:?}"),
            AppliedEntry::Blank => write!(f, "blank"),
        }
    }
}

/// A Raft vote as the log store keeps it (openraft's `Vote` with `single-term-leader`): the term,
/// the candidate voted for (or the leader followed) in it, and whether that leader is known to have
/// won (a quorum granted it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Vote {
    /// The term.
    pub term: u64,
    /// The Raft id voted for in `term`, if any.
    pub voted_for: Option<u64>,
    /// Whether the vote is for an elected leader.
    pub committed: bool,
}

/// Renders `tT for N` (`tT for none`), with ` committed` when it is.
impl fmt::Display for Vote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.voted_for {
            Some(id) => write!(f, "t{} for {id}", self.term)?,
            None => write!(f, "t{} for none", self.term)?,
        }
        if self.committed {
            write!(f, " committed")?;
        }
        Ok(())
    }
}

/// What happened. An agent emits the variants up to [`Event::RaftFatal`]; the simulator emits
/// [`Event::Nemesis`] and [`Event::Operator`] (see [`Event::from_agent`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Event {
    /// `raft term=T state=S leader=L`: the node's term, role or known leader changed.
    RaftState {
        /// The node's current term.
        term: u64,
        /// Its role in that term.
        role: RaftRole,
        /// The Raft id of the leader it knows (`leader=none` is `None`).
        leader: Option<u64>,
    },
    /// `apply I tT ENTRY`: the state machine applied the committed entry at log index `index`
    /// created in term `term`. Every entry openraft hands the state machine is traced, blank ones
    /// too, so a lifetime's applies can be judged for gaps.
    Apply {
        /// Raft log index.
        index: u64,
        /// The term of the leader that created the entry.
        term: u64,
        /// What the entry did.
        entry: AppliedEntry,
    },
    /// `snapshot built at N`: the node compacted its own state up to index `N`.
    SnapshotBuilt {
        /// Last log index covered by the snapshot.
        index: u64,
    },
    /// `snapshot installed at N`: the state machine was replaced by a snapshot (from the leader)
    /// up to index `N`.
    SnapshotInstalled {
        /// Last log index covered by the snapshot.
        index: u64,
    },
    /// `state restored at N` (`state restored empty`): a new incarnation's state machine opened
    /// from its durable snapshot, which reflects the log up to index `N` (nothing: no snapshot).
    StateRestored {
        /// Last log index the restored state reflects.
        index: Option<u64>,
    },
    /// `vote saved V`: the log store told openraft the vote `V` is durable (`save_vote` returned).
    VoteSaved(Vote),
    /// `vote restored V` (`vote restored none`): the log store opened with the durable vote `V`.
    VoteRestored(Option<Vote>),
    /// `bootstrap with N servers`: `bootstrap_expect` was reached and this node initialised Raft.
    Bootstrap {
        /// Size of the initial membership.
        servers: usize,
    },
    /// `joined the running cluster at I`: the leader added this server as a voter.
    JoinedCluster {
        /// Log index of the membership change that added it.
        index: u64,
    },
    /// `recovered: cut torn tail of N bytes`: the Raft log ended in a partial frame (a write torn
    /// by a crash), which was cut off on open.
    TornTailCut {
        /// Bytes cut.
        bytes: u64,
    },
    /// `storage corrupted (WHY); moved aside, rejoining as generation G`: the Raft storage failed
    /// its integrity check; the node starts over as a new server with a new Raft id.
    StorageAbandoned {
        /// What the integrity check found.
        why: String,
        /// The node's identity generation from now on.
        generation: u64,
    },
    /// `start failed: REASON`: this incarnation refused to start (e.g. a disk read error); the
    /// host retries (a new incarnation) after a back-off.
    StartFailed {
        /// Why, as the start error prints.
        reason: String,
    },
    /// `raft fatal: REASON; restarting`: Raft stopped on a fatal error (e.g. a failed fsync); the
    /// host restarts the process from its disk (a new incarnation) after a back-off.
    RaftFatal {
        /// Why, as the fatal error prints.
        reason: String,
    },
    /// `member M STATUS`: this node's LAN gossip view of member `M` changed to `STATUS` (`alive`,
    /// `suspect`, `failed`, `left`).
    Member {
        /// The member's node name.
        member: String,
        /// Its new status.
        status: String,
    },
    /// A fault the nemesis injected (or skipped), reported by [`NEMESIS`].
    Nemesis(Nemesis),
    /// `METHOD PATH: done|gave up`: what the simulator's operator did, reported by [`OPERATOR`].
    Operator(String),
}

impl Event {
    /// True for events an agent emits about itself; false for the simulator's own
    /// ([`Event::Nemesis`], [`Event::Operator`]).
    pub fn from_agent(&self) -> bool {
        !matches!(self, Event::Nemesis(_) | Event::Operator(_))
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::RaftState { term, role, leader: Some(l) } => write!(f, "raft term={term} state={role:?} leader={l}"),
            Event::RaftState { term, role, leader: None } => write!(f, "raft term={term} state={role:?} leader=none"),
            Event::Apply { index, term, entry } => write!(f, "apply {index} t{term} {entry}"),
            Event::SnapshotBuilt { index } => write!(f, "snapshot built at {index}"),
            Event::SnapshotInstalled { index } => write!(f, "snapshot installed at {index}"),
            Event::StateRestored { index: Some(index) } => write!(f, "state restored at {index}"),
            Event::StateRestored { index: None } => write!(f, "state restored empty"),
            Event::VoteSaved(vote) => write!(f, "vote saved {vote}"),
            Event::VoteRestored(Some(vote)) => write!(f, "vote restored {vote}"),
            Event::VoteRestored(None) => write!(f, "vote restored none"),
            Event::Bootstrap { servers } => write!(f, "bootstrap with {servers} servers"),
            Event::JoinedCluster { index } => write!(f, "joined the running cluster at {index}"),
            Event::TornTailCut { bytes } => write!(f, "recovered: cut torn tail of {bytes} bytes"),
            Event::StorageAbandoned { why, generation } => {
                write!(f, "storage corrupted ({why}); moved aside, rejoining as generation {generation}")
            }
            Event::StartFailed { reason } => write!(f, "start failed: {reason}"),
            Event::RaftFatal { reason } => write!(f, "raft fatal: {reason}; restarting"),
            Event::Member { member, status } => write!(f, "member {member} {status}"),
            Event::Nemesis(n) => write!(f, "{n}"),
            Event::Operator(outcome) => write!(f, "{outcome}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(time_ms: u64, who: &str, event: Event) -> String {
        Record { time_ms, who: who.into(), event }.to_string()
    }

    /// The rendering is what the trace hash covers: these are the lines the agent printed with
    /// `format!` before events were typed, so hashes of unchanged runs stay the same.
    #[test]
    fn events_render_as_the_text_lines_they_replaced() {
        let cmd = |summary: &str, ok| AppliedEntry::Command { summary: summary.into(), ok };
        let cases = [
            (Event::RaftState { term: 2, role: RaftRole::Candidate, leader: None }, "raft term=2 state=Candidate leader=none"),
            (Event::RaftState { term: 2, role: RaftRole::Leader, leader: Some(22) }, "raft term=2 state=Leader leader=22"),
            (Event::Apply { index: 2, term: 2, entry: cmd("set k1 len=10 cas=None", true) }, "apply 2 t2 set k1 len=10 cas=None ok=true"),
            (Event::Apply { index: 0, term: 0, entry: AppliedEntry::Membership { voters: vec![1, 2, 3] } }, "apply 0 t0 membership [1, 2, 3]"),
            (Event::Apply { index: 7, term: 3, entry: AppliedEntry::Blank }, "apply 7 t3 blank"),
            (Event::SnapshotBuilt { index: 600 }, "snapshot built at 600"),
            (Event::StateRestored { index: Some(640) }, "state restored at 640"),
            (Event::StateRestored { index: None }, "state restored empty"),
            (Event::VoteSaved(Vote { term: 3, voted_for: Some(22), committed: false }), "vote saved t3 for 22"),
            (Event::VoteSaved(Vote { term: 3, voted_for: Some(22), committed: true }), "vote saved t3 for 22 committed"),
            (Event::VoteRestored(Some(Vote { term: 4, voted_for: None, committed: false })), "vote restored t4 for none"),
            (Event::VoteRestored(None), "vote restored none"),
            (Event::SnapshotInstalled { index: 640 }, "snapshot installed at 640"),
            (Event::Bootstrap { servers: 3 }, "bootstrap with 3 servers"),
            (Event::JoinedCluster { index: 41 }, "joined the running cluster at 41"),
            (Event::TornTailCut { bytes: 17 }, "recovered: cut torn tail of 17 bytes"),
            (
                Event::StorageAbandoned { why: "bad crc".into(), generation: 1 },
                "storage corrupted (bad crc); moved aside, rejoining as generation 1",
            ),
            (Event::StartFailed { reason: "storage: read error".into() }, "start failed: storage: read error"),
            (Event::RaftFatal { reason: "fsync failed".into() }, "raft fatal: fsync failed; restarting"),
            (Event::Operator("PUT /v1/operator/raft/peer: done".into()), "PUT /v1/operator/raft/peer: done"),
            (Event::Member { member: "s2".into(), status: "failed".into() }, "member s2 failed"),
        ];
        for (event, text) in cases {
            assert_eq!(event.to_string(), text);
        }
    }

    #[test]
    fn records_render_seconds_with_millis_right_aligned_in_ten_columns() {
        let e = || Event::Bootstrap { servers: 3 };
        assert_eq!(line(7, "s3", e()), "     0.007 s3 bootstrap with 3 servers");
        assert_eq!(line(29_000, "s3", e()), "    29.000 s3 bootstrap with 3 servers");
        for ms in [0u64, 7, 999, 1_000, 12_345, 3_600_000] {
            let old = format!("{:>10.3}", std::time::Duration::from_millis(ms).as_secs_f64());
            assert!(line(ms, "s1", e()).starts_with(&format!("{old} ")), "{ms} ms");
        }
    }

    #[test]
    fn only_simulator_events_are_not_from_an_agent() {
        assert!(Event::Bootstrap { servers: 3 }.from_agent());
        assert!(!Event::Nemesis(Nemesis::HealAll).from_agent());
        assert!(!Event::Operator("x".into()).from_agent());
    }
}
