//! The pool's keyring, cluster-wide: keyring operations spread by gossip and what every member
//! reports holding (Consul `agent/keyring.go` and Serf's `KeyManager`, which run a Serf query per
//! operation and count the members' answers).
//!
//! Concord does it with two broadcast items instead of queries. A [`KeyringOp`] (install, use or
//! remove one key) is applied by the agent that received the API call, then gossiped to every
//! member, which applies it too; its origin broadcasts it again for the user-event re-fire window
//! (it rides the same path). Operations carry a Lamport time: per key, and for `use` across keys,
//! the newest operation wins, so a late repeat never undoes a newer change; an operation a member
//! cannot apply yet (`use` of a key it has not got) is not marked seen, so a repeat retries it.
//! A [`KeyringReport`] is a member's keyring as it stands, broadcast for
//! [`REPORT_WINDOW`] after start and after every change; `-list` counts, over the members this
//! agent sees live, who reported which key (`NumNodes` is the live members; a member with no
//! report yet counts for no key). Everything is sealed with the sender's primary key, so a member
//! that lacks it hears nothing: operators install a key everywhere before using it (`-list` shows
//! when every member has it), as with Consul.
//!
//! Owns: the keyring behind [`super::driver`]'s seal and open, the decrypt-failure counter, and
//! the keyring file's pending writes. Never does: I/O (the driver persists and broadcasts).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::keyring::{GossipKey, KeyError, Keyring, NONCE_BYTES};

/// For how long after start or a change a member keeps broadcasting its keyring report.
pub const REPORT_WINDOW: Duration = Duration::from_secs(60);
/// How many operation IDs a member remembers to drop repeats.
const SEEN_OPS_LIMIT: usize = 1024;
/// A pool's keyring file in the data dir, and where it is written before its atomic rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyringFile {
    pub name: &'static str,
    pub tmp: &'static str,
}

/// The LAN pool's keyring file (Consul: `serf/local.keyring`; Concord's data dir is flat).
pub const LAN_KEYRING_FILE: KeyringFile = KeyringFile { name: "local.keyring", tmp: "local.keyring.tmp" };
/// The WAN pool's keyring file, servers only (Consul: `serf/remote.keyring`).
pub const WAN_KEYRING_FILE: KeyringFile = KeyringFile { name: "remote.keyring", tmp: "remote.keyring.tmp" };

/// A keyring operation (Consul `keyring -install|-use|-remove`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyOpKind {
    Install,
    Use,
    Remove,
}

/// One keyring operation as gossiped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringOp {
    /// `<origin node>/<Lamport time>`: unique per origin.
    pub id: String,
    pub ltime: u64,
    pub kind: KeyOpKind,
    /// The key, base64.
    pub key: String,
}

/// A member's keyring as it reported it: (generation, version) orders one member's reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringReport {
    pub node: String,
    /// The member's identity generation (a restarted agent starts a higher one).
    pub generation: u64,
    /// Bumped on every change of its keyring.
    pub version: u64,
    /// Base64 keys, primary first.
    pub keys: Vec<String>,
}

/// Consul's keyring list entry (`api.KeyringResponse`), one per pool: the WAN pool's (servers)
/// first, then the LAN pool's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyringResponse {
    #[serde(rename = "WAN")]
    pub wan: bool,
    #[serde(rename = "Datacenter")]
    pub datacenter: String,
    #[serde(rename = "Segment")]
    pub segment: String,
    /// Key → how many live members hold it.
    #[serde(rename = "Keys")]
    pub keys: BTreeMap<String, usize>,
    /// Key → how many live members use it as their primary.
    #[serde(rename = "PrimaryKeys")]
    pub primary_keys: BTreeMap<String, usize>,
    #[serde(rename = "NumNodes")]
    pub num_nodes: usize,
}

#[derive(Default)]
struct Inner {
    ring: Option<Keyring>,
    /// Lamport clock over keyring operations.
    clock: u64,
    /// Per key, the time of the newest operation applied to it.
    last_op: BTreeMap<String, u64>,
    /// The time of the newest `use` applied.
    last_use: u64,
    seen: BTreeSet<String>,
    seen_order: VecDeque<String>,
    /// The newest report of every member, this agent's own included.
    reports: BTreeMap<String, KeyringReport>,
    /// Broadcast this agent's report until then.
    report_until: Option<Instant>,
    /// A change not yet written to the keyring file.
    file_dirty: bool,
}

/// The pool's keyring and what members reported (see the module docs).
pub struct KeyringState {
    node: String,
    generation: u64,
    inner: Mutex<Inner>,
    /// Datagrams dropped because no installed key authenticated them
    /// (`consul_memberlist_decrypt_failed_total`).
    pub decrypt_failures: Counter,
}

