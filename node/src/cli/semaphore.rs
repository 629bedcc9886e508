//! `concord lock -n N`: Consul's semaphore recipe (`api/semaphore.go`) over the KV API.
//!
//! Each contender holds its own key `PREFIX/<session>` (acquired with its session, so it
//! vanishes from the live set when the session ends) and competes for a place in the lock
//! document `PREFIX/.lock`, `{"Limit": N, "Holders": {"<session>": true}}`, updated only by CAS.
//! Holders whose contender key is no longer held by their session are pruned by whoever updates
//! the document next. A holder has lost its place when the document no longer names it.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::http_client::{encode_path, HttpClient};
use super::lock_recipe::LockOptions;

/// The lock document (Consul's `semaphoreLock`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct LockDoc {
    #[serde(rename = "Limit")]
    limit: u32,
    #[serde(rename = "Holders")]
    holders: BTreeMap<String, bool>,
}

/// One KV entry under the prefix.
struct Entry {
    key: String,
    session: Option<String>,
    value: Vec<u8>,
    modify_index: u64,
}

fn lock_key(prefix: &str) -> String {
    format!("{prefix}/.lock")
}

/// The entries under `prefix/` and the index, from a (blocking, when `index` > 0) read.
async fn read_prefix(client: &HttpClient, opts: &LockOptions, index: u64) -> Result<(Vec<Entry>, u64), String> {
    let path = format!("/v1/kv/{}/?recurse&index={index}&wait={}", encode_path(&opts.prefix), opts.wait_param());
    let r = client.request(Method::GET, &path, Vec::new()).await?;
    let next = r.index.unwrap_or(0);
    if r.status == StatusCode::NOT_FOUND {
        return Ok((Vec::new(), next));
    }
    if r.status != StatusCode::OK {
        return Err(r.unexpected());
    }
    let list: Vec<serde_json::Value> = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    let entries = list
        .iter()
        .filter_map(|e| {
            let value = match e.get("Value").and_then(|v| v.as_str()) {
                Some(b) => base64::engine::general_purpose::STANDARD.decode(b).ok()?,
                None => Vec::new(),
            };
            Some(Entry {
                key: e.get("Key")?.as_str()?.to_string(),
                session: e.get("Session").and_then(|s| s.as_str()).map(str::to_string),
                value,
                modify_index: e.get("ModifyIndex")?.as_u64()?,
            })
        })
        .collect();
    Ok((entries, next))
}

/// The lock document and its ModifyIndex (0: absent), pruned to live contenders. Errors: an
/// undecodable document, or one with another limit (Consul's "semaphore limit conflict").
fn current_doc(entries: &[Entry], prefix: &str, limit: u32) -> Result<(LockDoc, u64), String> {
    let lock = lock_key(prefix);
    let live: BTreeSet<&str> = entries.iter().filter(|e| e.key != lock).filter_map(|e| e.session.as_deref()).collect();
    let (mut doc, cas) = match entries.iter().find(|e| e.key == lock) {
        Some(e) => (serde_json::from_slice::<LockDoc>(&e.value).map_err(|err| format!("bad semaphore document: {err}"))?, e.modify_index),
        None => (LockDoc { limit, holders: BTreeMap::new() }, 0),
    };
    if doc.limit != limit {
        return Err(format!("semaphore limit conflict (lock: {}, local: {limit})", doc.limit));
    }
    doc.holders.retain(|h, _| live.contains(h.as_str()));
    Ok((doc, cas))
}

async fn cas_doc(client: &HttpClient, prefix: &str, doc: &LockDoc, cas: u64) -> Result<bool, String> {
    let body = serde_json::to_vec(doc).map_err(|e| e.to_string())?;
    let path = format!("/v1/kv/{}?cas={cas}", encode_path(&lock_key(prefix)));
    let r = client.request(Method::PUT, &path, body).await?;
    Ok(r.status == StatusCode::OK && r.text().trim() == "true")
}

/// Takes one of `limit` places: registers as a contender, then adds itself to the lock
/// document by CAS once it has room, waiting in blocking reads while it is full.
pub async fn acquire(client: &HttpClient, opts: &LockOptions, session: &str) -> Result<(), String> {
    let (prefix, limit) = (opts.prefix.as_str(), opts.limit);
    let contender = format!("/v1/kv/{}/{session}?acquire={session}", encode_path(prefix));
    let r = client.request(Method::PUT, &contender, Vec::new()).await?;
    if r.status != StatusCode::OK || r.text().trim() != "true" {
        return Err(format!("could not register as a contender: {}", r.unexpected()));
    }
    let mut index = 0;
    loop {
        let (entries, next) = read_prefix(client, opts, index).await?;
        let (mut doc, cas) = current_doc(&entries, prefix, limit)?;
        if doc.holders.contains_key(session) {
            return Ok(());
        }
        if doc.holders.len() < limit as usize {
            doc.holders.insert(session.to_string(), true);
            if cas_doc(client, prefix, &doc, cas).await? {
                return Ok(());
            }
            index = 0;
        } else {
            index = next;
        }
    }
}

/// Returns when the lock document no longer names `session` (or after `retries` + 1 failed
/// reads in a row).
pub async fn watch(client: &HttpClient, opts: &LockOptions, session: &str) {
    let (mut index, mut failures) = (0, 0);
    loop {
        match read_prefix(client, opts, index).await {
            Ok((entries, next)) => {
                let lock = lock_key(&opts.prefix);
                let held = entries
                    .iter()
                    .find(|e| e.key == lock)
                    .and_then(|e| serde_json::from_slice::<LockDoc>(&e.value).ok())
                    .is_some_and(|d| d.holders.contains_key(session));
                if !held {
                    return;
                }
                index = next;
                failures = 0;
            }
            Err(_) if failures < opts.monitor_retries => {
                failures += 1;
                tokio::time::sleep(opts.monitor_retry_time).await;
            }
            Err(_) => return,
        }
    }
}

/// Gives the place up (CAS, a few tries) and deletes the contender key.
pub async fn release(client: &HttpClient, opts: &LockOptions, session: &str) {
    let (prefix, limit) = (opts.prefix.as_str(), opts.limit);
    for _ in 0..5 {
        let Ok((entries, _)) = read_prefix(client, opts, 0).await else { break };
        let Ok((mut doc, cas)) = current_doc(&entries, prefix, limit) else { break };
        if doc.holders.remove(session).is_none() || cas_doc(client, prefix, &doc, cas).await.unwrap_or(false) {
            break;
        }
    }
    let _ = client.request(Method::DELETE, &format!("/v1/kv/{}/{session}", encode_path(prefix)), Vec::new()).await;
}
