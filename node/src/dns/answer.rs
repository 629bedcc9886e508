//! The DNS answer core: one query message, the local state store, the DNS config and the server's
//! seeded RNG in; a response message (or "forward this to a recursor") out. No I/O, no clock.
//!
//! Source: Consul's DNS docs ("DNS interface": node, service, RFC 2782 and `addr` lookups) and
//! `agent/dns.go` (`handleQuery`, `dispatch`, `nodeLookup`, `serviceLookup`, `findWeight`,
//! `makeARecord`, `soa`). What we answer and how it differs from Consul:
//! - `<node>.node[.<dc>].<domain>`: A/AAAA of the node's address; node meta as RFC 1464 TXT
//!   records (in the answer for TXT/ANY, else in the additional section, as Consul's default
//!   `enable_additional_node_meta_txt`).
//! - `[<tag>.]<svc>.service[.<dc>].<domain>` and RFC 2782 `_<svc>._<tag>[.service][.<dc>].<domain>`
//!   (`_tcp` = no tag filter; the `service` label may be left out of an SRV query): A/AAAA per
//!   instance (ServiceAddress, else the node's), or SRV (priority 1, weight from `Weights` by
//!   health, target `<node>.node.<dc>.<domain>` with its A/AAAA in the additional section; an
//!   instance with its own address gets Consul's `<hex-ip>.addr.<dc>.<domain>` target instead,
//!   so a target name always resolves to the address it stands for).
//! - `<hex-ip>.addr[.<dc>].<domain>`: the address itself.
//! - Instances with a critical check are dropped; with `only_passing` warning ones too. The rest
//!   are shuffled by the server's seeded RNG.
//! - A datacenter label other than ours: the query goes to that datacenter
//!   ([`Answer::Forward`]; Consul's DNS asks a server there over RPC), unless [`Routing::Local`].
//!   On a client agent, which holds no catalog, every query inside the domain goes to a server.
//! - A datacenter that cannot be reached ([`Routing::Local`]), an unknown node or service, and
//!   anything else inside the domain (prepared queries, `connect`, `ingress`: not implemented) →
//!   NXDOMAIN with the zone's SOA in the authority section. Addresses that are host names (Consul answers CNAME)
//!   are skipped.
//! - The SOA serial is the store's newest Raft index (Consul uses the wall clock): it moves
//!   exactly when the catalog may have changed, and keeps this function pure.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::config::DnsConfig;
use crate::state::Store;
use crate::structs::{HealthStatus, Meta};
use super::cache::{Instance, InstanceCache};

/// SOA timers in seconds: Consul's `dns_config.soa` defaults (refresh 1 h, retry 10 min,
/// expire 24 h, negative-caching TTL 0).
const SOA_REFRESH_S: i32 = 3600;
const SOA_RETRY_S: i32 = 600;
const SOA_EXPIRE_S: i32 = 86_400;
const SOA_MIN_TTL_S: u32 = 0;

/// What the DNS server does with one query.
#[derive(Debug)]
pub enum Answer {
    /// Send this response (still to be fitted to the transport: [`super::trim`]). `omitted`:
    /// more answers existed than the answer cap let us build, so the reply is already trimmed.
    Reply { resp: Message, omitted: bool },
    /// The name is outside our domain and recursors are configured: forward the query.
    Recurse,
    /// The name is inside our domain but answered elsewhere: by a server of datacenter
    /// `datacenter`, or (`None`) by a server of our own (a client agent holds no catalog).
    Forward { datacenter: Option<String> },
}

/// Where names inside the domain are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// Here, from the store; another datacenter's names are NXDOMAIN (also the fallback when
    /// that datacenter cannot be reached).
    Local,
    /// Here for our datacenter; another datacenter's names go there.
    Federated,
    /// All by a server (a client agent).
    ClientAgent,
}

/// Everything the answer core reads besides the store.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub config: &'a DnsConfig,
    /// This agent's datacenter.
    pub datacenter: &'a str,
    pub routing: Routing,
}

