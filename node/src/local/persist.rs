//! Persisting the local state in the data dir, so API-registered services and checks (and TTL
//! check status) survive a restart (Consul "Service - Agent": services registered through the
//! API are persisted; `agent.persistService`, `persistCheck`, `persistCheckState`).
//!
//! Two flat files, each replaced atomically with [`replace_durably`]: [`SERVICES_FILE`] and
//! [`CHECKS_FILE`]. A check whose service is missing on load is dropped, so the order of the two
//! writes decides what a crash between them leaves ([`Order`]): a change that adds or replaces
//! services writes checks first (a crash leaves the new checks orphaned and dropped: the old
//! state), one that removes a service writes services first (a crash leaves its old checks
//! orphaned: the new state). Never a service without the checks it was registered with, which
//! would show it healthy (the simulator found that: agent-restart seed 37, a registration with a
//! critical check torn by a crash came back as a service with no check at all). TTL checks keep
//! their status, output and the wall-clock time their TTL runs out; other checks start over in
//! their initial status, as in Consul.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::definition::{CheckKind, CheckSpec};
use super::state::{LocalCheck, LocalState};
use crate::io::{replace_durably, Disk};
use crate::structs::{HealthCheck, NodeService};

/// The services registered on this agent.
pub const SERVICES_FILE: &str = "local-services.json";
/// The checks registered on this agent, with TTL check state.
pub const CHECKS_FILE: &str = "local-checks.json";
const SERVICES_TMP: &str = "local-services.json.tmp";
const CHECKS_TMP: &str = "local-checks.json.tmp";
/// The format written; a newer one is refused rather than misread.
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServicesFile {
    version: u32,
    services: Vec<NodeService>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PersistedCheck {
    check: HealthCheck,
    spec: CheckSpec,
    /// TTL checks: when the TTL runs out, in ms since the Unix epoch (`None` once expired).
    #[serde(default)]
    ttl_expires_unix_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChecksFile {
    version: u32,
    checks: Vec<PersistedCheck>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The services file's bytes: every service but those from config files (Consul persists only
/// API-registered services; config ones come back from the config at start).
pub fn encode_services(state: &LocalState) -> Vec<u8> {
    let services = state.services.values().filter(|s| !state.config_services.contains(&s.id)).cloned().collect();
    let file = ServicesFile { version: FORMAT_VERSION, services };
    serde_json::to_vec_pretty(&file).expect("local services serialise")
}

/// The checks file's bytes; TTL deadlines become wall-clock times. Checks from config files are
/// left out, and so are checks on a config service (their service is not in the services file,
/// so they could not be restored).
pub fn encode_checks(state: &LocalState, now: Instant, wall_now: SystemTime) -> Vec<u8> {
    let checks = state
        .checks
        .values()
        .filter(|c| !state.config_checks.contains(&c.check.check_id) && !state.config_services.contains(&c.check.service_id))
        .map(|c| PersistedCheck {
            check: c.check.clone(),
            spec: c.spec.clone(),
            ttl_expires_unix_ms: c.ttl_deadline.map(|d| unix_ms(wall_now + d.saturating_duration_since(now))),
        })
        .collect();
    serde_json::to_vec_pretty(&ChecksFile { version: FORMAT_VERSION, checks }).expect("local checks serialise")
}

/// Which file a change that rewrites both writes first (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// The change adds or replaces services: a crash after the checks leaves them orphaned.
    ChecksFirst,
    /// The change removes a service: a crash after the services leaves its checks orphaned.
    ServicesFirst,
}

/// Writes the files given, in `order`. Errors: any I/O failure (each file is old or new).
pub async fn save(disk: &dyn Disk, services: Option<&[u8]>, checks: Option<&[u8]>, order: Order) -> std::io::Result<()> {
    if order == Order::ServicesFirst {
        if let Some(bytes) = services {
            replace_durably(disk, SERVICES_TMP, SERVICES_FILE, bytes).await?;
        }
    }
    if let Some(bytes) = checks {
        replace_durably(disk, CHECKS_TMP, CHECKS_FILE, bytes).await?;
    }
    if order == Order::ChecksFirst {
        if let Some(bytes) = services {
            replace_durably(disk, SERVICES_TMP, SERVICES_FILE, bytes).await?;
        }
    }
    Ok(())
}

/// Loads the local state (empty when the files do not exist). Errors: unreadable or corrupt
/// files, or a newer format — the agent refuses to start rather than forget (and then
/// deregister) its services.
pub async fn load(disk: &dyn Disk, now: Instant, wall_now: SystemTime) -> Result<LocalState, String> {
    let mut state = LocalState::default();
    if let Some(bytes) = disk.read(SERVICES_FILE).await.map_err(|e| format!("reading {SERVICES_FILE}: {e}"))? {
        let file: ServicesFile = serde_json::from_slice(&bytes).map_err(|e| format!("{SERVICES_FILE} is corrupt: {e}"))?;
        check_version(SERVICES_FILE, file.version)?;
        state.services = file.services.into_iter().map(|s| (s.id.clone(), s)).collect();
    }
    if let Some(bytes) = disk.read(CHECKS_FILE).await.map_err(|e| format!("reading {CHECKS_FILE}: {e}"))? {
        let file: ChecksFile = serde_json::from_slice(&bytes).map_err(|e| format!("{CHECKS_FILE} is corrupt: {e}"))?;
        check_version(CHECKS_FILE, file.version)?;
        for p in file.checks {
            if !p.check.service_id.is_empty() && !state.services.contains_key(&p.check.service_id) {
                tracing::warn!(check = %p.check.check_id, service = %p.check.service_id, "dropping persisted check of a missing service");
                continue;
            }
            state.checks.insert(p.check.check_id.clone(), restore(p, now, wall_now));
        }
    }
    Ok(state)
}

fn check_version(file: &str, version: u32) -> Result<(), String> {
    if version > FORMAT_VERSION {
        return Err(format!("{file} has format {version}, newer than this agent's {FORMAT_VERSION}"));
    }
    Ok(())
}

/// A persisted check as it restarts: TTL and manual checks as they were (a TTL whose time ran
/// out while the agent was down expires at once), others in their initial status.
fn restore(p: PersistedCheck, now: Instant, wall_now: SystemTime) -> LocalCheck {
    let mut check = p.check;
    let ttl_deadline = match p.spec.kind {
        CheckKind::Ttl { .. } => p.ttl_expires_unix_ms.map(|ms| now + Duration::from_millis(ms.saturating_sub(unix_ms(wall_now)))),
        _ => None,
    };
    if !matches!(p.spec.kind, CheckKind::Ttl { .. } | CheckKind::Manual) {
        check.status = p.spec.initial_status;
        check.output.clear();
    }
    let critical_since = (check.status == crate::structs::HealthStatus::Critical).then_some(now);
    LocalCheck { check, spec: p.spec, successes: 0, failures: 0, critical_since, ttl_deadline }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemDisk;
    use crate::local::definition::{parse_check, parse_service};
    use crate::structs::HealthStatus;

    #[tokio::test]
    async fn services_checks_and_ttl_status_survive_a_round_trip_through_the_disk() {
        let disk = MemDisk::new();
        let (t0, wall0) = (Instant::now(), UNIX_EPOCH + Duration::from_secs(1_000_000));
        let mut s = LocalState::default();
        let body = br#"{"Name":"web","Port":80,"Tags":["a"],"Checks":[{"CheckID":"ttl","TTL":"30s"},
            {"CheckID":"tcp","TCP":"127.0.0.1:1","Interval":"5s"}]}"#;
        s.add_service(parse_service(body, false).unwrap(), false, t0);
        s.add_check(parse_check(br#"{"Name":"node-ttl","TTL":"5s"}"#, false).unwrap(), t0).unwrap();
        s.update_ttl("ttl", HealthStatus::Passing, "all good", t0).unwrap();
        s.checks.get_mut("tcp").unwrap().set(HealthStatus::Passing, "connected", t0);
        save(&disk, Some(&encode_services(&s)), Some(&encode_checks(&s, t0, wall0)), Order::ChecksFirst).await.unwrap();
        disk.crash();

        let (t1, wall1) = (t0 + Duration::from_secs(1), wall0 + Duration::from_secs(10));
        let back = load(&disk, t1, wall1).await.unwrap();
        assert_eq!(back.services, s.services);
        let ttl = &back.checks["ttl"];
        assert_eq!((ttl.check.status, ttl.check.output.as_str()), (HealthStatus::Passing, "all good"));
        assert_eq!(ttl.ttl_deadline, Some(t1 + Duration::from_secs(20)), "the TTL keeps running while the agent is down");
        assert_eq!(back.checks["tcp"].check.status, HealthStatus::Critical, "interval checks start over");
        assert_eq!(back.checks["node-ttl"].ttl_deadline, Some(t1), "a TTL that ran out while down expires at once");
    }

    #[tokio::test]
    async fn a_check_whose_service_is_missing_is_dropped_and_garbage_is_refused() {
        let disk = MemDisk::new();
        let t0 = Instant::now();
        let mut s = LocalState::default();
        s.add_service(parse_service(br#"{"Name":"web","Check":{"TTL":"3s"}}"#, false).unwrap(), false, t0);
        save(&disk, None, Some(&encode_checks(&s, t0, UNIX_EPOCH)), Order::ChecksFirst).await.unwrap();
        assert!(load(&disk, t0, UNIX_EPOCH).await.unwrap().checks.is_empty());
        disk.write(SERVICES_FILE, b"{not json").await.unwrap();
        assert!(load(&disk, t0, UNIX_EPOCH).await.unwrap_err().contains("corrupt"));
    }

    #[tokio::test]
    async fn services_and_checks_from_config_files_are_not_persisted() {
        let disk = MemDisk::new();
        let t0 = Instant::now();
        let mut s = LocalState::default();
        s.add_service(parse_service(br#"{"Name":"api","Check":{"TTL":"3s"}}"#, false).unwrap(), false, t0);
        let from_config = parse_service(br#"{"Name":"conf","Check":{"TTL":"3s"}}"#, false).unwrap();
        let node_check = parse_check(br#"{"Name":"conf-node","TTL":"3s"}"#, false).unwrap();
        s.replace_config(vec![from_config], vec![node_check], t0).unwrap();
        save(&disk, Some(&encode_services(&s)), Some(&encode_checks(&s, t0, UNIX_EPOCH)), Order::ChecksFirst).await.unwrap();
        let back = load(&disk, t0, UNIX_EPOCH).await.unwrap();
        assert_eq!(back.services.keys().collect::<Vec<_>>(), ["api"]);
        assert_eq!(back.checks.keys().collect::<Vec<_>>(), ["service:api"]);
    }
}
