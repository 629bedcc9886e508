//! Consul's lock recipe (`api/lock.go`, `command/lock`), independent of where it runs: the
//! `concord lock` command drives it over real sockets with real child processes, and the
//! simulator drives the same code over turmoil with [`crate::io::process::ScriptedProcesses`]
//! children, so its lock-loss handling is judged under the nemesis.
//!
//! A session (TTL [`LockOptions::session_ttl`], renewed every TTL/2) acquires `PREFIX/.lock`.
//! While another session holds it, the recipe waits in a blocking read until the key's `Session`
//! empties, then tries again (after [`LockOptions::retry_time`], if the refusal was a
//! lock-delay). Once held, the child runs with `CONSUL_LOCK_HELD=true` in its environment. A
//! watcher follows the key with blocking reads; if the key stops naming this session (TTL lost,
//! session invalidated, key deleted), or `monitor_retries` + 1 reads in a row fail, the child
//! gets SIGTERM, then SIGKILL after [`LockOptions::kill_grace`]. When the child exits, the lock
//! is released and the session destroyed. With a limit above 1 it takes one of N places of a
//! semaphore instead ([`super::semaphore`]).
//!
//! How long a holder may run on after losing its lock is bounded by [`LockOptions::loss_notice_bound`].

use std::time::Duration;

use hyper::{Method, StatusCode};

use super::http_client::{encode_path, HttpClient};
use crate::io::process::{Processes, SpawnSpec};

/// What the recipe does and how patiently (Consul's `api.LockOptions`, plus the command's kill
/// grace). [`LockOptions::consul`] gives Consul's values.
#[derive(Clone, Debug)]
pub struct LockOptions {
    /// The KV prefix; the lock key is `PREFIX/.lock`.
    pub prefix: String,
    /// Holders allowed (a semaphore above 1).
    pub limit: u32,
    /// The session's `Name`.
    pub session_name: String,
    /// The session's `TTL` (Consul's `DefaultLockSessionTTL`, 15 s); renewed every TTL/2.
    pub session_ttl: Duration,
    /// The session's `LockDelay`; `None` leaves the agent's default (15 s).
    pub lock_delay: Option<Duration>,
    /// The blocking reads' `?wait=` (Consul's `DefaultLockWaitTime`, 15 s).
    pub wait: Duration,
    /// Before retrying an acquire refused during a lock-delay (`DefaultLockRetryTime`, 5 s).
    pub retry_time: Duration,
    /// Failed monitoring reads tolerated in a row before the lock counts as lost
    /// (`-monitor-retry`, 3).
    pub monitor_retries: u32,
    /// Between failed monitoring reads (`DefaultMonitorRetryTime`, 1 s).
    pub monitor_retry_time: Duration,
    /// Between SIGTERM and SIGKILL when the lock is lost (the command's `killGrace`, 5 s).
    pub kill_grace: Duration,
    /// Longest wait to acquire; zero waits forever (`-timeout`).
    pub acquire_timeout: Duration,
    /// Exit 2, not 0, when the child fails (`-child-exit-code`).
    pub child_exit_code: bool,
    /// Deliberate bug for the simulator: the watcher ignores a change of holder and gives up only
    /// when its reads fail, so a holder that lost its lock keeps running its child.
    pub bug_watch_ignores_holder: bool,
}

impl LockOptions {
    /// Consul's defaults for `prefix`: TTL 15 s, waits 15 s, retry 5 s, 3 monitor retries 1 s
    /// apart, 5 s kill grace, no acquire timeout.
    pub fn consul(prefix: &str, limit: u32) -> Self {
        let prefix = prefix.trim_end_matches('/').to_string();
        Self {
            session_name: format!("Consul lock for {prefix}"),
            prefix,
            limit,
            session_ttl: Duration::from_secs(15),
            lock_delay: None,
            wait: Duration::from_secs(15),
            retry_time: Duration::from_secs(5),
            monitor_retries: 3,
            monitor_retry_time: Duration::from_secs(1),
            kill_grace: Duration::from_secs(5),
            acquire_timeout: Duration::ZERO,
            child_exit_code: false,
            bug_watch_ignores_holder: false,
        }
    }

    /// The `?wait=` parameter for blocking reads, in ms.
    pub(super) fn wait_param(&self) -> String {
        format!("{}ms", self.wait.as_millis())
    }

    /// Longest a holder's child can outlive the loss of its place, given that every request
    /// ends within `request_timeout`: the read under way when the lock goes (it answers the
    /// change, or fails), `monitor_retries` more failed reads each after its pause, then the
    /// kill grace. (A read that succeeds after the loss shows it.)
    pub fn loss_notice_bound(&self, request_timeout: Duration) -> Duration {
        request_timeout + (self.monitor_retry_time + request_timeout) * self.monitor_retries + self.kill_grace
    }
}

