//! Coordinate pings: RTT samples for Vivaldi over the LAN gossip socket, beside foca's packets.
//!
//! Consul gets its RTT samples from memberlist's probes (serf's `pingDelegate` piggybacks the
//! coordinate on each ack). foca does not expose its probes' round-trips, so the driver runs a
//! small exchange of its own on the same UDP socket: every [`PING_INTERVAL`] it pings one random
//! live member ([`Pinger::tick`]); the member answers with its coordinate; the round-trip, timed
//! with tokio's monotonic clock (virtualised by the simulator), feeds this node's Vivaldi
//! [`Client`]. The messages start with [`MAGIC`], which no foca packet from a well-formed identity
//! can start with (foca's header starts with the sender's name length as a postcard varint, and
//! names are at most `MAX_NAME_BYTES` = 128 bytes: a first byte of `0xC0` would mean ≥ 192), so the
//! driver tells them apart before foca sees anything; with encryption they are sealed like foca's.
//! Never trusts input: a message that does not decode, names too long a node, carries a coordinate
//! of the wrong dimensions or with non-finite parts, or answers no ping of ours, is dropped.
//! Randomness (whom to ping) comes from the agent's seed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::coordinate::{Client, Config, Coordinate, DIMENSIONALITY};
use super::identity::MAX_NAME_BYTES;
use super::Member;

/// First bytes of every coordinate message (see the module header for why foca never sends them).
pub const MAGIC: [u8; 4] = [0xC0, b'c', b'r', b'd'];
/// How often one member is pinged (memberlist's LAN `ProbeInterval`, which times Consul's samples).
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// A ping not answered within this is forgotten (well past memberlist's 500 ms probe timeout, so a
/// slow link still yields a sample; serf refuses samples above 10 s anyway).
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Most pings awaiting an answer (one per interval, so this is generous).
const MAX_PENDING: usize = 16;

/// One coordinate message (MessagePack after [`MAGIC`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// "Answer with your coordinate"; `seq` is echoed back.
    Ping { seq: u64, from: String },
    /// The answer: the responder's name and coordinate.
    Ack { seq: u64, from: String, coord: Coordinate },
}

