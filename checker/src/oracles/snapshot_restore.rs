//! Snapshot restore: a `PUT /v1/snapshot` replaces the whole state with an archive saved earlier
//! (`GET /v1/snapshot`), through one Raft entry every server applies (Consul HTTP API,
//! "Snapshots"). Three judgements, each sound (it flags only what no legal execution explains):
//!
//! 1. **The restore is a write of the archive to every key** ([`with_restores`]). Projected on one
//!    key, a restore attempt is a write of the archive's value there (a delete where the archive
//!    has none), with the attempt's invocation, completion and outcome; an unknown-outcome attempt
//!    (e.g. one tried on the minority side of a partition) may take effect at any time after its
//!    invocation or never. The per-key linearizability search then judges reads and writes
//!    around the restore: a key that kept a value written before an acknowledged restore, or an
//!    archive value that reappears without a restore, is a violation. Per-key linearizability is a
//!    necessary condition of linearizability of the whole store (Herlihy & Wing 1990, locality),
//!    so this never flags a correct run; a restore applied to some keys and not others shows as
//!    soon as one key's reads contradict it.
//! 2. **The KV tables' index never goes backwards on a server, and passes the archive's**
//!    ([`check_kv_index`]). Consul lets one key's `X-Consul-Index` go backwards across a restore
//!    (its blocking-query guide: "If a raft snapshot is restored on the servers with older
//!    version of the data", clients must reset their index), since restored rows keep their
//!    ModifyIndex; so [`super::index_monotonic`] does not apply here. But the restore is a Raft
//!    entry later than everything in the archive, and Concord moves every table's index to it
//!    (`Store::restored_at`), so the tables' index, read with `?stale` from one server, never
//!    decreases (servers only apply forward; no server restarts in this scenario), and any
//!    leader read invoked after an acknowledged restore shows an index past the archive's.
//! 3. **Every server converged on the same state after the heal** ([`check_converged`]): the
//!    final `?stale` round of every key on every server (`sim::final_reads`) agrees.
//!
//! History encoding: restore attempts are ops on [`RESTORE_KEY`], `write <archive index>`; reads
//! of the KV tables' index are ops on [`KV_INDEX_KEY`], `read` answering the index; the archives
//! are [`History::snapshots`]. Keys under [`PSEUDO_PREFIX`] are not KV keys.

use std::collections::BTreeMap;

use super::{describe, secs};
use crate::history::{History, OkResult, Op, OpFn, Outcome, ReadMode, SavedSnapshot};
use crate::invariant::InvariantViolation;

/// The prefix of the history's pseudo-keys (never a workload KV key).
pub const PSEUDO_PREFIX: &str = "snapshot/";
/// Restore attempts: `write <archive index>`.
pub const RESTORE_KEY: &str = "snapshot/restore";
/// Reads of the KV tables' `X-Consul-Index` (a list of an empty prefix): `read` → index.
pub const KV_INDEX_KEY: &str = "snapshot/kv-index";
/// Name used in [`InvariantViolation::invariant`] by [`check_kv_index`].
pub const KV_INDEX_MONOTONIC: &str = "kv_table_index_monotonic";
/// Name used in [`InvariantViolation::invariant`] by [`check_kv_index`].
pub const RESTORE_INDEX_PAST_ARCHIVE: &str = "restore_index_past_archive";
/// Name used in [`InvariantViolation::invariant`] by [`check_converged`].
pub const SERVERS_CONVERGED: &str = "servers_converged_after_heal";

/// Whether `key` is one of the history's pseudo-keys rather than a KV key.
pub fn is_pseudo_key(key: &str) -> bool {
    key.starts_with(PSEUDO_PREFIX)
}

/// The history without its pseudo-key ops (op ids kept), for the KV oracles.
pub fn kv_only(history: &History) -> History {
    History { ops: history.ops.iter().filter(|o| !is_pseudo_key(&o.key)).cloned().collect(), ..history.clone() }
}

fn snapshot_at(history: &History, index: u64) -> Option<&SavedSnapshot> {
    history.snapshots.iter().find(|s| s.index == index)
}

/// The restore attempts that may have taken effect, with the archive each restores.
fn attempts(history: &History) -> Vec<(&Op, Option<&SavedSnapshot>)> {
    history
        .ops
        .iter()
        .filter(|o| o.key == RESTORE_KEY && o.outcome != Outcome::Fail)
        .filter_map(|o| match o.f {
            OpFn::Write(index) => Some((o, snapshot_at(history, index))),
            _ => None,
        })
        .collect()
}