/// Why a packet gets no normal answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Not worth a reply: shorter than a header, or itself a response (Consul's miekg/dns
    /// `DefaultMsgAcceptFunc` ignores these too).
    Drop,
    /// Answer with this error response (FORMERR, NOTIMP).
    Error(Box<Message>),
}

/// Parses a request and applies miekg/dns's default acceptance rules, which Consul inherits:
/// exactly one question, at most one answer and authority record and two additional records,
/// opcode QUERY. Errors: see [`Rejected`]; never panics on any input.
pub fn parse_request(packet: &[u8]) -> Result<Message, Rejected> {
    let Some(raw) = RawHeader::read(packet) else {
        return Err(Rejected::Drop);
    };
    if raw.is_response {
        return Err(Rejected::Drop);
    }
    let Ok(req) = Message::from_vec(packet) else {
        return Err(Rejected::Error(Box::new(error_without_question(raw.id, raw.op_code, ResponseCode::FormErr))));
    };
    if req.op_code() != OpCode::Query {
        return Err(Rejected::Error(Box::new(error_without_question(raw.id, req.op_code(), ResponseCode::NotImp))));
    }
    let h = req.header();
    // The additional count includes the OPT record hickory lifts out of the section.
    let malformed = h.query_count() != 1 || h.answer_count() > 1 || h.name_server_count() > 1 || h.additional_count() > 2;
    if malformed {
        return Err(Rejected::Error(Box::new(error_without_question(raw.id, raw.op_code, ResponseCode::FormErr))));
    }
    Ok(req)
}

/// The fixed 12-byte header fields read without trusting the rest of the packet.
struct RawHeader {
    id: u16,
    is_response: bool,
    op_code: OpCode,
}

impl RawHeader {
    fn read(packet: &[u8]) -> Option<Self> {
        let bytes = packet.get(..12)?;
        let flags = bytes[2];
        Some(Self {
            id: u16::from_be_bytes([bytes[0], bytes[1]]),
            is_response: flags & 0x80 != 0,
            op_code: OpCode::from_u8((flags >> 3) & 0x0f),
        })
    }
}

fn error_without_question(id: u16, op_code: OpCode, code: ResponseCode) -> Message {
    Message::error_msg(id, op_code, code)
}

/// A response skeleton for `req`: its id, opcode, question, RD and CD, and an OPT record
/// echoing the client's buffer size when it sent one (Consul's `setEDNS`).
pub fn reply_to(req: &Message, code: ResponseCode) -> Message {
    let mut resp = Message::new();
    let mut header = Header::response_from_request(req.header());
    header.set_message_type(MessageType::Response).set_response_code(code);
    resp.set_header(header);
    resp.add_queries(req.queries().iter().cloned());
    if let Some(edns) = req.extensions() {
        let mut out = Edns::new();
        out.set_max_payload(edns.max_payload().max(512));
        resp.set_edns(out);
    }
    resp
}