/// Whether a datagram (after decryption) is a coordinate message rather than foca's.
pub fn is_coordinate_message(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// Encodes `msg` with its [`MAGIC`]. Errors: encoding failed (never for these shapes).
pub fn encode(msg: &Message) -> Result<Vec<u8>, String> {
    let body = crate::codec::encode(msg).map_err(|e| e.to_string())?;
    Ok([MAGIC.as_slice(), &body].concat())
}

/// Decodes and validates a coordinate message. Errors: no magic, undecodable, a name longer than
/// `MAX_NAME_BYTES`, a coordinate of the wrong dimensions or with non-finite parts.
pub fn decode(data: &[u8]) -> Result<Message, String> {
    let body = data.strip_prefix(MAGIC.as_slice()).ok_or("not a coordinate message")?;
    let msg: Message = crate::codec::decode(body).map_err(|e| e.to_string())?;
    let (Message::Ping { from, .. } | Message::Ack { from, .. }) = &msg;
    if from.is_empty() || from.len() > MAX_NAME_BYTES {
        return Err(format!("bad node name ({} bytes)", from.len()));
    }
    if let Message::Ack { coord, .. } = &msg {
        if coord.vec.len() != DIMENSIONALITY || !coord.is_valid() {
            return Err("bad coordinate".into());
        }
    }
    Ok(msg)
}

/// This agent's coordinate as the driver last computed it, for the agent to send to the servers.
#[derive(Debug)]
pub struct CoordinateState {
    current: Mutex<Coordinate>,
    /// Samples taken so far (0: still the origin, nothing worth sending).
    samples: Mutex<u64>,
    /// Deliberate bug `vivaldi-ignores-rtt`: feed Vivaldi a constant 1 ms instead of the measured
    /// round-trip, so every node looks equally near.
    pub ignores_rtt: bool,
}

impl CoordinateState {
    /// At the origin, with no samples.
    pub fn new(ignores_rtt: bool) -> Self {
        Self { current: Mutex::new(Coordinate::new(&Config::default())), samples: Mutex::new(0), ignores_rtt }
    }

    /// The current coordinate, once at least one sample moved it.
    pub fn get(&self) -> Option<Coordinate> {
        let n = *self.samples.lock().unwrap_or_else(|e| e.into_inner());
        (n > 0).then(|| self.current.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn set(&self, c: Coordinate) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = c;
        *self.samples.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }
}

/// The driver's side of the exchange: pings in flight and the Vivaldi client.
pub struct Pinger {
    client: Client,
    pending: BTreeMap<u64, (String, Instant)>,
    seq: u64,
    rng: ChaCha8Rng,
}

/// Salt of the pinger's random streams (ASCII "coord"), apart from foca's and the nonces'.
const COORD_SEED_SALT: u64 = 0x63_6f6f_7264;

impl Pinger {
    /// A pinger at the origin; `seed` is the agent's.
    pub fn new(seed: u64) -> Self {
        use rand::SeedableRng;
        let client = Client::new(Config::default(), ChaCha8Rng::seed_from_u64(seed ^ COORD_SEED_SALT ^ 1));
        // The default config has 8 dimensions: `Client::new` cannot fail.
        let client = client.unwrap_or_else(|e| unreachable!("default Vivaldi config refused: {e}"));
        Self { client, pending: BTreeMap::new(), seq: 0, rng: ChaCha8Rng::seed_from_u64(seed ^ COORD_SEED_SALT) }
    }

    /// Picks one random live member other than `me` and returns the ping to send it, remembering
    /// when it left. Forgets pings that went unanswered.
    pub fn tick(&mut self, me: &str, members: &[Member], now: Instant) -> Option<(SocketAddr, Message)> {
        self.pending.retain(|_, (_, at)| now.duration_since(*at) <= PING_TIMEOUT);
        let live: Vec<&Member> = members.iter().filter(|m| m.name != me && m.status.is_live()).collect();
        if live.is_empty() {
            return None;
        }
        let target = live[self.rng.gen_range(0..live.len())];
        self.seq += 1;
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_first();
        }
        self.pending.insert(self.seq, (target.name.clone(), now));
        Some((target.addr, Message::Ping { seq: self.seq, from: me.to_string() }))
    }

    /// Handles a decoded message from `from`: a ping is answered with our coordinate; an ack of a
    /// ping of ours becomes an RTT sample (the new coordinate is published to `state`). Returns
    /// the reply to send, if any.
    pub fn handle(&mut self, me: &str, msg: Message, from: SocketAddr, now: Instant, state: &CoordinateState) -> Option<(SocketAddr, Message)> {
        match msg {
            Message::Ping { seq, .. } => Some((from, Message::Ack { seq, from: me.to_string(), coord: self.client.coordinate().clone() })),
            Message::Ack { seq, from: node, coord } => {
                let (expected, sent) = self.pending.get(&seq)?.clone();
                if expected != node {
                    tracing::debug!(%from, node = %node, expected = %expected, "coordinate ack from the wrong node; dropped");
                    return None;
                }
                self.pending.remove(&seq);
                let measured = now.duration_since(sent);
                let rtt = if state.ignores_rtt { Duration::from_millis(1) } else { measured };
                match self.client.update(&node, &coord, rtt) {
                    Ok(updated) => state.set(updated),
                    Err(e) => tracing::debug!(node = %node, error = %e, "coordinate sample refused"),
                }
                None
            }
        }
    }

    /// This node's Vivaldi client (tests).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::MemberStatus;
    use std::collections::BTreeMap as Map;

    fn member(name: &str, port: u16) -> Member {
        Member { name: name.into(), addr: SocketAddr::from(([10, 0, 0, 1], port)), tags: Map::new(), status: MemberStatus::Alive, generation: 1 }
    }

    #[test]
    fn messages_round_trip_and_bad_ones_are_refused() {
        let ack = Message::Ack { seq: 7, from: "s1".into(), coord: Coordinate::new(&Config::default()) };
        assert_eq!(decode(&encode(&ack).unwrap()).unwrap(), ack);
        assert!(decode(b"\xC0crd\x01\x02").is_err(), "garbage after the magic");
        assert!(decode(b"hello").is_err(), "no magic");
        let mut bad = Coordinate::new(&Config::default());
        bad.vec[3] = f64::INFINITY;
        assert!(decode(&encode(&Message::Ack { seq: 1, from: "s1".into(), coord: bad }).unwrap()).is_err());
        let short = Coordinate { vec: vec![0.0; 2], ..Coordinate::new(&Config::default()) };
        assert!(decode(&encode(&Message::Ack { seq: 1, from: "s1".into(), coord: short }).unwrap()).is_err());
        assert!(decode(&encode(&Message::Ping { seq: 1, from: "x".repeat(129) }).unwrap()).is_err());
    }

    #[test]
    fn a_foca_packet_is_never_taken_for_a_coordinate_message() {
        for (len, first) in super::super::identity::foca_first_bytes() {
            assert_ne!(first, MAGIC[0], "name length {len}");
        }
    }

    #[test]
    fn an_ack_becomes_a_sample_only_for_a_ping_of_ours() {
        let state = CoordinateState::new(false);
        let mut p = Pinger::new(1);
        let t0 = Instant::now();
        let members = vec![member("me", 1), member("s2", 2)];
        let (to, ping) = p.tick("me", &members, t0).expect("a live peer");
        assert_eq!(to.port(), 2);
        let Message::Ping { seq, .. } = ping else { panic!("a ping") };
        let mut far = Coordinate::new(&Config::default());
        far.vec[0] = 0.02;
        let from = SocketAddr::from(([10, 0, 0, 1], 2));
        // Unknown sequence number, then the wrong node: no sample.
        assert!(p.handle("me", Message::Ack { seq: seq + 1, from: "s2".into(), coord: far.clone() }, from, t0, &state).is_none());
        assert!(p.handle("me", Message::Ack { seq, from: "s3".into(), coord: far.clone() }, from, t0, &state).is_none());
        assert_eq!(state.get(), None);
        p.handle("me", Message::Ack { seq, from: "s2".into(), coord: far.clone() }, from, t0 + Duration::from_millis(30), &state);
        let got = state.get().expect("one sample");
        assert_ne!(got, Coordinate::new(&Config::default()));
        // A ping is answered with our coordinate.
        let reply = p.handle("me", Message::Ping { seq: 9, from: "s2".into() }, from, t0, &state);
        assert!(matches!(reply, Some((a, Message::Ack { seq: 9, .. })) if a == from));
    }
}
