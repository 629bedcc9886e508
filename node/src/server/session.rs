//! The session endpoints (Consul `agent/consul/session_endpoint.go`): `Session.Apply`,
//! `Session.Get`, `Session.List`, `Session.NodeSessions`, `Session.Renew`; and the leader's
//! lock-delay check on `KVS.Apply` acquires.
//!
//! Writes go through the shared write path. Renew is not a Raft write: like Consul, the leader
//! checks that the session exists and restarts its TTL timer ([`super::session_ttl`]).

use std::time::Duration;

use super::Server;
use crate::state::{Table, WatchKey};
use crate::structs::{
    Command, CommandResult, Indexed, KvsOp, KvsRequest, QueryError, Session, SessionOp, SessionQuery, SessionRequest, WriteError,
};

pub const SESSION_APPLY: &str = "Session.Apply";
pub const SESSION_GET: &str = "Session.Get";
pub const SESSION_LIST: &str = "Session.List";
pub const SESSION_NODE_SESSIONS: &str = "Session.NodeSessions";
pub const SESSION_RENEW: &str = "Session.Renew";

/// Every session method name (for the RPC metrics' label set).
pub const SESSION_METHODS: [&str; 5] = [SESSION_APPLY, SESSION_GET, SESSION_LIST, SESSION_NODE_SESSIONS, SESSION_RENEW];

/// How long a forwarded renew may take.
const RENEW_TIMEOUT: Duration = Duration::from_secs(7);

impl Server {
    /// A new version-4 UUID from this server's seeded RNG (session and user event IDs).
    pub fn new_uuid(&self) -> String {
        let mut bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut *self.rng(), &mut bytes);
        super::identity::uuid_v4(bytes)
    }

    /// `Session.Apply`: create or destroy. On the leader, a created TTL session's timer starts
    /// once the create commits. Errors: the write path's; a refusal by the state store comes
    /// back as [`CommandResult::Refused`].
    pub async fn session_apply(&self, req: SessionRequest, forwarded: bool) -> Result<CommandResult, WriteError> {
        let ttl = req.session.ttl_ms();
        let create = req.op == SessionOp::Create;
        let id = req.session.id.clone();
        let result = self.apply_write(SESSION_APPLY, req, forwarded, Command::session).await?;
        if self.is_raft_leader() && result.ok() {
            match (create, ttl) {
                (true, Some(ttl)) => {
                    self.session_timers.reset(&id, ttl, self.io.clock.monotonic());
                }
                (false, _) => self.session_timers.forget(&id),
                _ => {}
            }
        }
        Ok(result)
    }

    /// `Session.Renew`: on the leader, restarts the session's TTL timer and returns the session
    /// (`None`: no such session, Consul's 404). Followers forward it. A session whose TTL ran out
    /// and whose destroy is in flight answers `None` too: Consul would renew it and then end it
    /// moments later, so a client would hold an acknowledged renew of a dead session (found by
    /// the simulator: lock-contention seed 142, session-expiry seed 53).
    pub async fn session_renew(&self, q: SessionQuery, forwarded: bool) -> Result<Option<Session>, QueryError> {
        if !self.is_leader() && !forwarded {
            return match self.forward_to_leader(SESSION_RENEW, q, RENEW_TIMEOUT).await {
                Ok(answer) => answer,
                Err(e) => Err(e.into_query_error()),
            };
        }
        if !self.is_leader() {
            return Err(QueryError::NoLeader);
        }
        let session = {
            let a = self.state.read().map_err(|e| QueryError::Internal(e.to_string()))?;
            a.store.session_get(&q.name).0.cloned()
        };
        match &session {
            Some(s) => match s.ttl_ms() {
                // A session whose expiry is in flight is as good as gone (Consul's race, closed).
                Some(ttl) if !self.session_timers.reset(&s.id, ttl, self.io.clock.monotonic()) => Ok(None),
                _ => Ok(session),
            },
            None => Ok(None),
        }
    }

    /// `Session.Get` (`/v1/session/info/<id>`): the session, or an empty list.
    pub async fn session_get(&self, q: SessionQuery, forwarded: bool) -> Result<Indexed<Vec<Session>>, QueryError> {
        let watch = WatchKey::Row(Table::Sessions, q.name.clone());
        self.session_read(SESSION_GET, q, forwarded, watch, |s, name| {
            let (row, index) = s.session_get(name);
            (row.cloned().into_iter().collect(), index)
        })
        .await
    }

    /// `Session.List` (`/v1/session/list`).
    pub async fn session_list(&self, q: SessionQuery, forwarded: bool) -> Result<Indexed<Vec<Session>>, QueryError> {
        self.session_read(SESSION_LIST, q, forwarded, WatchKey::Table(Table::Sessions), |s, _| {
            let (rows, index) = s.session_list();
            (rows.into_iter().cloned().collect(), index)
        })
        .await
    }

    /// `Session.NodeSessions` (`/v1/session/node/<node>`).
    pub async fn node_sessions(&self, q: SessionQuery, forwarded: bool) -> Result<Indexed<Vec<Session>>, QueryError> {
        self.session_read(SESSION_NODE_SESSIONS, q, forwarded, WatchKey::Table(Table::Sessions), |s, node| {
            let (rows, index) = s.node_sessions(node);
            (rows.into_iter().cloned().collect(), index)
        })
        .await
    }

    async fn session_read(
        &self,
        method: &str,
        q: SessionQuery,
        forwarded: bool,
        watch: WatchKey,
        read: fn(&crate::state::Store, &str) -> (Vec<Session>, u64),
    ) -> Result<Indexed<Vec<Session>>, QueryError> {
        let opts = q.opts.clone();
        self.route_read(method, q, &opts, forwarded, |q| async move {
            let (value, meta) = self.blocking_query(&q.opts, watch, |s| read(s, &q.name)).await?;
            Ok(Indexed { value, meta })
        })
        .await
    }

    /// Whether `node` has a `serfHealth` check in this server's (possibly stale) catalog: a new
    /// session binds it by default only then.
    pub fn node_has_serf_check(&self, node: &str) -> bool {
        let Ok(a) = self.state.read() else { return false };
        a.store.health_node_checks(node).0.iter().any(|c| c.check_id == crate::local::state::SERF_CHECK_ID)
    }

    /// Whether the leader must refuse this KV write without proposing it: an acquire of a key
    /// still under a lock-delay (Consul's `KVS.Apply` answers `false` then).
    pub(super) fn lock_delayed(&self, req: &KvsRequest) -> bool {
        req.op == KvsOp::Lock && self.key_lock_delayed(&req.dir_ent.key)
    }

    /// Whether `key` is still under a lock-delay on this server's clock.
    pub(super) fn key_lock_delayed(&self, key: &str) -> bool {
        self.state.lock_delays.blocks(key, self.io.clock.monotonic())
    }
}