/// The KV history with every restore attempt that may have taken effect projected onto each key
/// of its archive as a write of the archived value (a delete where it holds none), keeping the
/// attempt's id, client, times and outcome (judgement 1 of the module docs).
pub fn with_restores(history: &History) -> History {
    let mut out = kv_only(history);
    for (attempt, snapshot) in attempts(history) {
        let Some(snapshot) = snapshot else { continue };
        for (key, value) in &snapshot.kv {
            let f = match value {
                Some(v) => OpFn::Write(*v),
                None => OpFn::Delete,
            };
            let via = attempt.server.as_deref().unwrap_or("?");
            out.ops.push(Op {
                key: key.clone(),
                f,
                server: Some(format!("{via} (restore of snapshot@{})", snapshot.index)),
                mode: ReadMode::Default,
                ..attempt.clone()
            });
        }
    }
    out.ops.sort_by_key(|o| (o.invoke_ns, o.id));
    out
}

/// An ok read of the KV tables' index: (op, index).
fn index_reads(history: &History) -> impl Iterator<Item = (&Op, u64)> {
    history.ops.iter().filter(|o| o.key == KV_INDEX_KEY).filter_map(|o| match o.outcome {
        Outcome::Ok(OkResult::Read(Some(i))) => Some((o, i)),
        _ => None,
    })
}

/// Judgement 2 of the module docs: per server, `?stale` reads of the KV tables' index never go
/// backwards; a leader read invoked after an acknowledged restore shows an index past the
/// archive's. One violation per backwards step and per read behind its restore.
pub fn check_kv_index(history: &History) -> Vec<InvariantViolation> {
    let mut out = Vec::new();
    let mut last: BTreeMap<&str, (&Op, u64)> = BTreeMap::new();
    let mut stale: Vec<(&Op, u64)> = index_reads(history).filter(|(o, _)| o.mode == ReadMode::Stale).collect();
    stale.sort_by_key(|(o, _)| (o.complete_ns, o.id));
    for (op, index) in stale {
        let server = op.server.as_deref().unwrap_or("?");
        if let Some(&(before, seen)) = last.get(server) {
            if index < seen && before.complete_ns < op.invoke_ns {
                out.push(InvariantViolation::new(
                    KV_INDEX_MONOTONIC,
                    format!("{server}'s KV tables' index went back from {seen} to {index}"),
                    vec![describe(before), describe(op)],
                ));
            }
        }
        if last.get(server).is_none_or(|&(_, seen)| index >= seen) {
            last.insert(server, (op, index));
        }
    }
    let acked: Vec<(&Op, &SavedSnapshot)> = attempts(history)
        .into_iter()
        .filter(|(o, _)| matches!(o.outcome, Outcome::Ok(_)))
        .filter_map(|(o, s)| s.map(|s| (o, s)))
        .collect();
    for (read, index) in index_reads(history).filter(|(o, _)| o.mode != ReadMode::Stale) {
        if let Some((restore, snapshot)) = acked.iter().find(|(r, s)| r.complete_ns < read.invoke_ns && index <= s.index) {
            out.push(InvariantViolation::new(
                RESTORE_INDEX_PAST_ARCHIVE,
                format!(
                    "a read invoked at {} after the restore of snapshot@{} was acknowledged shows the KV tables at index {index}, not past the archive's",
                    secs(read.invoke_ns),
                    snapshot.index
                ),
                vec![describe(restore), describe(read)],
            ));
        }
    }
    out
}

