//! The agent's local state: the services and checks registered on this agent, by id — the source
//! of truth for this node's catalog entries (Consul `agent/local.State`).
//!
//! Pure: no I/O, no clocks (callers pass `now`), no tasks. It owns the register/deregister rules
//! (a service's checks go with it; a check must name a service this agent has), the status
//! thresholds (Consul `checks.StatusHandler`: `SuccessBeforePassing`, `FailuresBeforeWarning`,
//! `FailuresBeforeCritical`), when a check turned critical (for the reaper), and which ids were
//! removed locally but may still be in the catalog (for anti-entropy).
//!
//! Source: Consul "Service - Agent", "Check - Agent" and "Anti-Entropy" docs; `agent/local/state.go`,
//! `agent/checks/check.go` (`StatusHandler`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::definition::{CheckKind, CheckRegistration, CheckSpec, ServiceRegistration};
use crate::structs::{HealthCheck, HealthStatus, NodeService};

/// Longest check output kept, in bytes (Consul `checks.DefaultBufSize`, 4 KiB).
pub const OUTPUT_MAX_BYTES: usize = 4 * 1024;

/// Consul's check id for node maintenance.
pub const NODE_MAINT_CHECK_ID: &str = "_node_maintenance";
/// Prefix of the per-service maintenance check id (`_service_maintenance:<service id>`).
pub const SERVICE_MAINT_PREFIX: &str = "_service_maintenance:";
/// Consul's gossip health check on every node: owned by the servers, never by the agent.
pub const SERF_CHECK_ID: &str = "serfHealth";

/// Why a local change was refused; nothing was applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    /// Bad input (400 at the HTTP edge).
    #[error("{0}")]
    Invalid(String),
    /// No such service (404).
    #[error("Unknown service ID {0:?}")]
    UnknownService(String),
    /// No such check (404).
    #[error("Unknown check ID {0:?}. Ensure that the check ID is passed, not the check name.")]
    UnknownCheck(String),
    /// The data dir could not be written (500); the change was rolled back.
    #[error("persisting local state: {0}")]
    Persist(String),
}

/// One check on this agent: what the catalog shows, how it runs, and its run-time counters.
#[derive(Clone, Debug)]
pub struct LocalCheck {
    /// As synced to the catalog (its `node` is filled at sync time).
    pub check: HealthCheck,
    pub spec: CheckSpec,
    /// Consecutive successes and failures seen (Consul `StatusHandler` counters).
    pub successes: u32,
    pub failures: u32,
    /// When the check last turned critical (for `DeregisterCriticalServiceAfter`).
    pub critical_since: Option<Instant>,
    /// TTL checks: when the TTL runs out without an update (`None` once expired).
    pub ttl_deadline: Option<Instant>,
}

impl LocalCheck {
    /// A new check in its initial status.
    pub fn new(reg: CheckRegistration, now: Instant) -> Self {
        let critical_since = (reg.check.status == HealthStatus::Critical).then_some(now);
        let ttl_deadline = match reg.spec.kind {
            CheckKind::Ttl { ttl } => Some(now + ttl),
            _ => None,
        };
        Self { check: reg.check, spec: reg.spec, successes: 0, failures: 0, critical_since, ttl_deadline }
    }

    /// Sets status and output as they are (no thresholds). Returns whether either changed.
    pub fn set(&mut self, status: HealthStatus, output: &str, now: Instant) -> bool {
        let output = cap_output(output);
        let changed = self.check.status != status || self.check.output != output;
        if status == HealthStatus::Critical {
            self.critical_since.get_or_insert(now);
        } else {
            self.critical_since = None;
        }
        self.check.status = status;
        self.check.output = output;
        changed
    }

    /// Reports one result through the thresholds (Consul `StatusHandler.updateCheck`): passing
    /// or warning counts as a success and is shown once `success_before_passing` successes in a
    /// row were seen; critical is shown after `failures_before_critical` failures in a row,
    /// warning after `failures_before_warning`. Returns whether status or output changed.
    pub fn report(&mut self, status: HealthStatus, output: &str, now: Instant) -> bool {
        let s = &self.spec;
        if status != HealthStatus::Critical {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if self.successes >= s.success_before_passing {
                return self.set(status, output, now);
            }
            return false;
        }
        self.failures = self.failures.saturating_add(1);
        self.successes = 0;
        if self.failures >= s.failures_before_critical {
            return self.set(HealthStatus::Critical, output, now);
        }
        if self.failures >= s.failures_before_warning {
            return self.set(HealthStatus::Warning, output, now);
        }
        false
    }
}

