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

async fn start_encrypted(name: &str, seed: u64, key: &keyring::GossipKey) -> (Running, SocketAddr) {
    let socket = crate::io::tokio::TokioNet.bind_udp("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let id = GossipId { name: name.into(), generation: 1, ..GossipId::placeholder(addr) };
    let mut pool = Pool::new(&id);
    pool.keyring = Arc::new(keyring_sync::KeyringState::new(name, 1, Some(keyring::Keyring::new(key.clone())), Default::default(), false));
    let pool = Arc::new(pool);
    let task = tokio::spawn(driver::run(pool.clone(), socket, GossipConfig { expected_members: 3, ..Default::default() }, seed, Arc::new(crate::io::NoTrace)));
    (Running { pool, task }, addr)
}

fn key(fill: u8) -> keyring::GossipKey {
    keyring::GossipKey::from_bytes(vec![fill; 32]).unwrap()
}

/// Every key count of the list `pool` answers with: (Keys, PrimaryKeys, NumNodes).
fn counts(pool: &Pool) -> (BTreeMap<String, usize>, BTreeMap<String, usize>, usize) {
    let entry = pool.keyring_list("dc1", false).expect("encryption on");
    (entry.keys, entry.primary_keys, entry.num_nodes)
}

#[tokio::test]
async fn encrypted_agents_converge_rotate_the_key_and_drop_what_they_cannot_open() {
    let (old, new) = (key(1), key(2));
    let (a, a_addr) = start_encrypted("a", 1, &old).await;
    let (b, _) = start_encrypted("b", 2, &old).await;
    b.pool.announce(a_addr);
    let both_alive = |x: &Running, y: &Running| [x, y].iter().all(|r| ["a", "b"].iter().all(|n| status_of(&r.pool, n) == Some(MemberStatus::Alive)));
    wait_for("both encrypted agents to see each other alive", Duration::from_secs(10), || both_alive(&a, &b)).await;

    // Datagrams no installed key authenticates are dropped and counted: one in the clear, one
    // tampered with, one sealed with a key the agent never had.
    let probe = crate::io::tokio::TokioNet.bind_udp("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    let mut tampered = keyring::Keyring::new(old.clone()).seal([5; keyring::NONCE_BYTES], b"not foca");
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let foreign = keyring::Keyring::new(key(9)).seal([6; keyring::NONCE_BYTES], b"not foca");
    for datagram in [b"plain text datagram, long enough to look sealed".to_vec(), tampered, foreign] {
        probe.send_to(&datagram, a_addr).await.expect("send");
    }
    wait_for("a to count three unauthenticated datagrams", Duration::from_secs(5), || a.pool.keyring.decrypt_failures.get() == 3).await;

    // Rotation through a, spread to b by gossip; each step confirmed by a's list as an operator would.
    let (old_b64, new_b64) = (old.to_base64(), new.to_base64());
    a.pool.keyring_op(keyring_sync::KeyOpKind::Install, &new_b64).expect("install");
    wait_for("both agents to report the new key", Duration::from_secs(10), || counts(&a.pool).0.get(&new_b64) == Some(&2)).await;
    a.pool.keyring_op(keyring_sync::KeyOpKind::Use, &new_b64).expect("use");
    wait_for("both agents to use the new key", Duration::from_secs(10), || counts(&a.pool).1.get(&new_b64) == Some(&2)).await;
    assert_eq!(a.pool.keyring_op(keyring_sync::KeyOpKind::Remove, &new_b64).unwrap_err(), "Removing the primary key is not allowed");
    a.pool.keyring_op(keyring_sync::KeyOpKind::Remove, &old_b64).expect("remove");
    wait_for("no agent to hold the old key", Duration::from_secs(10), || counts(&a.pool) == (BTreeMap::from([(new_b64.clone(), 2)]), BTreeMap::from([(new_b64.clone(), 2)]), 2)).await;

    // A datagram sealed with the removed key no longer opens; membership carries on under the new key.
    let before = a.pool.keyring.decrypt_failures.get();
    probe.send_to(&keyring::Keyring::new(old.clone()).seal([7; keyring::NONCE_BYTES], b"old"), a_addr).await.expect("send");
    wait_for("a to drop the datagram sealed with the removed key", Duration::from_secs(5), || a.pool.keyring.decrypt_failures.get() == before + 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(both_alive(&a, &b), "membership holds after the rotation");
    assert_eq!(b.pool.keyring.take_file().map(|f| keyring::Keyring::from_file(&f).unwrap().keys().cloned().collect::<Vec<_>>()), Some(vec![new]));
    a.task.abort();
    b.task.abort();
}

/// Force-leave spreads: a crashed member forced by one agent ends `left` on every agent, prune
/// erases it everywhere, a live member is left alone and an unknown name is Consul's error.
#[tokio::test]
async fn force_leave_turns_a_failed_member_left_everywhere_and_prune_erases_it() {
    let (a, a_addr) = start("a", 11).await;
    let (b, _) = start("b", 12).await;
    let (c, _) = start("c", 13).await;
    b.pool.announce(a_addr);
    c.pool.announce(a_addr);
    let all = [&a, &b, &c];
    wait_for("every agent to see all three alive", Duration::from_secs(10), || {
        all.iter().all(|r| ["a", "b", "c"].iter().all(|n| status_of(&r.pool, n) == Some(MemberStatus::Alive)))
    })
    .await;
    assert_eq!(a.pool.force_leave("b", false).await, Ok(force_leave::ForceLeave::Alive), "a live member is not changed");
    assert_eq!(a.pool.force_leave("nobody", false).await, Err("agent: No node found with name 'nobody'".to_string()));

    c.task.abort();
    wait_for("a and b to see c failed", Duration::from_secs(20), || {
        [&a, &b].iter().all(|r| status_of(&r.pool, "c") == Some(MemberStatus::Failed))
    })
    .await;
    assert_eq!(a.pool.force_leave("c", false).await, Ok(force_leave::ForceLeave::Forced));
    wait_for("a and b to see c left", Duration::from_secs(10), || {
        [&a, &b].iter().all(|r| status_of(&r.pool, "c") == Some(MemberStatus::Left))
    })
    .await;
    assert_eq!(b.pool.force_leave("c", false).await, Ok(force_leave::ForceLeave::Unchanged));
    assert_eq!(b.pool.force_leave("c", true).await, Ok(force_leave::ForceLeave::Pruned));
    wait_for("a and b to forget c", Duration::from_secs(10), || [&a, &b].iter().all(|r| status_of(&r.pool, "c").is_none())).await;
    assert_eq!(a.pool.force_leave("c", true).await, Err("agent: No node found with name 'c'".to_string()), "a pruned member is gone");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((status_of(&a.pool, "b"), status_of(&b.pool, "a")), (Some(MemberStatus::Alive), Some(MemberStatus::Alive)));
    a.task.abort();
    b.task.abort();
}

/// Each pool reads its own keyring file, which wins over `-encrypt`: a server's WAN pool comes
/// back from `remote.keyring` with the keys it held, not with its start-up key (Consul's
/// `serf/remote.keyring`), and the LAN file does not leak into it.
#[tokio::test]
async fn each_pool_opens_its_own_keyring_file_over_the_start_up_key() {
    let disk: Arc<dyn crate::io::Disk> = Arc::new(crate::io::mem::MemDisk::new());
    let id = GossipId { name: "s1.dc1".into(), generation: 1, ..GossipId::placeholder("127.0.0.1:8302".parse().unwrap()) };
    let open = |file| Pool::open(&id, Some(key(1)), file, disk.clone(), Default::default());
    let primary = |p: &Pool| p.keyring_list("dc1", true).expect("encrypted").primary_keys.into_keys().collect::<Vec<_>>();

    let fresh = open(keyring_sync::WAN_KEYRING_FILE).await.expect("opens");
    assert_eq!(primary(&fresh), [key(1).to_base64()], "no file yet: the -encrypt key");
    assert!(fresh.keyring.take_file().is_some(), "and the file is due to be written");

    let mut rotated = keyring::Keyring::new(key(2));
    rotated.install(key(3));
    disk.write(keyring_sync::WAN_KEYRING_FILE.name, &rotated.to_file()).await.expect("write");
    let wan = open(keyring_sync::WAN_KEYRING_FILE).await.expect("opens");
    assert_eq!(primary(&wan), [key(2).to_base64()], "the saved WAN keyring wins over -encrypt");
    assert_eq!(wan.keyring_list("dc1", true).expect("encrypted").keys.len(), 2);
    assert!(wan.keyring.take_file().is_none(), "a keyring read from its file is not rewritten");
    let lan = open(keyring_sync::LAN_KEYRING_FILE).await.expect("opens");
    assert_eq!(primary(&lan), [key(1).to_base64()], "the LAN pool does not read the WAN file");

    disk.write(keyring_sync::WAN_KEYRING_FILE.name, b"not a keyring").await.expect("write");
    let err = open(keyring_sync::WAN_KEYRING_FILE).await.err().expect("a bad file is refused");
    assert!(err.starts_with("remote.keyring: "), "{err}");
}
