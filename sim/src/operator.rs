//! The operator: a simulated host that carries out membership changes the nemesis asks for, over
//! the HTTP API (`/v1/operator/raft/peer`), trying servers until the leader accepts.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use hyper::{Method, StatusCode};

use crate::http_client::request;

/// How long the operator keeps retrying one change before giving up on it.
const CHANGE_DEADLINE: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const IDLE_POLL: Duration = Duration::from_millis(50);

/// A membership change to carry out: HTTP method and path (with query).
pub type Change = (Method, String);

/// Shared queue from the nemesis to the operator host, plus a log of outcomes for the trace.
#[derive(Default)]
pub struct OperatorQueue {
    pub pending: VecDeque<Change>,
    pub outcomes: Vec<String>,
}

/// Runs the operator until `until` (simulated time), or earlier once the fault phase is over,
/// nothing is pending, and the cluster was proven live (`live_at` set).
pub async fn run_operator(
    queue: Rc<RefCell<OperatorQueue>>,
    servers: Vec<SocketAddr>,
    fault_phase: Duration,
    live_at: Rc<RefCell<Option<Duration>>>,
    until: Duration,
) -> turmoil::Result {
    let now = || turmoil::sim_elapsed().unwrap_or_default();
    while now() < until {
        if now() >= fault_phase && live_at.borrow().is_some() && queue.borrow().pending.is_empty() {
            break;
        }
        let next = queue.borrow_mut().pending.pop_front();
        let Some((method, path)) = next else {
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        };
        let deadline = now() + CHANGE_DEADLINE;
        let mut done = false;
        'retry: while now() < deadline {
            for server in &servers {
                let resp = tokio::time::timeout(REQUEST_TIMEOUT, request(*server, method.clone(), &path, Vec::new())).await;
                if matches!(&resp, Ok(Ok(r)) if r.status == StatusCode::OK) {
                    done = true;
                    break 'retry;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let outcome = format!("{method} {path}: {}", if done { "done" } else { "gave up" });
        queue.borrow_mut().outcomes.push(outcome);
    }
    Ok(())
}
