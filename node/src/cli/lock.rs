//! `concord lock [options] PREFIX CHILD...`: Consul's lock recipe over the HTTP API. Holds a KV
//! lock while a child process runs, and stops the child if the lock is lost.
//!
//! Source: Consul `command/lock` and `api/lock.go`. A session (`Name` from `-name`, TTL 15 s,
//! renewed every TTL/2) acquires `PREFIX/.lock`. While another session holds it, this waits in
//! a blocking read until the key's `Session` empties, then tries again (after the lock-delay, if
//! the refusal was one). Once held, the child runs through `sh -c` with `CONSUL_LOCK_HELD=true`
//! in its environment. A watcher follows the key with blocking reads; if the key stops naming
//! this session (TTL lost, session invalidated, key deleted) the child gets SIGTERM, then SIGKILL
//! after 5 s. When the child exits, the lock is released and the session destroyed.
//!
//! With `-n N` above 1 it takes one of N places of a semaphore instead ([`super::semaphore`]).
//!
//! Exit codes: 0 (or, with `-child-exit-code`, 2 if the child failed), 1 when the lock could not
//! be acquired (timeout, no agent) or was lost.
//!
//! The child is a real OS process: this command runs on an operator's machine, outside the agent
//! and its I/O abstraction.

use std::time::Duration;

use clap::Args;
use hyper::{Method, StatusCode};

use super::common::HttpArgs;
use super::http_client::{encode_path, HttpClient};
use super::EXIT_FAILURE;

/// Consul's `api.DefaultLockSessionTTL`.
const SESSION_TTL: Duration = Duration::from_secs(15);
/// How long to wait before retrying an acquire refused during a lock-delay (Consul's
/// `DefaultLockRetryTime`).
const RETRY_TIME: Duration = Duration::from_secs(5);
/// Between SIGTERM and SIGKILL when the lock is lost (Consul's `killGrace`, 5 s).
const KILL_GRACE: Duration = Duration::from_secs(5);
/// The blocking reads' `?wait=`.
const WAIT: &str = "15s";

/// `concord lock` options.
#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Number of holders allowed (a semaphore when above 1).
    #[arg(short = 'n', long = "n", default_value_t = 1)]
    pub limit: u32,
    /// Name of the session (Consul: "Consul lock for PREFIX at NODE").
    #[arg(long)]
    pub name: Option<String>,
    /// Longest wait to acquire the lock, a Go duration (`0s`: wait forever).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Exit 2 if the child process fails, instead of 0.
    #[arg(long)]
    pub child_exit_code: bool,
    /// Pass stdin to the child process.
    #[arg(long)]
    pub pass_stdin: bool,
    /// Retries of a failed lock-monitoring request before the lock counts as lost (Consul's
    /// default: 3).
    #[arg(long, default_value_t = 3)]
    pub monitor_retry: u32,
    /// The KV prefix; the lock key is `PREFIX/.lock`.
    pub prefix: String,
    /// The command to run while holding the lock (through `sh -c`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub child: Vec<String>,
}

/// Runs the command; returns the exit code.
pub fn run(args: LockArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error! cannot build the tokio runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    match runtime.block_on(lock(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            EXIT_FAILURE
        }
    }
}

