//! The gossip-keyring workload (`gossip-keyring`): every agent starts with `-encrypt=`[`OLD_KEY`]
//! ([`gossip_config`]); KV register clients run as in [`crate::workload::KvRegister`], and the
//! rotation client ([`ROTATION_CLIENT`]) rotates the gossip key during the fault phase, as an
//! operator following Consul's guidance would: install [`NEW_KEY`], wait until
//! `/v1/operator/keyring` shows it on every agent, make it the primary, wait until every agent
//! uses it, remove the old key, wait until no agent holds it. A step not confirmed within
//! [`RESEND_AFTER`] is sent again (operations are idempotent), through the next agent that
//! answers. What the fault phase left undone is finished after the final heal (within
//! [`ROTATION_BOUND`]); then the membership poll of [`crate::gossip_workload`] runs.
//!
//! The servers also run the WAN pool, encrypted with the same `-encrypt` key: every keyring
//! operation on a server acts on both pools, and a step is confirmed only when both the WAN
//! entry and the LAN entry of the list show it on every server.
//!
//! Judged by the membership-convergence oracle, for the LAN pool and for the WAN pool, counted
//! from the final heal or the rotation's end, whichever is later (a rotation disturbs gossip like
//! a fault), and by the rotation completing. The deliberate bug `wan-keyring-not-persisted`
//! opens a restarted server's WAN pool from `-encrypt` again: once the old key is removed, it
//! can neither open its peers' WAN datagrams nor be heard, and the WAN pool never converges.
//! The deliberate bug `keyring-use-before-install` sends the three steps back to back without
//! waiting: the agent that took them seals with a key nobody else holds, so the pool cuts it off.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use checker::oracles::{check_blocking_query_latency, check_membership_converges, check_wan_membership_converges, DisturbedSpan, MEMBERSHIP_BOUND_NS, WAKE_BOUND_NS};
use checker::{History, InvariantViolation, Verdict};
use hyper::{Method, StatusCode};
use rand::Rng;

use crate::http_client::request;
use crate::options::Bug;
use crate::workload::{now, ClientSpec, Workload};

/// The key every agent starts with (base64 of 32 bytes).
pub const OLD_KEY: &str = "ERERERERERERERERERERESIiIiIiIiIiIiIiIiIiIiI=";
/// The key the rotation installs and switches to.
pub const NEW_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The client that rotates (the others run KV registers).
const ROTATION_CLIENT: u32 = 1;
/// The rotation starts this long (ms) into the run: while the cluster forms or later.
const START_MS: std::ops::Range<u64> = 2_000..10_000;
/// Send a step again when it is not confirmed within this.
const RESEND_AFTER: Duration = Duration::from_secs(6);
/// Pause between two keyring reads (and after a refused send).
const POLL: Duration = Duration::from_millis(500);
/// How long after the final heal the rotation may take to finish.
const ROTATION_BOUND: Duration = Duration::from_secs(30);
/// Deadline of one keyring request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// The scenario's gossip configuration: `-encrypt=`[`OLD_KEY`] on `gossip-keyring`, the default
/// elsewhere.
pub fn gossip_config(scenario: &str) -> node::gossip::GossipConfig {
    let encrypt = (scenario == "gossip-keyring").then(|| node::gossip::keyring::GossipKey::parse(OLD_KEY).expect("a valid key"));
    node::gossip::GossipConfig { encrypt, ..Default::default() }
}

/// The rotation's steps: (method, key, done when the list shows ...).
const STEPS: [(&str, &str); 3] = [("POST", NEW_KEY), ("PUT", NEW_KEY), ("DELETE", OLD_KEY)];

/// See the module docs. The rotation's progress lives in the history
/// ([`checker::KeyringRotation`]), where the fault-phase client and the final reads share it
/// and the judge reads it.
#[derive(Default)]
pub struct GossipKeyring {
    /// Whether the rotation skips its waits (the deliberate bug), as the rotation client saw it.
    buggy: Rc<std::cell::Cell<bool>>,
}

