//! The bank workload: clients move money between accounts with `/v1/txn` and read every balance
//! in one read-only transaction. The total never changes, so any read whose balances do not add
//! up to it saw part of a transaction: a transfer applied in part, or a read torn across entries.
//!
//! Accounts are the run's keys under `bank/`; an account that does not exist yet holds
//! [`OPENING_BALANCE`]. A transfer reads both balances (`get-or-empty`), then writes both with
//! `cas` on the ModifyIndexes it read (0: create), in one transaction; a concurrent transfer makes
//! one `cas` fail, and Consul then applies neither. Reads alternate between the default mode and
//! `?consistent`.
//!
//! History encoding: a read is `read bank` with the total it saw; a transfer is `write bank
//! <amount>` (ok only when applied). The check is an invariant, not a search: every acknowledged
//! read shows the opening total.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine as _;
use checker::{History, OkResult, Op, OpFn, Outcome, ReadMode, Value, Verdict, Violation};
use hyper::{Method, StatusCode};
use rand::Rng;

use crate::http_client::{ClientError, Response};
use crate::workload::{now, record_now, send, ClientSpec, Workload};

/// What every account holds before its first transfer.
pub const OPENING_BALANCE: u64 = 100;
/// The one object of the history.
const BANK: &str = "bank";

/// The bank workload (see the module docs).
pub struct Bank;

impl Workload for Bank {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::Bank.name()
    }
    fn object(&self) -> &'static str {
        "ledger"
    }
    fn client(&self, spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
        Box::pin(run_client(spec))
    }
    fn check(&self, history: &History, _budget: Duration) -> Vec<(String, Verdict)> {
        vec![(BANK.to_string(), check_totals(history))]
    }
    fn oracles(&self, _history: &History) -> Vec<checker::InvariantViolation> {
        Vec::new()
    }
    fn oracle_names(&self) -> &'static str {
        "every read of all balances adds up to the opening total (inside the ledger check)"
    }
    fn final_reads(&self, servers: Vec<(String, SocketAddr)>, keys: Vec<String>, history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(async move {
            let (name, addr) = servers[0].clone();
            read_total(addr, &name, &keys, ReadMode::Consistent, 0, &history).await;
        })
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn txn(addr: SocketAddr, mode: &ReadMode, body: serde_json::Value) -> Result<Response, ClientError> {
    send(addr, Method::PUT, &format!("/v1/txn{}", mode.query()), body.to_string().into_bytes()).await
}

/// Balances and ModifyIndexes by key from a txn answer's KV results (absent: opening balance).
fn balances(body: &[u8]) -> Option<Vec<(String, u64, u64)>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut out = Vec::new();
    for r in v.get("Results")?.as_array()? {
        let kv = r.get("KV")?;
        let key = kv.get("Key")?.as_str()?.to_string();
        let raw = match kv.get("Value").and_then(|x| x.as_str()) {
            Some(b) => base64::engine::general_purpose::STANDARD.decode(b).ok()?,
            None => Vec::new(),
        };
        let balance = if raw.is_empty() { OPENING_BALANCE } else { std::str::from_utf8(&raw).ok()?.parse().ok()? };
        out.push((key, balance, kv.get("ModifyIndex").and_then(|i| i.as_u64()).unwrap_or(0)));
    }
    Some(out)
}

/// Reads every balance in one read-only transaction and records the total.
async fn read_total(addr: SocketAddr, server: &str, keys: &[String], mode: ReadMode, client: u32, history: &Rc<RefCell<History>>) {
    let invoke = now();
    let ops: Vec<serde_json::Value> = keys.iter().map(|k| serde_json::json!({"KV": {"Verb": "get-or-empty", "Key": format!("bank/{k}")}})).collect();
    let resp = txn(addr, &mode, serde_json::Value::Array(ops)).await;
    let outcome = match resp {
        Ok(r) if r.status == StatusCode::OK => match balances(&r.body) {
            Some(b) if b.len() == keys.len() => Outcome::Ok(OkResult::Read(Some(b.iter().map(|(_, v, _)| v).sum()))),
            _ => Outcome::Fail,
        },
        _ => Outcome::Fail,
    };
    record_now(history, client, BANK, OpFn::Read, invoke, outcome, server, mode);
}

