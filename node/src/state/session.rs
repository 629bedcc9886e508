//! The sessions table, and invalidation: a session's end releases or deletes its locks in the
//! same Raft entry.
//!
//! Source: Consul `agent/consul/state/session.go` (`sessionCreateTxn`, `deleteSessionTxn`) and
//! `catalog.go` (a node deregistration, or a bound check going critical or away, invalidates the
//! session). Invalidation visits only the invalidated session's keys ([`Store::session_locks`]);
//! finding the sessions a check or node change ends scans the sessions table, which is small next
//! to the catalog and KV tables and is scanned only on those rarer changes.

use super::store::Store;
use super::txn::WriteTxn;
use super::watch::Table;
use crate::structs::{DirEntry, HealthStatus, Session, SessionBehavior, SessionOp, SessionRequest};

impl Store {
    /// The session `id` and the index a blocking query on it reports (the table's, as Consul).
    pub fn session_get(&self, id: &str) -> (Option<&Session>, u64) {
        (self.sessions.get(id), self.table_index(Table::Sessions))
    }

    /// Every session, by id; and the sessions table index.
    pub fn session_list(&self) -> (Vec<&Session>, u64) {
        (self.sessions.values().collect(), self.table_index(Table::Sessions))
    }

    /// The sessions of `node`, by id; and the sessions table index.
    pub fn node_sessions(&self, node: &str) -> (Vec<&Session>, u64) {
        (self.sessions.values().filter(|s| s.node == node).collect(), self.table_index(Table::Sessions))
    }

    /// The keys `session` holds locked, in key order.
    pub fn session_locked_keys(&self, session: &str) -> Vec<&str> {
        self.session_locks.get(session).map(|keys| keys.iter().map(String::as_str).collect()).unwrap_or_default()
    }

    /// Rebuilds the derived lock index from the KV rows (after a snapshot restore).
    pub(super) fn rebuild_session_locks(&mut self) {
        self.session_locks.clear();
        for e in self.kvs.values() {
            if let Some(s) = &e.session {
                self.session_locks.entry(s.clone()).or_default().insert(e.key.to_string());
            }
        }
    }
}