/// Answers one parsed query (see the module docs) from `store`, shuffling with `rng`. At most
/// `answer_cap` service answers are built (the transport's cap, [`super::trim::answer_cap`]):
/// the shuffled instances past it would be trimmed anyway, so they are never turned into records.
/// Service instances come through `cache` ([`InstanceCache`]).
pub fn answer(req: &Message, store: &Store, ctx: Context<'_>, answer_cap: usize, cache: &mut InstanceCache, rng: &mut impl Rng) -> Answer {
    let reply = |resp| Answer::Reply { resp, omitted: false };
    let Some(query) = req.query() else {
        return reply(reply_to(req, ResponseCode::FormErr));
    };
    let domain = labels_of_domain(&ctx.config.domain);
    let labels: Vec<String> = query.name().iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
    let in_domain = labels.len() >= domain.len()
        && labels[labels.len() - domain.len()..].iter().zip(&domain).all(|(a, b)| a.eq_ignore_ascii_case(b));
    if !in_domain {
        if ctx.config.recursors.is_empty() {
            // Consul registers no handler for "." without recursors; miekg/dns answers REFUSED.
            return reply(reply_to(req, ResponseCode::Refused));
        }
        return Answer::Recurse;
    }
    if ctx.routing == Routing::ClientAgent {
        return Answer::Forward { datacenter: None };
    }
    let mut resp = reply_to(req, ResponseCode::NoError);
    resp.set_authoritative(true).set_recursion_available(!ctx.config.recursors.is_empty());
    let zone = Zone::new(&domain, ctx, store, answer_cap.max(1));
    let qtype = query.query_type();
    let inner = &labels[..labels.len() - domain.len()];
    let outcome = match qtype {
        RecordType::SOA if inner.is_empty() => {
            resp.add_answer(zone.soa());
            Ok(false)
        }
        RecordType::NS if inner.is_empty() => Ok(false),
        RecordType::AXFR | RecordType::IXFR => {
            resp.set_response_code(ResponseCode::NotImp);
            Ok(false)
        }
        _ => zone.dispatch(inner, query.name(), qtype, &mut resp, cache, rng),
    };
    let mut omitted = false;
    match outcome {
        Ok(more) => omitted = more,
        Err(Miss::NoData) => {
            resp.add_name_server(zone.soa());
        }
        Err(Miss::NxDomain) => {
            resp.set_response_code(ResponseCode::NXDomain);
            resp.add_name_server(zone.soa());
        }
        Err(Miss::Elsewhere(dc)) => return Answer::Forward { datacenter: Some(dc) },
    }
    Answer::Reply { resp, omitted }
}

/// `consul.` → `["consul"]`; an empty or root domain has no labels.
fn labels_of_domain(domain: &str) -> Vec<String> {
    domain.split('.').filter(|l| !l.is_empty()).map(str::to_ascii_lowercase).collect()
}

/// Why a lookup has no answer (Consul's `errNameNotFound` and `errNoData`).
#[derive(Debug)]
enum Miss {
    /// NXDOMAIN + SOA.
    NxDomain,
    /// NOERROR, no answer, SOA (RFC 2308 NODATA): the name exists, not with this type.
    NoData,
    /// The name belongs to this other datacenter.
    Elsewhere(String),
}

/// The zone being answered: its name, our datacenter, the store, and how many service answers
/// are worth building.
struct Zone<'a> {
    domain: Name,
    ctx: Context<'a>,
    store: &'a Store,
    answer_cap: usize,
}

/// A lookup that answered: `true` when more answers existed than [`Zone::answer_cap`].
type Found = Result<bool, Miss>;

impl<'a> Zone<'a> {
    fn new(domain_labels: &[String], ctx: Context<'a>, store: &'a Store, answer_cap: usize) -> Self {
        let domain = Name::from_labels(domain_labels.iter().map(String::as_bytes)).unwrap_or_else(|_| Name::root());
        Self { domain, ctx, store, answer_cap }
    }

    fn node_ttl_s(&self) -> u32 {
        ttl_s(self.ctx.config.node_ttl_ms)
    }

    fn service_ttl_s(&self) -> u32 {
        ttl_s(self.ctx.config.service_ttl_ms)
    }

    /// The zone's SOA (Consul's `soa`), serial = the store's newest index.
    fn soa(&self) -> Record {
        let name = |prefix: &str| Name::from_ascii(prefix).and_then(|p| p.append_domain(&self.domain)).unwrap_or_else(|_| self.domain.clone());
        let serial = (self.store.max_index() & u64::from(u32::MAX)) as u32;
        let soa = SOA::new(name("ns"), name("hostmaster"), serial, SOA_REFRESH_S, SOA_RETRY_S, SOA_EXPIRE_S, SOA_MIN_TTL_S);
        Record::from_rdata(self.domain.clone(), SOA_MIN_TTL_S, RData::SOA(soa))
    }