/// Judgement 3 of the module docs: in the final applied-state round (client 0's `?stale` reads),
/// every server that answered holds the same value of each key. One violation per key.
pub fn check_converged(history: &History) -> Vec<InvariantViolation> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for o in &history.ops {
        if o.client == 0 && o.f == OpFn::Read && o.mode == ReadMode::Stale && !is_pseudo_key(&o.key) {
            by_key.entry(o.key.as_str()).or_default().push(o);
        }
    }
    let mut out = Vec::new();
    for (key, reads) in by_key {
        let values: Vec<&Op> = reads.into_iter().filter(|o| matches!(o.outcome, Outcome::Ok(_))).collect();
        let Some(first) = values.first() else { continue };
        if let Some(other) = values.iter().find(|o| o.outcome != first.outcome) {
            out.push(InvariantViolation::new(
                SERVERS_CONVERGED,
                format!("after the heal and the catch-up wait, servers still hold different values of {key}"),
                vec![describe(first), describe(other)],
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::linearizable::check_history;
    use std::time::Duration;

    fn snapshot(kv: &[(&str, Option<u64>)]) -> SavedSnapshot {
        SavedSnapshot { client: 1, index: 5, at_ns: 0, kv: kv.iter().map(|(k, v)| (k.to_string(), *v)).collect() }
    }

    fn restore(invoke_ms: u64, complete_ms: u64, outcome: Outcome) -> Op {
        op(1, RESTORE_KEY, OpFn::Write(5), invoke_ms, complete_ms, outcome)
    }

    fn verdicts(h: &History) -> Vec<bool> {
        check_history(&with_restores(h), Duration::from_secs(5)).into_iter().map(|(_, v)| v.is_linearizable()).collect()
    }

    #[test]
    fn a_restore_rewinds_saved_keys_and_deletes_later_ones() {
        let mut h = history(vec![
            op(2, "a", OpFn::Write(7), 1, 2, DONE),
            op(2, "a", OpFn::Write(8), 10, 11, DONE),
            op(2, "b", OpFn::Write(9), 12, 13, DONE),
            restore(20, 30, DONE),
            op(3, "a", OpFn::Read, 40, 41, Outcome::Ok(OkResult::Read(Some(7)))),
            op(3, "b", OpFn::Read, 42, 43, Outcome::Ok(OkResult::Read(None))),
        ]);
        h.snapshots.push(snapshot(&[("a", Some(7)), ("b", None)]));
        assert_eq!(verdicts(&h), vec![true, true]);
    }

    #[test]
    fn a_restore_that_kept_a_later_key_is_caught() {
        let mut h = history(vec![
            op(2, "b", OpFn::Write(9), 12, 13, DONE),
            restore(20, 30, DONE),
            op(3, "b", OpFn::Read, 42, 43, Outcome::Ok(OkResult::Read(Some(9)))),
        ]);
        h.snapshots.push(snapshot(&[("b", None)]));
        assert_eq!(verdicts(&h), vec![false]);
    }

    #[test]
    fn an_unknown_restore_may_have_happened_or_not() {
        let mut h = history(vec![
            op(2, "b", OpFn::Write(9), 12, 13, DONE),
            restore(20, 30, Outcome::Info),
            op(3, "b", OpFn::Read, 42, 43, Outcome::Ok(OkResult::Read(Some(9)))),
            op(3, "b", OpFn::Read, 44, 45, Outcome::Ok(OkResult::Read(None))),
        ]);
        h.snapshots.push(snapshot(&[("b", None)]));
        assert_eq!(verdicts(&h), vec![true]);
        h.ops[1].outcome = Outcome::Fail;
        assert_eq!(verdicts(&h), vec![false], "a failed restore took no effect");
    }

    fn index_read(server: &str, mode: ReadMode, at_ms: u64, index: u64) -> Op {
        Op { server: Some(server.into()), mode, ..op(1, KV_INDEX_KEY, OpFn::Read, at_ms, at_ms + 1, Outcome::Ok(OkResult::Read(Some(index)))) }
    }

    #[test]
    fn the_tables_index_never_goes_back_and_passes_the_archive_after_a_restore() {
        let mut h = history(vec![
            index_read("s1", ReadMode::Stale, 1, 4),
            restore(10, 20, DONE),
            index_read("s1", ReadMode::Stale, 30, 12),
            index_read("s2", ReadMode::Default, 40, 12),
        ]);
        h.snapshots.push(snapshot(&[]));
        assert!(check_kv_index(&h).is_empty());
        h.ops.push(index_read("s1", ReadMode::Stale, 50, 5));
        h.ops.push(index_read("s2", ReadMode::Default, 60, 5));
        let found: Vec<&str> = check_kv_index(&h).iter().map(|v| v.invariant).collect();
        assert_eq!(found, vec![KV_INDEX_MONOTONIC, RESTORE_INDEX_PAST_ARCHIVE]);
    }

    #[test]
    fn servers_that_disagree_after_the_heal_are_caught() {
        let final_read = |server: &str, v| Op { server: Some(server.into()), mode: ReadMode::Stale, ..op(0, "a", OpFn::Read, 90, 91, Outcome::Ok(OkResult::Read(v))) };
        let h = history(vec![final_read("s1", Some(7)), final_read("s2", Some(7))]);
        assert!(check_converged(&h).is_empty());
        let h = history(vec![final_read("s1", Some(7)), final_read("s2", None)]);
        assert_eq!(check_converged(&h).len(), 1);
    }
}
