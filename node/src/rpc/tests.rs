//! The multiplexed transport over real loopback sockets ([`crate::io::tokio::TokioNet`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wire::{encode_frame, Envelope, MAX_FRAME_BYTES};
use super::{serve, RpcClient, RpcError, RpcHandler};
use crate::codec::frame;
use crate::io::tokio::TokioNet;
use crate::io::Net;

/// `Test.Echo` returns its body; `Test.Sleep` sleeps the encoded number of milliseconds and
/// returns it; anything else is refused.
struct TestHandler;

#[async_trait]
impl RpcHandler for TestHandler {
    async fn handle(&self, method: String, body: Vec<u8>) -> Result<Vec<u8>, String> {
        match method.as_str() {
            "Test.Echo" => Ok(body),
            "Test.Sleep" => {
                let ms: u64 = crate::codec::decode(&body).map_err(|e| e.to_string())?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                crate::codec::encode(&ms).map_err(|e| e.to_string())
            }
            other => Err(format!("unknown method {other}")),
        }
    }
}

const LOOPBACK: &str = "127.0.0.1:0";
const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(5);

/// Starts a server on a fresh loopback port in the current runtime.
async fn start_server() -> SocketAddr {
    let listener = TokioNet.bind(LOOPBACK.parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(Arc::new(TestHandler), listener));
    addr
}

async fn sleep_call(client: &RpcClient, addr: SocketAddr, ms: u64, timeout: Duration) -> Result<u64, RpcError> {
    client.call(addr, "Test.Sleep", &ms, timeout).await
}

#[tokio::test]
async fn responses_arrive_out_of_order_on_one_connection() {
    let addr = start_server().await;
    let client = RpcClient::new(Arc::new(TokioNet));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = [400u64, 10, 200].map(|ms| {
        let (client, order) = (client.clone(), order.clone());
        tokio::spawn(async move {
            let got = sleep_call(&client, addr, ms, LONG).await.unwrap();
            order.lock().unwrap().push(got);
            got
        })
    });
    for (call, ms) in calls.into_iter().zip([400u64, 10, 200]) {
        assert_eq!(call.await.unwrap(), ms, "each caller gets its own response");
    }
    assert_eq!(*order.lock().unwrap(), vec![10, 200, 400], "the slow request did not hold up the fast ones");
    assert_eq!(client.connections_opened(), 1);
}

#[tokio::test]
async fn a_timed_out_request_does_not_break_the_connection_for_others() {
    let addr = start_server().await;
    let client = RpcClient::new(Arc::new(TokioNet));
    let slow = {
        let client = client.clone();
        tokio::spawn(async move { sleep_call(&client, addr, 1_000, SHORT).await })
    };
    // Traffic keeps flowing while the slow request waits (so the connection is visibly alive).
    for _ in 0..5 {
        assert_eq!(sleep_call(&client, addr, 1, LONG).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = slow.await.unwrap().unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");
    assert!(!err.not_delivered(), "a timed-out request may have been delivered");
    assert_eq!(sleep_call(&client, addr, 2, LONG).await.unwrap(), 2);
    // The abandoned request's late response arrives and is dropped harmlessly.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(sleep_call(&client, addr, 3, LONG).await.unwrap(), 3);
    assert_eq!(client.connections_opened(), 1, "one connection served everything");
}

#[tokio::test]
async fn handler_errors_and_oversized_requests_leave_the_connection_usable() {
    let addr = start_server().await;
    let client = RpcClient::new(Arc::new(TokioNet));
    let err = client.call_raw(addr, "No.Such", vec![], LONG).await.unwrap_err();
    assert!(matches!(&err, RpcError::Remote(m) if m.contains("No.Such")), "{err:?}");
    let err = client.call_raw(addr, "Test.Echo", vec![0; MAX_FRAME_BYTES], LONG).await.unwrap_err();
    assert!(matches!(err, RpcError::Codec(_)), "{err:?}");
    assert_eq!(client.call_raw(addr, "Test.Echo", b"hi".to_vec(), LONG).await.unwrap(), b"hi");
    assert_eq!(client.connections_opened(), 1);
}

#[tokio::test]
async fn server_refuses_garbage_frames_by_closing_and_keeps_serving_others() {
    let addr = start_server().await;
    let garbage: [Vec<u8>; 3] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),         // header checksum fails
        frame(b"\xc1not msgpack"),                             // valid frame, undecodable envelope
        encode_frame(&Envelope::Ok { id: 1, body: vec![] }).unwrap(), // a response sent to a server
    ];
    for bytes in garbage {
        let mut raw = TokioNet.connect(addr).await.unwrap();
        raw.write_all(&bytes).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(LONG, raw.read(&mut buf)).await.expect("server closes promptly");
        assert!(matches!(n, Ok(0) | Err(_)), "server answered garbage with {n:?}");
    }
    let client = RpcClient::new(Arc::new(TokioNet));
    assert_eq!(sleep_call(&client, addr, 1, LONG).await.unwrap(), 1);
}

