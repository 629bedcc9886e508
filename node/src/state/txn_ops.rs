//! `/v1/txn` operations against the store: KV verbs here, Node/Service/Check verbs in
//! [`super::txn_catalog`], applied in order inside one
//! [`WriteTxn`] (a write transaction) or against a read-only [`Store`] (a read transaction).
//!
//! Source: Consul `agent/consul/state/txn.go` (`txnKVS`, `txnDispatch`, `TxnRW`, `TxnRO`) and
//! `kvs.go` (`kvsCheckIndexTxn`, `kvsCheckSessionTxn`), whose error texts these are. Every
//! operation runs even after one fails, so the answer lists every failure; any failure rolls the
//! whole transaction back. Results: `get`/`get-or-empty` give the entry with its value; the other
//! verbs that name an entry (writes, `check-index`, `check-session`) give it without its value;
//! deletes and `check-not-exists` give nothing; `get-tree` gives every entry under the prefix.

use super::txn_catalog::catalog_read;
use super::store::Store;
use super::txn::WriteTxn;
use crate::structs::{DirEntry, KvsOp, KvsRequest, TxnError, TxnKvOp, TxnKvVerb, TxnOp, TxnResult};

/// What one operation gives back, or why it failed.
type OpOutcome = Result<Vec<TxnResult>, String>;

/// An entry as a result: the value only for the `get` verbs (Consul blanks it otherwise).
fn entry_result(e: &DirEntry, keep_value: bool) -> Vec<TxnResult> {
    let mut e = e.clone();
    if !keep_value {
        e.value.clear();
    }
    vec![TxnResult::Kv(e)]
}

/// A read verb against `store`. `None` for a write verb.
fn kv_read(store: &Store, op: &TxnKvOp) -> Option<OpOutcome> {
    let e = &op.dir_ent;
    let key = e.key.as_str();
    let current = store.kvs.get(key);
    Some(match op.verb {
        TxnKvVerb::Get => match current {
            Some(c) => Ok(entry_result(c, true)),
            None => Err(format!("key {key:?} doesn't exist")),
        },
        TxnKvVerb::GetOrEmpty => Ok(entry_result(current.unwrap_or(&DirEntry { value: bytes::Bytes::new(), ..e.clone() }), true)),
        TxnKvVerb::GetTree => Ok(store.kvs.prefixed(key).map(|c| TxnResult::Kv(c.clone())).collect()),
        TxnKvVerb::CheckIndex => match current {
            None => Err(format!("failed to check index, key {key:?} doesn't exist")),
            Some(c) if c.modify_index != e.modify_index => {
                Err(format!("failed index check for key {key:?}, current modify index {} != {}", c.modify_index, e.modify_index))
            }
            Some(c) => Ok(entry_result(c, false)),
        },
        TxnKvVerb::CheckSession => {
            let want = e.session.as_deref().unwrap_or("");
            match current {
                None => Err(format!("failed to check session, key {key:?} doesn't exist")),
                Some(c) if c.session.as_deref().unwrap_or("") != want => Err(format!(
                    "failed session check for key {key:?}, current session {:?} != {want:?}",
                    c.session.as_deref().unwrap_or("")
                )),
                Some(c) => Ok(entry_result(c, false)),
            }
        }
        TxnKvVerb::CheckNotExists => match current {
            Some(_) => Err(format!("key {key:?} exists")),
            None => Ok(Vec::new()),
        },
        _ => return None,
    })
}

