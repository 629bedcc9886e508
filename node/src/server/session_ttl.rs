//! Session TTL timers, run by the leader (Consul `agent/consul/session_ttl.go`).
//!
//! A TTL session is invalidated when no renew reached the leader for
//! [`SESSION_TTL_MULTIPLIER`] × TTL (Consul gives the same grace: clients renew every TTL/2 or
//! so, and a slow network or a GC pause must not cost them their locks). Timers are restarted on
//! create, on every renew, and for every session when a server becomes leader (Consul's
//! `initializeSessionTimers`), since a new leader cannot know when the old one last saw a renew.
//! So after a leader change a session lives at least another 2×TTL.
//!
//! Deadlines are readings of this host's monotonic clock (`io::Clock`), so the simulator's clock
//! drift and pauses reach them: a leader whose clock runs fast expires sessions early in real
//! time, which is why the grace exists. Expiry proposes the same destroy a client would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Server;
use crate::structs::session::SESSION_TTL_MULTIPLIER;
use crate::structs::{Command, Session, SessionOp, SessionRequest};

/// How often the leader checks its timers.
const TICK: Duration = Duration::from_millis(100);

/// The leader's TTL deadlines, by session id, as readings of this host's monotonic clock.
#[derive(Debug, Default)]
pub struct SessionTimers {
    inner: Mutex<TimerState>,
    /// Deliberate bug `session_ttl_early`: deadlines are TTL/2 instead of 2×TTL.
    early: bool,
    /// Deliberate bug `session_ttl_forgotten`: a new leader arms timers only for sessions it
    /// sees created or renewed, so one abandoned before the leader change never expires.
    forgetful: bool,
}

#[derive(Debug, Default)]
struct TimerState {
    deadlines: BTreeMap<String, Duration>,
    /// The term these timers were started in (`None`: not leader, or not yet initialised).
    term: Option<u64>,
    /// The sessions table index the timers were last reconciled with.
    synced_index: u64,
    /// The sessions table index when this term's timers started (for the `forgetful` bug).
    term_start_index: u64,
    /// Sessions whose deadline passed and whose destroy is in flight: a renew must not answer
    /// "renewed" for them (it would be acknowledged, then the session would end at once).
    expiring: std::collections::BTreeSet<String>,
}

