//! The common report type of the trace invariants ([`crate::raft`]) and history oracles
//! ([`crate::oracles`]).
//!
//! Each checker returns a `Vec<InvariantViolation>`: empty means the property held on the input.
//! A violation names the property, says in one line what went wrong, and carries the raw evidence
//! (trace lines or rendered ops) so a report can be read without re-running the simulation.

use std::fmt;

/// One broken property, with the evidence that proves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantViolation {
    /// Which property broke, e.g. `"election_safety"` (stable: tests and reports match on it).
    pub invariant: &'static str,
    /// A one-line human-readable explanation.
    pub detail: String,
    /// The trace lines or ops that show it, in the order they were recorded.
    pub evidence: Vec<String>,
}

impl InvariantViolation {
    /// A violation of `invariant` explained by `detail`, with `evidence`.
    pub fn new(invariant: &'static str, detail: impl Into<String>, evidence: Vec<String>) -> Self {
        Self { invariant, detail: detail.into(), evidence }
    }
}

impl fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.invariant, self.detail)?;
        for line in &self.evidence {
            write!(f, "\n    {}", line.trim_start())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_invariant_and_indents_evidence() {
        let v = InvariantViolation::new("election_safety", "two leaders in term 2", vec!["  0.6 n1 x".into(), "0.7 n2 y".into()]);
        assert_eq!(v.to_string(), "election_safety violated: two leaders in term 2\n    0.6 n1 x\n    0.7 n2 y");
    }
}
