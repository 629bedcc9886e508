//! The read path: consistency modes and one blocking query over any table.
//!
//! Source: Consul HTTP API, "Blocking Queries" and "Consistency Modes"; Consul
//! `agent/consul/rpc.go` `blockingQuery`. A query runs against the local store; with
//! `?index=` it re-runs each time one of its watch keys fires, until its index passes the
//! requested one or the wait expires (then it answers with unchanged data). Default and
//! `?consistent` reads are served by the leader only, after proving it still leads; `?stale`
//! reads by any server.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::forward::ForwardError;
use super::Server;
use crate::state::{Store, WatchKey};
use crate::structs::{Consistency, QueryError, QueryMeta, QueryOptions};

/// How long a read waits for the restart barrier ([`Server`]'s `startup_log_index`).
const RESTART_BARRIER_TIMEOUT: Duration = Duration::from_secs(2);
/// Extra time a forwarded read gets beyond its wait.
const FORWARD_READ_SLACK: Duration = Duration::from_secs(5);

impl Server {
    /// Whether this server answers a read in `opts`' consistency mode itself.
    fn serves_read_locally(&self, opts: &QueryOptions) -> bool {
        if self.is_client() {
            // A client agent has no state store of its own: even `?stale` goes to a server.
            return false;
        }
        match opts.consistency {
            Consistency::Stale => true,
            Consistency::Consistent if self.config.bugs.stale_consistent_read => true,
            _ => self.is_leader(),
        }
    }

    /// Checks `?dc=` for endpoints that do not forward to other datacenters yet (coordinate
    /// updates, snapshots): only this agent's datacenter is reachable there.
    pub fn check_datacenter(&self, opts: &QueryOptions) -> Result<(), QueryError> {
        match self.foreign_datacenter(opts) {
            Some(_) => Err(QueryError::NoPathToDatacenter),
            None => Ok(()),
        }
    }

    /// Serves a read endpoint: a `?dc=` naming another datacenter goes to a server there
    /// ([`super::federation`]); else here when its consistency mode allows, else forwarded to the
    /// leader's `method` (once: a `forwarded` request is not forwarded again).
    pub async fn route_read<Req, Resp, Fut>(
        &self,
        method: &str,
        req: Req,
        opts: &QueryOptions,
        forwarded: bool,
        local: impl FnOnce(Req) -> Fut,
    ) -> Result<Resp, QueryError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Fut: Future<Output = Result<Resp, QueryError>>,
    {
        let foreign = self.foreign_datacenter(opts).is_some();
        if !foreign && (forwarded || self.serves_read_locally(opts)) {
            return local(req).await;
        }
        let timeout = Duration::from_millis(opts.max_query_time_ms) + FORWARD_READ_SLACK;
        let answer: Result<Result<Resp, QueryError>, ForwardError> = match self.foreign_datacenter(opts) {
            Some(dc) => self.forward_dc(dc, method, req, timeout + FORWARD_READ_SLACK).await,
            None => self.forward_to_leader(method, req, timeout).await,
        };
        answer.unwrap_or_else(|e| Err(e.into_query_error()))
    }

    /// Runs `query` against the local store in `opts`' consistency mode, blocking while its
    /// index is ≤ `opts.min_query_index`, woken only by `watch`, for at most the query's wait.
    /// `query` returns the answer and its index. Errors: not (or no longer) the leader for a
    /// non-stale read; a poisoned store.
    pub async fn blocking_query<T>(
        &self,
        opts: &QueryOptions,
        watch: WatchKey,
        query: impl Fn(&Store) -> (T, u64),
    ) -> Result<(T, QueryMeta), QueryError> {
        let bypass = opts.consistency == Consistency::Stale
            || (opts.consistency == Consistency::Consistent && self.config.bugs.stale_consistent_read);
        if !bypass {
            self.verify_leadership(opts.consistency).await?;
        }
        let run = || -> Result<(T, u64), QueryError> {
            let a = self.state.read().map_err(|e| QueryError::Internal(e.to_string()))?;
            Ok(query(&a.store))
        };
        let (answer, index) = if opts.min_query_index == 0 {
            run()?
        } else {
            let _in_flight = self.telemetry.metrics.blocking_query();
            let deadline = tokio::time::Instant::now() + Duration::from_millis(opts.max_query_time_ms);
            loop {
                let notify = self.state.watches.watch(watch.clone());
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let result = run()?;
                if result.1 > opts.min_query_index {
                    break result;
                }
                // Fault point: a spurious wake-up; the loop must re-check, not return early.
                if crate::buggify!("blocking-query-spurious-wakeup") {
                    continue;
                }
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(deadline) => break run()?,
                }
            }
        };
        if !bypass && opts.min_query_index > 0 {
            // The answer must be current when it is sent, not when the wait began.
            self.verify_leadership(opts.consistency).await?;
        }
        let meta = QueryMeta {
            index,
            known_leader: self.leader().is_some(),
            last_contact_ms: self.last_contact_ms(),
            consistency: opts.consistency,
        };
        Ok((answer, meta))
    }

    /// Proves this server may answer a non-stale read from local state: it is the leader and
    /// either holds a valid lease (default mode, after one read-index round in this term) or has
    /// just completed a read-index round (`?consistent`). Errors: not (or no longer) the leader.
    async fn verify_leadership(&self, consistency: Consistency) -> Result<(), QueryError> {
        if !self.is_leader() {
            return Err(QueryError::NoLeader);
        }
        let term = self.raft.metrics().borrow().current_term;
        let ready = *self.read_ready_term.lock().unwrap_or_else(|e| e.into_inner()) == Some(term);
        if consistency == Consistency::Default && ready && self.lease_valid() {
            return Ok(());
        }
        // A read-index round shared with the reads queued beside this one.
        if !self.read_index.confirm().await {
            return Err(QueryError::NoLeader);
        }
        self.raft
            .wait(Some(RESTART_BARRIER_TIMEOUT))
            .applied_index_at_least(Some(self.startup_log_index), "restart read barrier")
            .await
            .map_err(|_| QueryError::NoLeader)?;
        *self.read_ready_term.lock().unwrap_or_else(|e| e.into_inner()) = Some(term);
        Ok(())
    }
}
