//! Alias checks: a check whose status mirrors the health of a service instance and/or a node
//! (Consul `agent/checks/alias.go`, `CheckAlias`; "Health Checks" docs, alias section).
//!
//! The status is the worst of the aliased node's node-level checks and, with `AliasService`,
//! that instance's checks: critical if any is critical, else warning if any is warning, else
//! passing ("All checks passing.", or "No checks found." when there are none). A service that
//! does not exist is critical ("Service <id> could not be found on node <node>").
//!
//! - This agent's node (no `AliasNode`, or this agent's own name): evaluated from the local
//!   state at once and again after every local change (the `changes` watch of [`Local`]), as
//!   Consul's `runLocal` does off its local-state notifications. The alias never counts itself.
//! - Another node: read from the catalog ([`CatalogPort::node_entries`]) every
//!   [`REMOTE_POLL_INTERVAL`] (Consul runs a blocking `Health.NodeChecks` query instead). After
//!   [`REMOTE_FAILURES_BEFORE_CRITICAL`] failed reads in a row the alias turns critical with
//!   Consul's "Failure checking aliased node or service: ..." message.
//!
//! Statuses are set as they are, without thresholds, and are not persisted (an alias restarts
//! in its initial status and re-evaluates at once), as in Consul. Checks are visited in check-id
//! order, so which failing check the output names is deterministic (Consul's is map order).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::sync::CatalogPort;
use super::{lock, Local};
use crate::structs::{HealthCheck, HealthStatus};

/// How often an alias of another node re-reads the catalog (Concord's stand-in for Consul's
/// blocking query, whose wake-up latency it bounds).
pub const REMOTE_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Failed catalog reads in a row before the alias turns critical (Consul `runQuery` reports from
/// the second failed attempt: `attempt > 1`).
pub const REMOTE_FAILURES_BEFORE_CRITICAL: u32 = 2;

/// Consul's outputs (`processChecks`).
pub const NO_CHECKS_FOUND: &str = "No checks found.";
pub const ALL_CHECKS_PASSING: &str = "All checks passing.";

/// The alias's status and output from the aliased node's checks (Consul `processChecks`).
/// `checks` are the aliased node's checks (node-level and of any service); a check of another
/// service is skipped. `service` is the aliased service ID (`None`: the node alone). `node` is
/// the `AliasNode` as given (empty when none), used in the missing-service message.
/// `service_exists` is asked only when no check of the service (or, without one, no node-level
/// check) was seen.
pub fn evaluate<'a>(
    service: Option<&str>,
    node: &str,
    checks: impl IntoIterator<Item = &'a HealthCheck>,
    service_exists: impl FnOnce() -> bool,
) -> (HealthStatus, String) {
    let want = service.unwrap_or("");
    let mut health = HealthStatus::Passing;
    let mut output = NO_CHECKS_FOUND.to_string();
    let mut service_found = false;
    for c in checks {
        let service_match = c.service_id == want;
        if !c.service_id.is_empty() && !service_match {
            continue;
        }
        service_found |= service_match;
        match c.status {
            HealthStatus::Critical | HealthStatus::Warning => {
                health = c.status;
                output = format!("Aliased check {:?} failing: {}", c.name, c.output);
                if c.status == HealthStatus::Critical {
                    break;
                }
            }
            _ if health == HealthStatus::Passing => output = ALL_CHECKS_PASSING.to_string(),
            _ => {}
        }
    }
    if !service_found && !service_exists() {
        return (HealthStatus::Critical, format!("Service {want} could not be found on node {node}"));
    }
    (health, output)
}

/// Runs the alias check `id` until aborted (or the check is gone).
pub(super) async fn run(local: Arc<Local>, id: String, service: Option<String>, node: Option<String>) {
    match node {
        Some(n) if n != local.node.node => run_remote(local, id, service, n).await,
        node => run_local(local, id, service, node.unwrap_or_default()).await,
    }
}

/// An alias of this agent's node: re-evaluated after every local change.
async fn run_local(local: Arc<Local>, id: String, service: Option<String>, node: String) {
    let mut changes = local.changes.subscribe();
    loop {
        let (status, output) = {
            let st = local.state();
            let others = st.checks.values().filter(|c| c.check.check_id != id).map(|c| &c.check);
            let exists = || match &service {
                Some(s) => st.services.contains_key(s),
                None => true,
            };
            evaluate(service.as_deref(), &node, others, exists)
        };
        if !local.set_alias_status(&id, status, &output) {
            return;
        }
        // Our own status change bumps `changes` too: one more evaluation, with the same answer.
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// An alias of another node: its catalog entries, read every [`REMOTE_POLL_INTERVAL`].
async fn run_remote(local: Arc<Local>, id: String, service: Option<String>, node: String) {
    let Some(catalog) = lock(&local.catalog).clone() else {
        debug_assert!(false, "runners start only after the catalog is set");
        return;
    };
    let mut failures = 0u32;
    loop {
        if !poll_remote(&local, catalog.as_ref(), &id, service.as_deref(), &node, &mut failures).await {
            return;
        }
        tokio::time::sleep(REMOTE_POLL_INTERVAL).await;
    }
}

/// One catalog read and its verdict. Returns false once the check is gone.
async fn poll_remote(local: &Local, catalog: &dyn CatalogPort, id: &str, service: Option<&str>, node: &str, failures: &mut u32) -> bool {
    match catalog.node_entries(node).await {
        Ok(view) => {
            *failures = 0;
            let on_node = view.checks.values().filter(|c| c.node.is_empty() || c.node == node);
            let exists = || match service {
                Some(s) => view.services.contains_key(s),
                None => view.node.is_some(),
            };
            let (status, output) = evaluate(service, node, on_node, exists);
            local.set_alias_status(id, status, &output)
        }
        Err(e) => {
            *failures = failures.saturating_add(1);
            tracing::debug!(check = %id, node, error = %e, "alias check could not read the catalog");
            if *failures < REMOTE_FAILURES_BEFORE_CRITICAL {
                return local.state().checks.contains_key(id);
            }
            local.set_alias_status(id, HealthStatus::Critical, &format!("Failure checking aliased node or service: {e}"))
        }
    }
}

impl Local {
    /// Sets an alias check's status as it is (Consul `UpdateCheck`), waking anti-entropy and the
    /// other aliases if it changed. Returns false if the check is gone.
    fn set_alias_status(&self, id: &str, status: HealthStatus, output: &str) -> bool {
        let changed = {
            let mut st = self.state();
            let Some(c) = st.checks.get_mut(id) else { return false };
            c.set(status, output, Instant::now())
        };
        if changed {
            tracing::debug!(check = %id, status = status.as_str(), "alias check updated");
            self.sync_wake.notify_one();
            self.changed();
        }
        true
    }
}

#[cfg(test)]
#[path = "alias_tests.rs"]
mod tests;