impl Workload for GossipKeyring {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::GossipKeyring.name()
    }
    fn object(&self) -> &'static str {
        "kv"
    }
    fn client(&self, mut spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
        if spec.id != ROTATION_CLIENT {
            return Box::pin(crate::workload::run_client(spec));
        }
        let buggy = spec.bugs.contains(&Bug::KeyringUseBeforeInstall);
        self.buggy.set(buggy);
        Box::pin(async move {
            spec.history.borrow_mut().keyring_rotation.get_or_insert_with(Default::default);
            tokio::time::sleep(Duration::from_millis(spec.rng.gen_range(START_MS))).await;
            let first = spec.rng.gen_range(0..spec.servers.len());
            rotate(&spec.servers, first, &spec.history, buggy, spec.until).await;
            Ok(())
        })
    }
    fn check(&self, history: &History, budget_per_object: Duration) -> Vec<(String, Verdict)> {
        checker::check_history(history, budget_per_object)
    }
    fn oracle_names(&self) -> &'static str {
        crate::workload::KvRegister.oracle_names()
    }
    fn final_reads(&self, servers: Vec<(String, SocketAddr)>, keys: Vec<String>, history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>> {
        let buggy = self.buggy.get();
        Box::pin(async move {
            crate::final_reads::final_kv_reads(servers.clone(), keys, history.clone()).await;
            rotate(&servers, 0, &history, buggy, now() + ROTATION_BOUND).await;
            crate::gossip_workload::poll_membership(servers.clone(), history.clone()).await;
            // The WAN pool's rounds, kept apart so each pool must converge on its own.
            let wan = Rc::new(RefCell::new(History::default()));
            let suffix = format!(".{}", crate::wan_workload::SIM_DATACENTER);
            crate::gossip_workload::poll_pool(servers, wan.clone(), Some(&suffix)).await;
            history.borrow_mut().wan_membership = std::mem::take(&mut wan.borrow_mut().membership);
        })
    }
    fn final_reads_bound(&self) -> Duration {
        crate::final_reads::AGREEMENT_BOUND + ROTATION_BOUND + 2 * crate::gossip_workload::POLL_BOUND
    }
    /// Blocking-query latency as for KV; the rotation completed; membership converged within
    /// the bound of the final heal or of the rotation's end, whichever came later.
    fn liveness_oracles(&self, history: &History, disturbed: &[DisturbedSpan]) -> Vec<InvariantViolation> {
        let mut out = check_blocking_query_latency(history, disturbed, WAKE_BOUND_NS);
        let heal_ns = disturbed.last().map(|d| d.0).unwrap_or(0);
        let r = history.keyring_rotation.clone().unwrap_or_default();
        match r.done_at_ns {
            Some(done) => {
                out.extend(check_membership_converges(history, heal_ns.max(done), MEMBERSHIP_BOUND_NS));
                out.extend(check_wan_membership_converges(history, heal_ns.max(done), MEMBERSHIP_BOUND_NS));
            }
            None => out.push(InvariantViolation::new(
                "keyring_rotation_completes",
                format!("the key rotation stopped after {} of 3 steps, {}s after the final heal", r.steps_done, ROTATION_BOUND.as_secs()),
                Vec::new(),
            )),
        }
        out
    }
    fn liveness_oracle_names(&self) -> &'static str {
        "blocking queries answer within 2s of a change, the key rotation completes within 30s of the heal, LAN and WAN membership converge within 30s of the heal and the rotation"
    }
}

/// How many steps the history shows confirmed.
fn steps_done(history: &Rc<RefCell<History>>) -> usize {
    history.borrow().keyring_rotation.as_ref().map_or(0, |r| r.steps_done as usize)
}

/// Carries out the steps not yet done, until `until`; agents are tried from `first` on. The
/// fault-phase client and the final reads may overlap: a step is recorded done at most once.
async fn rotate(servers: &[(String, SocketAddr)], first: usize, history: &Rc<RefCell<History>>, buggy: bool, until: Duration) {
    let mut next = first;
    while steps_done(history) < STEPS.len() && now() < until {
        let step = steps_done(history);
        let (method, key) = STEPS[step];
        if !send_step(servers, &mut next, method, key).await {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let resend_at = now() + RESEND_AFTER;
        let mut confirmed = buggy;
        while !confirmed && now() < resend_at.min(until) {
            tokio::time::sleep(POLL).await;
            confirmed = keyring_of(servers).await.is_some_and(|list| list.iter().all(|entry| step_done(step, entry, servers.len())));
        }
        if confirmed {
            let mut h = history.borrow_mut();
            let r = h.keyring_rotation.get_or_insert_with(Default::default);
            if r.steps_done as usize == step {
                r.steps_done += 1;
                if r.steps_done as usize == STEPS.len() {
                    r.done_at_ns = Some(now().as_nanos() as u64);
                }
            }
        }
    }
}

/// Sends one step to the agents in turn from `next` until one accepts; `next` then names it, so
/// the following steps go to the same agent while it answers.
async fn send_step(servers: &[(String, SocketAddr)], next: &mut usize, method: &str, key: &str) -> bool {
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    let body = serde_json::json!({ "Key": key }).to_string().into_bytes();
    for i in 0..servers.len() {
        let at = (*next + i) % servers.len();
        let sent = tokio::time::timeout(REQUEST_TIMEOUT, request(servers[at].1, method.clone(), "/v1/operator/keyring", body.clone())).await;
        if matches!(sent, Ok(Ok(r)) if r.status == StatusCode::OK) {
            *next = at;
            return true;
        }
    }
    false
}

/// The keyring list (the WAN pool's entry, then the LAN pool's) from the first agent that
/// answers.
async fn keyring_of(servers: &[(String, SocketAddr)]) -> Option<Vec<serde_json::Value>> {
    for (_, addr) in servers {
        let got = tokio::time::timeout(REQUEST_TIMEOUT, request(*addr, Method::GET, "/v1/operator/keyring", Vec::new())).await;
        if let Ok(Ok(r)) = got {
            if r.status == StatusCode::OK {
                if let Ok(v) = serde_json::from_slice::<Vec<serde_json::Value>>(&r.body) {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// Whether `list` (one pool's entry) shows step `step` done on all `n` agents.
fn step_done(step: usize, list: &serde_json::Value, n: usize) -> bool {
    let all = |field: &str, key: &str| list[field][key].as_u64() == Some(n as u64);
    list["NumNodes"].as_u64() == Some(n as u64)
        && match step {
            0 => all("Keys", NEW_KEY),
            1 => all("PrimaryKeys", NEW_KEY),
            _ => list["Keys"].get(OLD_KEY).is_none() && all("Keys", NEW_KEY),
        }
}
