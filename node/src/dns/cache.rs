//! The instances a service lookup answers from, cached per receive loop and validated by the
//! service's scope index.
//!
//! A DNS service query joins every instance of the service with its node and the checks of both
//! (three ordered-map lookups per instance). Answers change only when that service's scope index
//! moves ([`Store::scope_index`] with `Table::Services`: it moves on any change to the service's
//! instances, their checks, or their nodes and node checks, the same rule that wakes a blocking
//! `/v1/health/service` query). So each receive loop keeps the joined instances it last built
//! for a name, with the scope index they were built at, and reuses them while the index stands.
//! Raft indexes are unique per entry, so an unchanged index means unchanged rows, also across a
//! snapshot install. Owned by one loop: no lock; bounded: cleared when full.

use std::collections::BTreeMap;

use crate::state::watch::Table;
use crate::state::Store;
use crate::structs::{HealthStatus, Weights};

/// Names cached per loop before the cache is cleared and refilled (a bound, not a tuning knob:
/// a name's entry is a few hundred bytes per instance).
const MAX_NAMES: usize = 4096;

/// One instance of a service joined with its node: what an A or SRV answer needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The node's name, lowercased (an SRV target's first label).
    pub node: String,
    /// The node's address.
    pub node_address: String,
    /// The instance's own address, empty when it uses its node's.
    pub service_address: String,
    pub port: u16,
    pub weights: Weights,
    /// The worst status among the node's checks and the instance's own (passing when none).
    pub status: HealthStatus,
}

impl Instance {
    /// The address the instance is reached at: its own, else its node's.
    pub fn address(&self) -> &str {
        if self.service_address.is_empty() {
            &self.node_address
        } else {
            &self.service_address
        }
    }
}

/// Cache key: the service name as asked and the tag filter.
type Key = (String, Option<String>);

/// The cached instances of one name, and the scope index they were read at.
struct Entry {
    scope_index: u64,
    instances: Vec<Instance>,
}

/// One receive loop's cache (see the module docs).
#[derive(Default)]
pub struct InstanceCache {
    entries: BTreeMap<Key, Entry>,
}

impl InstanceCache {
    /// Every instance of `service` with `tag` (any health), from the cache when the service's
    /// scope index has not moved since it was filled, else read from `store` and cached.
    pub fn instances(&mut self, store: &Store, service: &str, tag: Option<&str>) -> &[Instance] {
        let scope_index = store.scope_index(Table::Services, service);
        let key = (service.to_string(), tag.map(str::to_string));
        let fresh = self.entries.get(&key).is_some_and(|e| e.scope_index == scope_index);
        if !fresh {
            if self.entries.len() >= MAX_NAMES {
                self.entries.clear();
            }
            let tags: Vec<String> = tag.into_iter().map(str::to_string).collect();
            let instances = store
                .health_service_instances(service, &tags)
                .into_iter()
                .map(|(n, s, status)| Instance {
                    node: n.node.to_ascii_lowercase(),
                    node_address: n.address.clone(),
                    service_address: if s.address == n.address { String::new() } else { s.address.clone() },
                    port: s.port,
                    weights: s.weights,
                    status,
                })
                .collect();
            self.entries.insert(key.clone(), Entry { scope_index, instances });
        }
        self.entries.get(&key).map_or(&[], |e| e.instances.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::catalog::tests::register;
    use HealthStatus::*;

    #[test]
    fn a_cached_answer_is_reused_until_the_service_scope_moves_then_rebuilt() {
        let mut store = Store::new();
        store.apply(1, &register("n1", Some(("web1", "web")), &[("w1", "web1", Passing)]));
        store.apply(2, &register("n2", Some(("db1", "db")), &[]));
        let mut cache = InstanceCache::default();
        assert_eq!(cache.instances(&store, "web", None).iter().map(|i| i.status).collect::<Vec<_>>(), [Passing]);
        // Another service's change leaves web's entry valid (and its answer unchanged).
        store.apply(3, &register("n2", Some(("db1", "db")), &[("d1", "db1", Critical)]));
        assert_eq!(cache.instances(&store, "web", None)[0].status, Passing);
        // web's own health change is seen at once.
        store.apply(4, &register("n1", Some(("web1", "web")), &[("w1", "web1", Critical)]));
        assert_eq!(cache.instances(&store, "web", None)[0].status, Critical);
        // A node-level check on web's node moves web's scope too.
        store.apply(5, &register("n1", None, &[("serfHealth", "", Warning), ("w1", "web1", Passing)]));
        assert_eq!(cache.instances(&store, "web", None)[0].status, Warning);
        assert!(cache.instances(&store, "nope", None).is_empty());
        store.apply(6, &register("n3", Some(("nope1", "nope")), &[]));
        assert_eq!(cache.instances(&store, "nope", None).len(), 1, "an empty answer is not kept past a change");
    }
}