    /// Splits `inner` (the name without the domain) into its kind, the labels before it and the
    /// locality after it, as Consul's `dispatch` does, and runs the lookup.
    fn dispatch(&self, inner: &[String], qname: &Name, qtype: RecordType, resp: &mut Message, cache: &mut InstanceCache, rng: &mut impl Rng) -> Found {
        let mut split = None;
        for i in (0..inner.len()).rev() {
            let label = inner[i].to_ascii_lowercase();
            if matches!(label.as_str(), "service" | "node" | "addr" | "query" | "connect" | "ingress" | "virtual") {
                split = Some((label, &inner[..i], &inner[i + 1..]));
                break;
            }
            // An SRV query may leave out the `service` label (`_web._tcp.consul`).
            if qtype == RecordType::SRV && label.starts_with('_') {
                split = Some(("service".to_string(), &inner[..=i], &inner[i + 1..]));
                break;
            }
        }
        let Some((kind, parts, locality)) = split else {
            return Err(Miss::NxDomain);
        };
        if parts.is_empty() {
            return Err(Miss::NxDomain);
        }
        let dc = self.datacenter_of(locality)?;
        match kind.as_str() {
            "service" => self.service_lookup(parts, &dc, qname, qtype, resp, cache, rng),
            "node" => self.node_lookup(&parts.join("."), qname, qtype, resp).map(|()| false),
            "addr" if parts.len() == 1 => self.addr_lookup(&parts[0], qname, qtype, resp).map(|()| false),
            _ => Err(Miss::NxDomain),
        }
    }

    /// The datacenter named after the kind label: none (ours), `<dc>` or `<dc>.dc`. Another
    /// datacenter is [`Miss::Elsewhere`] when federated, else NXDOMAIN; anything longer is not
    /// a name we serve.
    fn datacenter_of(&self, locality: &[String]) -> Result<String, Miss> {
        let dc = match locality {
            [] => return Ok(self.ctx.datacenter.to_string()),
            [dc] => dc,
            [dc, tag] if tag.eq_ignore_ascii_case("dc") => dc,
            _ => return Err(Miss::NxDomain),
        };
        if dc.eq_ignore_ascii_case(self.ctx.datacenter) {
            Ok(self.ctx.datacenter.to_string())
        } else if self.ctx.routing == Routing::Federated {
            Err(Miss::Elsewhere(dc.to_ascii_lowercase()))
        } else {
            Err(Miss::NxDomain)
        }
    }