async fn lock(args: LockArgs) -> Result<i32, String> {
    if args.limit == 0 {
        return Err("-n must be at least 1".into());
    }
    let timeout = crate::structs::duration::parse_go_duration(&args.timeout).ok_or_else(|| format!("Invalid -timeout {:?}", args.timeout))?;
    let client = args.http.client()?;
    let prefix = args.prefix.trim_end_matches('/').to_string();
    let key = format!("{prefix}/.lock");
    let name = args.name.clone().unwrap_or_else(|| format!("Consul lock for {}", args.prefix));
    let body = serde_json::json!({ "Name": name, "TTL": format!("{}s", SESSION_TTL.as_secs()) }).to_string();
    let created = client.request(Method::PUT, "/v1/session/create", body.into_bytes()).await?;
    if created.status != StatusCode::OK {
        return Err(format!("Error creating session: {}", created.text()));
    }
    let session = serde_json::from_slice::<serde_json::Value>(&created.body)
        .ok()
        .and_then(|v| v.get("ID").and_then(|id| id.as_str()).map(str::to_string))
        .ok_or("Error creating session: no ID in the answer")?;
    let renewer = tokio::spawn(renew_forever(client.clone(), session.clone()));
    let semaphore = args.limit > 1;
    let acquiring = async {
        if semaphore {
            super::semaphore::acquire(&client, &prefix, &session, args.limit).await
        } else {
            acquire(&client, &key, &session).await
        }
    };
    let acquired = if timeout.is_zero() {
        acquiring.await
    } else {
        tokio::time::timeout(timeout, acquiring).await.unwrap_or_else(|_| Err("timeout".into()))
    };
    let outcome = match acquired {
        Ok(()) if semaphore => run_child(&args, super::semaphore::watch(&client, &prefix, &session, args.monitor_retry)).await,
        Ok(()) => run_child(&args, watch_lock(&client, &key, &session, args.monitor_retry)).await,
        Err(e) => Err(format!("Lock acquisition failed: {e}")),
    };
    renewer.abort();
    if semaphore {
        super::semaphore::release(&client, &prefix, &session, args.limit).await;
    } else {
        let path = format!("/v1/kv/{}?release={session}", encode_path(&key));
        let _ = client.request(Method::PUT, &path, Vec::new()).await;
    }
    let _ = client.request(Method::PUT, &format!("/v1/session/destroy/{session}"), Vec::new()).await;
    outcome
}

/// Renews the session every TTL/2 until aborted.
async fn renew_forever(client: HttpClient, session: String) {
    loop {
        tokio::time::sleep(SESSION_TTL / 2).await;
        let _ = client.request(Method::PUT, &format!("/v1/session/renew/{session}"), Vec::new()).await;
    }
}

/// The key's holder and index, from a (blocking) read. `None` holder: free or absent.
async fn holder(client: &HttpClient, key: &str, index: u64) -> Result<(Option<String>, u64), String> {
    let path = format!("/v1/kv/{}?index={index}&wait={WAIT}", encode_path(key));
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
async fn acquire(client: &HttpClient, key: &str, session: &str) -> Result<(), String> {
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
        let (holder, next) = holder(client, key, index).await?;
        if holder.is_some() {
            index = next;
        } else {
            // Free, yet refused: a lock-delay. Consul waits its retry time, then tries again.
            index = 0;
            tokio::time::sleep(RETRY_TIME).await;
        }
    }
}

/// Runs the child while watching the lock; returns the exit code.
async fn run_child(args: &LockArgs, watch: impl std::future::Future<Output = ()>) -> Result<i32, String> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg(args.child.join(" ")).env("CONSUL_LOCK_HELD", "true");
    if !args.pass_stdin {
        cmd.stdin(std::process::Stdio::null());
    }
    let mut child = cmd.spawn().map_err(|e| format!("Error running handler: {e}"))?;
    tokio::pin!(watch);
    tokio::select! {
        status = child.wait() => {
            let status = status.map_err(|e| format!("Error waiting for handler: {e}"))?;
            Ok(if args.child_exit_code && !status.success() { 2 } else { 0 })
        }
        () = &mut watch => {
            eprintln!("Lock lost, killing child");
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            }
            if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            Err("Lock lost".into())
        }
    }
}

/// Returns when the key no longer names `session` (or the key could not be read
/// `retries` + 1 times in a row).
async fn watch_lock(client: &HttpClient, key: &str, session: &str, retries: u32) {
    let mut index = 0;
    let mut failures = 0;
    loop {
        match holder(client, key, index).await {
            Ok((Some(h), next)) if h == session => {
                index = next;
                failures = 0;
            }
            Ok(_) => return,
            Err(_) if failures < retries => {
                failures += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(_) => return,
        }
    }
}
