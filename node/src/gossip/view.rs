//! The driver's membership view, kept up to date incrementally.
//!
//! foca keeps its members in a list and tells its runtime only about some changes (up, down,
//! rename), not suspicion, refutation or forgetting a down member. Recomputing the whole view
//! after every datagram costs O(N) allocations per datagram, O(N²) per second for a pool, which
//! is what kept the scale benchmark from 1,000 members. Instead the driver learns which members
//! an input can have touched, and re-reads only those from foca:
//!
//! - a datagram: its sender and every member update it carries, recorded by [`ObservingCodec`]
//!   as foca decodes them (foca applies nothing else from a datagram);
//! - `ChangeSuspectToDown` and `RemoveDown` timers: the member they name;
//! - `ProbeRandomMember`: the member of the probe that may have failed, which is the last one
//!   foca sent a `Ping` to (recorded as foca encodes it; only a probe sends `Ping`).
//!
//! Those are every place foca 2 changes its member list (`Members::apply`,
//! `apply_existing_if`, `remove_if_down`), so the view equals what a full recomputation gives,
//! with one exception: two identities claiming one name at the same generation (a
//! misconfiguration), where the lower address now wins instead of whichever foca listed first.
//! Re-reading costs one pass over foca's list comparing addresses (foca's own lookups cost the
//! same per update), no allocation except for the members that changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use foca::{Codec, Header, Message, PostcardCodec, State, Timer};

use super::{GossipId, Member, MemberStatus};

/// Addresses foca may have changed since the view last caught up.
#[derive(Debug, Default)]
pub struct Touched {
    addrs: BTreeSet<SocketAddr>,
    /// The target of the last direct probe (`Ping`), for `ProbeRandomMember`.
    probing: Option<SocketAddr>,
}

impl Touched {
    fn lock(shared: &Mutex<Self>) -> std::sync::MutexGuard<'_, Self> {
        shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// foca's postcard codec, recording the members foca decodes and the target of every `Ping` it
/// encodes (see the module docs). Bytes in and out are exactly the postcard codec's.
pub struct ObservingCodec {
    inner: PostcardCodec,
    touched: Arc<Mutex<Touched>>,
}

impl ObservingCodec {
    /// A codec that records into `touched`.
    pub fn new(touched: Arc<Mutex<Touched>>) -> Self {
        Self { inner: PostcardCodec, touched }
    }
}

impl Codec<GossipId> for ObservingCodec {
    type Error = <PostcardCodec as Codec<GossipId>>::Error;

    fn encode_header(&mut self, header: &Header<GossipId>, buf: impl bytes::BufMut) -> Result<(), Self::Error> {
        if matches!(header.message, Message::Ping(_)) {
            Touched::lock(&self.touched).probing = Some(header.dst.addr);
        }
        self.inner.encode_header(header, buf)
    }

    fn decode_header(&mut self, buf: impl bytes::Buf) -> Result<Header<GossipId>, Self::Error> {
        let header: Header<GossipId> = self.inner.decode_header(buf)?;
        Touched::lock(&self.touched).addrs.insert(header.src.addr);
        Ok(header)
    }

    fn encode_member(&mut self, member: &foca::Member<GossipId>, buf: impl bytes::BufMut) -> Result<(), Self::Error> {
        self.inner.encode_member(member, buf)
    }

    fn decode_member(&mut self, buf: impl bytes::Buf) -> Result<foca::Member<GossipId>, Self::Error> {
        let member: foca::Member<GossipId> = self.inner.decode_member(buf)?;
        Touched::lock(&self.touched).addrs.insert(member.id().addr);
        Ok(member)
    }
}

/// Records the member a timer is about to change, before foca handles it.
pub fn touch_timer(touched: &Mutex<Touched>, timer: &Timer<GossipId>) {
    let mut t = Touched::lock(touched);
    let addr = match timer {
        Timer::ChangeSuspectToDown { member_id, .. } => Some(member_id.addr),
        Timer::RemoveDown(id) => Some(id.addr),
        Timer::ProbeRandomMember(_) => t.probing,
        _ => None,
    };
    if let Some(addr) = addr {
        t.addrs.insert(addr);
    }
}

/// How `id` stands in foca's state `state`, as the pool reports it.
fn status_of(id: &GossipId, state: State) -> MemberStatus {
    match state {
        State::Alive => MemberStatus::Alive,
        State::Suspect => MemberStatus::Suspect,
        State::Down if id.left => MemberStatus::Left,
        State::Down => MemberStatus::Failed,
    }
}

/// The driver's mirror of foca's members (by address) and which addresses claim each name.
#[derive(Default)]
pub struct View {
    by_addr: BTreeMap<SocketAddr, Member>,
    by_name: BTreeMap<String, BTreeSet<SocketAddr>>,
}

impl View {
    /// Re-reads the touched members from foca's `state` (its full membership), and returns, in
    /// name order, each name whose view entry may have changed with its entry now (`None`:
    /// gone). Members named `me`, without a name (announce placeholders) or not well formed are
    /// left out, as before, and so are members force-left with `-prune`.
    pub fn catch_up<'a>(
        &mut self,
        touched: &Mutex<Touched>,
        state: impl Iterator<Item = &'a foca::Member<GossipId>>,
        me: &str,
    ) -> Vec<(String, Option<Member>)> {
        let addrs = std::mem::take(&mut Touched::lock(touched).addrs);
        if addrs.is_empty() {
            return Vec::new();
        }
        let mut now: BTreeMap<SocketAddr, Member> = BTreeMap::new();
        for m in state {
            let id = m.id();
            if addrs.contains(&id.addr) && !id.name.is_empty() && id.name != me && id.is_well_formed() && !id.pruned {
                now.insert(id.addr, Member::of(id, status_of(id, m.state())));
            }
        }
        let mut names = BTreeSet::new();
        for addr in addrs {
            let new = now.remove(&addr);
            if let Some(old) = self.by_addr.get(&addr) {
                if new.as_ref() == Some(old) {
                    continue;
                }
                names.insert(old.name.clone());
                if new.as_ref().is_none_or(|n| n.name != old.name) {
                    if let Some(set) = self.by_name.get_mut(&old.name) {
                        set.remove(&addr);
                        if set.is_empty() {
                            self.by_name.remove(&old.name);
                        }
                    }
                }
            }
            match new {
                Some(m) => {
                    names.insert(m.name.clone());
                    self.by_name.entry(m.name.clone()).or_default().insert(addr);
                    self.by_addr.insert(addr, m);
                }
                None => {
                    self.by_addr.remove(&addr);
                }
            }
        }
        names.into_iter().map(|name| {
            let entry = self.entry(&name);
            (name, entry)
        }).collect()
    }

    /// The view's entry for `name`: of the identities claiming it, the newest generation (a
    /// misconfiguration or a moved agent); at equal generations the lower address.
    fn entry(&self, name: &str) -> Option<Member> {
        let addrs = self.by_name.get(name)?;
        let mut best: Option<&Member> = None;
        for addr in addrs {
            let Some(m) = self.by_addr.get(addr) else { continue };
            if best.is_none_or(|b| b.generation < m.generation) {
                best = Some(m);
            }
        }
        best.cloned()
    }
}