impl KeyringState {
    /// The keyring of the member `node` at `generation`; `ring` `None`: encryption off (then
    /// every keyring call is refused and datagrams travel in the clear). `write_file`: the
    /// keyring did not come from the keyring file, so write it there.
    pub fn new(node: &str, generation: u64, ring: Option<Keyring>, decrypt_failures: Counter, write_file: bool) -> Self {
        let s = Self { node: node.to_string(), generation, inner: Mutex::new(Inner { ring, ..Default::default() }), decrypt_failures };
        s.changed(&mut s.lock(), write_file);
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether gossip is encrypted.
    pub fn enabled(&self) -> bool {
        self.lock().ring.is_some()
    }

    /// Seals an outgoing datagram with the primary key (in the clear when encryption is off).
    pub fn seal(&self, nonce: [u8; NONCE_BYTES], plain: Vec<u8>) -> Vec<u8> {
        match &self.lock().ring {
            Some(ring) => ring.seal(nonce, &plain),
            None => plain,
        }
    }

    /// Opens an incoming datagram (as is when encryption is off). Errors: no installed key
    /// authenticates it; the caller drops it and counts it.
    pub fn open<'a>(&self, datagram: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>, super::keyring::OpenError> {
        match &self.lock().ring {
            Some(ring) => ring.open(datagram).map(std::borrow::Cow::Owned),
            None => Ok(std::borrow::Cow::Borrowed(datagram)),
        }
    }

    /// Records this agent's new keyring: a fresh report to broadcast, the file to write.
    fn changed(&self, inner: &mut Inner, persist: bool) {
        let Some(ring) = &inner.ring else { return };
        let version = inner.reports.get(&self.node).map_or(0, |r| r.version + 1);
        let report = KeyringReport { node: self.node.clone(), generation: self.generation, version, keys: ring.keys().map(GossipKey::to_base64).collect() };
        inner.reports.insert(self.node.clone(), report);
        inner.report_until = Some(Instant::now() + REPORT_WINDOW);
        inner.file_dirty |= persist;
    }

    /// Applies an operation from the API here and returns it for gossip. Errors: encryption
    /// off, a bad key, `use` of a key not installed, `remove` of the primary (Consul's messages).
    pub fn local_op(&self, kind: KeyOpKind, key: &str) -> Result<KeyringOp, String> {
        let parsed = GossipKey::parse(key).map_err(|e| e.to_string())?;
        let mut inner = self.lock();
        if inner.ring.is_none() {
            return Err(NOT_ENABLED.to_string());
        }
        inner.clock += 1;
        let ltime = inner.clock;
        let op = KeyringOp { id: format!("{}/{ltime}", self.node), ltime, kind, key: parsed.to_base64() };
        self.apply(&mut inner, &op, &parsed).map_err(|e| e.to_string())?;
        remember(&mut inner, op.id.clone());
        Ok(op)
    }

    /// Applies an operation gossiped by a member. Returns whether it is new to this agent (then
    /// it is gossiped on). One this agent cannot apply yet is not remembered, so a repeat retries.
    pub fn receive_op(&self, op: &KeyringOp) -> bool {
        let mut inner = self.lock();
        if inner.ring.is_none() || inner.seen.contains(&op.id) {
            return false;
        }
        inner.clock = inner.clock.max(op.ltime);
        let Ok(key) = GossipKey::parse(&op.key) else { return false };
        match self.apply(&mut inner, op, &key) {
            Ok(()) => {
                remember(&mut inner, op.id.clone());
                true
            }
            Err(e) => {
                tracing::debug!(node = %self.node, op = ?op.kind, error = %e, "keyring operation not applied yet");
                false
            }
        }
    }

    /// Applies `op` unless a newer one on its key (or a newer `use`) was applied already.
    fn apply(&self, inner: &mut Inner, op: &KeyringOp, key: &GossipKey) -> Result<(), KeyError> {
        let stale = inner.last_op.get(&op.key).is_some_and(|t| *t >= op.ltime) || (op.kind == KeyOpKind::Use && inner.last_use >= op.ltime);
        if stale {
            return Ok(());
        }
        let Some(ring) = inner.ring.as_mut() else { return Ok(()) };
        let changed = match op.kind {
            KeyOpKind::Install => ring.install(key.clone()),
            KeyOpKind::Use => ring.use_key(key)?,
            KeyOpKind::Remove => ring.remove(key)?,
        };
        inner.last_op.insert(op.key.clone(), op.ltime);
        if op.kind == KeyOpKind::Use {
            inner.last_use = op.ltime;
        }
        if changed {
            tracing::info!(node = %self.node, op = ?op.kind, "gossip keyring changed");
            self.changed(inner, true);
        }
        Ok(())
    }