impl WriteTxn<'_> {
    /// A write verb (Consul `txnKVS`): the KV table's own write, its `false` turned into
    /// Consul's error text.
    fn kv_write(&mut self, op: &TxnKvOp) -> OpOutcome {
        let e = &op.dir_ent;
        let key = e.key.as_str();
        let (kvs_op, failed) = match op.verb {
            TxnKvVerb::Set => (KvsOp::Set, String::new()),
            TxnKvVerb::Cas => (KvsOp::Cas, format!("failed to set key {key:?}, index is stale")),
            TxnKvVerb::Lock => (KvsOp::Lock, format!("failed to lock key {key:?}, lock is already held")),
            TxnKvVerb::Unlock => {
                (KvsOp::Unlock, format!("failed to unlock key {key:?}, lock isn't held, or is held by another session"))
            }
            TxnKvVerb::Delete => (KvsOp::Delete, String::new()),
            TxnKvVerb::DeleteTree => (KvsOp::DeleteTree, String::new()),
            // Consul's kvsDeleteCASTxn: deleting a key that is already gone succeeds.
            TxnKvVerb::DeleteCas if !self.store().kvs.contains_key(key) => return Ok(Vec::new()),
            TxnKvVerb::DeleteCas => (KvsOp::DeleteCas, format!("failed to delete key {key:?}, index is stale")),
            _ => return Err(format!("unknown KV verb {:?}", op.verb.as_str())),
        };
        if !self.kvs_apply(&KvsRequest { op: kvs_op, dir_ent: e.clone() })? {
            return Err(failed);
        }
        Ok(match kvs_op {
            KvsOp::Delete | KvsOp::DeleteCas | KvsOp::DeleteTree => Vec::new(),
            _ => self.store().kvs.get(key).map(|c| entry_result(c, false)).unwrap_or_default(),
        })
    }

    /// Applies `ops` in order (Consul `TxnRW`). Returns the results, or every operation's error;
    /// on errors the caller must drop this transaction so nothing is applied. With
    /// `stop_at_first_failure` (the deliberate bug `txn_partial_apply`) it stops at the first
    /// failure, for a caller that then commits what came before.
    pub fn txn_apply(&mut self, ops: &[TxnOp], stop_at_first_failure: bool) -> (Vec<TxnResult>, Vec<TxnError>) {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (op_index, op) in ops.iter().enumerate() {
            let outcome = match op {
                TxnOp::Kv(op) => match kv_read(self.store(), op) {
                    Some(read) => read,
                    None => self.kv_write(op),
                },
                other => match catalog_read(self.store(), other) {
                    Some(read) => read,
                    None => self.catalog_write(other).unwrap_or_else(|| Err("no operation specified".to_string())),
                },
            };
            match outcome {
                Ok(r) => results.extend(r),
                Err(what) => {
                    errors.push(TxnError { op_index, what });
                    if stop_at_first_failure {
                        break;
                    }
                }
            }
        }
        if !errors.is_empty() {
            results.clear();
        }
        (results, errors)
    }
}

impl Store {
    /// Runs a read-only transaction (Consul `TxnRO`): the results, or every operation's error.
    /// A write verb is refused as an error (the HTTP edge routes those to [`WriteTxn::txn_apply`]).
    pub fn txn_read(&self, ops: &[TxnOp]) -> (Vec<TxnResult>, Vec<TxnError>) {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (op_index, op) in ops.iter().enumerate() {
            let read = match op {
                TxnOp::Kv(kv) => kv_read(self, kv),
                other => catalog_read(self, other),
            };
            match read {
                Some(Ok(r)) => results.extend(r),
                Some(Err(what)) => errors.push(TxnError { op_index, what }),
                None => errors.push(TxnError { op_index, what: "cannot write in a read-only transaction".to_string() }),
            }
        }
        if !errors.is_empty() {
            results.clear();
        }
        (results, errors)
    }
}

