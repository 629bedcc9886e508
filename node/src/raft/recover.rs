//! Manual outage recovery: Consul's `peers.json`.
//!
//! When a cluster has lost its quorum for good (a majority of servers destroyed), Raft cannot
//! change its membership: that needs the quorum that is gone. Consul's procedure is to stop every
//! surviving server, write the same `peers.json` listing the survivors into each one's data dir,
//! and start them. On start a server finds the file and rewrites its own Raft state before Raft
//! runs (hashicorp/raft's `RecoverCluster`): it applies every entry of its log, even ones not known
//! to be committed (a committed entry may be among them, and the survivors' logs are all that is
//! left), takes a snapshot at its last log index whose membership is the listed servers, drops the
//! log, and deletes the file. The survivors then elect a leader among themselves, the most
//! up-to-date log winning as always, and the others catch up from it.
//!
//! The file is Consul's version-3 format, one object per server:
//! `[{"id": "<server ID as list-peers prints it>", "address": "ip:port", "non_voter": false}]`.
//! Concord's data dir is flat, so the file is `<data-dir>/peers.json` (Consul: `raft/peers.json`).
//!
//! This is unsafe in the way Consul's is: entries that were never committed may become committed,
//! and a server left out of the file must never be started again with its old data.

use std::collections::{BTreeMap, BTreeSet};

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{BasicNode, Membership, RaftLogReader, RaftSnapshotBuilder, StoredMembership};
use serde::Deserialize;

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::{LogId, NodeId};
use crate::io::Disk;
use crate::server::membership::server_id;

/// The recovery file's name in the data dir.
pub const PEERS_FILE: &str = "peers.json";

/// One server of `peers.json` (Consul's version-3 format).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerEntry {
    /// The server ID, 16 hex digits, as `concord operator raft list-peers` prints it.
    id: String,
    /// Server RPC address, `ip:port`.
    address: String,
    #[serde(default)]
    non_voter: bool,
}

/// The servers `peers.json` names: every one with its RPC address, and which of them vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPeers {
    pub nodes: BTreeMap<NodeId, BasicNode>,
    pub voters: BTreeSet<NodeId>,
}

/// What a recovery did, for the log and the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The log id the new membership is anchored at (this server's last log entry).
    pub at: LogId,
    /// Entries applied from the log that had not been applied before.
    pub applied: usize,
    pub voters: BTreeSet<NodeId>,
}

/// Parses `peers.json`. Errors name the problem: not JSON, the old address-only format, an empty
/// list, an ID that is not 16 hex digits, a bad address, a duplicate ID, no voter.
pub fn parse_peers(bytes: &[u8]) -> Result<RecoveryPeers, String> {
    if serde_json::from_slice::<Vec<String>>(bytes).is_ok_and(|old| !old.is_empty()) {
        return Err("peers.json uses the old address-only format: give each server as {\"id\", \"address\", \"non_voter\"}".into());
    }
    let entries: Vec<PeerEntry> = serde_json::from_slice(bytes).map_err(|e| format!("peers.json is not valid: {e}"))?;
    if entries.is_empty() {
        return Err("peers.json lists no servers".into());
    }
    let mut peers = RecoveryPeers { nodes: BTreeMap::new(), voters: BTreeSet::new() };
    for e in entries {
        let id = u64::from_str_radix(&e.id, 16)
            .ok()
            .filter(|_| e.id.len() == 16)
            .ok_or_else(|| format!("peers.json: server ID {:?} is not 16 hex digits (as list-peers prints it)", e.id))?;
        e.address
            .parse::<std::net::SocketAddr>()
            .map_err(|_| format!("peers.json: address {:?} of server {} is not ip:port", e.address, e.id))?;
        if peers.nodes.insert(id, BasicNode { addr: e.address }).is_some() {
            return Err(format!("peers.json: server ID {} is listed twice", e.id));
        }
        if !e.non_voter {
            peers.voters.insert(id);
        }
    }
    if peers.voters.is_empty() {
        return Err("peers.json lists no voter".into());
    }
    Ok(peers)
}

