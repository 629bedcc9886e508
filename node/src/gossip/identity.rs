//! A gossip member's identity: node name, gossip address, generation and tags.
//!
//! foca (SWIM) spreads identities, not side tables, so everything the pool must know about a
//! member rides in its identity: the node name (Consul's member key), the LAN gossip address
//! (foca's `Addr`: one live identity per address), a generation and Consul's member tags. The
//! generation orders identities at one address: a restarted agent starts a higher one (wall time
//! in ms at start), and an agent the cluster declared down takes `generation + 1` and rejoins
//! ([`foca::Identity::renew`], SWIM's "come back under a new incarnation"). Suspicion itself is
//! refuted by foca's own per-identity incarnation counter, not by this generation.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Most tags an identity may carry, and the longest tag key/value and node name, in bytes: an
/// identity must fit a gossip packet several times over (see `MAX_PACKET_BYTES`).
pub const MAX_TAGS: usize = 16;
pub const MAX_TAG_BYTES: usize = 64;
pub const MAX_NAME_BYTES: usize = 128;

/// One member's identity as gossiped (postcard-encoded inside foca's packets).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GossipId {
    /// Node name (Consul `-node`); unique in the datacenter.
    pub name: String,
    /// LAN gossip address (`bind_addr:serf_lan`); foca keeps one identity per address.
    pub addr: SocketAddr,
    /// Higher wins at one address; see the module header.
    pub generation: u64,
    /// The member left gracefully (set just before it declares itself down), so others report it
    /// `left` rather than `failed`.
    pub left: bool,
    /// An operator pruned the member (`force-leave -prune`, see [`super::force_leave`]): agents
    /// drop it from their member list. Only ever set with `left`, on a member already down.
    pub pruned: bool,
    /// Consul's member tags: `role` (`consul` for servers, `node` for clients), `dc`, `port` (server
    /// RPC port), `id` (node UUID), `build`, `vsn` (protocol), `raft_vsn`, `expect`.
    pub tags: BTreeMap<String, String>,
    /// Deliberate bug `gossip-no-rejoin`: never renew after being declared down. Local only: not
    /// gossiped and not part of equality (foca compares identities it receives with its own).
    #[serde(skip)]
    pub no_rejoin: bool,
}

impl PartialEq for GossipId {
    fn eq(&self, o: &Self) -> bool {
        (&self.name, self.addr, self.generation, self.left, self.pruned, &self.tags)
            == (&o.name, o.addr, o.generation, o.left, o.pruned, &o.tags)
    }
}
impl Eq for GossipId {}

impl GossipId {
    /// A stand-in identity for an address whose member is not known yet: foca needs an identity
    /// to announce to, and ignores the destination of an announce (the reply carries the real one).
    pub fn placeholder(addr: SocketAddr) -> Self {
        Self { name: String::new(), addr, generation: 0, left: false, pruned: false, tags: BTreeMap::new(), no_rejoin: false }
    }

    /// Whether the identity is within the size limits this pool accepts.
    pub fn is_well_formed(&self) -> bool {
        self.name.len() <= MAX_NAME_BYTES
            && self.tags.len() <= MAX_TAGS
            && self.tags.iter().all(|(k, v)| k.len() <= MAX_TAG_BYTES && v.len() <= MAX_TAG_BYTES)
    }
}

impl foca::Identity for GossipId {
    type Addr = SocketAddr;

    /// Rejoin under the next generation once declared down (unless the member left on purpose).
    fn renew(&self) -> Option<Self> {
        if self.left || self.no_rejoin {
            return None;
        }
        Some(Self { generation: self.generation + 1, ..self.clone() })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The newer generation wins; at equal generations a `left` identity wins (it is the same
    /// agent's last word, or an operator's force-leave of it), and a pruned one over that.
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.generation, self.left, self.pruned) > (adversary.generation, adversary.left, adversary.pruned)
    }
}

/// The first byte of every foca datagram from a well-formed identity, for each name length: foca's
/// header opens with the sender's name length as a postcard varint. Datagrams of the driver's own
/// (coordinate pings, suspicion notices) start with a byte outside this set.
#[cfg(test)]
pub(crate) fn foca_first_bytes() -> impl Iterator<Item = (usize, u8)> {
    (0..=MAX_NAME_BYTES).map(|len| {
        let low = (len & 0x7f) as u8;
        (len, if len > 0x7f { low | 0x80 } else { low })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn id(generation: u64) -> GossipId {
        GossipId { generation, name: "s1".into(), ..GossipId::placeholder("10.0.0.1:8301".parse().unwrap()) }
    }

    #[test]
    fn renewed_identity_wins_the_address() {
        let old = id(7);
        let new = old.renew().expect("renews");
        assert_eq!(new.generation, 8);
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
    }

    #[test]
    fn a_member_that_left_does_not_rejoin_by_itself() {
        let left = GossipId { left: true, ..id(3) };
        assert_eq!(left.renew(), None);
        assert!(left.win_addr_conflict(&id(3)), "the leave outranks the same generation alive");
        let pruned = GossipId { pruned: true, ..left.clone() };
        assert!(pruned.win_addr_conflict(&left) && !left.win_addr_conflict(&pruned), "a prune outranks the leave");
        assert!(id(4).win_addr_conflict(&pruned), "a restarted agent outranks its pruned identity");
    }

    #[test]
    fn oversized_identities_are_not_well_formed() {
        assert!(id(1).is_well_formed());
        let long = GossipId { name: "x".repeat(MAX_NAME_BYTES + 1), ..id(1) };
        assert!(!long.is_well_formed());
    }
}
