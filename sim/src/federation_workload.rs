//! The WAN federation workload (`wan-federation`): KV register clients on a world of two
//! datacenters ([`crate::datacenters`]). Keys belong to one datacenter: key `k0` of `dc2` is the
//! KV key `dc2/k0`, written and read only in dc2's store. Each operation on it goes either
//! directly to a server of dc2, or to a server of dc1 with `?dc=dc2`, which must forward it to a
//! server of dc2 (`node::server::federation`). Reads (default, `?consistent`, blocking), writes,
//! CAS and deletes as in [`crate::workload::KvRegister`], whose client this one reuses.
//!
//! Oracle: each (datacenter, key) object — the history key `dc2/k0` — is checked as a
//! linearizable register, and after the heal every datacenter's servers read their own keys
//! ([`crate::final_reads`], per datacenter) for the survival oracles. A request served in the
//! wrong datacenter (bug `dc-forward-ignores-dc`) writes dc1's copy of `dc2/k0`, which dc2's
//! direct reads never see: a stale read or a lost acknowledged write.
//!
//! Even-numbered clients work the catalog instead ([`crate::catalog_workload`], routed the same
//! way): instance `k0` of service `web` in dc2 is the history object `dc2/web/k0`, registered,
//! deregistered and listed through `/v1/catalog/register|deregister` and
//! `/v1/health/service/web`, directly in dc2 or through dc1 with `?dc=dc2`. dc1 has its own
//! instance `k0` (`dc1/web/k0`): a registration applied in the wrong datacenter shows there as
//! a value its own clients never wrote.
//!
//! A forwarded write that the forwarding server answers "No path to datacenter" (no live server
//! of the other datacenter in its WAN view) or whose call certainly did not connect is `fail`;
//! one that may have reached the other datacenter is `info` ([`crate::workload::write_outcome`]).

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use checker::{History, InvariantViolation, Verdict};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::workload::{ClientSpec, Route, Workload};

/// Percent of operations sent through the other datacenter with `?dc=` (the rest go directly
/// to a server of the key's own datacenter).
const FORWARDED_PERCENT: u32 = 50;

/// The datacenters of this workload's world.
fn datacenters() -> usize {
    scenarios::WorkloadKind::WanFederation.datacenters()
}

/// The KV key (and history object) of key `key` in datacenter `dc`: `dc2/k0`.
pub fn dc_key(dc: &str, key: &str) -> String {
    format!("{dc}/{key}")
}

/// The datacenter a [`dc_key`] belongs to.
fn dc_of_key(key: &str) -> &str {
    key.split_once('/').map_or(key, |(dc, _)| dc)
}

/// Every datacenter's copy of `keys`, datacenter by datacenter.
fn all_dc_keys(keys: &[String]) -> Vec<String> {
    (0..datacenters()).flat_map(|d| keys.iter().map(move |k| dc_key(&crate::datacenters::name(d), k))).collect()
}

/// The catalog object of key `key` in datacenter `dc`: `dc2/web/k0`, instance `k0` of service
/// `web` in dc2.
fn dc_instance(dc: &str, key: &str) -> String {
    format!("{dc}/{}/{key}", crate::catalog_workload::SERVICE)
}

/// Every datacenter's catalog instance of each of `keys`, datacenter by datacenter.
fn all_dc_instances(keys: &[String]) -> Vec<String> {
    (0..datacenters()).flat_map(|d| keys.iter().map(move |k| dc_instance(&crate::datacenters::name(d), k))).collect()
}

/// Whether client `id` works the catalog (even ids) rather than KV.
fn catalog_client(id: u32) -> bool {
    id % 2 == 0
}

/// Where an operation on `key` goes: with [`FORWARDED_PERCENT`], a random server of another
/// datacenter with `?dc=` naming the key's; else a random server of the key's datacenter.
fn route(rng: &mut ChaCha8Rng, servers: &[(String, SocketAddr)], key: &str) -> Route {
    let dcs = crate::datacenters::split(servers, datacenters());
    let own = dc_of_key(key);
    let forwarded = rng.gen_range(0..100) < FORWARDED_PERCENT;
    let candidates: Vec<&(String, Vec<(String, SocketAddr)>)> = dcs.iter().filter(|(dc, _)| (dc == own) != forwarded).collect();
    let (_, via) = candidates[rng.gen_range(0..candidates.len())];
    let server = via[rng.gen_range(0..via.len())].clone();
    (server, forwarded.then(|| own.to_string()))
}

/// See the module docs.
pub struct WanFederation;

