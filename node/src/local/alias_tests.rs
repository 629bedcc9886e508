//! Tests of [`super`]: the pure verdict, the local alias following the local state, the remote
//! alias following the catalog, and an alias definition surviving the data dir.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::config::AgentConfig;
use crate::io::mem::MemDisk;
use crate::local::definition::{parse_check, parse_service, CheckKind};
use crate::local::sync::CatalogView;
use crate::structs::{DeregisterRequest, Node, RegisterRequest};

fn io() -> crate::io::Io {
    crate::io::test_io(Arc::new(MemDisk::new()), 3)
}

/// A local agent whose runners run (without anti-entropy).
async fn started() -> Arc<Local> {
    let local = Local::open(&AgentConfig::dev(), io(), "id").await.unwrap();
    local.started.store(true, Ordering::SeqCst);
    local
}

/// Lets spawned runners catch up (time is paused, so this is instant).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

fn status(local: &Local, id: &str) -> (HealthStatus, String) {
    let c = &local.checks()[id];
    (c.status, c.output.clone())
}

fn check(id: &str, name: &str, service: &str, status: HealthStatus, output: &str) -> HealthCheck {
    HealthCheck { check_id: id.into(), name: name.into(), service_id: service.into(), status, output: output.into(), ..HealthCheck::default() }
}

