//! A pool's driver (LAN or WAN, the same code): one task per pool that runs foca over a UDP socket from `io::Net`.
//!
//! foca is a state machine; this task is its runtime. Inputs, in priority order: requests from the
//! agent (announce to a join target, leave), datagrams from the socket, due timers. After each
//! input it carries out foca's outputs: datagrams to send, timers to schedule (kept in a
//! deadline-ordered map and fired with tokio's clock, which the simulator virtualises), and
//! notifications (logged at DEBUG), then brings the membership view up to date for the members
//! the input may have changed ([`super::view`]) and logs every change of a member's status at
//! INFO, naming the member. Randomness (probe order, gossip fan-out, seal
//! nonces) comes from the agent's seed through [`SeededRng`].
//!
//! With gossip encryption ([`super::keyring`]) every datagram foca hands over is sealed with the
//! primary key on its way out, and every datagram received is opened before foca sees it; one
//! that no installed key authenticates is dropped, counted and logged at DEBUG, never parsed.
//! While its keyring report is due ([`super::keyring_sync`]) the driver broadcasts it with the
//! re-fire tick, and writes the keyring file through `io::Disk` after every change.
//!
//! Coordinate pings ([`super::coord_ping`]) share the socket: the driver sends one every
//! [`super::coord_ping::PING_INTERVAL`], and hands datagrams that open with their magic to the
//! pinger instead of foca (sealed and opened with the keyring like foca's). Datagrams foca sends
//! to a member it suspects carry a suspicion notice ([`super::suspicion`]) so the member refutes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, OwnedNotification, Timer};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use super::{GossipConfig, GossipId, Member, MemberStatus, Pool, Request, MAX_PACKET_BYTES};
use crate::io::trace::Event;
use crate::io::{TraceSink, UdpSocket};

/// Most timers foca may have pending; it keeps a handful per member, so this bounds a pool of a
/// few thousand members and catches a runaway scheduler.
const MAX_PENDING_TIMERS: usize = 100_000;

/// The agent's seeded ChaCha stream, offered to foca through rand 0.10's traits.
pub struct SeededRng(ChaCha8Rng);

impl SeededRng {
    /// A stream derived from the agent's seed (salted, so it differs from the agent's other streams).
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed ^ 0x676f_7373_6970))
    }
}

impl rand_core_010::TryRng for SeededRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.0.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

pub(super) type Swim = Foca<GossipId, super::view::ObservingCodec, SeededRng, super::broadcast::Broadcasts>;

/// Salt of the seal-nonce stream (ASCII "nonce"), apart from foca's stream.
const NONCE_SEED_SALT: u64 = 0x6e_6f6e_6365;

struct Driver {
    pool: Arc<Pool>,
    /// The simulator's event trace (status changes are traced, so replays compare gossip too).
    trace: Arc<dyn TraceSink>,
    socket: Box<dyn UdpSocket>,
    foca: Swim,
    rt: AccumulatingRuntime<GossipId>,
    /// Pending timers by (deadline, sequence): the sequence keeps equal deadlines in order.
    timers: BTreeMap<(Instant, u64), Timer<GossipId>>,
    seq: u64,
    left: bool,
    /// User events this agent fired, with when: broadcast again until [`super::events::REFIRE_WINDOW`] passes.
    fired: std::collections::VecDeque<(Instant, Vec<u8>)>,
    /// Seal nonces, from the agent's seed.
    nonces: ChaCha8Rng,
    /// Members foca may have changed since the view caught up ([`super::view`]).
    touched: Arc<std::sync::Mutex<super::view::Touched>>,
    view: super::view::View,
    /// This agent's own entry as last put in the view.
    own: Option<Member>,
    /// Coordinate pings in flight and this node's Vivaldi client.
    pinger: super::coord_ping::Pinger,
    /// `LAN` or `WAN`, for logs.
    pool_name: &'static str,
}