impl Workload for WanFederation {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::WanFederation.name()
    }
    fn object(&self) -> &'static str {
        // Objects are named `dc2/k0`: (datacenter, key).
        "kv"
    }
    fn client(&self, mut spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
        if catalog_client(spec.id) {
            spec.keys = all_dc_instances(&spec.keys);
            return Box::pin(crate::catalog_workload::run_client_routed(spec, route));
        }
        spec.keys = all_dc_keys(&spec.keys);
        Box::pin(crate::workload::run_client_routed(spec, route))
    }
    fn check(&self, history: &History, budget_per_object: Duration) -> Vec<(String, Verdict)> {
        checker::check_history(history, budget_per_object)
    }
    fn oracle_names(&self) -> &'static str {
        crate::workload::KvRegister.oracle_names()
    }
    fn liveness_oracles(&self, history: &History, disturbed: &[checker::oracles::DisturbedSpan]) -> Vec<InvariantViolation> {
        crate::workload::KvRegister.liveness_oracles(history, disturbed)
    }
    fn liveness_oracle_names(&self) -> &'static str {
        crate::workload::KvRegister.liveness_oracle_names()
    }
    /// Each datacenter's servers read that datacenter's keys, one datacenter after the other;
    /// then one server of each lists that datacenter's catalog instances (`?consistent`).
    fn final_reads(&self, servers: Vec<(String, SocketAddr)>, keys: Vec<String>, history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(async move {
            for (dc, dc_servers) in crate::datacenters::split(&servers, datacenters()) {
                let dc_keys = keys.iter().map(|k| dc_key(&dc, k)).collect();
                crate::final_reads::final_kv_reads(dc_servers.clone(), dc_keys, history.clone()).await;
                let instances: Vec<String> = keys.iter().map(|k| dc_instance(&dc, k)).collect();
                let invoke = crate::workload::now();
                let path = format!("/v1/health/service/{}?consistent", crate::catalog_workload::SERVICE);
                let resp = crate::workload::send(dc_servers[0].1, hyper::Method::GET, &path, Vec::new()).await;
                crate::catalog_workload::record_read(&history, 0, &instances, invoke, &resp);
            }
        })
    }
    fn final_reads_bound(&self) -> Duration {
        crate::final_reads::AGREEMENT_BOUND * datacenters() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn servers() -> Vec<(String, SocketAddr)> {
        (0..6).map(|i| (nemesis::hosts::server(i), SocketAddr::from(([10, 0, 0, i as u8 + 1], 8500)))).collect()
    }

    #[test]
    fn keys_belong_to_one_datacenter_each() {
        assert_eq!(all_dc_keys(&["k0".into(), "k1".into()]), ["dc1/k0", "dc1/k1", "dc2/k0", "dc2/k1"]);
        assert_eq!(dc_of_key("dc2/k1"), "dc2");
        let instances = all_dc_instances(&["k0".into()]);
        assert_eq!(instances, ["dc1/web/k0", "dc2/web/k0"]);
        assert_eq!(dc_of_key(&instances[1]), "dc2", "a catalog instance is routed to its own datacenter");
        assert_eq!(crate::catalog_workload::instance_of(&instances[1]), "k0");
        assert_eq!(crate::catalog_workload::group_of(&instances[1]), "dc2/web");
        assert!(catalog_client(2) && !catalog_client(1));
    }

    #[test]
    fn direct_operations_reach_the_keys_datacenter_and_forwarded_ones_name_it() {
        let servers = servers();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (mut direct, mut forwarded) = (0, 0);
        for _ in 0..200 {
            let ((name, _), dc) = route(&mut rng, &servers, "dc2/k0");
            let index = nemesis::hosts::server_index(&name).expect("a server");
            match dc {
                None => {
                    assert!(index >= 3, "a direct operation on a dc2 key goes to dc2's s4..s6, not {name}");
                    direct += 1;
                }
                Some(dc) => {
                    assert_eq!(dc, "dc2");
                    assert!(index < 3, "a forwarded operation goes through dc1, not {name}");
                    forwarded += 1;
                }
            }
        }
        assert!(direct > 50 && forwarded > 50, "both routes are used: {direct} direct, {forwarded} forwarded");
    }

    #[test]
    fn dc_is_appended_to_the_query() {
        use crate::workload::with_datacenter;
        assert_eq!(with_datacenter("/v1/kv/dc2/k0".into(), Some("dc2")), "/v1/kv/dc2/k0?dc=dc2");
        assert_eq!(with_datacenter("/v1/kv/dc2/k0?cas=5".into(), Some("dc2")), "/v1/kv/dc2/k0?cas=5&dc=dc2");
        assert_eq!(with_datacenter("/v1/kv/k0".into(), None), "/v1/kv/k0");
    }
}
