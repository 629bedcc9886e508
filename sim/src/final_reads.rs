//! The KV survival check after the final heal, along two independent paths (issue 8, item 6):
//!
//! 1. a `?consistent` read of every key through every server (the read path: read index on the
//!    leader, forwarding);
//! 2. once every server is caught up — each server's `?stale` answers (value and ModifyIndex) for
//!    every key agree in one round — that round: every server's applied state.
//!
//! Both are recorded as client 0, tagged with the server and the read mode (`?stale` marks the
//! applied-state reads). The oracles judge acknowledged writes against the applied state and a
//! disagreement between the two paths as its own violation (see
//! `checker::oracles::consistent_read_matches_applied_state`), so a broken `?consistent` read is
//! no longer reported as a lost write.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use checker::{History, OkResult, Op, OpFn, Outcome, ReadMode, Value};
use hyper::{Method, StatusCode};

use crate::http_client::request;
use crate::workload::{now, parse_entry, OP_TIMEOUT};

/// How long the applied-state path polls for every server to agree before it records its last
/// round anyway (the oracles then judge no key whose servers disagree). Workload clients may
/// still be writing for a few seconds after the heal, so agreement can take that long.
pub const AGREEMENT_BOUND: Duration = Duration::from_secs(15);
/// Pause between two polling rounds of the applied-state path.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// One recorded read: what the server answered, and its ModifyIndex when the key exists.
struct Answer {
    op: Op,
    modify_index: Option<u64>,
}

/// Reads `key` through `server` in `mode` and returns the op to record (as client 0).
async fn read(server: &(String, SocketAddr), key: &str, mode: ReadMode) -> Answer {
    let invoke = now();
    let resp = tokio::time::timeout(OP_TIMEOUT, request(server.1, Method::GET, &format!("/v1/kv/{key}{}", mode.query()), Vec::new())).await;
    let (outcome, modify_index) = match resp {
        Ok(Ok(r)) if r.status == StatusCode::OK => match parse_entry(&r.body) {
            Some((v, idx)) => (Outcome::Ok(OkResult::Read(Some(v))), Some(idx)),
            None => (Outcome::Fail, None),
        },
        Ok(Ok(r)) if r.status == StatusCode::NOT_FOUND => (Outcome::Ok(OkResult::Read(None)), None),
        _ => (Outcome::Fail, None),
    };
    let op = Op {
        id: 0,
        client: 0,
        key: key.to_string(),
        f: OpFn::Read,
        invoke_ns: invoke.as_nanos() as u64,
        complete_ns: now().as_nanos() as u64,
        outcome,
        server: Some(server.0.clone()),
        mode,
    };
    Answer { op, modify_index }
}

/// What an answer says the key holds, if it answered: (value, ModifyIndex).
fn state(a: &Answer) -> Option<(Option<Value>, Option<u64>)> {
    match a.op.outcome {
        Outcome::Ok(OkResult::Read(v)) => Some((v, a.modify_index)),
        _ => None,
    }
}

/// Whether every server answered and all agree on every key (`round` is server-major).
fn agreed(round: &[Vec<Answer>]) -> bool {
    let Some(first) = round.first() else { return false };
    first.iter().enumerate().all(|(k, a)| {
        let want = state(a);
        want.is_some() && round.iter().all(|per_server| per_server.get(k).and_then(state) == want)
    })
}

/// Runs both paths (see the module docs) and records every read in `history`.
pub async fn final_kv_reads(servers: Vec<(String, SocketAddr)>, keys: Vec<String>, history: Rc<RefCell<History>>) {
    for server in &servers {
        for key in &keys {
            let answer = read(server, key, ReadMode::Consistent).await;
            history.borrow_mut().push(answer.op);
        }
    }
    let deadline = now() + AGREEMENT_BOUND;
    loop {
        let mut round: Vec<Vec<Answer>> = Vec::with_capacity(servers.len());
        for server in &servers {
            let mut answers = Vec::with_capacity(keys.len());
            for key in &keys {
                answers.push(read(server, key, ReadMode::Stale).await);
            }
            round.push(answers);
        }
        if agreed(&round) || now() >= deadline {
            let mut h = history.borrow_mut();
            for answer in round.into_iter().flatten() {
                h.push(answer.op);
            }
            return;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
