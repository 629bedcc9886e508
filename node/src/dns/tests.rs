//! The DNS pipeline ([`super::handle_packet`]) against a store filled through `Store::apply`, as
//! Raft would fill it: bytes in, bytes out, decoded again with hickory-proto.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::answer::{Context, Routing};
use super::cache::InstanceCache;
use super::trim::Transport;
use super::{handle_packet, Action};
use crate::config::DnsConfig;
use crate::io::Net;
use crate::state::Store;
use crate::structs::{HealthCheck, HealthStatus, NodeService, RegisterRequest, Request, Weights};

use HealthStatus::*;

const DC: &str = "dc1";

/// One service instance to register: node, node address, service address, port, tags, checks.
struct Inst<'a> {
    node: &'a str,
    addr: &'a str,
    svc_addr: &'a str,
    port: u16,
    tags: &'a [&'a str],
    status: Option<HealthStatus>,
}

fn inst<'a>(node: &'a str, addr: &'a str) -> Inst<'a> {
    Inst { node, addr, svc_addr: "", port: 8080, tags: &[], status: None }
}

fn store_with(service: &str, instances: &[Inst<'_>]) -> Store {
    let mut store = Store::new();
    for (i, it) in instances.iter().enumerate() {
        let mut req = RegisterRequest {
            node: it.node.into(),
            address: it.addr.into(),
            node_meta: [("rack".to_string(), "r1".to_string())].into(),
            service: Some(NodeService {
                service: service.into(),
                id: format!("{service}-{}", it.node),
                address: it.svc_addr.into(),
                port: it.port,
                tags: it.tags.iter().map(|t| t.to_string()).collect(),
                weights: Weights { passing: 10, warning: 2 },
                ..Default::default()
            }),
            checks: it
                .status
                .map(|st| HealthCheck { check_id: "c".into(), service_id: format!("{service}-{}", it.node), status: st, ..Default::default() })
                .into_iter()
                .collect(),
            ..Default::default()
        };
        req.normalize().expect("valid registration");
        store.apply(i as u64 + 1, &Request::Register(req));
    }
    store
}

fn query(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(4242).set_message_type(MessageType::Query).set_op_code(OpCode::Query).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).expect("test name"), qtype));
    m
}

fn with_edns(mut m: Message, size: u16) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(size);
    m.set_edns(e);
    m
}