/// Runs the pool on `socket` until the task is aborted, as the pool's identity.
pub async fn run(pool: Arc<Pool>, socket: Box<dyn UdpSocket>, config: GossipConfig, seed: u64, trace: Arc<dyn TraceSink>) {
    let me = pool.identity().clone();
    let Some(mut inbox) = pool.inbox.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        tracing::error!("gossip driver started twice");
        return;
    };
    let broadcasts = super::broadcast::Broadcasts { events: pool.events.clone(), keyring: pool.keyring.clone() };
    let foca_config = config.foca(pool.keyring.enabled());
    let pool_name = config.pool_name();
    let touched = Arc::new(std::sync::Mutex::new(super::view::Touched::default()));
    let codec = super::view::ObservingCodec::new(touched.clone());
    let foca = Foca::with_custom_broadcast(me, foca_config, SeededRng::new(seed), codec, broadcasts);
    let nonces = ChaCha8Rng::seed_from_u64(seed ^ NONCE_SEED_SALT);
    let (view, own) = (super::view::View::default(), None);
    let mut d = Driver { pool, trace, socket, foca, rt: AccumulatingRuntime::new(), timers: BTreeMap::new(), seq: 0, left: false, fired: Default::default(), nonces, touched, view, own, pinger: super::coord_ping::Pinger::new(seed), pool_name };
    // foca schedules its own probe and gossip timers once it first hears from a member.
    d.flush().await;
    let mut buf = vec![0u8; MAX_PACKET_BYTES + 1];
    let mut refire = tokio::time::interval(super::events::REFIRE_INTERVAL);
    // Not polled while nothing is to be re-fired: no burst of missed ticks afterwards.
    refire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut coord_tick = tokio::time::interval(super::coord_ping::PING_INTERVAL);
    coord_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = d.timers.keys().next().map(|(at, _)| *at);
        let far = Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            biased;
            req = inbox.recv() => match req {
                Some(req) => d.request(req),
                None => return,
            },
            got = d.socket.recv_from(&mut buf) => match got {
                Ok((n, from)) if n > MAX_PACKET_BYTES => tracing::debug!(%from, bytes = n, "gossip datagram too large; dropped"),
                Ok((n, from)) => match d.pool.keyring.open(&buf[..n]) {
                    Ok(plain) if super::coord_ping::is_coordinate_message(&plain) => d.coordinate_datagram(&plain, from).await,
                    Ok(plain) if super::suspicion::is_notice(&plain) => d.suspicion_datagram(&plain, from),
                    Ok(plain) => d.foca_datagram(&plain, from),
                    Err(e) => {
                        d.pool.keyring.decrypt_failures.inc();
                        tracing::debug!(%from, error = %e, "gossip datagram failed authentication; dropped");
                    }
                },
                Err(e) => {
                    tracing::debug!(error = %e, "gossip receive failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = tokio::time::sleep_until(next.unwrap_or(far)), if next.is_some() => d.fire_due(),
            _ = coord_tick.tick(), if !d.left => d.coordinate_tick().await,
            _ = refire.tick(), if !d.fired.is_empty() || d.pool.keyring.report_due(Instant::now()).is_some() => d.refire(),
        }
        d.flush().await;
        d.persist_keyring().await;
    }
}

impl Driver {
    fn request(&mut self, req: Request) {
        match req {
            Request::Announce(addr) if addr == self.foca.identity().addr || self.left => {}
            Request::Announce(addr) => {
                if let Err(e) = self.foca.announce(GossipId::placeholder(addr), &mut self.rt) {
                    tracing::debug!(%addr, error = %e, "gossip announce failed");
                }
            }
            Request::Fire(item) => {
                if let Err(e) = self.foca.add_broadcast(&item) {
                    tracing::warn!(error = %e, "user event not broadcast");
                }
                self.fired.push_back((Instant::now(), item));
            }
            Request::ForceLeave { name, prune, done } => {
                let _ = done.send(super::force_leave::apply(&mut self.foca, &mut self.rt, &name, prune));
            }
            Request::Leave(done) => {
                if !self.left {
                    self.leave();
                }
                let _ = done.send(());
            }
        }
    }

