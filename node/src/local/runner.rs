//! Check runners and the critical-service reaper: one tokio task per TTL, interval or alias
//! check (alias checks run in [`super::alias`]), kept
//! in step with the local state (Consul `agent/checks`: `CheckTTL`, `CheckHTTP`, `CheckTCP`,
//! `CheckMonitor`; `agent.reapServices`).
//!
//! - TTL: sleeps until the check's deadline; an update moves the deadline and wakes it; when it
//!   passes without one, the check turns critical with "TTL expired".
//! - Interval (HTTP, TCP, script): waits a random stagger within one interval (seeded RNG, so
//!   many checks do not fire together), then probes every interval ([`super::probe`]) and reports
//!   each result through the check's thresholds.
//! - Reaper: every [`REAP_INTERVAL`], removes services whose check has asked for it with
//!   `DeregisterCriticalServiceAfter` and stayed critical that long.
//!
//! Runners only read and report; every state change goes through [`Local`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::definition::{CheckKind, CheckSpec};
use super::{lock, Local};

/// How often the reaper looks for services to remove (Consul `check_reap_interval`, 30 s).
pub const REAP_INTERVAL: Duration = Duration::from_secs(30);

/// A running check.
pub struct Runner {
    pub task: tokio::task::JoinHandle<()>,
    /// Wakes a TTL runner after an update moved its deadline.
    pub wake: Arc<Notify>,
    /// What it was started for (a changed definition restarts it).
    pub spec: CheckSpec,
}

impl Local {
    /// Starts a runner for each check that needs one and has none (or whose definition changed),
    /// and stops the runners of checks that are gone. No-op before [`Local::start`].
    pub(super) fn reconcile_runners(self: &Arc<Self>) {
        if !self.started.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let wanted: Vec<(String, CheckSpec)> = self
            .state()
            .checks
            .iter()
            .filter(|(_, c)| !matches!(c.spec.kind, CheckKind::Manual))
            .map(|(id, c)| (id.clone(), c.spec.clone()))
            .collect();
        let mut runners = lock(&self.runners);
        runners.retain(|id, r| {
            let keep = wanted.iter().any(|(w, spec)| w == id && *spec == r.spec);
            if keep {
                // A re-registration may have given an expired TTL check a new deadline.
                r.wake.notify_one();
            } else {
                r.task.abort();
            }
            keep
        });
        for (id, spec) in wanted {
            if runners.contains_key(&id) {
                continue;
            }
            let wake = Arc::new(Notify::new());
            let task = match &spec.kind {
                CheckKind::Ttl { .. } => tokio::spawn(run_ttl(self.clone(), id.clone(), wake.clone())),
                CheckKind::Alias { service, node } => {
                    tokio::spawn(super::alias::run(self.clone(), id.clone(), service.clone(), node.clone()))
                }
                _ => tokio::spawn(run_interval(self.clone(), id.clone(), spec.clone())),
            };
            runners.insert(id, Runner { task, wake, spec });
        }
    }

    /// The TTL deadline of a check: `None` if the check is gone, `Some(None)` once expired.
    fn ttl_deadline(&self, id: &str) -> Option<Option<tokio::time::Instant>> {
        self.state().checks.get(id).map(|c| c.ttl_deadline)
    }
}

/// Expires a TTL check when its deadline passes without an update.
async fn run_ttl(local: Arc<Local>, id: String, wake: Arc<Notify>) {
    loop {
        match local.ttl_deadline(&id) {
            None => return,
            Some(None) => wake.notified().await,
            Some(Some(deadline)) => {
                tokio::select! {
                    biased;
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep_until(deadline) => {
                        local.expire_ttl(&id).await;
                        tracing::debug!(check = %id, "TTL expired");
                    }
                }
            }
        }
    }
}

/// Probes an interval check every interval, after a random initial stagger.
async fn run_interval(local: Arc<Local>, id: String, spec: CheckSpec) {
    let Some(interval) = spec.interval else {
        debug_assert!(false, "interval checks are validated to have an interval");
        return;
    };
    tokio::time::sleep(local.stagger(interval)).await;
    loop {
        let (status, output) = super::probe::run(local.io.net.as_ref(), local.io.processes.as_ref(), &spec.kind, spec.timeout_or_default()).await;
        tracing::debug!(check = %id, status = status.as_str(), "check ran");
        local.report(&id, status, &output).await;
        tokio::time::sleep(interval).await;
    }
}