impl SessionTimers {
    /// Timers with Consul's grace, or with the deliberate bugs `session_ttl_early` (TTL/2) and
    /// `session_ttl_forgotten` (a new leader skips the sessions it inherits).
    pub fn new(early: bool, forgetful: bool) -> Self {
        Self { inner: Mutex::default(), early, forgetful }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TimerState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long after `now` a session with this TTL expires.
    fn grace(&self, ttl_ms: u64) -> Duration {
        let ttl = Duration::from_millis(ttl_ms);
        if self.early {
            ttl / 2
        } else {
            ttl * SESSION_TTL_MULTIPLIER
        }
    }

    /// (Re)starts the timer of session `id` at clock reading `now` (create, renew). Returns
    /// `false`, changing nothing, when the session is already being invalidated.
    pub fn reset(&self, id: &str, ttl_ms: u64, now: Duration) -> bool {
        let end = now + self.grace(ttl_ms);
        let mut st = self.lock();
        if st.expiring.contains(id) {
            return false;
        }
        st.deadlines.insert(id.to_string(), end);
        true
    }

    /// The destroy of an expired session was applied (`true`) or could not be proposed
    /// (`false`: its timer restarts at `now`, so the next tick tries again).
    fn expiry_done(&self, id: &str, applied: bool, now: Duration) {
        let mut st = self.lock();
        st.expiring.remove(id);
        if !applied {
            st.deadlines.insert(id.to_string(), now);
        }
    }

    /// Stops the timer of a destroyed session.
    pub fn forget(&self, id: &str) {
        self.lock().deadlines.remove(id);
    }

    /// Number of running timers.
    pub fn len(&self) -> usize {
        self.lock().deadlines.len()
    }

    /// Whether no timer runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Brings the timers in line with the store as leader of `term`: on a new term every TTL
    /// session starts afresh; otherwise sessions the timers do not know (created through a
    /// previous leader's log entries) start now and destroyed ones are dropped. Returns the ids
    /// whose deadline has passed, removing them (the caller proposes their destroy).
    fn tick(&self, term: u64, sessions_index: u64, sessions: &[&Session], now: Duration) -> Vec<String> {
        let mut st = self.lock();
        if st.term != Some(term) {
            st.deadlines.clear();
            st.expiring.clear();
            st.term = Some(term);
            st.synced_index = 0;
            st.term_start_index = sessions_index;
        }
        if st.synced_index != sessions_index {
            let mut kept = BTreeMap::new();
            for s in sessions {
                let Some(ttl) = s.ttl_ms() else { continue };
                let end = match st.deadlines.get(&s.id) {
                    Some(end) => *end,
                    None if self.forgetful && s.create_index <= st.term_start_index => continue,
                    None => now + self.grace(ttl),
                };
                kept.insert(s.id.clone(), end);
            }
            st.deadlines = kept;
            st.synced_index = sessions_index;
        }
        let expired: Vec<String> = st.deadlines.iter().filter(|(_, end)| **end <= now).map(|(id, _)| id.clone()).collect();
        for id in &expired {
            st.deadlines.remove(id);
            st.expiring.insert(id.clone());
        }
        expired
    }

    /// Drops every timer (this server is not the leader).
    fn stop(&self) {
        let mut st = self.lock();
        st.deadlines.clear();
        st.term = None;
        st.synced_index = 0;
        st.expiring.clear();
    }
}

/// The leader's TTL loop: every [`TICK`], reconcile the timers with the sessions table and
/// propose the destroy of every expired session.
pub async fn run_session_ttls(server: Arc<Server>) {
    loop {
        tokio::time::sleep(TICK).await;
        if !server.is_leader() {
            server.session_timers.stop();
            continue;
        }
        let term = server.raft.metrics().borrow().current_term;
        let now = server.io.clock.monotonic();
        let expired = {
            let Ok(a) = server.state.read() else { continue };
            let (sessions, index) = a.store.session_list();
            server.session_timers.tick(term, index, &sessions, now)
        };
        // All at once, as Consul's per-session timers fire: proposed together they share a Raft
        // entry (group commit) instead of waiting on each other, so a leader that inherits many
        // expired sessions frees every lock within one round trip (lock-contention seed 2).
        let destroys = expired.into_iter().map(|id| {
            let server = server.clone();
            async move {
                tracing::info!(node = %server.config.node_name, session = %id, "session TTL expired: invalidating it");
                let req = SessionRequest { op: SessionOp::Destroy, session: Session { id: id.clone(), ..Session::default() } };
                let outcome = match Command::session(&req) {
                    Ok(cmd) => server.raft_apply(cmd).await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = &outcome {
                    tracing::warn!(session = %id, error = %e, "could not invalidate an expired session; retrying");
                }
                server.session_timers.expiry_done(&id, outcome.is_ok(), now);
            }
        });
        futures::future::join_all(destroys).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl_session(id: &str, ttl: &str) -> Session {
        Session { id: id.into(), ttl: ttl.into(), ..Session::default() }
    }

    #[test]
    fn a_session_expires_two_ttls_after_its_last_renew_and_a_new_term_restarts_every_timer() {
        let t = SessionTimers::new(false, false);
        let s = |x| Duration::from_secs(x);
        let a = ttl_session("a", "10s");
        assert!(t.tick(1, 5, &[&a], s(0)).is_empty());
        t.reset("a", 10_000, s(15));
        assert!(t.tick(1, 5, &[&a], s(34)).is_empty(), "renewed at 15 s: alive until 35 s");
        assert!(t.tick(2, 5, &[&a], s(34)).is_empty(), "a new leader restarts it: alive until 54 s");
        assert!(t.tick(2, 5, &[&a], s(53)).is_empty());
        assert_eq!(t.tick(2, 5, &[&a], s(54)), vec!["a".to_string()]);
        assert!(t.is_empty());
    }

    #[test]
    fn sessions_without_ttl_get_no_timer_and_destroyed_ones_are_dropped() {
        let t = SessionTimers::new(false, false);
        let (a, b) = (ttl_session("a", "10s"), ttl_session("b", ""));
        t.tick(1, 1, &[&a, &b], Duration::ZERO);
        assert_eq!(t.len(), 1);
        t.tick(1, 2, &[], Duration::ZERO);
        assert!(t.is_empty());
    }

    #[test]
    fn a_renew_racing_an_expiry_in_flight_is_refused() {
        let t = SessionTimers::new(false, false);
        let a = ttl_session("a", "10s");
        t.tick(1, 1, &[&a], Duration::ZERO);
        assert_eq!(t.tick(1, 1, &[&a], Duration::from_secs(20)), vec!["a".to_string()]);
        assert!(!t.reset("a", 10_000, Duration::from_secs(20)), "its destroy is in flight");
        t.expiry_done("a", false, Duration::from_secs(21));
        assert!(t.reset("a", 10_000, Duration::from_secs(21)), "the destroy failed: the session lives on");
    }

    #[test]
    fn the_forgetful_bug_never_expires_a_session_inherited_from_the_old_leader() {
        let t = SessionTimers::new(false, true);
        let inherited = Session { create_index: 3, ..ttl_session("a", "10s") };
        let renewed = Session { create_index: 4, ..ttl_session("b", "10s") };
        assert!(t.tick(2, 4, &[&inherited, &renewed], Duration::ZERO).is_empty());
        t.reset("b", 10_000, Duration::from_secs(1));
        let later = Session { create_index: 6, ..ttl_session("c", "10s") };
        assert_eq!(t.tick(2, 6, &[&inherited, &renewed, &later], Duration::from_secs(100)), vec!["b".to_string()]);
        assert_eq!(t.len(), 1, "c, created in this term, is armed; a never is");
        let fixed = SessionTimers::new(false, false);
        assert!(fixed.tick(2, 4, &[&inherited], Duration::ZERO).is_empty());
        assert_eq!(fixed.tick(2, 4, &[&inherited], Duration::from_secs(100)), vec!["a".to_string()]);
    }

    #[test]
    fn the_early_bug_expires_at_half_the_ttl() {
        let t = SessionTimers::new(true, false);
        let a = ttl_session("a", "10s");
        assert!(t.tick(1, 1, &[&a], Duration::ZERO).is_empty());
        assert_eq!(t.tick(1, 1, &[&a], Duration::from_secs(5)), vec!["a".to_string()]);
    }
}
