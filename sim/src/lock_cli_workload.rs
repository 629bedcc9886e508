//! The `concord lock` workload (`lock-cli`): every client runs the CLI's own lock recipe
//! ([`node::cli::lock_recipe::hold`]) over the simulated network, again and again, on a lock
//! (`cli/lock`, one place) or a semaphore (`cli/sem`, two places), with a scripted child
//! (`sleep N`, [`ScriptedProcesses`]) in place of a real program.
//!
//! The recipe's HTTP traffic is not recorded; its children are: each child run is one op on the
//! key `holder/<prefix>`, invoked when the child started and completed when it ended (naturally,
//! or stopped because the lock was lost). [`check_holders_step_down`] judges them: a holder
//! displaced by another must stop its child within the recipe's loss-notice bound.
//!
//! The recipe runs with simulator timings (TTL 2 s, waits of 1 s, lock-delay 1 s, a 2 s request
//! deadline) so that sessions die and locks change hands many times in a run; the monitor's retries
//! (3, 1 s apart) are the command's.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use checker::oracles::check_holders_step_down;
use checker::{History, InvariantViolation, OkResult, Op, OpFn, Outcome, ReadMode, Verdict};
use node::cli::http_client::HttpClient;
use node::cli::lock_recipe::{hold, LockOptions};
use node::io::process::{ChildProcess, ProcessOutput, Processes, ScriptedProcesses, SpawnSpec};
use rand::Rng;

use crate::options::Bug;
use crate::workload::{now, ClientSpec, Workload};

/// The lock (one place) and the semaphore (two places) the clients contend for.
const PREFIXES: [(&str, u32); 2] = [("cli/lock", 1), ("cli/sem", 2)];
/// Every request's deadline: the blocking reads' wait, Consul's wait/16 jitter, and a second.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(2_063);

/// The recipe's options in the simulator (see the module docs).
pub fn sim_options(prefix: &str, limit: u32) -> LockOptions {
    let mut o = LockOptions::consul(prefix, limit);
    o.session_ttl = Duration::from_millis(crate::lock_workload::SESSION_TTL_MS);
    o.lock_delay = Some(Duration::from_secs(1));
    o.wait = Duration::from_secs(1);
    o.retry_time = Duration::from_millis(500);
    // Scripted children stop at once on SIGTERM; the grace only widens the bound.
    o.kill_grace = Duration::from_secs(1);
    o
}

/// The holder key of `prefix` in the history.
fn holder_key(prefix: &str) -> String {
    format!("holder/{prefix}")
}

/// See the module docs.
pub struct LockCli;

impl Workload for LockCli {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::LockCli.name()
    }
    fn object(&self) -> &'static str {
        "lock"
    }
    fn client(&self, spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
        Box::pin(run_client(spec))
    }
    /// Nothing for the linearizability search: the recipe's requests are not recorded.
    fn check(&self, _history: &History, _budget_per_object: Duration) -> Vec<(String, Verdict)> {
        Vec::new()
    }
    fn oracles(&self, history: &History) -> Vec<InvariantViolation> {
        let keys: Vec<(String, u32)> = PREFIXES.iter().map(|&(p, n)| (holder_key(p), n)).collect();
        let limits: Vec<(&str, u32)> = keys.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        let bound = sim_options("", 1).loss_notice_bound(REQUEST_TIMEOUT);
        check_holders_step_down(history, &limits, bound.as_nanos() as u64)
    }
    fn oracle_names(&self) -> &'static str {
        "displaced lock and semaphore holders stop their children within the recipe's loss-notice bound"
    }
    fn final_reads(&self, _servers: Vec<(String, SocketAddr)>, _keys: Vec<String>, _history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(async {})
    }
}

/// Child runs as (started, ended) simulated times, shared with the recording children.
type Spans = Arc<Mutex<Vec<(Duration, Duration)>>>;

/// [`ScriptedProcesses`] that note when each spawned child started and ended.
struct RecordedProcesses {
    spans: Spans,
}

#[async_trait]
impl Processes for RecordedProcesses {
    async fn run(&self, args: &[String], timeout: Duration, output_cap: usize) -> std::io::Result<ProcessOutput> {
        ScriptedProcesses.run(args, timeout, output_cap).await
    }
    fn spawn(&self, spec: &SpawnSpec) -> std::io::Result<Box<dyn ChildProcess>> {
        let inner = ScriptedProcesses.spawn(spec)?;
        Ok(Box::new(RecordedChild { inner, started: now(), spans: self.spans.clone(), ended: false }))
    }
}

struct RecordedChild {
    inner: Box<dyn ChildProcess>,
    started: Duration,
    spans: Spans,
    ended: bool,
}

impl RecordedChild {
    fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            if let Ok(mut spans) = self.spans.lock() {
                spans.push((self.started, now()));
            }
        }
    }
}

#[async_trait]
impl ChildProcess for RecordedChild {
    async fn wait(&mut self) -> std::io::Result<Option<i32>> {
        let code = self.inner.wait().await;
        self.end();
        code
    }
    fn terminate(&mut self) {
        self.inner.terminate();
    }
    async fn kill(&mut self) {
        self.inner.kill().await;
        self.end();
    }
}

/// Runs the recipe until `spec.until`, recording every child run.
async fn run_client(mut spec: ClientSpec) -> turmoil::Result {
    let spans: Spans = Arc::default();
    let processes = RecordedProcesses { spans: spans.clone() };
    while now() < spec.until {
        let (server_name, addr) = spec.servers[spec.rng.gen_range(0..spec.servers.len())].clone();
        let (prefix, limit) = PREFIXES[spec.rng.gen_range(0..PREFIXES.len())];
        let mut opts = sim_options(prefix, limit);
        opts.session_name = format!("w{} lock", spec.id);
        opts.acquire_timeout = spec.until.saturating_sub(now()).max(Duration::from_millis(1));
        opts.bug_watch_ignores_holder = spec.bugs.contains(&Bug::LockWatchIgnoresHolder);
        let child = SpawnSpec { args: vec!["sleep".into(), spec.rng.gen_range(15..45).to_string()], ..SpawnSpec::default() };
        let client = HttpClient::new(&addr.to_string())
            .map_err(|e| e.to_string())?
            .with_net(Arc::new(crate::io::TurmoilNet::lossless()))
            .with_request_timeout(REQUEST_TIMEOUT);
        // The outcome (held and done, lost, not acquired) shows in the child runs recorded.
        let _ = hold(&client, &processes, &opts, &child).await;
        let ended: Vec<(Duration, Duration)> = spans.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default();
        for (started, ended) in ended {
            spec.history.borrow_mut().push(Op {
                id: 0,
                client: spec.id,
                key: holder_key(prefix),
                f: OpFn::Write(u64::from(spec.id)),
                invoke_ns: started.as_nanos() as u64,
                complete_ns: ended.as_nanos() as u64,
                outcome: Outcome::Ok(OkResult::Done),
                server: Some(server_name.clone()),
                mode: ReadMode::Default,
            });
        }
        tokio::time::sleep(Duration::from_millis(spec.rng.gen_range(100..1_000))).await;
    }
    Ok(())
}
