//! DNS queries from tests, encoded and decoded with hickory-proto: what
//! `dig @127.0.0.1 -p <port> <name> <type>` does, over UDP or TCP (RFC 1035 length framing).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

/// Read deadline for one DNS answer.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// A query message for `name` (absolute, e.g. `web.service.consul.`) and `qtype`, with id `id`
/// and RD set, as dig sends it.
pub fn query(name: &str, qtype: RecordType, id: u16) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id).set_message_type(MessageType::Query).set_op_code(OpCode::Query).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    m.to_vec().expect("encodes")
}

/// Asks `dns` over UDP; panics if no answer with our id arrives within [`DNS_TIMEOUT`].
pub fn ask_udp(dns: SocketAddr, name: &str, qtype: RecordType, id: u16) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_read_timeout(Some(DNS_TIMEOUT)).expect("timeout");
    socket.send_to(&query(name, qtype, id), dns).expect("send");
    let mut buf = [0u8; 1500];
    let (n, _) = socket.recv_from(&mut buf).expect("a DNS answer over UDP");
    let resp = Message::from_vec(&buf[..n]).expect("decodes");
    assert_eq!(resp.id(), id);
    resp
}

/// Asks `dns` over TCP, one length-framed query on a fresh connection.
pub fn ask_tcp(dns: SocketAddr, name: &str, qtype: RecordType, id: u16) -> Message {
    let mut stream = TcpStream::connect(dns).expect("connect");
    stream.set_read_timeout(Some(DNS_TIMEOUT)).expect("timeout");
    let q = query(name, qtype, id);
    let mut frame = (q.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&q);
    stream.write_all(&frame).expect("send");
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).expect("a length prefix");
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).expect("the message");
    Message::from_vec(&body).expect("decodes")
}