/// Runs one client until `spec.until`.
pub async fn run_client(mut spec: ClientSpec) -> turmoil::Result {
    if spec.id == 1 {
        set_account_count(&spec.history, spec.keys.len());
    }
    while now() < spec.until {
        let (server_name, server) = spec.servers[spec.rng.gen_range(0..spec.servers.len())].clone();
        if spec.rng.gen_bool(0.5) {
            let mode = if spec.rng.gen_bool(0.5) { ReadMode::Consistent } else { ReadMode::Default };
            read_total(server, &server_name, &spec.keys, mode, spec.id, &spec.history).await;
        } else if spec.keys.len() >= 2 {
            let a = spec.rng.gen_range(0..spec.keys.len());
            let b = (a + spec.rng.gen_range(1..spec.keys.len())) % spec.keys.len();
            let (ka, kb) = (format!("bank/{}", spec.keys[a]), format!("bank/{}", spec.keys[b]));
            let read = serde_json::json!([{"KV": {"Verb": "get-or-empty", "Key": ka}}, {"KV": {"Verb": "get-or-empty", "Key": kb}}]);
            let seen = match txn(server, &ReadMode::Default, read).await {
                Ok(r) if r.status == StatusCode::OK => balances(&r.body).filter(|b| b.len() == 2),
                _ => None,
            };
            if let Some(seen) = seen {
                let amount: Value = spec.rng.gen_range(1..=10).min(seen[0].1);
                let write = serde_json::json!([
                    {"KV": {"Verb": "cas", "Key": ka, "Value": b64(&(seen[0].1 - amount).to_string()), "Index": seen[0].2}},
                    {"KV": {"Verb": "cas", "Key": kb, "Value": b64(&(seen[1].1 + amount).to_string()), "Index": seen[1].2}},
                ]);
                let invoke = now();
                let resp = txn(server, &ReadMode::Default, write).await;
                let outcome = match &resp {
                    Ok(r) if r.status == StatusCode::OK => Outcome::Ok(OkResult::Done),
                    Ok(r) if r.status == StatusCode::CONFLICT => Outcome::Fail,
                    Ok(r) if r.headers.get("X-Concord-Write-Applied").is_some_and(|v| v == "false") => Outcome::Fail,
                    Err(ClientError::Connect(_)) => Outcome::Fail,
                    _ => Outcome::Info,
                };
                record_now(&spec.history, spec.id, BANK, OpFn::Write(amount), invoke, outcome, &server_name, ReadMode::Default);
            }
        }
        tokio::time::sleep(Duration::from_millis(spec.rng.gen_range(1..20))).await;
    }
    Ok(())
}

/// Every acknowledged read must show the opening total.
pub fn check_totals(history: &History) -> Verdict {
    let totals: Vec<&Op> = history.ops.iter().filter(|o| o.key == BANK && o.f == OpFn::Read).collect();
    let Some(expected) = expected_total(history) else { return Verdict::Linearizable };
    let bad: Vec<Op> = totals.into_iter().filter(|o| matches!(o.outcome, Outcome::Ok(OkResult::Read(Some(t))) if t != expected)).cloned().collect();
    match bad.first() {
        None => Verdict::Linearizable,
        Some(first) => {
            let seen = match first.outcome {
                Outcome::Ok(OkResult::Read(Some(t))) => t,
                _ => 0,
            };
            Verdict::NotLinearizable(Violation {
                key: BANK.to_string(),
                ops: vec![first.clone()],
                explanation: format!(
                    "{} of the reads saw balances adding up to a total other than the opening {expected}; the first saw {seen}: part of a transfer was applied or read",
                    bad.len()
                ),
            })
        }
    }
}

/// The opening total, from the account count the first client recorded ([`set_account_count`]).
fn expected_total(history: &History) -> Option<Value> {
    history.ops.iter().find(|o| o.key == ACCOUNTS_KEY).and_then(|o| match o.f {
        OpFn::Write(n) => Some(n * OPENING_BALANCE),
        _ => None,
    })
}

/// The pseudo-key under which the number of accounts is recorded once.
const ACCOUNTS_KEY: &str = "bank/accounts";

/// Records the number of accounts, so the check knows the opening total.
pub fn set_account_count(history: &Rc<RefCell<History>>, accounts: usize) {
    history.borrow_mut().push(Op {
        id: 0,
        client: 0,
        key: ACCOUNTS_KEY.to_string(),
        f: OpFn::Write(accounts as Value),
        invoke_ns: 0,
        complete_ns: 0,
        outcome: Outcome::Ok(OkResult::Done),
        server: None,
        mode: ReadMode::Default,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_read_absent_accounts_at_the_opening_balance() {
        let body = br#"{"Results":[{"KV":{"Key":"bank/k0","Value":"OTA=","ModifyIndex":7}},{"KV":{"Key":"bank/k1","Value":null,"ModifyIndex":0}}],"Errors":null}"#;
        assert_eq!(balances(body), Some(vec![("bank/k0".into(), 90, 7), ("bank/k1".into(), 100, 0)]));
    }

    #[test]
    fn a_read_with_the_wrong_total_is_a_violation() {
        let h = Rc::new(RefCell::new(History::default()));
        set_account_count(&h, 2);
        let read = |t| Op { id: 0, client: 1, key: BANK.into(), f: OpFn::Read, invoke_ns: 1, complete_ns: 2, outcome: Outcome::Ok(OkResult::Read(Some(t))), server: None, mode: ReadMode::Default };
        h.borrow_mut().push(read(200));
        assert!(check_totals(&h.borrow()).is_linearizable());
        h.borrow_mut().push(read(195));
        assert!(!check_totals(&h.borrow()).is_linearizable());
    }
}