impl WriteTxn<'_> {
    /// Applies `Session.Apply`. Returns the session id. Errors, which refuse the write (Consul's
    /// text): "Missing node registration", "Missing check '…' registration", "Check '…' is in
    /// critical state", "Session ID already in use".
    pub fn session_apply(&mut self, req: &SessionRequest) -> Result<String, String> {
        match req.op {
            SessionOp::Create => self.session_create(&req.session),
            SessionOp::Destroy => {
                self.session_destroy(&req.session.id);
                Ok(req.session.id.clone())
            }
        }
    }

    fn session_create(&mut self, s: &Session) -> Result<String, String> {
        if s.id.is_empty() {
            return Err("Missing session ID".into());
        }
        if self.store().sessions.contains_key(&s.id) {
            return Err("Session ID already in use".into());
        }
        if !self.store().nodes.contains_key(&s.node) {
            return Err("Missing node registration".into());
        }
        for check in s.check_ids() {
            match self.store().checks.get(&(s.node.clone(), check.to_string())) {
                None => return Err(format!("Missing check '{check}' registration")),
                Some(c) if c.status == HealthStatus::Critical => return Err(format!("Check '{check}' is in critical state")),
                Some(_) => {}
            }
        }
        let index = self.index();
        let row = Session { create_index: index, modify_index: index, ..s.clone() };
        self.set_session(&s.id, Some(row));
        self.bump(Table::Sessions, &s.id);
        Ok(s.id.clone())
    }

    /// Ends a session (Consul `deleteSessionTxn`): removes it, and in the same entry releases
    /// (`release`) or deletes (`delete`) every key it holds, starting each key's lock-delay.
    /// Destroying an unknown session changes nothing.
    pub(super) fn session_destroy(&mut self, id: &str) {
        let Some(session) = self.set_session(id, None) else {
            return;
        };
        self.bump(Table::Sessions, id);
        let held: Vec<String> = self.store().session_locked_keys(id).into_iter().map(str::to_string).collect();
        let index = self.index();
        for key in held {
            match session.behavior {
                SessionBehavior::Release => {
                    if let Some(old) = self.store().kvs.get(&key) {
                        let freed = DirEntry { session: None, modify_index: index, ..old.clone() };
                        self.put_kv(freed);
                        self.bump(Table::Kvs, &key);
                    }
                }
                SessionBehavior::Delete => {
                    self.kv_delete(&key);
                }
            }
            self.start_lock_delay(&key, session.lock_delay_ms());
        }
    }

    /// Invalidates every session bound to check `check` of `node` (the check went critical or
    /// was deregistered).
    pub(super) fn invalidate_sessions_of_check(&mut self, node: &str, check: &str) {
        let doomed: Vec<String> =
            self.store().sessions.values().filter(|s| s.node == node && s.check_ids().any(|c| c == check)).map(|s| s.id.clone()).collect();
        for id in doomed {
            self.session_destroy(&id);
        }
    }

    /// Invalidates every session of `node` (the node was deregistered).
    pub(super) fn invalidate_sessions_of_node(&mut self, node: &str) {
        let doomed: Vec<String> = self.store().sessions.values().filter(|s| s.node == node).map(|s| s.id.clone()).collect();
        for id in doomed {
            self.session_destroy(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::catalog::tests::register;
    use crate::structs::{CommandResult, KvsOp, KvsRequest, Request};

    fn create(id: &str, node: &str, checks: &[&str], behavior: SessionBehavior) -> Request {
        let session = Session {
            id: id.into(),
            node: node.into(),
            node_checks: checks.iter().map(|c| c.to_string()).collect(),
            behavior,
            lock_delay: 15_000_000_000,
            ..Session::default()
        };
        Request::Session(SessionRequest { op: SessionOp::Create, session })
    }
    fn destroy(id: &str) -> Request {
        Request::Session(SessionRequest { op: SessionOp::Destroy, session: Session { id: id.into(), ..Session::default() } })
    }
    fn kv(op: KvsOp, key: &str, value: &str, session: &str) -> Request {
        let dir_ent = DirEntry { session: Some(session.into()), ..DirEntry::new(key, value.as_bytes().to_vec()) };
        Request::Kvs(KvsRequest { op, dir_ent })
    }
    fn entry<'a>(s: &'a Store, key: &str) -> Option<&'a DirEntry> {
        s.kv_get(key).0
    }

    #[test]
    fn create_is_refused_with_consuls_errors_and_changes_nothing() {
        let mut s = Store::new();
        let (res, _) = s.apply(1, &create("s1", "n1", &[], SessionBehavior::Release));
        assert_eq!(res, CommandResult::Refused { error: "Missing node registration".into(), index: 1 });
        s.apply(2, &register("n1", None, &[("serfHealth", "", HealthStatus::Critical)]));
        let (res, _) = s.apply(3, &create("s1", "n1", &["nope"], SessionBehavior::Release));
        assert_eq!(res, CommandResult::Refused { error: "Missing check 'nope' registration".into(), index: 3 });
        let (res, _) = s.apply(4, &create("s1", "n1", &["serfHealth"], SessionBehavior::Release));
        assert_eq!(res, CommandResult::Refused { error: "Check 'serfHealth' is in critical state".into(), index: 4 });
        assert!(s.session_list().0.is_empty());
        assert_eq!(s.table_index(Table::Sessions), 0);
    }

    #[test]
    fn acquire_counts_lock_index_and_reacquire_by_holder_does_not() {
        let mut s = Store::new();
        s.apply(1, &register("n1", None, &[]));
        s.apply(2, &create("s1", "n1", &[], SessionBehavior::Release));
        s.apply(3, &create("s2", "n1", &[], SessionBehavior::Release));
        assert!(s.apply(4, &kv(KvsOp::Lock, "k", "a", "s1")).0.ok());
        assert!(s.apply(5, &kv(KvsOp::Lock, "k", "b", "s1")).0.ok(), "the holder may acquire again");
        assert_eq!(entry(&s, "k").map(|e| (e.lock_index, e.value.to_vec())), Some((1, b"b".to_vec())));
        assert!(!s.apply(6, &kv(KvsOp::Lock, "k", "c", "s2")).0.ok(), "held by s1");
        assert!(!s.apply(7, &kv(KvsOp::Unlock, "k", "c", "s2")).0.ok(), "s2 cannot release s1's lock");
        assert!(s.apply(8, &kv(KvsOp::Unlock, "k", "d", "s1")).0.ok());
        assert_eq!(entry(&s, "k").map(|e| (e.session.clone(), e.lock_index)), Some((None, 1)));
        assert!(s.apply(9, &kv(KvsOp::Lock, "k", "e", "s2")).0.ok());
        assert_eq!(entry(&s, "k").map(|e| (e.session.clone(), e.lock_index)), Some((Some("s2".into()), 2)));
        let (res, _) = s.apply(10, &kv(KvsOp::Lock, "k2", "", "ghost"));
        assert_eq!(res, CommandResult::Refused { error: "invalid session \"ghost\"".into(), index: 10 });
    }

    #[test]
    fn destroy_releases_or_deletes_held_keys_in_the_same_entry_with_lock_delays() {
        let mut s = Store::new();
        s.apply(1, &register("n1", None, &[]));
        s.apply(2, &create("rel", "n1", &[], SessionBehavior::Release));
        s.apply(3, &create("del", "n1", &[], SessionBehavior::Delete));
        s.apply(4, &kv(KvsOp::Lock, "a", "1", "rel"));
        s.apply(5, &kv(KvsOp::Lock, "b", "1", "del"));
        let out = s.apply_full(6, &destroy("rel"));
        assert_eq!(out.lock_delays, vec![("a".to_string(), 15_000)]);
        assert_eq!(entry(&s, "a").map(|e| (e.session.clone(), e.modify_index)), Some((None, 6)));
        s.apply(7, &destroy("del"));
        assert!(entry(&s, "b").is_none(), "behavior delete removes the key");
        assert!(s.session_locks.is_empty());
        let (res, changes) = s.apply(8, &destroy("del"));
        assert!(res.ok() && changes.is_empty(), "destroying twice is a no-op");
    }

    #[test]
    fn critical_check_and_node_deregistration_invalidate_bound_sessions() {
        let mut s = Store::new();
        s.apply(1, &register("n1", None, &[("c1", "", HealthStatus::Passing)]));
        s.apply(2, &register("n2", None, &[]));
        s.apply(3, &create("bound", "n1", &["c1"], SessionBehavior::Release));
        s.apply(4, &create("other", "n1", &[], SessionBehavior::Release));
        s.apply(5, &create("on-n2", "n2", &[], SessionBehavior::Release));
        s.apply(6, &kv(KvsOp::Lock, "k", "v", "bound"));
        s.apply(7, &register("n1", None, &[("c1", "", HealthStatus::Warning)]));
        assert!(s.session_get("bound").0.is_some(), "warning does not invalidate");
        s.apply(8, &register("n1", None, &[("c1", "", HealthStatus::Critical)]));
        assert!(s.session_get("bound").0.is_none());
        assert!(s.session_get("other").0.is_some());
        assert_eq!(entry(&s, "k").and_then(|e| e.session.clone()), None);
        s.apply(9, &Request::Deregister(crate::structs::DeregisterRequest { node: "n2".into(), ..Default::default() }));
        assert!(s.session_get("on-n2").0.is_none());
        assert_eq!(s.session_list().0.len(), 1);
    }

    #[test]
    fn a_refused_lock_in_a_rolled_back_entry_leaves_the_lock_index_alone() {
        let mut s = Store::new();
        s.apply(1, &register("n1", None, &[]));
        s.apply(2, &create("s1", "n1", &[], SessionBehavior::Release));
        s.apply(3, &kv(KvsOp::Lock, "k", "v", "s1"));
        let before = s.clone();
        {
            let mut txn = s.txn(4);
            txn.session_destroy("s1");
            assert!(txn.store().session_locked_keys("s1").is_empty());
        }
        assert_eq!(s, before, "a dropped transaction restores the session, the key and the lock index");
        assert_eq!(s.session_locked_keys("s1"), vec!["k"]);
    }
}
