//! The pool over real loopback UDP: three drivers join through one address, converge, see a
//! graceful leave as `left` and a stopped agent as `failed`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::io::Net;

struct Running {
    pool: Arc<Pool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(name: &str, seed: u64) -> (Running, SocketAddr) {
    let socket = crate::io::tokio::TokioNet.bind_udp("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let id = GossipId { name: name.into(), generation: 1, ..GossipId::placeholder(addr) };
    let pool = Arc::new(Pool::new(&id));
    let task = tokio::spawn(driver::run(pool.clone(), socket, GossipConfig { expected_members: 3, ..Default::default() }, seed, Arc::new(crate::io::NoTrace)));
    (Running { pool, task }, addr)
}

fn status_of(pool: &Pool, name: &str) -> Option<MemberStatus> {
    pool.members().into_iter().find(|m| m.name == name).map(|m| m.status)
}

async fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn three_agents_join_converge_and_see_leave_and_failure() {
    let (a, a_addr) = start("a", 1).await;
    let (b, _) = start("b", 2).await;
    let (c, _) = start("c", 3).await;
    b.pool.announce(a_addr);
    c.pool.announce(a_addr);
    let all = [&a, &b, &c];
    wait_for("every agent to see all three alive", Duration::from_secs(10), || {
        all.iter().all(|r| ["a", "b", "c"].iter().all(|n| status_of(&r.pool, n) == Some(MemberStatus::Alive)))
    })
    .await;
    assert_eq!(a.pool.live_peers(), 2);

    c.pool.leave().await;
    wait_for("a and b to see c left", Duration::from_secs(10), || {
        [&a, &b].iter().all(|r| status_of(&r.pool, "c") == Some(MemberStatus::Left))
    })
    .await;

    b.task.abort();
    wait_for("a to see b failed", Duration::from_secs(20), || status_of(&a.pool, "b") == Some(MemberStatus::Failed)).await;
    assert_eq!(status_of(&a.pool, "c"), Some(MemberStatus::Left), "a graceful leave stays `left`, never `failed`");
    a.task.abort();
    c.task.abort();
}