    /// Graceful leave: take a `left` identity (so members report `left`, not `failed`), then
    /// declare it down to a few members.
    fn leave(&mut self) {
        let me = self.foca.identity().clone();
        let leaving = GossipId { left: true, generation: me.generation + 1, ..me };
        tracing::info!(node = %leaving.name, pool = self.pool_name, "leaving the gossip pool");
        if let Err(e) = self.foca.change_identity(leaving, &mut self.rt) {
            tracing::debug!(error = %e, "gossip identity change for leave failed");
        }
        if let Err(e) = self.foca.leave_cluster(&mut self.rt) {
            tracing::debug!(error = %e, "gossip leave failed");
        }
        self.left = true;
    }

    /// Broadcasts again every event this agent fired within the re-fire window; forgets older ones.
    fn refire(&mut self) {
        let now = Instant::now();
        while self.fired.front().is_some_and(|(at, _)| now.duration_since(*at) > super::events::REFIRE_WINDOW) {
            self.fired.pop_front();
        }
        for (_, item) in &self.fired {
            if let Err(e) = self.foca.add_broadcast(item) {
                tracing::debug!(error = %e, "user event re-broadcast failed");
            }
        }
        let report = self.pool.keyring.report_due(now).map(super::broadcast::Item::KeyringReport);
        if let Some(item) = report.and_then(|r| r.encode().ok()) {
            if let Err(e) = self.foca.add_broadcast(&item) {
                tracing::debug!(error = %e, "keyring report broadcast failed");
            }
        }
    }

    /// Writes the pool's keyring file after a change (Consul rewrites `serf/local.keyring` and
    /// `serf/remote.keyring` the same way).
    async fn persist_keyring(&mut self) {
        let Some((disk, file)) = self.pool.keyring_file.clone() else { return };
        let Some(bytes) = self.pool.keyring.take_file() else { return };
        if let Err(e) = crate::io::replace_durably(disk.as_ref(), file.tmp, file.name, &bytes).await {
            tracing::warn!(node = %self.pool.me(), error = %e, "gossip keyring not saved to {}", file.name);
        }
    }

