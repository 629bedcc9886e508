//! The watch workload (`watch`): `concord watch -type=key`'s own plan
//! ([`node::cli::watch_plan::Plan`]) run by workload client `w1` against one server over the
//! simulated network, while the other clients run the KV register workload on the same keys.
//!
//! Every result the plan *delivers* to its handler is recorded as a read of the watched key,
//! invoked when the blocking query that produced it was sent and completed when its answer came
//! back. A blocking query's answer is current when it is sent (the leader re-proves its
//! leadership after the wait), so each delivery must be a linearizable read: a plan that hands
//! its handler anything older (the deliberate bug `watch-delivers-previous`) shows as a read of a
//! value that had already been overwritten. The KV register model judges the deliveries with
//! every other op on the key.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use checker::{History, Op, OpFn, OkResult, Outcome, ReadMode, Verdict};
use node::cli::http_client::HttpClient;
use node::cli::watch_plan::{Plan, WatchType, RETRY_MIN};

use crate::options::Bug;
use crate::workload::{now, parse_entry, run_client, ClientSpec, Workload};

/// `?wait=` of each blocking query: short, so a run sees many waits run out unchanged.
const WATCH_WAIT: Duration = Duration::from_secs(2);
/// Deadline of one blocking query (the wait, the agent's jitter of up to wait/16, and slack).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the watch runs past the other clients (deliveries of their last writes).
const WATCH_TAIL: Duration = Duration::from_secs(4);

/// See the module docs.
pub struct Watch;

impl Workload for Watch {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::Watch.name()
    }
    fn object(&self) -> &'static str {
        "kv"
    }
    fn client(&self, spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
        if spec.id == 1 {
            Box::pin(run_watch(spec))
        } else {
            Box::pin(run_client(spec))
        }
    }
    fn check(&self, history: &History, budget_per_object: Duration) -> Vec<(String, Verdict)> {
        checker::check_history(history, budget_per_object)
    }
    fn oracle_names(&self) -> &'static str {
        crate::workload::KvRegister.oracle_names()
    }
    fn final_reads(&self, servers: Vec<(String, SocketAddr)>, keys: Vec<String>, history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(crate::final_reads::final_kv_reads(servers, keys, history))
    }
    fn final_reads_bound(&self) -> Duration {
        crate::final_reads::AGREEMENT_BOUND
    }
}

/// Runs the watch plan on the first key through one seed-chosen server, recording deliveries.
async fn run_watch(mut spec: ClientSpec) -> turmoil::Result {
    use rand::Rng;
    let key = spec.keys[0].clone();
    let (server_name, addr) = spec.servers[spec.rng.gen_range(0..spec.servers.len())].clone();
    let client = HttpClient::new(&addr.to_string())
        .map_err(|e| e.to_string())?
        .with_net(Arc::new(crate::io::TurmoilNet::lossless()))
        .with_request_timeout(FETCH_TIMEOUT);
    let buggy = spec.bugs.contains(&Bug::WatchDeliversPrevious);
    let mut plan = Plan::new(client, WatchType::Key { key: key.clone() }, false, WATCH_WAIT).delivering_previous(buggy);
    let until = spec.until + WATCH_TAIL;
    while now() < until {
        let invoke = now();
        let result = match plan.fetch().await {
            Ok(r) => r,
            Err(_) => {
                tokio::time::sleep(RETRY_MIN).await;
                continue;
            }
        };
        let Some(delivered) = plan.observe(result) else { continue };
        let value = match &delivered.value {
            serde_json::Value::Null => None,
            v => match parse_entry(&serde_json::to_vec(v).unwrap_or_default()) {
                Some((value, _)) => Some(value),
                // A delivery that is not a KV entry: recorded as a failed read (judged as nothing).
                None => {
                    record(&spec, &key, invoke, Outcome::Fail, &server_name);
                    continue;
                }
            },
        };
        record(&spec, &key, invoke, Outcome::Ok(OkResult::Read(value)), &server_name);
    }
    Ok(())
}

fn record(spec: &ClientSpec, key: &str, invoke: Duration, outcome: Outcome, server: &str) {
    spec.history.borrow_mut().push(Op {
        id: 0,
        client: spec.id,
        key: key.to_string(),
        f: OpFn::Read,
        invoke_ns: invoke.as_nanos() as u64,
        complete_ns: now().as_nanos() as u64,
        outcome,
        server: Some(server.to_string()),
        mode: ReadMode::Default,
    });
}