/// Runs the recipe: creates the session, takes the lock (or a semaphore place), runs `child`
/// while it is held, then releases and destroys the session. Returns the exit code: 0 (2 with
/// `child_exit_code` when the child failed). Errors: the session could not be created, the lock
/// could not be acquired (timeout, agent errors), the child could not start, or the lock was
/// lost while the child ran ("Lock lost").
pub async fn hold(client: &HttpClient, processes: &dyn Processes, opts: &LockOptions, child: &SpawnSpec) -> Result<i32, String> {
    if opts.limit == 0 {
        return Err("-n must be at least 1".into());
    }
    let mut body = serde_json::json!({ "Name": opts.session_name, "TTL": format!("{}ms", opts.session_ttl.as_millis()) });
    if let Some(delay) = opts.lock_delay {
        body["LockDelay"] = format!("{}ms", delay.as_millis()).into();
    }
    let created = client.request(Method::PUT, "/v1/session/create", body.to_string().into_bytes()).await?;
    if created.status != StatusCode::OK {
        return Err(format!("Error creating session: {}", created.text()));
    }
    let session = serde_json::from_slice::<serde_json::Value>(&created.body)
        .ok()
        .and_then(|v| v.get("ID").and_then(|id| id.as_str()).map(str::to_string))
        .ok_or("Error creating session: no ID in the answer")?;
    let renewer = tokio::spawn(renew_forever(client.clone(), session.clone(), opts.session_ttl / 2));
    let semaphore = opts.limit > 1;
    let key = format!("{}/.lock", opts.prefix);
    let acquiring = async {
        if semaphore {
            super::semaphore::acquire(client, opts, &session).await
        } else {
            acquire(client, opts, &key, &session).await
        }
    };
    let acquired = if opts.acquire_timeout.is_zero() {
        acquiring.await
    } else {
        tokio::time::timeout(opts.acquire_timeout, acquiring).await.unwrap_or_else(|_| Err("timeout".into()))
    };
    let outcome = match acquired {
        Ok(()) if semaphore => run_child(processes, opts, child, super::semaphore::watch(client, opts, &session)).await,
        Ok(()) => run_child(processes, opts, child, watch_lock(client, opts, &key, &session)).await,
        Err(e) => Err(format!("Lock acquisition failed: {e}")),
    };
    renewer.abort();
    if semaphore {
        super::semaphore::release(client, opts, &session).await;
    } else {
        let path = format!("/v1/kv/{}?release={session}", encode_path(&key));
        let _ = client.request(Method::PUT, &path, Vec::new()).await;
    }
    let _ = client.request(Method::PUT, &format!("/v1/session/destroy/{session}"), Vec::new()).await;
    outcome
}

/// Renews the session every `every` until aborted.
async fn renew_forever(client: HttpClient, session: String, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let _ = client.request(Method::PUT, &format!("/v1/session/renew/{session}"), Vec::new()).await;
    }
}

/// The key's holder and index, from a (blocking) read. `None` holder: free or absent.
async fn holder(client: &HttpClient, opts: &LockOptions, key: &str, index: u64) -> Result<(Option<String>, u64), String> {
    let path = format!("/v1/kv/{}?index={index}&wait={}", encode_path(key), opts.wait_param());
    let r = client.request(Method::GET, &path, Vec::new()).await?;
    let next = r.index.unwrap_or(0);
    if r.status == StatusCode::NOT_FOUND {
        return Ok((None, next));
    }
    if r.status != StatusCode::OK {
        return Err(r.unexpected());
    }
    let list: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    let session = list.get(0).and_then(|e| e.get("Session")).and_then(|s| s.as_str()).map(str::to_string);
    Ok((session, next))
}

/// Acquires the lock, waiting in blocking reads while another session holds it.
async fn acquire(client: &HttpClient, opts: &LockOptions, key: &str, session: &str) -> Result<(), String> {
    let path = format!("/v1/kv/{}?acquire={session}", encode_path(key));
    let mut index = 0;
    loop {
        let r = client.request(Method::PUT, &path, Vec::new()).await?;
        match (r.status, r.text().trim()) {
            (StatusCode::OK, "true") => return Ok(()),
            (StatusCode::OK, "false") => {}
            _ => return Err(r.unexpected()),
        }
        // At index 0 this returns at once; at a holder's index, when the key changes.
        let (holder, next) = holder(client, opts, key, index).await?;
        if holder.is_some() {
            index = next;
        } else {
            // Free, yet refused: a lock-delay. Consul waits its retry time, then tries again.
            index = 0;
            tokio::time::sleep(opts.retry_time).await;
        }
    }
}

/// Runs the child while `watch` runs; stops it when `watch` returns (the lock is lost).
async fn run_child(processes: &dyn Processes, opts: &LockOptions, child: &SpawnSpec, watch: impl std::future::Future<Output = ()>) -> Result<i32, String> {
    let mut spec = child.clone();
    spec.env.push(("CONSUL_LOCK_HELD".into(), "true".into()));
    let mut running = processes.spawn(&spec).map_err(|e| format!("Error running handler: {e}"))?;
    tokio::pin!(watch);
    tokio::select! {
        code = running.wait() => {
            let code = code.map_err(|e| format!("Error waiting for handler: {e}"))?;
            Ok(if opts.child_exit_code && code != Some(0) { 2 } else { 0 })
        }
        () = &mut watch => {
            tracing::info!(prefix = %opts.prefix, "lock lost, killing child");
            running.terminate();
            if tokio::time::timeout(opts.kill_grace, running.wait()).await.is_err() {
                running.kill().await;
            }
            Err("Lock lost".into())
        }
    }
}

/// Returns when the key no longer names `session`, or after `monitor_retries` + 1 failed reads
/// in a row.
async fn watch_lock(client: &HttpClient, opts: &LockOptions, key: &str, session: &str) {
    let mut index = 0;
    let mut failures = 0;
    loop {
        match holder(client, opts, key, index).await {
            Ok((Some(h), next)) if h == session => {
                index = next;
                failures = 0;
            }
            Ok((_, next)) if opts.bug_watch_ignores_holder => {
                index = next;
                failures = 0;
            }
            Ok(_) => return,
            Err(_) if failures < opts.monitor_retries => {
                failures += 1;
                tokio::time::sleep(opts.monitor_retry_time).await;
            }
            Err(_) => return,
        }
    }
}