    /// Hands every due timer to foca, in deadline order.
    fn fire_due(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            if self.is_refuted_suspicion_timer(&timer) {
                continue;
            }
            super::view::touch_timer(&self.touched, &timer);
            if let Err(e) = self.foca.handle_timer(timer, &mut self.rt) {
                tracing::debug!(error = %e, "gossip timer failed");
            }
        }
    }

    fn foca_datagram(&mut self, data: &[u8], from: SocketAddr) {
        if let Err(e) = self.foca.handle_data(data, &mut self.rt) {
            tracing::debug!(%from, error = %e, "gossip datagram refused");
        }
    }

    /// A datagram that opens with a suspicion notice ([`super::suspicion`]): a notice about this
    /// agent's current identity goes to foca as an update about itself (foca refutes it), then
    /// foca's part, if any, goes to foca. Malformed: dropped whole.
    fn suspicion_datagram(&mut self, data: &[u8], from: SocketAddr) {
        let (notice, foca_data) = match super::suspicion::unwrap(data) {
            Ok(parts) => parts,
            Err(e) => return tracing::debug!(%from, error = %e, "suspicion notice malformed; dropped"),
        };
        let me = self.foca.identity().clone();
        tracing::debug!(%from, ?notice, "suspicion notice received");
        if !self.left && notice.name == me.name && notice.generation == me.generation {
            let update = foca::Member::new(me, notice.incarnation, foca::State::Suspect);
            if let Err(e) = self.foca.apply_many(std::iter::once(update), true, &mut self.rt) {
                tracing::debug!(%from, error = %e, "suspicion notice not applied");
            }
        }
        if !foca_data.is_empty() {
            self.foca_datagram(foca_data, from);
        }
    }

    /// The notice to prefix to a datagram for `to`, if this agent's foca holds it suspect.
    fn suspicion_notice_for(&self, to: &GossipId) -> Option<super::suspicion::Notice> {
        // The view (O(log n)) filters; only for a suspect is foca's member list searched.
        if self.pool.status_of(&to.name) != Some(MemberStatus::Suspect) {
            return None;
        }
        let m = self.foca.iter_membership_state().find(|m| m.id() == to && m.state() == foca::State::Suspect)?;
        Some(super::suspicion::Notice { name: to.name.clone(), generation: to.generation, incarnation: m.incarnation() })
    }

    /// Sends foca's datagram for `to`, prefixed with a suspicion notice when `to` is suspect; a
    /// notice that does not fit beside foca's datagram goes in a datagram of its own.
    async fn send_foca(&mut self, to: &GossipId, data: Vec<u8>) {
        let Some(notice) = self.suspicion_notice_for(to) else { return self.send_sealed(to.addr, data).await };
        let room = super::plaintext_room(self.pool.keyring.enabled());
        match super::suspicion::wrap(&notice, &data) {
            Ok(framed) if framed.len() <= room => self.send_sealed(to.addr, framed).await,
            _ => {
                self.send_sealed(to.addr, data).await;
                match super::suspicion::wrap(&notice, &[]) {
                    Ok(alone) => self.send_sealed(to.addr, alone).await,
                    Err(e) => tracing::debug!(error = %e, "suspicion notice not encoded"),
                }
            }
        }
    }

    /// Whether `timer` is foca's "suspect → down" timer for a suspicion that no longer stands
    /// (refuted: the member's incarnation moved on; or the member is gone or renamed).
    ///
    /// foca 2.0.0 checks the incarnation before declaring the member down, but then sends it a
    /// `TurnUndead` ("you were declared down") anyway, so the member drops its identity and
    /// rejoins under a new generation: every refuted suspicion churned a live member, and while
    /// the others still addressed its old identity it ignored their probes and was suspected
    /// again (`gossip-lossy` seed 511). Such a timer changes nothing else in foca, so it is dropped.
    fn is_refuted_suspicion_timer(&self, timer: &Timer<GossipId>) -> bool {
        let Timer::ChangeSuspectToDown { member_id, incarnation, .. } = timer else { return false };
        !self
            .foca
            .iter_membership_state()
            .any(|m| m.id() == member_id && m.incarnation() == *incarnation && m.state() == foca::State::Suspect)
    }

    /// Seals `data` with the primary key (when encryption is on) and sends it to `to`.
    async fn send_sealed(&mut self, to: SocketAddr, data: Vec<u8>) {
        let mut nonce = [0u8; super::keyring::NONCE_BYTES];
        if self.pool.keyring.enabled() {
            self.nonces.fill_bytes(&mut nonce);
        }
        let data = self.pool.keyring.seal(nonce, data);
        debug_assert!(data.len() <= MAX_PACKET_BYTES, "a {} byte gossip datagram", data.len());
        if let Err(e) = self.socket.send_to(&data, to).await {
            tracing::debug!(%to, error = %e, "gossip send failed");
        }
    }

    /// Pings one random live member for a coordinate sample.
    async fn coordinate_tick(&mut self) {
        let members = self.pool.members();
        let me = self.foca.identity().name.clone();
        if let Some((to, msg)) = self.pinger.tick(&me, &members, Instant::now()) {
            self.send_coordinate(to, &msg).await;
        }
    }

    /// A coordinate message: answered (a ping) or taken as a sample (an ack); dropped if malformed.
    async fn coordinate_datagram(&mut self, data: &[u8], from: SocketAddr) {
        let msg = match super::coord_ping::decode(data) {
            Ok(msg) => msg,
            Err(e) => return tracing::debug!(%from, error = %e, "coordinate datagram malformed; dropped"),
        };
        let me = self.foca.identity().name.clone();
        let state = self.pool.coordinates.clone();
        if let Some((to, reply)) = self.pinger.handle(&me, msg, from, Instant::now(), &state) {
            self.send_coordinate(to, &reply).await;
        }
    }

    async fn send_coordinate(&mut self, to: SocketAddr, msg: &super::coord_ping::Message) {
        match super::coord_ping::encode(msg) {
            Ok(data) => self.send_sealed(to, data).await,
            Err(e) => tracing::debug!(error = %e, "coordinate message not encoded"),
        }
    }

    /// Refreshes the view, then carries out what foca asked for.
    async fn flush(&mut self) {
        // The view first, so a member foca just began to suspect gets its notice at once.
        self.refresh_view();
        while let Some((to, data)) = self.rt.to_send() {
            self.send_foca(&to, data.to_vec()).await;
        }
        while let Some((after, timer)) = self.rt.to_schedule() {
            self.seq += 1;
            self.timers.insert((Instant::now() + after, self.seq), timer);
        }
        assert!(self.timers.len() <= MAX_PENDING_TIMERS, "gossip timers ran away: {}", self.timers.len());
        while let Some(n) = self.rt.to_notify() {
            match &n {
                OwnedNotification::Rejoin(id) => {
                    tracing::info!(node = %id.name, generation = id.generation, "declared failed by the pool; rejoined")
                }
                OwnedNotification::Defunct => tracing::info!(node = %self.pool.me(), "declared failed by the pool; not rejoining"),
                other => tracing::debug!(notification = ?other, "foca"),
            }
        }
    }

    /// Brings the view up to date with the members foca may have changed ([`super::view`]) and
    /// logs and traces every change of a member's status, in name order.
    fn refresh_view(&mut self) {
        let me = self.foca.identity();
        let mut changes = self.view.catch_up(&self.touched, self.foca.iter_membership_state(), &me.name);
        for (name, m) in &changes {
            let Some(m) = m else { continue };
            let before = self.pool.status_of(name);
            if before != Some(m.status) {
                log_change(self.pool_name, name, m.addr, before, m.status);
                self.trace.event(&me.name, Event::Member { member: name.clone(), status: m.status.trace_name().into() });
            }
        }
        let my_status = if self.left { MemberStatus::Left } else { MemberStatus::Alive };
        if self.own.as_ref().is_none_or(|o| o.status != my_status || o.generation != me.generation || o.addr != me.addr) {
            let own = Member::of(me, my_status);
            self.own = Some(own.clone());
            changes.push((me.name.clone(), Some(own)));
        }
        self.pool.update_view(changes);
    }
}