/// Runs the recovery if `peers.json` is in the data dir; `Ok(None)` when it is not. Must run after
/// the log and state machine are opened and before Raft starts on them. On success the file is
/// removed (durably), so the next start is an ordinary one.
///
/// Errors (the server must not start; the file is left in place): the file is invalid, does not
/// list this server (`me`), this server has no Raft state to recover, or storage fails.
pub async fn recover_if_asked(
    disk: &dyn Disk,
    log: &mut LogStore,
    sm: &mut StateMachine,
    me: NodeId,
) -> Result<Option<Recovered>, String> {
    let Some(bytes) = disk.read(PEERS_FILE).await.map_err(|e| format!("reading peers.json: {e}"))? else {
        return Ok(None);
    };
    let peers = parse_peers(&bytes)?;
    if !peers.nodes.contains_key(&me) {
        return Err(format!("peers.json does not list this server (ID {})", server_id(me)));
    }
    let recovered = recover(log, sm, &peers).await?;
    disk.remove(PEERS_FILE).await.map_err(|e| format!("removing peers.json: {e}"))?;
    disk.sync_dir().await.map_err(|e| format!("removing peers.json: {e}"))?;
    Ok(Some(recovered))
}

/// Applies the whole log, anchors `peers`' membership at the last log id in a durable snapshot,
/// then purges the log up to it.
async fn recover(log: &mut LogStore, sm: &mut StateMachine, peers: &RecoveryPeers) -> Result<Recovered, String> {
    let storage = |e: super::StorageError| format!("recovering from peers.json: {e}");
    let state = log.get_log_state().await.map_err(storage)?;
    let (applied, _) = sm.applied_state().await.map_err(storage)?;
    let last = match (state.last_log_id, applied) {
        (Some(l), Some(a)) => l.max(a),
        (l, a) => l.or(a).ok_or("this server has no Raft state to recover: start it without peers.json, and it joins the recovered servers")?,
    };
    let from = applied.map_or(0, |a| a.index + 1);
    let entries = if from <= last.index { log.try_get_log_entries(from..=last.index).await.map_err(storage)? } else { Vec::new() };
    let count = entries.len();
    sm.apply(entries).await.map_err(storage)?;
    let membership = Membership::new(vec![peers.voters.clone()], peers.nodes.clone());
    sm.set_membership(StoredMembership::new(Some(last), membership)).map_err(storage)?;
    sm.build_snapshot().await.map_err(storage)?;
    if state.last_log_id.is_some_and(|l| Some(l) > state.last_purged_log_id) {
        log.purge(last).await.map_err(storage)?;
    }
    Ok(Recovered { at: last, applied: count, voters: peers.voters.clone() })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use openraft::{CommittedLeaderId, Entry, EntryPayload};

    use super::*;
    use crate::io::mem::MemDisk;
    use crate::io::{NoTrace, TraceSink};
    use crate::raft::state_machine::SharedState;
    use crate::structs::{Command, DirEntry, KvsOp, KvsRequest};

    fn no_trace() -> Arc<dyn TraceSink> {
        Arc::new(NoTrace)
    }

    fn ids(n: &[NodeId]) -> BTreeSet<NodeId> {
        n.iter().copied().collect()
    }

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn peers_json(servers: &[(NodeId, &str)]) -> Vec<u8> {
        let list: Vec<_> = servers.iter().map(|(id, a)| serde_json::json!({"id": server_id(*id), "address": a})).collect();
        serde_json::to_vec(&list).unwrap()
    }

    async fn open(disk: &Arc<MemDisk>) -> (LogStore, StateMachine, Arc<SharedState>) {
        let (log, _) = LogStore::open(disk.clone(), no_trace(), "s1".into()).await.unwrap();
        let shared = Arc::new(SharedState::default());
        let sm = StateMachine::open(shared.clone(), disk.clone(), no_trace(), "s1".into()).await.unwrap();
        (log, sm, shared)
    }

    fn set(key: &str, value: &str) -> Command {
        let dir_ent = DirEntry { key: key.into(), value: value.as_bytes().to_vec().into(), ..Default::default() };
        Command::kvs(&KvsRequest { op: KvsOp::Set, dir_ent }).unwrap()
    }

    #[test]
    fn peers_json_errors_name_the_problem() {
        let cases: &[(&str, &str)] = &[
            (r#"["10.0.0.1:8300"]"#, "old address-only format"),
            ("[]", "no servers"),
            ("{", "not valid"),
            (r#"[{"id":"xyz","address":"10.0.0.1:8300"}]"#, "16 hex digits"),
            (r#"[{"id":"00000000000000ab","address":"nowhere"}]"#, "not ip:port"),
            (r#"[{"id":"00000000000000ab","address":"10.0.0.1:8300","non_voter":true}]"#, "no voter"),
            (r#"[{"id":"00000000000000ab","address":"10.0.0.1:8300"},{"id":"00000000000000ab","address":"10.0.0.2:8300"}]"#, "twice"),
        ];
        for (text, want) in cases {
            let err = parse_peers(text.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
        let ok = parse_peers(br#"[{"id":"00000000000000ab","address":"10.0.0.1:8300"},{"id":"00000000000000cd","address":"10.0.0.2:8300","non_voter":true}]"#).unwrap();
        assert_eq!((ok.nodes.len(), ok.voters), (2, ids(&[0xab])));
    }

    #[tokio::test]
    async fn recovery_applies_the_whole_log_and_anchors_the_listed_membership() {
        let disk = Arc::new(MemDisk::new());
        let (me, gone) = (crate::raft::node_id_for("s1"), crate::raft::node_id_for("s2"));
        {
            let (mut log, mut sm, _) = open(&disk).await;
            let old = Membership::new(vec![ids(&[me, gone])], ());
            let entries = vec![
                Entry { log_id: log_id(1, 1), payload: EntryPayload::Membership(old) },
                Entry { log_id: log_id(1, 2), payload: EntryPayload::Normal(set("applied", "a")) },
                // Never applied (perhaps never committed): recovery applies it, as Consul does.
                Entry { log_id: log_id(2, 3), payload: EntryPayload::Normal(set("tail", "t")) },
            ];
            crate::raft::log_store::tests::append_direct(&mut log, entries.clone()).await;
            sm.apply(entries[..2].to_vec()).await.unwrap();
        }
        disk.write(PEERS_FILE, &peers_json(&[(me, "127.0.0.1:8300")])).await.unwrap();

        let (mut log, mut sm, shared) = open(&disk).await;
        let done = recover_if_asked(disk.as_ref(), &mut log, &mut sm, me).await.unwrap().expect("recovered");
        // No snapshot was taken, so the state machine reopens empty and all three entries apply.
    assert_eq!((done.at, done.applied, done.voters.clone()), (log_id(2, 3), 3, ids(&[me])));
        assert!(disk.read(PEERS_FILE).await.unwrap().is_none(), "peers.json is consumed");

        // A fresh start sees the recovered state: everything applied, the new membership, no log.
        drop((log, sm, shared));
        let (mut log, mut sm, shared) = open(&disk).await;
        let (applied, membership) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(2, 3)));
        assert_eq!(membership.membership().voter_ids().collect::<BTreeSet<_>>(), ids(&[me]));
        let st = log.get_log_state().await.unwrap();
        assert_eq!((st.last_purged_log_id, st.last_log_id), (Some(log_id(2, 3)), Some(log_id(2, 3))));
        let state = shared.read().unwrap();
        assert!(state.store.kv_get("applied").0.is_some() && state.store.kv_get("tail").0.is_some());
        drop(state);
        // Nothing to do on the next start.
        assert_eq!(recover_if_asked(disk.as_ref(), &mut log, &mut sm, me).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_server_left_out_of_peers_json_or_without_state_refuses_to_start() {
        let disk = Arc::new(MemDisk::new());
        let me = crate::raft::node_id_for("s1");
        disk.write(PEERS_FILE, &peers_json(&[(crate::raft::node_id_for("s2"), "127.0.0.1:8300")])).await.unwrap();
        let (mut log, mut sm, _) = open(&disk).await;
        let err = recover_if_asked(disk.as_ref(), &mut log, &mut sm, me).await.unwrap_err();
        assert!(err.contains("does not list this server"), "{err}");
        disk.write(PEERS_FILE, &peers_json(&[(me, "127.0.0.1:8300")])).await.unwrap();
        let err = recover_if_asked(disk.as_ref(), &mut log, &mut sm, me).await.unwrap_err();
        assert!(err.contains("no Raft state"), "{err}");
        assert!(disk.read(PEERS_FILE).await.unwrap().is_some(), "a refused recovery keeps the file");
    }
}