fn ask_with(store: &Store, config: &DnsConfig, req: &Message, transport: Transport, seed: u64) -> Message {
    let bytes = req.to_vec().expect("encodable query");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    match handle_packet(&bytes, store, Context { config, datacenter: DC, routing: Routing::Local }, transport, &mut InstanceCache::default(), &mut rng) {
        Action::Reply(b) => Message::from_vec(&b).expect("our reply decodes"),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn ask(store: &Store, name: &str, qtype: RecordType) -> Message {
    ask_with(store, &DnsConfig::default(), &query(name, qtype), Transport::Udp, 1)
}

fn addresses(m: &Message) -> Vec<String> {
    let mut out: Vec<String> = m
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_service_asked_in_another_case_is_found_by_its_lowercase_name() {
    let store = store_with("web", &[inst("n1", "10.0.0.1")]);
    assert_eq!(addresses(&ask(&store, "WEB.service.consul.", RecordType::A)), ["10.0.0.1"]);
    assert_eq!(addresses(&ask(&store, "Web.service.consul.", RecordType::A)), ["10.0.0.1"]);
    assert_eq!(ask(&store, "Nope.service.consul.", RecordType::A).response_code(), ResponseCode::NXDomain);
}

#[test]
fn node_lookup_answers_its_address_with_meta_as_additional_txt() {
    let store = store_with("web", &[inst("n1", "10.0.0.1")]);
    for name in ["n1.node.consul.", "N1.node.dc1.consul.", "n1.node.dc1.dc.consul."] {
        let resp = ask(&store, name, RecordType::A);
        assert_eq!(resp.response_code(), ResponseCode::NoError, "{name}");
        assert!(resp.authoritative() && resp.id() == 4242);
        assert_eq!(addresses(&resp), ["10.0.0.1"], "{name}");
        assert_eq!(resp.answers()[0].ttl(), 0, "node_ttl defaults to 0");
        let txt: Vec<String> = resp.additionals().iter().filter_map(|r| r.data().as_txt().map(|t| t.to_string())).collect();
        assert_eq!(txt, ["rack=r1"]);
    }
    let txt = ask(&store, "n1.node.consul.", RecordType::TXT);
    assert_eq!(txt.answers().len(), 1, "TXT query: meta in the answer, no A");
    let aaaa = ask(&store, "n1.node.consul.", RecordType::AAAA);
    assert!(aaaa.answers().is_empty() && aaaa.response_code() == ResponseCode::NoError);
}

#[test]
fn service_lookup_answers_each_instance_preferring_the_service_address() {
    let store = store_with("web", &[inst("n1", "10.0.0.1"), Inst { svc_addr: "10.9.9.9", ..inst("n2", "10.0.0.2") }, inst("n3", "fd00::3")]);
    assert_eq!(addresses(&ask(&store, "web.service.consul.", RecordType::A)), ["10.0.0.1", "10.9.9.9"]);
    assert_eq!(addresses(&ask(&store, "web.service.consul.", RecordType::AAAA)), ["fd00::3"]);
    let config = DnsConfig { service_ttl_ms: 30_500, ..DnsConfig::default() };
    let resp = ask_with(&store, &config, &query("web.service.dc1.consul.", RecordType::A), Transport::Udp, 1);
    assert!(resp.answers().iter().all(|r| r.ttl() == 30), "service_ttl in whole seconds");
}

#[test]
fn srv_answers_weight_port_and_node_target_with_the_target_address_in_additional() {
    let store = store_with(
        "web",
        &[Inst { port: 9001, status: Some(Passing), ..inst("n1", "10.0.0.1") }, Inst { port: 9002, status: Some(Warning), svc_addr: "10.9.9.9", ..inst("n2", "10.0.0.2") }],
    );
    let resp = ask(&store, "web.service.consul.", RecordType::SRV);
    let mut srvs: Vec<(u16, u16, u16, String)> = resp
        .answers()
        .iter()
        .filter_map(|r| r.data().as_srv().map(|s| (s.priority(), s.weight(), s.port(), s.target().to_ascii())))
        .collect();
    srvs.sort();
    assert_eq!(srvs, [(1, 2, 9002, "0a090909.addr.dc1.consul.".to_string()), (1, 10, 9001, "n1.node.dc1.consul.".to_string())]);
    let mut extra: Vec<(String, String)> =
        resp.additionals().iter().filter_map(|r| r.data().as_a().map(|a| (r.name().to_ascii(), a.0.to_string()))).collect();
    extra.sort();
    assert_eq!(extra, [("0a090909.addr.dc1.consul.".into(), "10.9.9.9".into()), ("n1.node.dc1.consul.".into(), "10.0.0.1".into())]);
    // The target names resolve to what the additional section said.
    assert_eq!(addresses(&ask(&store, "0a090909.addr.dc1.consul.", RecordType::A)), ["10.9.9.9"]);
}

#[test]
fn tag_prefix_filters_instances_by_tag() {
    let store = store_with("web", &[Inst { tags: &["primary"], ..inst("n1", "10.0.0.1") }, Inst { tags: &["replica"], ..inst("n2", "10.0.0.2") }]);
    assert_eq!(addresses(&ask(&store, "primary.web.service.consul.", RecordType::A)), ["10.0.0.1"]);
    assert_eq!(addresses(&ask(&store, "replica.web.service.dc1.consul.", RecordType::A)), ["10.0.0.2"]);
    assert_eq!(ask(&store, "other.web.service.consul.", RecordType::A).response_code(), ResponseCode::NXDomain);
}

#[test]
fn rfc2782_names_filter_by_tag_and_tcp_means_no_filter() {
    let store = store_with("web", &[Inst { tags: &["primary"], ..inst("n1", "10.0.0.1") }, inst("n2", "10.0.0.2")]);
    let count = |name: &str| ask(&store, name, RecordType::SRV).answers().len();
    assert_eq!(count("_web._primary.service.consul."), 1);
    assert_eq!(count("_web._tcp.service.consul."), 2);
    assert_eq!(count("_web._tcp.service.dc1.consul."), 2);
    assert_eq!(count("_web._tcp.consul."), 2, "an SRV query may leave out the service label");
    assert_eq!(count("_web._primary.dc1.consul."), 1);
}

#[test]
fn instances_with_a_critical_check_are_dropped_and_warning_ones_kept() {
    let store = store_with("web", &[Inst { status: Some(Critical), ..inst("n1", "10.0.0.1") }, Inst { status: Some(Warning), ..inst("n2", "10.0.0.2") }]);
    assert_eq!(addresses(&ask(&store, "web.service.consul.", RecordType::A)), ["10.0.0.2"]);
    let all_critical = store_with("web", &[Inst { status: Some(Critical), ..inst("n1", "10.0.0.1") }]);
    let resp = ask(&all_critical, "web.service.consul.", RecordType::A);
    assert_eq!(resp.response_code(), ResponseCode::NXDomain, "no healthy instance: the name does not exist (Consul)");
}

#[test]
fn only_passing_also_drops_warning_instances() {
    let store = store_with("web", &[Inst { status: Some(Passing), ..inst("n1", "10.0.0.1") }, Inst { status: Some(Warning), ..inst("n2", "10.0.0.2") }]);
    let config = DnsConfig { only_passing: true, ..DnsConfig::default() };
    let resp = ask_with(&store, &config, &query("web.service.consul.", RecordType::A), Transport::Udp, 1);
    assert_eq!(addresses(&resp), ["10.0.0.1"]);
}

fn many(n: usize) -> Store {
    let names: Vec<(String, String)> = (0..n).map(|i| (format!("node-{i:02}"), format!("10.0.1.{i}"))).collect();
    let insts: Vec<Inst<'_>> = names.iter().map(|(n, a)| inst(n, a)).collect();
    store_with("web", &insts)
}

#[test]
fn udp_without_edns_answers_at_most_three_and_sets_tc_only_with_enable_truncate() {
    let store = many(10);
    let q = query("web.service.consul.", RecordType::A);
    let quiet = ask_with(&store, &DnsConfig::default(), &q, Transport::Udp, 1);
    assert_eq!(quiet.answers().len(), 3);
    assert!(!quiet.truncated(), "Consul's default: fewer records, no TC (#375)");
    let loud = ask_with(&store, &DnsConfig { enable_truncate: true, ..DnsConfig::default() }, &q, Transport::Udp, 1);
    assert_eq!(loud.answers().len(), 3);
    assert!(loud.truncated());
    let srv = ask_with(&store, &DnsConfig { enable_truncate: true, ..DnsConfig::default() }, &query("web.service.consul.", RecordType::SRV), Transport::Udp, 1);
    assert_eq!(srv.answers().len(), 3);
    assert_eq!(srv.additionals().len(), 3, "additionals follow the answers that remain");
    let exact = many(3);
    assert!(!ask_with(&exact, &DnsConfig { enable_truncate: true, ..DnsConfig::default() }, &q, Transport::Udp, 1).truncated());
}

#[test]
fn edns0_buffer_and_tcp_allow_bigger_answers_and_size_still_trims() {
    let store = many(40);
    let q = query("web.service.consul.", RecordType::A);
    let edns = ask_with(&store, &DnsConfig::default(), &with_edns(q.clone(), 4096), Transport::Udp, 1);
    assert_eq!(edns.answers().len(), 40);
    assert_eq!(edns.extensions().as_ref().map(|e| e.max_payload()), Some(4096), "the OPT record is echoed");
    assert_eq!(ask_with(&store, &DnsConfig::default(), &q, Transport::Tcp, 1).answers().len(), 40);
    // 40 SRV answers with 40 additionals do not fit 1232 bytes: trimmed by size, additionals synced.
    let config = DnsConfig { enable_truncate: true, ..DnsConfig::default() };
    let srv = ask_with(&store, &config, &with_edns(query("web.service.consul.", RecordType::SRV), 1232), Transport::Udp, 1);
    let len = srv.to_vec().expect("encodes").len();
    assert!(srv.truncated() && srv.answers().len() > 3 && srv.answers().len() < 40 && len <= 1232, "{} answers, {len} bytes", srv.answers().len());
    assert_eq!(srv.additionals().len(), srv.answers().len());
}

#[test]
fn unknown_names_and_other_datacenters_are_nxdomain_with_the_zone_soa() {
    let store = store_with("web", &[inst("n1", "10.0.0.1")]);
    for name in ["nope.node.consul.", "nope.service.consul.", "web.service.dc2.consul.", "n1.node.dc2.consul.", "web.service.a.b.consul.", "consul.", "x.query.consul.", "x.consul."] {
        let resp = ask(&store, name, RecordType::A);
        assert_eq!(resp.response_code(), ResponseCode::NXDomain, "{name}");
        let soa = resp.name_servers().first().and_then(|r| r.data().as_soa().map(|s| (r.name().to_ascii(), s.mname().to_ascii(), s.serial())));
        assert_eq!(soa, Some(("consul.".into(), "ns.consul.".into(), 1)), "{name}");
    }
    let soa = ask(&store, "consul.", RecordType::SOA);
    assert_eq!((soa.response_code(), soa.answers().len()), (ResponseCode::NoError, 1));
    let custom = DnsConfig { domain: "example.".into(), ..DnsConfig::default() };
    let resp = ask_with(&store, &custom, &query("n1.node.example.", RecordType::A), Transport::Udp, 1);
    assert_eq!(addresses(&resp), ["10.0.0.1"]);
}

#[test]
fn names_outside_the_domain_are_refused_without_recursors_and_forwarded_with_them() {
    let store = Store::new();
    let resp = ask(&store, "example.com.", RecordType::A);
    assert_eq!(resp.response_code(), ResponseCode::Refused, "miekg/dns without a handler for '.'");
    let config = DnsConfig { recursors: vec!["127.0.0.1:53".parse().expect("addr")], ..DnsConfig::default() };
    let bytes = query("example.com.", RecordType::A).to_vec().expect("encodes");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let action = handle_packet(&bytes, &store, Context { config: &config, datacenter: DC, routing: Routing::Local }, Transport::Udp, &mut InstanceCache::default(), &mut rng);
    assert!(matches!(action, Action::Recurse(ref q) if q.id() == 4242), "{action:?}");
}

/// What `name` gets from an agent routing names as `routing`.
fn routed(store: &Store, name: &str, routing: Routing) -> Action {
    let bytes = query(name, RecordType::A).to_vec().expect("encodes");
    let config = DnsConfig::default();
    let ctx = Context { config: &config, datacenter: DC, routing };
    handle_packet(&bytes, store, ctx, Transport::Udp, &mut InstanceCache::default(), &mut ChaCha8Rng::seed_from_u64(1))
}

#[test]
fn a_federated_server_sends_other_datacenters_names_there_and_answers_its_own() {
    let store = store_with("web", &[inst("n1", "10.0.0.1")]);
    for (name, dc) in [("web.service.dc2.consul.", "dc2"), ("n1.node.DC3.dc.consul.", "dc3"), ("_web._tcp.service.east.consul.", "east")] {
        let action = routed(&store, name, Routing::Federated);
        assert!(matches!(&action, Action::Forward { datacenter: Some(d), packet, .. } if d == dc && !packet.is_empty()), "{name}: {action:?}");
    }
    for name in ["web.service.consul.", "web.service.dc1.consul.", "nope.service.consul."] {
        assert!(matches!(routed(&store, name, Routing::Federated), Action::Reply(_)), "{name} is answered here");
    }
}

#[test]
fn a_client_agent_has_a_server_answer_every_name_in_the_domain() {
    let store = Store::new();
    for name in ["web.service.consul.", "web.service.dc2.consul.", "n1.node.consul.", "consul."] {
        let action = routed(&store, name, Routing::ClientAgent);
        assert!(matches!(action, Action::Forward { datacenter: None, .. }), "{name}: {action:?}");
    }
    let Action::Reply(bytes) = routed(&store, "example.com.", Routing::ClientAgent) else { panic!("answered locally") };
    let resp = Message::from_vec(&bytes).expect("decodes");
    assert_eq!(resp.response_code(), ResponseCode::Refused, "outside the domain, no recursors: as on a server");
}

#[test]
fn answers_are_shuffled_by_the_seed_and_replay_with_it() {
    let store = many(8);
    let config = DnsConfig { udp_answer_limit: 8, ..DnsConfig::default() };
    let order = |seed| {
        let resp = ask_with(&store, &config, &query("web.service.consul.", RecordType::A), Transport::Udp, seed);
        resp.answers().iter().map(|r| r.data().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(order(7), order(7));
    assert!((1..20).any(|s| order(s) != order(7)), "different seeds shuffle differently");
}

#[test]
fn malformed_packets_are_dropped_or_answered_formerr() {
    let store = Store::new();
    let config = DnsConfig::default();
    let run = |bytes: &[u8]| handle_packet(bytes, &store, Context { config: &config, datacenter: DC, routing: Routing::Local }, Transport::Udp, &mut InstanceCache::default(), &mut ChaCha8Rng::seed_from_u64(1));
    assert!(matches!(run(&[1, 2, 3]), Action::Drop), "shorter than a header");
    let mut response = query("n1.node.consul.", RecordType::A);
    response.set_message_type(MessageType::Response);
    assert!(matches!(run(&response.to_vec().expect("encodes")), Action::Drop), "a response is never answered");
    let mut header_only = query("n1.node.consul.", RecordType::A).to_vec().expect("encodes");
    header_only.truncate(12);
    let Action::Reply(reply) = run(&header_only) else { panic!("a header claiming a question gets FORMERR") };
    let reply = Message::from_vec(&reply).expect("decodes");
    assert_eq!((reply.response_code(), reply.id()), (ResponseCode::FormErr, 4242));
    let mut two = query("a.node.consul.", RecordType::A);
    two.add_query(Query::query(Name::from_ascii("b.node.consul.").expect("name"), RecordType::A));
    let Action::Reply(reply) = run(&two.to_vec().expect("encodes")) else { panic!("two questions get FORMERR") };
    assert_eq!(Message::from_vec(&reply).expect("decodes").response_code(), ResponseCode::FormErr);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), udp in any::<bool>()) {
        let store = many(5);
        let config = DnsConfig::default();
        let transport = if udp { Transport::Udp } else { Transport::Tcp };
        let _ = handle_packet(&bytes, &store, Context { config: &config, datacenter: DC, routing: Routing::Local }, transport, &mut InstanceCache::default(), &mut ChaCha8Rng::seed_from_u64(1));
    }

    #[test]
    fn mutated_valid_queries_never_panic(flip in proptest::collection::vec((0usize..64, any::<u8>()), 1..6), qtype in prop_oneof![Just(RecordType::A), Just(RecordType::SRV), Just(RecordType::TXT), Just(RecordType::ANY)]) {
        let store = many(5);
        let config = DnsConfig::default();
        let mut bytes = query("_web._tcp.service.consul.", qtype).to_vec().expect("encodes");
        for (at, b) in flip {
            if let Some(x) = bytes.get_mut(at) { *x = b; }
        }
        let _ = handle_packet(&bytes, &store, Context { config: &config, datacenter: DC, routing: Routing::Local }, Transport::Udp, &mut InstanceCache::default(), &mut ChaCha8Rng::seed_from_u64(1));
    }
}

/// A fake upstream resolver on loopback: answers every query with `code` (and one A record
/// when NOERROR), or never answers when `code` is `None`.
async fn fake_recursor(code: Option<ResponseCode>) -> SocketAddr {
    let socket = crate::io::tokio::TokioNet.bind_udp("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let (Some(code), Ok(req)) = (code, Message::from_vec(&buf[..n])) else { continue };
            let mut resp = super::answer::reply_to(&req, code);
            if code == ResponseCode::NoError {
                let a = hickory_proto::rr::Record::from_rdata(req.queries()[0].name().clone(), 5, RData::A(hickory_proto::rr::rdata::A([192, 0, 2, 1].into())));
                resp.add_answer(a);
            }
            let _ = socket.send_to(&resp.to_vec().expect("encodes"), from).await;
        }
    });
    addr
}

#[tokio::test]
async fn recursors_are_tried_in_order_past_silence_and_servfail() {
    let silent = fake_recursor(None).await;
    let failing = fake_recursor(Some(ResponseCode::ServFail)).await;
    let good = fake_recursor(Some(ResponseCode::NoError)).await;
    let req = query("example.com.", RecordType::A);
    let packet = req.to_vec().expect("encodes");
    let net: Arc<dyn Net> = Arc::new(crate::io::tokio::TokioNet);
    let timeout = Duration::from_millis(300);
    let reply = super::recursor::forward(net.as_ref(), &[silent, failing, good], &req, &packet, timeout).await.expect("the third answers");
    let reply = Message::from_vec(&reply).expect("decodes");
    assert_eq!((reply.id(), reply.answers().len()), (4242, 1));
    assert!(super::recursor::forward(net.as_ref(), &[silent, failing], &req, &packet, timeout).await.is_none(), "all failing: the caller answers SERVFAIL");
}