    /// `<node>.node`: A/AAAA, TXT from node meta (Consul's `nodeLookup`). Only A, AAAA, TXT and
    /// ANY are answered; other types get an empty NOERROR, as in Consul.
    fn node_lookup(&self, node: &str, qname: &Name, qtype: RecordType, resp: &mut Message) -> Result<(), Miss> {
        if !matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::TXT | RecordType::ANY) {
            return Ok(());
        }
        let found = self.store.catalog_node_services(node).0.or_else(|| self.store.catalog_node_services(&node.to_ascii_lowercase()).0);
        let Some(ns) = found else {
            return Err(Miss::NxDomain);
        };
        let ttl = self.node_ttl_s();
        if qtype != RecordType::TXT {
            if let Some(rec) = address_record(&ns.node.address, qtype, qname.clone(), ttl) {
                resp.add_answer(rec);
            }
        }
        let meta = meta_txt(&ns.node.meta, qname, ttl);
        if matches!(qtype, RecordType::TXT | RecordType::ANY) {
            resp.add_answers(meta);
        } else {
            resp.add_additionals(meta);
        }
        Ok(())
    }

    /// `<hex>.addr`: the address encoded in the label (Consul's `addr` lookup).
    fn addr_lookup(&self, hex: &str, qname: &Name, qtype: RecordType, resp: &mut Message) -> Result<(), Miss> {
        let ip = decode_hex_ip(hex).ok_or(Miss::NxDomain)?;
        if let Some(rec) = address_record(&ip.to_string(), qtype, qname.clone(), self.node_ttl_s()) {
            resp.add_answer(rec);
        }
        Ok(())
    }

    /// `[tag.]svc.service` and `_svc._tag.service` (Consul's `serviceLookup`). Records are built
    /// for the shuffled instances in turn until [`Zone::answer_cap`] answers exist.
    #[allow(clippy::too_many_arguments)]
    fn service_lookup(&self, parts: &[String], dc: &str, qname: &Name, qtype: RecordType, resp: &mut Message, cache: &mut InstanceCache, rng: &mut impl Rng) -> Found {
        let (service, tag) = match parts {
            [svc, tag] if svc.starts_with('_') && tag.starts_with('_') => {
                let tag = &tag[1..];
                (svc[1..].to_string(), (!tag.eq_ignore_ascii_case("tcp")).then(|| tag.to_string()))
            }
            [tags @ .., svc] => (svc.clone(), (!tags.is_empty()).then(|| tags.join("."))),
            [] => return Err(Miss::NxDomain),
        };
        let mut instances = self.healthy_instances(cache, &service, tag.as_deref());
        if instances.is_empty() {
            return Err(Miss::NxDomain);
        }
        instances.shuffle(rng);
        let ttl = self.service_ttl_s();
        let mut omitted = false;
        if qtype == RecordType::SRV {
            omitted = self.srv_records(&instances, dc, qname, ttl, resp);
        } else {
            let mut seen = std::collections::BTreeSet::new();
            for inst in &instances {
                let addr = inst.address();
                if !seen.insert(addr) {
                    continue; // one node, the same service on several ports
                }
                let Some(rec) = address_record(addr, qtype, qname.clone(), ttl) else {
                    continue;
                };
                if resp.answers().len() == self.answer_cap {
                    omitted = true;
                    break;
                }
                resp.add_answer(rec);
            }
        }
        if resp.answers().is_empty() {
            return Err(Miss::NoData);
        }
        Ok(omitted)
    }

    /// Instances of `service` (with `tag`) that may be answered: no critical check, and with
    /// `only_passing` no warning one either (Consul's `CheckServiceNodes.Filter`). Service names
    /// are looked up as typed, then lowercased (DNS is case-insensitive; the catalog is not).
    fn healthy_instances<'c>(&self, cache: &'c mut InstanceCache, service: &str, tag: Option<&str>) -> Vec<&'c Instance> {
        let lower;
        let mut name = service;
        if service.bytes().any(|b| b.is_ascii_uppercase()) && cache.instances(self.store, service, tag).is_empty() {
            lower = service.to_ascii_lowercase();
            name = &lower;
        }
        let worst_allowed = if self.ctx.config.only_passing { HealthStatus::Passing } else { HealthStatus::Warning };
        cache.instances(self.store, name, tag).iter().filter(|i| i.status <= worst_allowed).collect()
    }

    /// SRV answers with their targets' addresses in the additional section, until
    /// [`Zone::answer_cap`] answers exist; `true` when instances were left over.
    fn srv_records(&self, instances: &[&Instance], dc: &str, qname: &Name, ttl: u32, resp: &mut Message) -> bool {
        let mut seen = std::collections::BTreeSet::new();
        for inst in instances {
            let addr = inst.address();
            let Ok(ip) = addr.parse::<IpAddr>() else {
                continue;
            };
            let Some(target) = self.srv_target(inst, ip, dc) else {
                continue;
            };
            if !seen.insert((target.clone(), inst.port)) {
                continue;
            }
            if resp.answers().len() == self.answer_cap {
                return true;
            }
            let srv = SRV::new(1, weight_for(inst), inst.port, target.clone());
            resp.add_answer(Record::from_rdata(qname.clone(), ttl, RData::SRV(srv)));
            if let Some(rec) = address_record(addr, RecordType::SRV, target, ttl) {
                if !resp.additionals().iter().any(|r| r.name() == rec.name()) {
                    resp.add_additional(rec);
                }
            }
        }
        false
    }

    /// `<node>.node.<dc>.<domain>`, or `<hex-ip>.addr.<dc>.<domain>` when the instance has an
    /// address of its own. `None` when the node name is not a valid DNS label.
    fn srv_target(&self, inst: &Instance, ip: IpAddr, dc: &str) -> Option<Name> {
        let own_address = !inst.service_address.is_empty();
        let first = if own_address { hex_ip(ip) } else { inst.node.clone() };
        let kind = if own_address { "addr" } else { "node" };
        let name = Name::from_labels([first.as_bytes(), kind.as_bytes(), dc.to_ascii_lowercase().as_bytes()]).ok()?;
        name.append_domain(&self.domain).ok()
    }
}