impl Store {
    /// Deliberate bug `txn_partial_apply` (see `BugSwitches`): applies `req` like
    /// [`Store::apply_full`], except that a failing operation stops the transaction and the
    /// operations before it are kept (committed) instead of rolled back, while the answer still
    /// reports the failure, as if nothing had been applied.
    pub fn apply_txn_keeping_partial(&mut self, index: u64, req: &crate::structs::TxnRequest) -> super::ApplyOutcome {
        let mut txn = self.txn(index);
        let (results, errors) = txn.txn_apply(&req.ops, true);
        let (changes, lock_delays) = txn.commit_full();
        super::ApplyOutcome { result: crate::structs::CommandResult::Txn { results, errors, index }, changes, lock_delays, restored: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::catalog::tests::register;
    use crate::structs::{CommandResult, Request, Session, SessionOp, SessionRequest, TxnRequest};

    fn op(verb: TxnKvVerb, key: &str, value: &str, index: u64, session: Option<&str>) -> TxnOp {
        let dir_ent = DirEntry { modify_index: index, session: session.map(str::to_string), ..DirEntry::new(key, value.as_bytes().to_vec()) };
        TxnOp::Kv(TxnKvOp { verb, dir_ent })
    }
    fn kv(verb: TxnKvVerb, key: &str, value: &str) -> TxnOp {
        op(verb, key, value, 0, None)
    }
    fn txn(ops: Vec<TxnOp>) -> Request {
        Request::Txn(TxnRequest { ops })
    }
    fn outcome(r: CommandResult) -> (Vec<TxnResult>, Vec<TxnError>) {
        match r {
            CommandResult::Txn { results, errors, .. } => (results, errors),
            other => panic!("not a txn result: {other:?}"),
        }
    }
    fn whats(errors: &[TxnError]) -> Vec<(usize, &str)> {
        errors.iter().map(|e| (e.op_index, e.what.as_str())).collect()
    }
    fn value(s: &Store, key: &str) -> Option<String> {
        s.kv_get(key).0.map(|e| String::from_utf8_lossy(&e.value).into_owned())
    }
    /// A store with key `a` = "1" at index 1 and a session `s1` (on node n1) at index 3.
    fn seeded() -> Store {
        let mut s = Store::new();
        s.apply(1, &txn(vec![kv(TxnKvVerb::Set, "a", "1")]));
        s.apply(2, &register("n1", None, &[]));
        let session = Session { id: "s1".into(), node: "n1".into(), ..Session::default() };
        assert!(s.apply(3, &Request::Session(SessionRequest { op: SessionOp::Create, session })).0.ok());
        s
    }

    #[test]
    fn a_failing_last_check_rolls_back_every_earlier_write() {
        let mut s = seeded();
        let before = s.clone();
        let ops = vec![
            kv(TxnKvVerb::Set, "x", "1"),
            kv(TxnKvVerb::Set, "a", "2"),
            kv(TxnKvVerb::Delete, "a", ""),
            op(TxnKvVerb::Lock, "l", "v", 0, Some("s1")),
            op(TxnKvVerb::CheckIndex, "x", "", 99, None),
        ];
        let (res, changes) = s.apply(4, &txn(ops));
        let (results, errors) = outcome(res);
        assert!(results.is_empty() && changes.is_empty());
        assert_eq!(whats(&errors), [(4, r#"failed index check for key "x", current modify index 4 != 99"#)]);
        assert_eq!(s, before, "nothing applied");
    }

    #[test]
    fn every_failing_op_is_reported_not_just_the_first() {
        let mut s = seeded();
        let ops = vec![kv(TxnKvVerb::Get, "nope", ""), kv(TxnKvVerb::Set, "y", "1"), kv(TxnKvVerb::CheckNotExists, "a", "")];
        let (_, errors) = outcome(s.apply(4, &txn(ops)).0);
        assert_eq!(whats(&errors), [(0, r#"key "nope" doesn't exist"#), (2, r#"key "a" exists"#)]);
        assert_eq!(value(&s, "y"), None);
    }

    #[test]
    fn writes_return_the_stored_entry_without_its_value_and_reads_with_it() {
        let mut s = seeded();
        let ops = vec![
            kv(TxnKvVerb::Set, "b", "2"),
            op(TxnKvVerb::Cas, "a", "3", 1, None),
            kv(TxnKvVerb::Get, "a", ""),
            op(TxnKvVerb::CheckIndex, "b", "", 4, None),
            kv(TxnKvVerb::GetOrEmpty, "missing", ""),
            kv(TxnKvVerb::Delete, "gone", ""),
            kv(TxnKvVerb::CheckNotExists, "gone", ""),
            kv(TxnKvVerb::GetTree, "", ""),
        ];
        let (results, errors) = outcome(s.apply(4, &txn(ops)).0);
        assert!(errors.is_empty(), "{errors:?}");
        let shown: Vec<(String, String, u64, u64)> = results
            .iter()
            .filter_map(|r| match r {
                TxnResult::Kv(e) => Some((e.key.to_string(), String::from_utf8_lossy(&e.value).into_owned(), e.create_index, e.modify_index)),
                _ => None,
            })
            .collect();
        let row = |k: &str, v: &str, c, m| (k.to_string(), v.to_string(), c, m);
        assert_eq!(shown, [
            row("b", "", 4, 4),
            row("a", "", 1, 4),
            row("a", "3", 1, 4),
            row("b", "", 4, 4),
            row("missing", "", 0, 0),
            row("a", "3", 1, 4),
            row("b", "2", 4, 4),
        ]);
        assert_eq!((value(&s, "a").as_deref(), value(&s, "b").as_deref()), (Some("3"), Some("2")));
    }

    #[test]
    fn cas_and_delete_cas_fail_with_consuls_texts_and_delete_cas_of_a_missing_key_succeeds() {
        let mut s = seeded();
        let (_, errors) = outcome(s.apply(4, &txn(vec![op(TxnKvVerb::Cas, "a", "x", 7, None), op(TxnKvVerb::DeleteCas, "a", "", 7, None)])).0);
        assert_eq!(whats(&errors), [(0, r#"failed to set key "a", index is stale"#), (1, r#"failed to delete key "a", index is stale"#)]);
        let (_, errors) = outcome(s.apply(5, &txn(vec![op(TxnKvVerb::DeleteCas, "a", "", 1, None), op(TxnKvVerb::DeleteCas, "zz", "", 3, None)])).0);
        assert!(errors.is_empty());
        assert_eq!(value(&s, "a"), None);
    }

    #[test]
    fn lock_through_a_txn_counts_lock_index_and_checks_see_the_holder() {
        let mut s = seeded();
        let lock = |v: &str| op(TxnKvVerb::Lock, "l", v, 0, Some("s1"));
        assert!(outcome(s.apply(4, &txn(vec![lock("1")])).0).1.is_empty());
        assert_eq!(s.kv_get("l").0.map(|e| (e.lock_index, e.session.clone())), Some((1, Some("s1".into()))));
        let (results, errors) = outcome(s.apply(5, &txn(vec![lock("2"), op(TxnKvVerb::CheckSession, "l", "", 0, Some("s1"))])).0);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(results.len(), 2);
        assert_eq!(s.kv_get("l").0.map(|e| e.lock_index), Some(1), "re-acquire by the holder keeps LockIndex");
        let (_, errors) = outcome(s.apply(6, &txn(vec![op(TxnKvVerb::CheckSession, "l", "", 0, Some("other"))])).0);
        assert_eq!(whats(&errors), [(0, r#"failed session check for key "l", current session "s1" != "other""#)]);
        let (_, errors) = outcome(s.apply(7, &txn(vec![op(TxnKvVerb::Unlock, "l", "", 0, Some("other"))])).0);
        assert_eq!(whats(&errors), [(0, r#"failed to unlock key "l", lock isn't held, or is held by another session"#)]);
        assert!(outcome(s.apply(8, &txn(vec![op(TxnKvVerb::Unlock, "l", "free", 0, Some("s1"))])).0).1.is_empty());
        assert!(outcome(s.apply(9, &txn(vec![lock("3")])).0).1.is_empty());
        assert_eq!(s.kv_get("l").0.map(|e| e.lock_index), Some(2), "a fresh acquire counts");
        let (_, errors) = outcome(s.apply(10, &txn(vec![op(TxnKvVerb::Lock, "m", "", 0, Some("ghost")), kv(TxnKvVerb::Lock, "m", "")])).0);
        assert_eq!(whats(&errors), [(0, r#"invalid session "ghost""#), (1, "missing session")]);
    }

    #[test]
    fn delete_tree_in_a_txn_removes_the_prefix_and_check_index_sees_it_gone() {
        let mut s = seeded();
        s.apply(4, &txn(vec![kv(TxnKvVerb::Set, "p/1", "v"), kv(TxnKvVerb::Set, "p/2", "v")]));
        let (_, errors) = outcome(s.apply(5, &txn(vec![kv(TxnKvVerb::DeleteTree, "p/", ""), op(TxnKvVerb::CheckIndex, "p/1", "", 4, None)])).0);
        assert_eq!(whats(&errors), [(1, r#"failed to check index, key "p/1" doesn't exist"#)]);
        assert_eq!(s.kv_list("p/").0.len(), 2, "rolled back");
    }

    #[test]
    fn read_only_transactions_read_and_refuse_writes() {
        let s = seeded();
        let (results, errors) = s.txn_read(&[kv(TxnKvVerb::Get, "a", ""), op(TxnKvVerb::CheckIndex, "a", "", 1, None)]);
        assert!(errors.is_empty());
        assert_eq!(results.len(), 2);
        let (results, errors) = s.txn_read(&[kv(TxnKvVerb::Get, "a", ""), kv(TxnKvVerb::Set, "a", "")]);
        assert!(results.is_empty());
        assert_eq!(whats(&errors), [(1, "cannot write in a read-only transaction")]);
    }

    #[test]
    fn the_partial_apply_bug_keeps_the_ops_before_the_failure() {
        let ops = vec![kv(TxnKvVerb::Set, "from", "90"), op(TxnKvVerb::CheckIndex, "a", "", 99, None), kv(TxnKvVerb::Set, "to", "110")];
        let mut correct = seeded();
        assert!(!correct.apply(4, &txn(ops.clone())).0.ok());
        assert_eq!(value(&correct, "from"), None);
        let mut buggy = seeded();
        let out = buggy.apply_txn_keeping_partial(4, &TxnRequest { ops });
        assert_eq!(whats(&outcome(out.result).1).len(), 1, "still answered as a failure");
        assert_eq!((value(&buggy, "from").as_deref(), value(&buggy, "to")), (Some("90"), None));
    }
}
