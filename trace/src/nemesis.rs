//! Faults as the trace reports them: resolved to the hosts they hit (`crash s2`, not `crash the
//! leader`). The variants the checkers need (crashes and restarts delimit a node's incarnations;
//! the final heal starts the liveness phase) are typed; every other fault keeps its text.

use std::fmt;

/// A fault the nemesis applied (or skipped), resolved to host names.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Nemesis {
    /// `crash s2` (`crash s2 with a torn last write`): the node stopped; its disk keeps only what
    /// was synced (and, torn, a partial last write).
    Crash {
        /// The crashed node's host name.
        node: String,
        /// Whether its last unsynced write was torn.
        torn: bool,
    },
    /// `restart s2`: a new incarnation of the node starts from its disk.
    Restart {
        /// The restarted node's host name.
        node: String,
    },
    /// `partition [s1] | [s2, s3]`: the links between the sides were cut.
    Partition {
        /// The host names on each side of the cut.
        sides: Vec<Vec<String>>,
    },
    /// `isolate s2` (`isolate leader s2`): every link of one server was cut.
    Isolate {
        /// The isolated node's host name.
        node: String,
        /// Whether it was chosen for being the leader at the time.
        leader: bool,
    },
    /// `heal all`: every cut link restored.
    HealAll,
    /// `final heal all; restart ["s2"]; liveness phase begins`: faults end, links heal, the
    /// listed crashed nodes restart.
    FinalHeal {
        /// Host names of the nodes the final heal restarted.
        restarted: Vec<String>,
    },
    /// `FAULT: WHY, skipped`: the fault did not apply (e.g. `crash s1: s1 already down`).
    Skipped {
        /// The fault as scheduled.
        fault: String,
        /// Why it was skipped.
        why: String,
    },
    /// Any other fault (`pause s2`, `slow s1 20+5ms`, `bit flip in s3 RaftLog at 500‰ …`), as
    /// shown: nothing a checker tracks.
    Other(String),
}

impl fmt::Display for Nemesis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nemesis::Crash { node, torn: false } => write!(f, "crash {node}"),
            Nemesis::Crash { node, torn: true } => write!(f, "crash {node} with a torn last write"),
            Nemesis::Restart { node } => write!(f, "restart {node}"),
            Nemesis::Partition { sides } => {
                let shown: Vec<String> = sides.iter().map(|side| format!("[{}]", side.join(", "))).collect();
                write!(f, "partition {}", shown.join(" | "))
            }
            Nemesis::Isolate { node, leader: true } => write!(f, "isolate leader {node}"),
            Nemesis::Isolate { node, leader: false } => write!(f, "isolate {node}"),
            Nemesis::HealAll => write!(f, "heal all"),
            Nemesis::FinalHeal { restarted } => write!(f, "final heal all; restart {restarted:?}; liveness phase begins"),
            Nemesis::Skipped { fault, why } => write!(f, "{fault}: {why}, skipped"),
            Nemesis::Other(text) => write!(f, "{text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_render_as_the_text_lines_they_replaced() {
        let s = |v: &[&str]| v.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        let cases = [
            (Nemesis::Crash { node: "s1".into(), torn: false }, "crash s1"),
            (Nemesis::Crash { node: "s3".into(), torn: true }, "crash s3 with a torn last write"),
            (Nemesis::Restart { node: "s1".into() }, "restart s1"),
            (Nemesis::Partition { sides: vec![s(&["s1"]), s(&["s2", "s3"])] }, "partition [s1] | [s2, s3]"),
            (Nemesis::Isolate { node: "s2".into(), leader: true }, "isolate leader s2"),
            (Nemesis::Isolate { node: "s2".into(), leader: false }, "isolate s2"),
            (Nemesis::HealAll, "heal all"),
            (
                Nemesis::FinalHeal { restarted: s(&["s2", "s3"]) },
                r#"final heal all; restart ["s2", "s3"]; liveness phase begins"#,
            ),
            (Nemesis::FinalHeal { restarted: vec![] }, "final heal all; restart []; liveness phase begins"),
            (
                Nemesis::Skipped { fault: "crash the leader".into(), why: "no leader now".into() },
                "crash the leader: no leader now, skipped",
            ),
            (Nemesis::Other("pause s2".into()), "pause s2"),
        ];
        for (event, text) in cases {
            assert_eq!(event.to_string(), text);
        }
    }
}