/// Caps output at [`OUTPUT_MAX_BYTES`] (on a char boundary), saying how much was kept, as
/// Consul does.
pub fn cap_output(output: &str) -> String {
    if output.len() <= OUTPUT_MAX_BYTES {
        return output.to_string();
    }
    let mut end = OUTPUT_MAX_BYTES;
    while !output.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} ... (captured {end} of {} bytes)", &output[..end], output.len())
}

/// What a service registration did to the checks.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ServiceChange {
    /// Checks added or replaced (their runners must (re)start).
    pub upserted_checks: Vec<String>,
    /// Checks removed (their runners must stop).
    pub removed_checks: Vec<String>,
}

/// The services and checks registered on this agent.
#[derive(Clone, Debug, Default)]
pub struct LocalState {
    pub services: BTreeMap<String, NodeService>,
    pub checks: BTreeMap<String, LocalCheck>,
    /// Removed here and perhaps still in the catalog: anti-entropy deregisters them.
    pub deleted_services: BTreeSet<String>,
    pub deleted_checks: BTreeSet<String>,
    /// Ids whose current definition came from the agent's config files (Consul's "from config"
    /// source): never persisted, and replaced whole on reload ([`LocalState::replace_config`]).
    /// An API registration of the same id takes it over (it leaves these sets).
    pub config_services: BTreeSet<String>,
    pub config_checks: BTreeSet<String>,
}

/// What a config reload did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConfigChange {
    /// Config services and checks no longer in the config, removed.
    pub removed_services: Vec<String>,
    pub removed_checks: Vec<String>,
    /// How many services and checks the config now defines.
    pub services: usize,
    pub checks: usize,
}

impl LocalState {
    /// Adds or replaces a service and its checks (Consul `AddService`). Checks with the ids of
    /// existing checks keep their status and output (Consul restores them from its snapshot);
    /// with `replace_existing_checks`, the service's other checks are removed, else kept.
    pub fn add_service(&mut self, reg: ServiceRegistration, replace_existing_checks: bool, now: Instant) -> ServiceChange {
        let id = reg.service.id.clone();
        debug_assert!(reg.checks.iter().all(|c| c.check.service_id == id), "service checks name their service");
        let mut change = ServiceChange::default();
        if replace_existing_checks {
            let keep: BTreeSet<&str> = reg.checks.iter().map(|c| c.check.check_id.as_str()).collect();
            let stale: Vec<String> = self
                .checks
                .iter()
                .filter(|(cid, c)| c.check.service_id == id && !keep.contains(cid.as_str()) && !is_maintenance(cid))
                .map(|(cid, _)| cid.clone())
                .collect();
            for cid in stale {
                let _ = self.remove_check(&cid);
                change.removed_checks.push(cid);
            }
        }
        let tags = reg.service.tags.clone();
        let name = reg.service.service.clone();
        self.services.insert(id.clone(), reg.service);
        self.deleted_services.remove(&id);
        self.config_services.remove(&id);
        for c in reg.checks {
            change.upserted_checks.push(c.check.check_id.clone());
            self.upsert_check(c, true, now);
        }
        for c in self.checks.values_mut().filter(|c| c.check.service_id == id) {
            c.check.service_name = name.clone();
            c.check.service_tags = tags.clone();
        }
        change
    }

    /// Removes a service and its checks (Consul `RemoveService`). Returns the removed check ids.
    /// Errors: unknown service.
    pub fn remove_service(&mut self, id: &str) -> Result<Vec<String>, LocalError> {
        if self.services.remove(id).is_none() {
            return Err(LocalError::UnknownService(id.to_string()));
        }
        self.deleted_services.insert(id.to_string());
        self.config_services.remove(id);
        let checks: Vec<String> = self.checks.iter().filter(|(_, c)| c.check.service_id == id).map(|(k, _)| k.clone()).collect();
        // Deregistering the service removes its checks from the catalog too.
        for cid in &checks {
            self.checks.remove(cid);
            self.config_checks.remove(cid);
        }
        Ok(checks)
    }