/// Seconds from a config's milliseconds, saturating.
fn ttl_s(ms: u64) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

/// The SRV weight by health (Consul's `findWeight`): `Weights.Warning` while a check warns,
/// `Weights.Passing` otherwise; clamped into DNS's 16 bits.
fn weight_for(inst: &Instance) -> u16 {
    let w = match inst.status {
        HealthStatus::Passing => inst.weights.passing,
        HealthStatus::Warning => inst.weights.warning,
        HealthStatus::Critical => 0,
    };
    u16::try_from(w.max(0)).unwrap_or(u16::MAX)
}

/// An A or AAAA record for `addr` if the query type asks for that family (Consul's
/// `makeARecord`: A for A/ANY/SRV/TXT/NS on IPv4, AAAA likewise on IPv6). `None` for a host name.
fn address_record(addr: &str, qtype: RecordType, name: Name, ttl: u32) -> Option<Record> {
    let wide = matches!(qtype, RecordType::ANY | RecordType::SRV | RecordType::TXT | RecordType::NS);
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) if wide || qtype == RecordType::A => Some(Record::from_rdata(name, ttl, RData::A(A(v4)))),
        IpAddr::V6(v6) if wide || qtype == RecordType::AAAA => Some(Record::from_rdata(name, ttl, RData::AAAA(AAAA(v6)))),
        _ => None,
    }
}

/// Node meta as TXT records, one per pair in key order: `key=value` escaped per RFC 1464, or
/// the bare value for keys starting `rfc1035-` (Consul's `generateMeta`).
fn meta_txt(meta: &Meta, name: &Name, ttl: u32) -> Vec<Record> {
    meta.iter()
        .map(|(k, v)| {
            let txt = if k.to_ascii_lowercase().starts_with("rfc1035-") { v.clone() } else { rfc1464(k, v) };
            Record::from_rdata(name.clone(), ttl, RData::TXT(TXT::new(vec![txt])))
        })
        .collect()
}

/// RFC 1464 `key=value`: backquote `` ` `` and `=` in the key, and its leading and trailing
/// spaces; backquote `` ` `` in the value.
fn rfc1464(key: &str, value: &str) -> String {
    let escaped = key.replace('`', "``").replace('=', "`=");
    let core = escaped.trim_matches(' ');
    let lead = escaped.len() - escaped.trim_start_matches(' ').len();
    let trail = escaped.len() - escaped.trim_end_matches(' ').len();
    let key = if core.is_empty() { "` ".repeat(escaped.len()) } else { format!("{}{core}{}", "` ".repeat(lead), "` ".repeat(trail)) };
    format!("{key}={}", value.replace('`', "``"))
}

/// The `addr` label of an IP: its bytes in lowercase hex (8 digits for IPv4, 32 for IPv6).
fn hex_ip(ip: IpAddr) -> String {
    let bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Inverse of [`hex_ip`]; `None` unless 8 or 32 hex digits.
fn decode_hex_ip(hex: &str) -> Option<IpAddr> {
    if !hex.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len() / 2).map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect();
    let bytes = bytes?;
    match (hex.len(), bytes.len()) {
        (8, 4) => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        (32, 16) => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}