#[test]
fn critical_beats_warning_and_other_services_checks_are_ignored() {
    let checks = [
        check("a", "a", "web1", HealthStatus::Warning, "slow"),
        check("b", "b", "other", HealthStatus::Critical, "down"),
        check("c", "node", "", HealthStatus::Critical, "disk full"),
        check("d", "d", "web1", HealthStatus::Passing, ""),
    ];
    let verdict = evaluate(Some("web1"), "", &checks, || true);
    assert_eq!(verdict, (HealthStatus::Critical, r#"Aliased check "node" failing: disk full"#.into()), "node checks count");
    let verdict = evaluate(Some("web1"), "", [&checks[0], &checks[1], &checks[3]], || true);
    assert_eq!(verdict, (HealthStatus::Warning, r#"Aliased check "a" failing: slow"#.into()), "a later passing check keeps the warning");
    assert_eq!(evaluate(Some("web1"), "", [&checks[3]], || true), (HealthStatus::Passing, ALL_CHECKS_PASSING.into()));
    assert_eq!(evaluate(Some("web1"), "", [], || true), (HealthStatus::Passing, NO_CHECKS_FOUND.into()));
    let missing = evaluate(Some("web1"), "n2", [&checks[1]], || false);
    assert_eq!(missing, (HealthStatus::Critical, "Service web1 could not be found on node n2".into()));
}

#[tokio::test(start_paused = true)]
async fn a_local_alias_follows_its_services_ttl_check_through_every_status() {
    let local = started().await;
    let web = br#"{"Name":"web","ID":"web1","Check":{"CheckID":"web1-ttl","Name":"web ttl","TTL":"30s"}}"#;
    local.register_service(parse_service(web, false).unwrap(), false).await.unwrap();
    local.register_check(parse_check(br#"{"Name":"web-alias","AliasService":"web1"}"#, false).unwrap()).await.unwrap();
    settle().await;
    assert_eq!(status(&local, "web-alias"), (HealthStatus::Critical, r#"Aliased check "web ttl" failing: "#.into()), "TTL checks start critical");
    assert_eq!(local.checks()["web-alias"].check_type, "alias");

    let steps = [
        (HealthStatus::Passing, "ok", HealthStatus::Passing, ALL_CHECKS_PASSING.to_string()),
        (HealthStatus::Warning, "slow", HealthStatus::Warning, r#"Aliased check "web ttl" failing: slow"#.to_string()),
        (HealthStatus::Critical, "down", HealthStatus::Critical, r#"Aliased check "web ttl" failing: down"#.to_string()),
        (HealthStatus::Passing, "back", HealthStatus::Passing, ALL_CHECKS_PASSING.to_string()),
    ];
    for (set, output, want, want_output) in steps {
        local.update_ttl("web1-ttl", set, output).await.unwrap();
        settle().await;
        assert_eq!(status(&local, "web-alias"), (want, want_output), "after the TTL check went {set:?}");
    }

    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(status(&local, "web-alias").0, HealthStatus::Critical, "a TTL running out shows too");
    local.shutdown();
}

#[tokio::test(start_paused = true)]
async fn a_local_alias_of_a_missing_service_is_critical_until_the_service_appears() {
    let local = started().await;
    local.register_check(parse_check(br#"{"Name":"ghost-alias","AliasService":"ghost"}"#, false).unwrap()).await.unwrap();
    settle().await;
    assert_eq!(status(&local, "ghost-alias"), (HealthStatus::Critical, "Service ghost could not be found on node ".into()));

    local.register_service(parse_service(br#"{"Name":"ghost"}"#, false).unwrap(), false).await.unwrap();
    settle().await;
    assert_eq!(status(&local, "ghost-alias"), (HealthStatus::Passing, NO_CHECKS_FOUND.into()), "no checks: passing");

    local.node_maintenance(true, "").await.unwrap();
    settle().await;
    assert_eq!(status(&local, "ghost-alias").0, HealthStatus::Critical, "the node's own checks count");
    local.node_maintenance(false, "").await.unwrap();
    local.deregister_service("ghost").await.unwrap();
    settle().await;
    assert_eq!(status(&local, "ghost-alias").0, HealthStatus::Critical, "gone again");
    local.shutdown();
}

#[tokio::test(start_paused = true)]
async fn an_alias_naming_this_agents_node_reads_the_local_state() {
    let local = started().await;
    let own = local.node().node.clone();
    local.register_service(parse_service(br#"{"Name":"db","Check":{"TTL":"30s","Status":"warning"}}"#, false).unwrap(), false).await.unwrap();
    let body = format!(r#"{{"Name":"db-alias","AliasService":"db","AliasNode":"{own}"}}"#);
    local.register_check(parse_check(body.as_bytes(), false).unwrap()).await.unwrap();
    settle().await;
    assert_eq!(status(&local, "db-alias").0, HealthStatus::Warning);
    local.shutdown();
}

/// A catalog holding one other node's entries, which can be told to fail.
#[derive(Default)]
struct OtherNode {
    view: Mutex<CatalogView>,
    fail: AtomicBool,
}

#[async_trait]
impl CatalogPort for OtherNode {
    async fn node_entries(&self, node: &str) -> Result<CatalogView, String> {
        if self.fail.load(Ordering::SeqCst) {
            return Err("No cluster leader".into());
        }
        let view = self.view.lock().unwrap().clone();
        Ok(if view.node.as_ref().is_some_and(|n| n.node == node) { view } else { CatalogView::default() })
    }
    async fn register(&self, _: RegisterRequest) -> Result<(), String> {
        Ok(())
    }
    async fn deregister(&self, _: DeregisterRequest) -> Result<(), String> {
        Ok(())
    }
    fn cluster_size(&self) -> usize {
        1
    }
}

#[tokio::test(start_paused = true)]
async fn a_remote_alias_follows_the_catalog_and_turns_critical_when_it_cannot_read_it() {
    let catalog = Arc::new(OtherNode::default());
    let local = Local::open(&AgentConfig::dev(), io(), "id").await.unwrap();
    *lock(&local.catalog) = Some(catalog.clone());
    local.started.store(true, Ordering::SeqCst);
    local.register_check(parse_check(br#"{"Name":"api-alias","AliasService":"api","AliasNode":"n2"}"#, false).unwrap()).await.unwrap();
    settle().await;
    assert_eq!(status(&local, "api-alias"), (HealthStatus::Critical, "Service api could not be found on node n2".into()));

    let node = Node { node: "n2".into(), ..Node::default() };
    let api = crate::structs::NodeService { id: "api".into(), service: "api".into(), ..Default::default() };
    let mut ttl = check("api-ttl", "api ttl", "api", HealthStatus::Passing, "fine");
    ttl.node = "n2".into();
    *catalog.view.lock().unwrap() = CatalogView {
        node: Some(node),
        services: BTreeMap::from([("api".to_string(), api)]),
        checks: BTreeMap::from([("api-ttl".to_string(), ttl.clone())]),
    };
    tokio::time::sleep(REMOTE_POLL_INTERVAL).await;
    assert_eq!(status(&local, "api-alias"), (HealthStatus::Passing, ALL_CHECKS_PASSING.into()));

    ttl.status = HealthStatus::Warning;
    catalog.view.lock().unwrap().checks.insert("api-ttl".into(), ttl);
    tokio::time::sleep(REMOTE_POLL_INTERVAL).await;
    assert_eq!(status(&local, "api-alias").0, HealthStatus::Warning);

    catalog.fail.store(true, Ordering::SeqCst);
    tokio::time::sleep(REMOTE_POLL_INTERVAL).await;
    assert_eq!(status(&local, "api-alias").0, HealthStatus::Warning, "one failed read is not reported");
    tokio::time::sleep(REMOTE_POLL_INTERVAL).await;
    assert_eq!(status(&local, "api-alias"), (HealthStatus::Critical, "Failure checking aliased node or service: No cluster leader".into()));
    local.shutdown();
}

#[tokio::test]
async fn an_alias_check_survives_the_data_dir_and_restarts_critical() {
    let disk = MemDisk::new();
    let now = Instant::now();
    let mut s = crate::local::state::LocalState::default();
    s.add_check(parse_check(br#"{"Name":"a","AliasService":"web1","AliasNode":"n2"}"#, false).unwrap(), now).unwrap();
    s.checks.get_mut("a").unwrap().set(HealthStatus::Passing, ALL_CHECKS_PASSING, now);
    let wall = std::time::UNIX_EPOCH;
    let checks = crate::local::persist::encode_checks(&s, now, wall);
    crate::local::persist::save(&disk, None, Some(&checks), crate::local::persist::Order::ChecksFirst).await.unwrap();
    let back = crate::local::persist::load(&disk, now, wall).await.unwrap();
    let a = &back.checks["a"];
    assert_eq!(a.spec.kind, CheckKind::Alias { service: Some("web1".into()), node: Some("n2".into()) });
    assert_eq!(a.check.status, HealthStatus::Critical, "re-evaluated after a restart, not restored");
}
