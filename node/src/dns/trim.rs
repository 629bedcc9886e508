//! Fitting a response to its transport, then encoding it.
//!
//! Source: Consul `agent/dns.go` `trimUDPResponse`, `trimTCPResponse`, `syncExtra` (and the
//! DNS docs' `udp_answer_limit` and `enable_truncate`). Over UDP a client without EDNS0 gets at
//! most `udp_answer_limit` answers (never more than [`MAX_UDP_ANSWERS`]) in at most 512 bytes; a
//! client with EDNS0 gets as many as fit its advertised buffer. Over TCP a reply fits 64 KiB.
//! Answers are dropped from the end (they are already shuffled); the additional section keeps
//! only the addresses of the remaining SRV targets. TC is set on a trimmed reply only with
//! `enable_truncate`, as in Consul; without it clients silently see fewer records (#375).

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::config::DnsConfig;

/// RFC 1035's classic UDP payload limit, for clients without EDNS0.
pub const CLASSIC_UDP_BYTES: usize = 512;
/// Consul's hard cap on answers in a UDP reply without EDNS0 (`maxUDPAnswerLimit`).
pub const MAX_UDP_ANSWERS: usize = 8;
/// The largest UDP payload an EDNS0 client can ask for (Consul's `maxUDPDatagramSize`: 64 KiB
/// less a 60-byte IP header).
pub const MAX_UDP_DATAGRAM_BYTES: usize = 65_535 - 60;
/// The UDP header, which Consul subtracts from the budget.
const UDP_HEADER_BYTES: usize = 8;
/// The largest message over TCP (Consul's `trimTCPResponse`: 64 KiB less 12 bytes of overhead).
pub const MAX_TCP_MESSAGE_BYTES: usize = 65_523;
/// Answers never sent over TCP, even before measuring (Consul: 4096, 1024 for SRV).
const MAX_TCP_ANSWERS: usize = 4096;
const MAX_TCP_SRV_ANSWERS: usize = 1024;

/// The transport a query arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Trims `resp` (the answer to `req`) to fit `transport` and encodes it. `omitted`: the answer
/// core already left out answers past [`answer_cap`] (so the reply counts as trimmed). `None`
/// only when even a bare error reply cannot be encoded (then the query goes unanswered).
pub fn encode_fitted(mut resp: Message, omitted: bool, req: &Message, transport: Transport, config: &DnsConfig) -> Option<Vec<u8>> {
    let (answer_cap, size_cap) = limits(req, transport, config);
    let original = resp.answers().len();
    if original > answer_cap {
        resp.answers_mut().truncate(answer_cap);
        sync_additionals(&mut resp);
    }
    let mut bytes = encode(&resp);
    let fits = matches!(&bytes, Some(b) if b.len() <= size_cap);
    if !fits && resp.answers().len() > 1 {
        resp.name_servers_mut().clear();
        let keep = largest_fitting_answer_count(&resp, size_cap);
        resp.answers_mut().truncate(keep);
        sync_additionals(&mut resp);
        bytes = None;
    }
    if (omitted || resp.answers().len() < original) && config.enable_truncate {
        resp.set_truncated(true);
        bytes = None;
    }
    match bytes.or_else(|| encode(&resp)) {
        Some(b) if b.len() <= usize::from(u16::MAX) => Some(b),
        _ => encode(&super::answer::reply_to(req, ResponseCode::ServFail)),
    }
}

/// The most answers a reply to `req` over `transport` may carry before its size is measured
/// (Consul's `udp_answer_limit` without EDNS0; its TCP caps); `usize::MAX` when only size counts.
pub fn answer_cap(req: &Message, transport: Transport, config: &DnsConfig) -> usize {
    limits(req, transport, config).0
}

/// (answer count cap, byte cap) for this request on this transport.
fn limits(req: &Message, transport: Transport, config: &DnsConfig) -> (usize, usize) {
    match transport {
        Transport::Tcp => {
            let is_srv = req.query().is_some_and(|q| q.query_type() == RecordType::SRV);
            (if is_srv { MAX_TCP_SRV_ANSWERS } else { MAX_TCP_ANSWERS }, MAX_TCP_MESSAGE_BYTES)
        }
        Transport::Udp => {
            // An EDNS0 buffer of 512 or less is the classic limit, answer cap included (Consul).
            let advertised = req.extensions().as_ref().map_or(CLASSIC_UDP_BYTES, |e| usize::from(e.max_payload()));
            let size = advertised.clamp(CLASSIC_UDP_BYTES, MAX_UDP_DATAGRAM_BYTES);
            let answers = if size == CLASSIC_UDP_BYTES { config.udp_answer_limit.clamp(1, MAX_UDP_ANSWERS) } else { usize::MAX };
            (answers, size - UDP_HEADER_BYTES)
        }
    }
}

fn encode(m: &Message) -> Option<Vec<u8>> {
    m.to_vec().ok()
}

/// The most answers (at least one: a single oversized record is sent anyway, as Consul does)
/// whose message, with additionals synced, fits `size_cap`. Binary search: an encoding is
/// monotone in the number of answers kept.
fn largest_fitting_answer_count(resp: &Message, size_cap: usize) -> usize {
    let fits = |k: usize| {
        let mut m = resp.clone();
        m.answers_mut().truncate(k);
        sync_additionals(&mut m);
        encode(&m).is_some_and(|b| b.len() <= size_cap)
    };
    let (mut lo, mut hi) = (1, resp.answers().len());
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// Keeps only the additional records that give an address for a remaining SRV target (Consul's
/// `syncExtra`, which likewise drops any other additional data once a reply is trimmed).
fn sync_additionals(resp: &mut Message) {
    let targets: Vec<_> = resp
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::SRV(srv) => Some(srv.target().to_lowercase()),
            _ => None,
        })
        .collect();
    resp.additionals_mut().retain(|r| targets.iter().any(|t| *t == r.name().to_lowercase()));
}