    /// Adds or replaces one check (Consul `AddCheck`). Errors: it names a service this agent
    /// does not have.
    pub fn add_check(&mut self, mut reg: CheckRegistration, now: Instant) -> Result<(), LocalError> {
        if !reg.check.service_id.is_empty() {
            let svc = self
                .services
                .get(&reg.check.service_id)
                .ok_or_else(|| LocalError::Invalid(format!("ServiceID {:?} does not exist", reg.check.service_id)))?;
            reg.check.service_name = svc.service.clone();
            reg.check.service_tags = svc.tags.clone();
        }
        let keep_status = !reg.status_given;
        self.upsert_check(reg, keep_status, now);
        Ok(())
    }

    fn upsert_check(&mut self, reg: CheckRegistration, keep_status: bool, now: Instant) {
        let cid = reg.check.check_id.clone();
        let mut fresh = LocalCheck::new(reg, now);
        if let Some(prev) = self.checks.get(&cid).filter(|_| keep_status) {
            fresh.check.status = prev.check.status;
            fresh.check.output = prev.check.output.clone();
            fresh.critical_since = prev.critical_since;
        }
        self.deleted_checks.remove(&cid);
        self.config_checks.remove(&cid);
        self.checks.insert(cid, fresh);
    }

    /// Removes one check (Consul `RemoveCheck`). Errors: unknown check.
    pub fn remove_check(&mut self, id: &str) -> Result<(), LocalError> {
        self.checks.remove(id).ok_or_else(|| LocalError::UnknownCheck(id.to_string()))?;
        self.deleted_checks.insert(id.to_string());
        self.config_checks.remove(id);
        Ok(())
    }

    /// Makes the services and checks from config files exactly `services` and `checks` (agent
    /// start and reload, Consul `loadServices`/`loadChecks` with source "config"): config
    /// entries gone from the new config are removed, the new ones added or replaced (checks keep
    /// their status, as on any re-registration), API-registered entries are left alone unless
    /// the config now defines the same id (then the config's definition wins). A service's
    /// checks added by the API stay. Errors (nothing applied): a check names a service that
    /// neither the new config nor the API registered.
    pub fn replace_config(
        &mut self,
        services: Vec<ServiceRegistration>,
        checks: Vec<CheckRegistration>,
        now: Instant,
    ) -> Result<ConfigChange, LocalError> {
        let new_services: BTreeSet<String> = services.iter().map(|s| s.service.id.clone()).collect();
        let api_service = |id: &str| self.services.contains_key(id) && !self.config_services.contains(id);
        for c in &checks {
            let sid = &c.check.service_id;
            if !sid.is_empty() && !new_services.contains(sid) && !api_service(sid) {
                return Err(LocalError::Invalid(format!("check {:?}: ServiceID {sid:?} does not exist", c.check.check_id)));
            }
        }
        let new_checks: BTreeSet<String> = services
            .iter()
            .flat_map(|s| s.checks.iter())
            .chain(checks.iter())
            .map(|c| c.check.check_id.clone())
            .collect();
        let mut change = ConfigChange { services: new_services.len(), checks: new_checks.len(), ..ConfigChange::default() };
        let gone: Vec<String> = self.config_services.difference(&new_services).cloned().collect();
        for id in gone {
            change.removed_checks.extend(self.remove_service(&id)?);
            change.removed_services.push(id);
        }
        let gone: Vec<String> = self.config_checks.difference(&new_checks).cloned().collect();
        for id in gone {
            self.remove_check(&id)?;
            change.removed_checks.push(id);
        }
        for s in services {
            self.add_service(s, false, now);
        }
        for c in checks {
            self.add_check(c, now)?;
        }
        self.config_services = new_services;
        self.config_checks = new_checks;
        debug_assert!(self.config_services.iter().all(|id| self.services.contains_key(id)), "config services exist");
        debug_assert!(self.config_checks.iter().all(|id| self.checks.contains_key(id)), "config checks exist");
        Ok(change)
    }

    /// Applies `/v1/agent/check/{pass,warn,fail,update}` to a TTL check and restarts its TTL.
    /// Returns whether status or output changed. Errors: unknown check, or not a TTL check.
    pub fn update_ttl(&mut self, id: &str, status: HealthStatus, output: &str, now: Instant) -> Result<bool, LocalError> {
        let c = self.checks.get_mut(id).ok_or_else(|| LocalError::UnknownCheck(id.to_string()))?;
        let CheckKind::Ttl { ttl } = c.spec.kind else {
            return Err(LocalError::Invalid(format!("CheckID {id:?} does not have associated TTL")));
        };
        c.ttl_deadline = Some(now + ttl);
        Ok(c.report(status, output, now))
    }