/// One INFO line per member status change, in Serf's words, naming the pool (`LAN`/`WAN`).
fn log_change(pool: &str, name: &str, addr: SocketAddr, before: Option<MemberStatus>, now: MemberStatus) {
    match (before, now) {
        (None | Some(MemberStatus::Failed | MemberStatus::Left), MemberStatus::Alive) => {
            tracing::info!(pool, member = %name, %addr, "member joined")
        }
        (Some(MemberStatus::Suspect), MemberStatus::Alive) => tracing::info!(pool, member = %name, "member refuted suspicion"),
        (_, MemberStatus::Suspect) => tracing::info!(pool, member = %name, "member suspected"),
        (_, MemberStatus::Failed) => tracing::info!(pool, member = %name, "member failed"),
        (_, MemberStatus::Left) => tracing::info!(pool, member = %name, "member left"),
        _ => tracing::debug!(pool, member = %name, ?before, ?now, "member status"),
    }
}

/// Announces to the retry-join targets whenever this agent sees no other live member (at start,
/// and again if it ends up alone, e.g. after a long partition), every `interval`. `resolve` turns
/// one `-retry-join` entry into gossip addresses (see [`super::join_targets`]).
pub async fn retry_join<F, Fut>(pool: Arc<Pool>, entries: Vec<SocketAddr>, interval: Duration, resolve: F)
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Vec<SocketAddr>>,
{
    if entries.is_empty() {
        return;
    }
    loop {
        if pool.live_peers() == 0 {
            for entry in &entries {
                for target in resolve(*entry).await {
                    pool.announce(target);
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}