    /// Keeps a member's report if it is newer than the one held. Returns whether it was.
    pub fn receive_report(&self, report: &KeyringReport) -> bool {
        let mut inner = self.lock();
        if report.node == self.node || inner.ring.is_none() {
            return false;
        }
        let newer = inner.reports.get(&report.node).is_none_or(|r| (r.generation, r.version) < (report.generation, report.version));
        if newer {
            inner.reports.insert(report.node.clone(), report.clone());
        }
        newer
    }

    /// This agent's report while it is within [`REPORT_WINDOW`] of a change, for broadcast.
    pub fn report_due(&self, now: Instant) -> Option<KeyringReport> {
        let inner = self.lock();
        inner.report_until.filter(|until| now <= *until)?;
        inner.reports.get(&self.node).cloned()
    }

    /// The keyring file's new contents, once per change.
    pub fn take_file(&self) -> Option<Vec<u8>> {
        let mut inner = self.lock();
        if !std::mem::take(&mut inner.file_dirty) {
            return None;
        }
        inner.ring.as_ref().map(Keyring::to_file)
    }

    /// Consul's `-list` entry for this pool (`wan`: the WAN pool's): key counts over `live`
    /// members (this agent included). Errors: encryption off.
    pub fn list(&self, datacenter: &str, wan: bool, live: &[String]) -> Result<KeyringResponse, String> {
        let inner = self.lock();
        if inner.ring.is_none() {
            return Err(NOT_ENABLED.to_string());
        }
        let mut entry = KeyringResponse { wan, datacenter: datacenter.to_string(), segment: String::new(), keys: BTreeMap::new(), primary_keys: BTreeMap::new(), num_nodes: live.len() };
        for report in live.iter().filter_map(|n| inner.reports.get(n)) {
            for (i, key) in report.keys.iter().enumerate() {
                *entry.keys.entry(key.clone()).or_default() += 1;
                if i == 0 {
                    *entry.primary_keys.entry(key.clone()).or_default() += 1;
                }
            }
        }
        Ok(entry)
    }
}

/// The answer to a keyring call on an agent without `-encrypt`.
pub const NOT_ENABLED: &str = "Gossip encryption is not enabled on this agent (start it with -encrypt)";

fn remember(inner: &mut Inner, id: String) {
    if inner.seen.insert(id.clone()) {
        inner.seen_order.push_back(id);
        if inner.seen_order.len() > SEEN_OPS_LIMIT {
            if let Some(old) = inner.seen_order.pop_front() {
                inner.seen.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(fill: u8) -> String {
        GossipKey::from_bytes(vec![fill; 32]).unwrap().to_base64()
    }

    fn state(node: &str) -> KeyringState {
        KeyringState::new(node, 1, Some(Keyring::new(GossipKey::parse(&b64(1)).unwrap())), Counter::default(), false)
    }

    #[tokio::test]
    async fn operations_apply_on_every_member_in_lamport_order() {
        let (a, b) = (state("a"), state("b"));
        let install = a.local_op(KeyOpKind::Install, &b64(2)).unwrap();
        let use_new = a.local_op(KeyOpKind::Use, &b64(2)).unwrap();
        assert!(!b.receive_op(&use_new), "use before install: not applied, not remembered");
        assert!(b.receive_op(&install));
        assert!(!b.receive_op(&install), "a repeat is dropped");
        assert!(b.receive_op(&use_new), "the repeat of the use now applies");
        let remove_old = a.local_op(KeyOpKind::Remove, &b64(1)).unwrap();
        assert!(b.receive_op(&remove_old));
        let b_keys = b.report_due(Instant::now()).unwrap().keys;
        assert_eq!(b_keys, vec![b64(2)]);
        assert_eq!(a.local_op(KeyOpKind::Remove, &b64(2)).unwrap_err(), "Removing the primary key is not allowed");
        assert_eq!(a.local_op(KeyOpKind::Use, &b64(9)).unwrap_err(), "Requested key is not in the keyring");
        assert!(b.take_file().is_some() && b.take_file().is_none(), "the file is written once per change");
    }

    #[tokio::test]
    async fn the_list_counts_live_members_reports() {
        let (a, b) = (state("a"), state("b"));
        a.local_op(KeyOpKind::Install, &b64(2)).unwrap();
        assert!(a.receive_report(&b.report_due(Instant::now()).unwrap()));
        let live = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let list = vec![a.list("dc1", false, &live).unwrap()];
        insta::assert_json_snapshot!(list);
        let off = KeyringState::new("x", 1, None, Counter::default(), false);
        assert_eq!(off.list("dc1", false, &live).unwrap_err(), NOT_ENABLED);
    }
}