    /// Expires a TTL check whose deadline has passed: critical, "TTL expired" (with the last
    /// output, as Consul words it). Returns whether status or output changed; false when the
    /// deadline moved (an update raced the timer) or the check is gone.
    pub fn expire_ttl(&mut self, id: &str, now: Instant) -> bool {
        let Some(c) = self.checks.get_mut(id) else { return false };
        if !c.ttl_deadline.is_some_and(|d| d <= now) {
            return false;
        }
        c.ttl_deadline = None;
        let output = if c.check.output.is_empty() || c.check.output.starts_with(TTL_EXPIRED) {
            TTL_EXPIRED.to_string()
        } else {
            format!("{TTL_EXPIRED} (last output before timeout follows): {}", c.check.output)
        };
        c.report(HealthStatus::Critical, &output, now)
    }

    /// Services whose check asked to deregister them and stayed critical at least that long
    /// (Consul `reapServicesInternal`), each once, in id order.
    pub fn services_to_reap(&self, now: Instant) -> Vec<String> {
        let mut out = BTreeSet::new();
        for c in self.checks.values() {
            let (Some(after), Some(since)) = (c.spec.deregister_critical_after, c.critical_since) else { continue };
            if c.check.service_id.is_empty() || c.check.status != HealthStatus::Critical {
                continue;
            }
            if now.saturating_duration_since(since) >= after.max(MIN_DEREGISTER_CRITICAL) {
                out.insert(c.check.service_id.clone());
            }
        }
        out.into_iter().collect()
    }

    /// The checks that bear on a service: its own and the node's, in id order (Consul
    /// `ChecksForService(id, includeNode=true)`).
    pub fn checks_for_service(&self, service_id: &str) -> Vec<&LocalCheck> {
        self.checks.values().filter(|c| c.check.service_id.is_empty() || c.check.service_id == service_id).collect()
    }
}

/// Consul's prefix of a TTL check's output once it expired.
pub const TTL_EXPIRED: &str = "TTL expired";

/// Consul clamps `DeregisterCriticalServiceAfter` to at least one minute
/// (`check_deregister_interval_min`).
pub const MIN_DEREGISTER_CRITICAL: Duration = Duration::from_secs(60);

/// Whether a check id is a maintenance check (kept across service re-registration).
pub fn is_maintenance(check_id: &str) -> bool {
    check_id == NODE_MAINT_CHECK_ID || check_id.starts_with(SERVICE_MAINT_PREFIX)
}

