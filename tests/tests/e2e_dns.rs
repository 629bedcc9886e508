//! End-to-end: an in-process agent on loopback (real tokio sockets) with a service registered
//! through its server core (Raft), queried on its DNS port over UDP and TCP with hickory-proto's
//! encoding — what `dig @127.0.0.1 -p 8600 web.service.consul SRV` does.
//!
//! The catalog has no HTTP register endpoint on this branch yet, so the test writes through
//! `Server::raft_apply`, the same path that endpoint will take.

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use node::agent::AgentConfig;
use node::structs::{Command, NodeService, RegisterRequest};
use tests::dns::{ask_tcp, ask_udp};
use tests::{free_ports, serial};

/// How long the dev agent may take to elect itself.
const LEADER_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn a_registered_service_is_answered_on_the_dns_port_over_udp_and_tcp() {
    let _serial = serial();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let p = free_ports(3);
    let mut config = AgentConfig::dev();
    (config.ports.http, config.ports.server, config.ports.dns) = (p[0], p[1], p[2]);
    let dns = config.dns_addr();
    let agent = rt.block_on(async {
        let io = node::io::tokio::production_io(None).expect("in-memory io");
        let agent = node::agent::start(config, io).await.expect("agent starts");
        let deadline = Instant::now() + LEADER_TIMEOUT;
        while !agent.server.is_leader() {
            assert!(Instant::now() < deadline, "the dev agent did not elect itself within {LEADER_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut req = RegisterRequest {
            node: "web-node".into(),
            address: "10.1.2.3".into(),
            service: Some(NodeService { service: "web".into(), port: 8080, tags: vec!["v1".into()], ..Default::default() }),
            ..Default::default()
        };
        req.normalize().expect("valid");
        let result = agent.server.raft_apply(Command::register(&req).expect("encodes")).await.expect("committed");
        assert!(result.ok(), "{result:?}");
        agent
    });

    let srv = ask_udp(dns, "web.service.consul.", RecordType::SRV, 1);
    assert_eq!(srv.response_code(), ResponseCode::NoError);
    let answers: Vec<(u16, String)> = srv.answers().iter().filter_map(|r| r.data().as_srv().map(|s| (s.port(), s.target().to_ascii()))).collect();
    assert_eq!(answers, [(8080, "web-node.node.dc1.consul.".to_string())]);
    let extra: Vec<String> = srv.additionals().iter().filter_map(|r| r.data().as_a().map(|a| a.0.to_string())).collect();
    assert_eq!(extra, ["10.1.2.3"]);

    let a = ask_udp(dns, "v1.web.service.dc1.consul.", RecordType::A, 2);
    let addrs: Vec<String> = a.answers().iter().filter_map(|r| match r.data() { RData::A(a) => Some(a.0.to_string()), _ => None }).collect();
    assert_eq!(addrs, ["10.1.2.3"]);
    assert_eq!(ask_udp(dns, "example.com.", RecordType::A, 3).response_code(), ResponseCode::Refused, "no recursors configured");

    let node = ask_tcp(dns, "web-node.node.consul.", RecordType::A, 4);
    assert_eq!(node.answers().len(), 1);
    let missing = ask_tcp(dns, "nope.service.consul.", RecordType::A, 5);
    assert_eq!(missing.response_code(), ResponseCode::NXDomain);
    assert!(missing.name_servers().iter().any(|r| r.record_type() == RecordType::SOA));

    rt.block_on(agent.shutdown());
}