/// Removes services whose `DeregisterCriticalServiceAfter` ran out.
pub(super) async fn reap(local: Arc<Local>) {
    loop {
        tokio::time::sleep(REAP_INTERVAL).await;
        let due = local.state().services_to_reap(tokio::time::Instant::now());
        for id in due {
            match local.deregister_service(&id).await {
                Ok(()) => tracing::info!(service = %id, "Check for service has been critical for too long; deregistered service"),
                Err(e) => tracing::warn!(service = %id, error = %e, "could not reap critical service"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use crate::io::mem::MemDisk;
    use crate::local::definition::parse_check;
    use crate::structs::HealthStatus;

    fn io() -> crate::io::Io {
        crate::io::test_io(Arc::new(MemDisk::new()), 7)
    }

    #[tokio::test(start_paused = true)]
    async fn a_ttl_check_expires_to_critical_unless_updated_in_time() {
        let local = Local::open(&AgentConfig::dev(), io(), "id").await.unwrap();
        local.started.store(true, std::sync::atomic::Ordering::SeqCst);
        local.register_check(parse_check(br#"{"Name":"t","TTL":"10s"}"#, false).unwrap()).await.unwrap();
        local.update_ttl("t", HealthStatus::Passing, "ok").await.unwrap();
        tokio::time::sleep(Duration::from_secs(8)).await;
        local.update_ttl("t", HealthStatus::Passing, "ok").await.unwrap();
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert_eq!(local.checks()["t"].status, HealthStatus::Passing, "the update restarted the TTL");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let c = &local.checks()["t"];
        assert_eq!(c.status, HealthStatus::Critical);
        assert_eq!(c.output, "TTL expired (last output before timeout follows): ok");
        local.update_ttl("t", HealthStatus::Warning, "back").await.unwrap();
        assert_eq!(local.checks()["t"].status, HealthStatus::Warning, "an update after expiry is taken");
        local.shutdown();
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_ttl_check_re_registered_expires_again() {
        // Regression: the runner of an expired TTL waited for an update forever, so a
        // re-registration's fresh deadline never fired.
        let local = Local::open(&AgentConfig::dev(), io(), "id").await.unwrap();
        local.started.store(true, std::sync::atomic::Ordering::SeqCst);
        let reg = || parse_check(br#"{"Name":"t","TTL":"5s","Status":"passing"}"#, false).unwrap();
        local.register_check(reg()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(local.checks()["t"].status, HealthStatus::Critical);
        local.register_check(reg()).await.unwrap();
        assert_eq!(local.checks()["t"].status, HealthStatus::Passing, "an explicit Status is taken");
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(local.checks()["t"].status, HealthStatus::Critical, "the new TTL ran out too");
        local.shutdown();
    }

    /// A network where every connection is refused at once.
    struct RefusingNet;

    #[async_trait::async_trait]
    impl crate::io::Net for RefusingNet {
        async fn bind(&self, _: std::net::SocketAddr) -> std::io::Result<Box<dyn crate::io::Listener>> {
            Err(std::io::ErrorKind::Unsupported.into())
        }
        async fn connect(&self, _: std::net::SocketAddr) -> std::io::Result<crate::io::BoxStream> {
            Err(std::io::ErrorKind::ConnectionRefused.into())
        }
        async fn bind_udp(&self, _: std::net::SocketAddr) -> std::io::Result<Box<dyn crate::io::UdpSocket>> {
            Err(std::io::ErrorKind::Unsupported.into())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_tcp_check_turns_critical_only_after_failures_before_critical_failures() {
        let local = Local::open(&AgentConfig::dev(), crate::io::Io { net: Arc::new(RefusingNet), ..io() }, "id").await.unwrap();
        local.started.store(true, std::sync::atomic::Ordering::SeqCst);
        let body = br#"{"Name":"tcp","TCP":"127.0.0.1:1","Interval":"1s","Status":"passing","FailuresBeforeCritical":3}"#;
        local.register_check(parse_check(body, false).unwrap()).await.unwrap();
        // The first probe runs within one interval (stagger), then one per interval.
        tokio::time::sleep(Duration::from_millis(1_990)).await;
        assert_eq!(local.checks()["tcp"].status, HealthStatus::Passing, "at most two failures so far");
        tokio::time::sleep(Duration::from_millis(1_060)).await;
        let c = &local.checks()["tcp"];
        assert_eq!(c.status, HealthStatus::Critical, "{c:?}");
        assert!(c.output.starts_with("dial tcp 127.0.0.1:1:"), "{}", c.output);
        local.shutdown();
    }

    #[tokio::test(start_paused = true)]
    async fn a_script_check_maps_exit_codes_and_a_timeout_to_consuls_statuses() {
        let local = Local::open(&AgentConfig::dev(), io(), "id").await.unwrap();
        local.started.store(true, std::sync::atomic::Ordering::SeqCst);
        let check = |name: &str, args: &str, timeout: &str| {
            let body = format!(r#"{{"Name":"{name}","Args":{args},"Interval":"1s","Timeout":"{timeout}"}}"#);
            parse_check(body.as_bytes(), true).unwrap()
        };
        local.register_check(check("ok", r#"["echo","all","good"]"#, "5s")).await.unwrap();
        local.register_check(check("warn", r#"["exit","1"]"#, "5s")).await.unwrap();
        local.register_check(check("crit", r#"["sh","-c","exit 2"]"#, "5s")).await.unwrap();
        local.register_check(check("slow", r#"["sleep","60"]"#, "500ms")).await.unwrap();
        local.register_check(check("missing", r#"["no-such-program"]"#, "5s")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let c = local.checks();
        let got = |id: &str| (c[id].status, c[id].output.clone());
        assert_eq!(got("ok"), (HealthStatus::Passing, "all good\n".into()));
        assert_eq!(got("warn").0, HealthStatus::Warning);
        assert_eq!(got("crit").0, HealthStatus::Critical);
        assert_eq!(got("slow"), (HealthStatus::Critical, "Timed out (500ms) running check".into()));
        assert!(got("missing").0 == HealthStatus::Critical && got("missing").1.contains("executable file not found"), "{:?}", got("missing"));
        local.shutdown();
    }
}