/// Consul's aggregated status of a set of checks for `/v1/agent/health/service/*`: maintenance
/// when a maintenance check is critical, else the worst status (passing when none).
pub fn aggregate(checks: &[&LocalCheck]) -> &'static str {
    if checks.iter().any(|c| is_maintenance(&c.check.check_id) && c.check.status == HealthStatus::Critical) {
        return "maintenance";
    }
    checks.iter().map(|c| c.check.status).max().unwrap_or(HealthStatus::Passing).as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::definition::{parse_check, parse_service};

    fn svc(body: &str) -> ServiceRegistration {
        parse_service(body.as_bytes(), false).unwrap()
    }

    #[test]
    fn deregistering_a_service_removes_its_checks_and_remembers_both_for_the_catalog() {
        let mut s = LocalState::default();
        let now = Instant::now();
        s.add_service(svc(r#"{"Name":"web","Check":{"TTL":"10s"}}"#), false, now);
        s.add_check(parse_check(br#"{"Name":"mem","TTL":"10s"}"#, false).unwrap(), now).unwrap();
        assert_eq!(s.checks["service:web"].check.service_name, "web");
        assert_eq!(s.remove_service("web").unwrap(), vec!["service:web".to_string()]);
        assert!(s.checks.contains_key("mem"), "node checks stay");
        assert!(s.deleted_services.contains("web"));
        assert_eq!(s.remove_service("web"), Err(LocalError::UnknownService("web".into())));
        assert_eq!(s.remove_check("nope"), Err(LocalError::UnknownCheck("nope".into())));
    }

    #[test]
    fn a_check_for_an_unknown_service_is_refused_and_changes_nothing() {
        let mut s = LocalState::default();
        let err = s.add_check(parse_check(br#"{"Name":"c","TTL":"1s","ServiceID":"ghost"}"#, false).unwrap(), Instant::now());
        assert!(matches!(err, Err(LocalError::Invalid(m)) if m.contains("ghost")));
        assert!(s.checks.is_empty());
    }

    #[test]
    fn re_registration_keeps_check_status_and_replace_existing_checks_drops_the_rest() {
        let mut s = LocalState::default();
        let now = Instant::now();
        s.add_service(svc(r#"{"Name":"web","Checks":[{"CheckID":"a","TTL":"9s"},{"CheckID":"b","TTL":"9s"}]}"#), false, now);
        s.update_ttl("a", HealthStatus::Passing, "ok", now).unwrap();
        let change = s.add_service(svc(r#"{"Name":"web","Tags":["v2"],"Check":{"CheckID":"a","TTL":"9s"}}"#), false, now);
        assert_eq!(change.removed_checks, Vec::<String>::new());
        assert_eq!(s.checks["a"].check.status, HealthStatus::Passing, "status survives re-registration");
        assert_eq!(s.checks["b"].check.service_tags, vec!["v2".to_string()], "kept checks follow the new tags");
        let change = s.add_service(svc(r#"{"Name":"web","Check":{"CheckID":"a","TTL":"9s"}}"#), true, now);
        assert_eq!(change.removed_checks, vec!["b".to_string()]);
        assert!(!s.checks.contains_key("b"));
    }

    #[test]
    fn success_before_passing_and_failures_before_critical_count_in_a_row() {
        let reg = parse_check(br#"{"Name":"c","TTL":"1s","SuccessBeforePassing":2,"FailuresBeforeCritical":3}"#, false).unwrap();
        let now = Instant::now();
        let mut c = LocalCheck::new(reg, now);
        assert!(!c.report(HealthStatus::Passing, "1", now), "one success is not enough");
        assert!(c.report(HealthStatus::Passing, "2", now));
        assert_eq!(c.check.status, HealthStatus::Passing);
        assert!(!c.report(HealthStatus::Critical, "f1", now));
        assert!(!c.report(HealthStatus::Critical, "f2", now));
        assert_eq!(c.check.status, HealthStatus::Passing, "two failures stay under the threshold");
        assert!(!c.report(HealthStatus::Passing, "p", now), "a success resets the failure count (and counts one success)");
        for _ in 0..2 {
            c.report(HealthStatus::Critical, "f", now);
        }
        assert_eq!(c.check.status, HealthStatus::Passing);
        assert!(c.report(HealthStatus::Critical, "f3", now));
        assert_eq!((c.check.status, c.check.output.as_str()), (HealthStatus::Critical, "f3"));
    }

    #[test]
    fn failures_before_warning_reports_warning_first() {
        let body = br#"{"Name":"c","TTL":"1s","FailuresBeforeWarning":1,"FailuresBeforeCritical":2,"Status":"passing"}"#;
        let now = Instant::now();
        let mut c = LocalCheck::new(parse_check(body, false).unwrap(), now);
        c.report(HealthStatus::Critical, "x", now);
        assert_eq!(c.check.status, HealthStatus::Warning);
        c.report(HealthStatus::Critical, "x", now);
        assert_eq!(c.check.status, HealthStatus::Critical);
    }

    #[test]
    fn ttl_expiry_is_critical_with_the_last_output_and_ignores_a_moved_deadline() {
        let mut s = LocalState::default();
        let t0 = Instant::now();
        s.add_check(parse_check(br#"{"Name":"t","TTL":"10s"}"#, false).unwrap(), t0).unwrap();
        s.update_ttl("t", HealthStatus::Passing, "fine", t0).unwrap();
        assert!(!s.expire_ttl("t", t0 + Duration::from_secs(9)), "not yet due");
        assert!(s.expire_ttl("t", t0 + Duration::from_secs(10)));
        let c = &s.checks["t"].check;
        assert_eq!((c.status, c.output.as_str()), (HealthStatus::Critical, "TTL expired (last output before timeout follows): fine"));
        assert!(!s.expire_ttl("t", t0 + Duration::from_secs(30)), "expires once until the next update");
    }

    #[test]
    fn services_are_reaped_after_their_check_stays_critical_long_enough() {
        let mut s = LocalState::default();
        let t0 = Instant::now();
        s.add_service(svc(r#"{"Name":"web","Check":{"TTL":"1s","DeregisterCriticalServiceAfter":"2m"}}"#), false, t0);
        s.add_service(svc(r#"{"Name":"db","Check":{"TTL":"1s"}}"#), false, t0);
        assert!(s.services_to_reap(t0 + Duration::from_secs(119)).is_empty());
        assert_eq!(s.services_to_reap(t0 + Duration::from_secs(120)), vec!["web".to_string()]);
        s.update_ttl("service:web", HealthStatus::Passing, "", t0 + Duration::from_secs(100)).unwrap();
        assert!(s.services_to_reap(t0 + Duration::from_secs(500)).is_empty(), "passing resets the clock");
    }

    #[test]
    fn output_is_capped_at_four_kib() {
        let long = "x".repeat(OUTPUT_MAX_BYTES + 10);
        let capped = cap_output(&long);
        assert!(capped.starts_with(&"x".repeat(OUTPUT_MAX_BYTES)));
        assert!(capped.ends_with(&format!("(captured {OUTPUT_MAX_BYTES} of {} bytes)", OUTPUT_MAX_BYTES + 10)));
    }

    #[test]
    fn maintenance_beats_every_status_in_the_aggregate() {
        let now = Instant::now();
        let mut m = LocalCheck::new(parse_check(br#"{"Name":"m","TTL":"1s"}"#, false).unwrap(), now);
        m.check.check_id = NODE_MAINT_CHECK_ID.into();
        let mut p = LocalCheck::new(parse_check(br#"{"Name":"p","TTL":"1s","Status":"warning"}"#, false).unwrap(), now);
        assert_eq!(aggregate(&[&p]), "warning");
        assert_eq!(aggregate(&[&p, &m]), "maintenance");
        p.set(HealthStatus::Passing, "", now);
        assert_eq!(aggregate(&[&p]), "passing");
        assert_eq!(aggregate(&[]), "passing");
    }

    #[test]
    fn a_config_reload_replaces_config_entries_and_leaves_api_ones_alone() {
        let mut s = LocalState::default();
        let now = Instant::now();
        s.add_service(svc(r#"{"Name":"api","Check":{"TTL":"10s"}}"#), false, now);
        let web = svc(r#"{"Name":"web","Check":{"CheckID":"web-ttl","TTL":"10s"}}"#);
        let mem = parse_check(br#"{"Name":"mem","TTL":"10s"}"#, false).unwrap();
        s.replace_config(vec![web, svc(r#"{"Name":"old"}"#)], vec![mem], now).unwrap();
        assert_eq!(s.config_services, ["old".to_string(), "web".to_string()].into());
        assert_eq!(s.config_checks, ["mem".to_string(), "web-ttl".to_string()].into());
        s.update_ttl("web-ttl", HealthStatus::Passing, "ok", now).unwrap();

        let web2 = svc(r#"{"Name":"web","Tags":["v2"],"Check":{"CheckID":"web-ttl","TTL":"10s"}}"#);
        let change = s.replace_config(vec![web2], vec![], now).unwrap();
        assert_eq!((change.removed_services, change.removed_checks), (vec!["old".to_string()], vec!["mem".to_string()]));
        assert_eq!(s.services["web"].tags, ["v2"]);
        assert_eq!(s.checks["web-ttl"].check.status, HealthStatus::Passing, "a reload keeps check status");
        assert!(s.services.contains_key("api") && s.checks.contains_key("service:api"), "API entries are untouched");
        assert!(s.deleted_services.contains("old") && s.deleted_checks.contains("mem"), "anti-entropy removes them");
    }

    #[test]
    fn a_config_check_on_an_unknown_service_refuses_the_whole_reload() {
        let mut s = LocalState::default();
        let now = Instant::now();
        s.replace_config(vec![svc(r#"{"Name":"web"}"#)], vec![], now).unwrap();
        let orphan = parse_check(br#"{"Name":"c","TTL":"1s","ServiceID":"ghost"}"#, false).unwrap();
        let err = s.replace_config(vec![], vec![orphan], now).unwrap_err();
        assert!(matches!(err, LocalError::Invalid(m) if m.contains("ghost")));
        assert!(s.services.contains_key("web") && s.config_services.contains("web"), "nothing applied");
    }

    #[test]
    fn an_api_registration_takes_a_config_service_over() {
        let mut s = LocalState::default();
        let now = Instant::now();
        s.replace_config(vec![svc(r#"{"Name":"web"}"#)], vec![], now).unwrap();
        s.add_service(svc(r#"{"Name":"web","Port":81}"#), false, now);
        assert!(s.config_services.is_empty());
        s.replace_config(vec![], vec![], now).unwrap();
        assert_eq!(s.services["web"].port, 81, "no longer the config's to remove");
    }
}