#[tokio::test]
async fn client_fails_calls_on_a_garbage_response_and_reconnects() {
    let mut listener = TokioNet.bind(LOOPBACK.parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(&[0xff; 64]).await;
                tokio::time::sleep(LONG).await;
            });
        }
    });
    let client = RpcClient::new(Arc::new(TokioNet));
    for attempt in 1..=2u64 {
        let err = client.call_raw(addr, "Test.Echo", vec![1], LONG).await.unwrap_err();
        assert!(matches!(err, RpcError::Io { .. }), "{err:?}");
        assert_eq!(client.connections_opened(), attempt, "a broken connection is replaced");
    }
}

#[test]
fn client_reconnects_with_backoff_after_the_server_restarts() {
    let server_rt = || tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let first = server_rt();
    let addr = first.block_on(start_server());
    let client = RpcClient::new(Arc::new(TokioNet));
    client_rt.block_on(async {
        assert_eq!(sleep_call(&client, addr, 1, LONG).await.unwrap(), 1);
    });
    // The server dies: its runtime, listener and connections are dropped.
    first.shutdown_background();
    client_rt.block_on(async {
        let err = sleep_call(&client, addr, 1, LONG).await.unwrap_err();
        assert!(matches!(err, RpcError::Io { .. } | RpcError::Connect { .. }), "{err:?}");
        let err = sleep_call(&client, addr, 1, LONG).await.unwrap_err();
        assert!(err.not_delivered(), "nobody listens, so the request was not delivered: {err:?}");
    });
    let second = server_rt();
    second.block_on(async {
        let listener = TokioNet.bind(addr).await.unwrap();
        tokio::spawn(serve(Arc::new(TestHandler), listener));
    });
    client_rt.block_on(async {
        let started = tokio::time::Instant::now();
        loop {
            match sleep_call(&client, addr, 1, LONG).await {
                Ok(got) => break assert_eq!(got, 1),
                Err(e) => assert!(e.not_delivered(), "{e:?}"),
            }
            assert!(started.elapsed() < Duration::from_secs(5), "no reconnect within 5 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(client.connections_opened(), 2, "one connection per server incarnation");
}

#[tokio::test]
async fn a_silent_connection_is_replaced_even_when_its_callers_gave_up() {
    // A server that accepts and reads but never answers: like a stream stalled by a partition.
    let mut listener = TokioNet.bind(LOOPBACK.parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let client = RpcClient::new(Arc::new(TokioNet));
    // The caller is dropped (e.g. its HTTP client hung up) long before the RPC deadline.
    let abandoned = tokio::time::timeout(Duration::from_millis(20), sleep_call(&client, addr, 1, SHORT)).await;
    assert!(abandoned.is_err(), "the caller gave up first");
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    let err = sleep_call(&client, addr, 1, SHORT).await.unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");
    assert_eq!(client.connections_opened(), 2, "the silent connection was closed at the abandoned request's deadline");
}
