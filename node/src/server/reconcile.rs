//! The leader reconciles LAN gossip membership into the catalog (Consul `agent/consul/leader.go`:
//! `reconcileMember`, `handleAliveMember`, `handleFailedMember`, `handleLeftMember`).
//!
//! Every member of this datacenter gets a catalog node with a `serfHealth` check named "Serf
//! Health Status": passing ("Agent alive and reachable") while the member is alive or suspect,
//! critical ("Agent not live or unreachable") once it failed; a member that left is deregistered.
//! Sessions bind `serfHealth` by default, so a session dies with its node's agent. Writes go
//! through the ordinary catalog write path (Raft) and only when the catalog differs from the
//! membership, on every change of the pool's view and every [`RECONCILE_INTERVAL`]. Never does:
//! deregister a node that is not a known `left` member (Consul also reaps catalog nodes that gossip
//! forgot; a leader that just started has not heard the whole pool yet, so that waits for later).

use std::sync::Arc;
use std::time::Duration;

use super::Server;
use crate::gossip::{Member, MemberStatus};
use crate::local::state::SERF_CHECK_ID;
use crate::structs::{DeregisterRequest, HealthCheck, HealthStatus, QueryOptions, RegisterRequest};

/// The `serfHealth` check's name and outputs, as Consul writes them (`agent/structs`:
/// `SerfCheckName`, `SerfCheckAliveOutput`, `SerfCheckFailedOutput`).
pub const SERF_CHECK_NAME: &str = "Serf Health Status";
pub const SERF_ALIVE_OUTPUT: &str = "Agent alive and reachable";
pub const SERF_FAILED_OUTPUT: &str = "Agent not live or unreachable";

/// How often the leader reconciles even without a membership change (Consul `reconcile_interval`
/// is 60 s; a new leader, or a write lost to a leader change, is caught up within this).
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(2);

/// What the catalog needs for one member.
#[derive(Debug, PartialEq, Eq)]
enum Fix {
    /// Register (or update) the node's `serfHealth` with this status; `node_known` says whether
    /// the node row exists (then it is left as its agent wrote it).
    Health { status: HealthStatus, node_known: bool },
    /// The member left: remove its node.
    Deregister,
}

/// Runs on every server; acts only while this server leads.
pub async fn reconcile_members(server: Arc<Server>) {
    let mut changes = server.gossip.subscribe();
    loop {
        if server.is_leader() {
            reconcile_once(&server).await;
        }
        tokio::select! {
            biased;
            changed = changes.changed() => if changed.is_err() { tokio::time::sleep(RECONCILE_INTERVAL).await },
            _ = tokio::time::sleep(RECONCILE_INTERVAL) => {}
        }
    }
}

/// One pass: compares every member with the catalog and writes the differences.
pub async fn reconcile_once(server: &Server) {
    let dc = &server.config.datacenter;
    let members: Vec<Member> =
        server.gossip.members().into_iter().filter(|m| m.tags.get("dc").is_none_or(|d| d == dc)).collect();
    let fixes: Vec<(Member, Fix)> = {
        let Ok(a) = server.state.read() else { return };
        members
            .into_iter()
            .filter_map(|m| {
                let known = a.store.catalog_node_services(&m.name).0.is_some();
                let serf = a.store.health_node_checks(&m.name).0.into_iter().find(|c| c.check_id == SERF_CHECK_ID);
                fix_for(&m, known, serf.as_ref()).map(|f| (m, f))
            })
            .collect()
    };
    for (m, fix) in fixes {
        let result = match fix {
            Fix::Deregister => {
                let req = DeregisterRequest { datacenter: dc.clone(), node: m.name.clone(), ..Default::default() };
                server.catalog_deregister(&QueryOptions::default(), req).await.map(|_| "deregistered the node of a member that left")
            }
            Fix::Health { status, node_known } => server
                .catalog_register(&QueryOptions::default(), register_request(server, &m, status, node_known))
                .await
                .map(|_| if status == HealthStatus::Passing { "serfHealth passing" } else { "serfHealth critical" }),
        };
        match result {
            Ok(what) => tracing::info!(member = %m.name, status = m.status.consul_name(), "{what}"),
            Err(e) => tracing::debug!(member = %m.name, error = %e, "membership reconcile write failed"),
        }
    }
}

/// What (if anything) the catalog needs for `m`, given whether its node exists and its current
/// `serfHealth` check.
fn fix_for(m: &Member, node_known: bool, serf: Option<&HealthCheck>) -> Option<Fix> {
    let want = match m.status {
        MemberStatus::Left => return node_known.then_some(Fix::Deregister),
        MemberStatus::Alive | MemberStatus::Suspect | MemberStatus::Leaving => HealthStatus::Passing,
        MemberStatus::Failed => HealthStatus::Critical,
    };
    let current = serf.map(|c| (c.status, c.output.as_str(), c.name.as_str()));
    (current != Some((want, output_for(want), SERF_CHECK_NAME))).then_some(Fix::Health { status: want, node_known })
}

fn output_for(status: HealthStatus) -> &'static str {
    if status == HealthStatus::Passing {
        SERF_ALIVE_OUTPUT
    } else {
        SERF_FAILED_OUTPUT
    }
}

/// The registration of `m`'s `serfHealth`: with the node row (address from gossip, ID from its
/// `id` tag) when the catalog has no node yet, else the check alone.
fn register_request(server: &Server, m: &Member, status: HealthStatus, node_known: bool) -> RegisterRequest {
    let check = HealthCheck {
        node: m.name.clone(),
        check_id: SERF_CHECK_ID.to_string(),
        name: SERF_CHECK_NAME.to_string(),
        status,
        output: output_for(status).to_string(),
        ..Default::default()
    };
    RegisterRequest {
        datacenter: server.config.datacenter.clone(),
        id: if node_known { String::new() } else { m.tags.get("id").cloned().unwrap_or_default() },
        node: m.name.clone(),
        address: m.addr.ip().to_string(),
        check: None,
        checks: vec![check],
        skip_node_update: node_known,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(status: MemberStatus) -> Member {
        Member { name: "s2".into(), addr: "10.0.0.2:8301".parse().unwrap(), tags: Default::default(), status, generation: 1 }
    }

    fn serf(status: HealthStatus) -> HealthCheck {
        HealthCheck {
            check_id: SERF_CHECK_ID.into(),
            name: SERF_CHECK_NAME.into(),
            status,
            output: output_for(status).into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_alive_member_without_serf_health_gets_a_passing_check() {
        let fix = fix_for(&member(MemberStatus::Alive), false, None);
        assert_eq!(fix, Some(Fix::Health { status: HealthStatus::Passing, node_known: false }));
    }

    #[test]
    fn a_failed_member_turns_critical_and_a_suspect_one_stays_passing() {
        let passing = serf(HealthStatus::Passing);
        assert_eq!(fix_for(&member(MemberStatus::Suspect), true, Some(&passing)), None, "suspect is still alive to Serf");
        assert_eq!(
            fix_for(&member(MemberStatus::Failed), true, Some(&passing)),
            Some(Fix::Health { status: HealthStatus::Critical, node_known: true })
        );
        assert_eq!(fix_for(&member(MemberStatus::Failed), true, Some(&serf(HealthStatus::Critical))), None);
    }

    #[test]
    fn a_member_that_left_is_deregistered_once() {
        assert_eq!(fix_for(&member(MemberStatus::Left), true, None), Some(Fix::Deregister));
        assert_eq!(fix_for(&member(MemberStatus::Left), false, None), None, "nothing left to remove");
    }
}
