//! Host names and roles. Every host in a simulated world has one name, used everywhere a host is
//! shown (report, fault log, trace, violation evidence, HTML timeline):
//!
//! | role                 | names            | what it is                                             |
//! |----------------------|------------------|--------------------------------------------------------|
//! | [`Role::Server`]     | `s1`, `s2`, …    | a Concord server agent (a Raft voter)                  |
//! | [`Role::Client`]     | `c1`, `c2`, …    | a Concord client agent (no Raft): `client-agents`      |
//! | [`Role::Workload`]   | `w1`, `w2`, …    | a workload client recording the history                |
//! | [`Role::Operator`]   | `operator`       | carries out membership changes over the HTTP API       |
//! | [`Role::Liveness`]   | `liveness`       | the probe of the liveness phase                        |
//!
//! `c` is kept for Consul's client agents (`concord agent` without `-server`), so the workload
//! hosts that drive the HTTP API are `w`. Numbers start at 1; a server's node name is its host
//! name, so its Raft id is `node::raft::node_id_for("s1")`.

use std::fmt;

/// A host's name (`s1`, `w2`, `operator`, …).
pub type Host = String;

/// What a host does in the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// A server agent (Raft voter).
    Server,
    /// A client agent (not in Raft).
    Client,
    /// A workload client.
    Workload,
    /// The operator host.
    Operator,
    /// The liveness probe.
    Liveness,
}

/// The operator host's name.
pub const OPERATOR: &str = "operator";
/// The liveness probe's name.
pub const LIVENESS: &str = "liveness";

/// The `i`th (0-based) server's name: `s{i+1}`.
pub fn server(i: usize) -> Host {
    format!("s{}", i + 1)
}

/// The names of servers `0..n`.
pub fn servers(n: usize) -> Vec<Host> {
    (0..n).map(server).collect()
}

/// The `i`th (0-based) client agent's name: `c{i+1}`.
pub fn client_agent(i: usize) -> Host {
    format!("c{}", i + 1)
}

/// The `i`th (0-based) workload client's name: `w{i+1}`.
pub fn workload(i: usize) -> Host {
    format!("w{}", i + 1)
}

/// The role a name denotes, if it follows the scheme.
pub fn role_of(name: &str) -> Option<Role> {
    match name {
        OPERATOR => return Some(Role::Operator),
        LIVENESS => return Some(Role::Liveness),
        _ => {}
    }
    let (prefix, num) = name.split_at(1.min(name.len()));
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || num.starts_with('0') {
        return None;
    }
    match prefix {
        "s" => Some(Role::Server),
        "c" => Some(Role::Client),
        "w" => Some(Role::Workload),
        _ => None,
    }
}

/// The 0-based index of a server name (`s3` → 2).
pub fn server_index(name: &str) -> Option<usize> {
    if role_of(name) != Some(Role::Server) {
        return None;
    }
    name[1..].parse::<usize>().ok().map(|n| n - 1)
}

/// Which host a fault hits: a named host, or one resolved when the fault applies (and recorded in
/// the fault log under its name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// This host.
    Host(Host),
    /// Whoever leads at that moment (if no leader is known, the fault is skipped and the log says
    /// so).
    Leader,
    /// A host of this role, drawn from the simulator's seeded RNG.
    Any(Role),
}

impl Target {
    /// The `i`th (0-based) server.
    pub fn server(i: usize) -> Self {
        Target::Host(server(i))
    }
    /// The host named, if the target names one.
    pub fn host(&self) -> Option<&str> {
        match self {
            Target::Host(h) => Some(h),
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Host(h) => write!(f, "{h}"),
            Target::Leader => write!(f, "the leader"),
            Target::Any(role) => write!(f, "a random {}", format!("{role:?}").to_lowercase()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_to_roles_and_indexes() {
        assert_eq!(server(0), "s1");
        assert_eq!(server_index("s12"), Some(11));
        assert_eq!(role_of("w3"), Some(Role::Workload));
        assert_eq!(role_of("c1"), Some(Role::Client));
        assert_eq!(role_of("operator"), Some(Role::Operator));
        assert_eq!(role_of("s0"), None);
        assert_eq!(role_of("n1"), None);
        assert_eq!(server_index("w1"), None);
    }
}
