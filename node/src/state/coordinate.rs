//! The coordinates table: each node's network coordinate, as its agent last reported it.
//!
//! Source: Consul `agent/consul/state/coordinate.go` (`CoordinateBatchUpdate`, `Coordinates`,
//! `Coordinate`). Rows are keyed by node name (the segment is always ""); an update for a node the
//! catalog does not hold, or with a coordinate that is not finite or not 8-dimensional, is skipped
//! (Consul skips unknown nodes the same way, so a late update cannot resurrect a deregistered
//! node); deregistering a node deletes its row ([`WriteTxn::delete_coordinate`]).

use super::store::Store;
use super::txn::WriteTxn;
use super::watch::Table;
use crate::gossip::coordinate::{compute_distance, DIMENSIONALITY};
use crate::structs::CoordinateEntry;

impl WriteTxn<'_> {
    /// Stores every valid update for a registered node; returns how many were stored.
    pub fn coordinate_batch_update(&mut self, updates: &[CoordinateEntry]) -> usize {
        let mut stored = 0;
        for u in updates {
            let usable = u.coord.vec.len() == DIMENSIONALITY && u.coord.is_valid() && self.store().nodes.contains_key(&u.node);
            if !usable {
                continue;
            }
            let row = CoordinateEntry { segment: String::new(), ..u.clone() };
            self.set_coordinate(&u.node, Some(row));
            self.bump(Table::Coordinates, &u.node);
            stored += 1;
        }
        stored
    }

    /// Deletes `node`'s coordinate, if it has one (its node is being deregistered).
    pub(super) fn delete_coordinate(&mut self, node: &str) {
        if self.store().coordinates.contains_key(node) {
            self.set_coordinate(node, None);
            self.bump(Table::Coordinates, node);
        }
    }
}

impl Store {
    /// Every node's coordinate, by node name, with the table's index (Consul `Coordinates`).
    pub fn coordinates(&self) -> (Vec<CoordinateEntry>, u64) {
        (self.coordinates.values().cloned().collect(), self.table_index(Table::Coordinates))
    }

    /// One node's coordinates (at most one: no segments), with the table's index.
    pub fn node_coordinates(&self, node: &str) -> (Vec<CoordinateEntry>, u64) {
        (self.coordinates.get(node).cloned().into_iter().collect(), self.table_index(Table::Coordinates))
    }

    /// Sorts `items` by estimated RTT from node `near` (Consul `sortNodesByDistanceFrom`): a
    /// stable sort, nodes without a coordinate last; unchanged if `near` is empty or has no
    /// coordinate. `node_of` names each item's node.
    pub fn sort_by_distance_from<T>(&self, near: &str, items: &mut [T], node_of: impl Fn(&T) -> &str) {
        let Some(from) = self.coordinates.get(near).filter(|_| !near.is_empty()) else { return };
        let distance = |t: &T| compute_distance(Some(&from.coord), self.coordinates.get(node_of(t)).map(|c| &c.coord));
        items.sort_by(|a, b| distance(a).total_cmp(&distance(b)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::coordinate::{Config, Coordinate};
    use crate::structs::{DeregisterRequest, Request};

    fn at(node: &str, x: f64) -> CoordinateEntry {
        let mut coord = Coordinate::new(&Config::default());
        coord.vec[0] = x;
        CoordinateEntry { node: node.into(), segment: String::new(), coord }
    }

    fn store_with_nodes(nodes: &[&str]) -> Store {
        let mut s = Store::new();
        for (i, n) in nodes.iter().enumerate() {
            s.apply(i as u64 + 1, &crate::state::catalog::tests::register(n, None, &[]));
        }
        s
    }

    #[test]
    fn updates_for_unknown_nodes_or_bad_coordinates_are_skipped() {
        let mut s = store_with_nodes(&["a"]);
        let mut nan = at("a", 0.0);
        nan.coord.height = f64::NAN;
        let short = CoordinateEntry { coord: Coordinate { vec: vec![0.0; 3], ..at("a", 0.0).coord }, ..at("a", 0.0) };
        s.apply(5, &Request::CoordinateBatchUpdate(vec![at("ghost", 0.1), nan, short]));
        assert_eq!(s.coordinates(), (vec![], 0));
        s.apply(6, &Request::CoordinateBatchUpdate(vec![at("a", 0.1)]));
        assert_eq!(s.coordinates(), (vec![at("a", 0.1)], 6));
        assert_eq!(s.node_coordinates("a").0, vec![at("a", 0.1)]);
        assert_eq!(s.node_coordinates("b").0, vec![]);
    }

    #[test]
    fn deregistering_a_node_deletes_its_coordinate() {
        let mut s = store_with_nodes(&["a", "b"]);
        s.apply(5, &Request::CoordinateBatchUpdate(vec![at("a", 0.1), at("b", 0.2)]));
        s.apply(6, &Request::Deregister(DeregisterRequest { node: "a".into(), ..Default::default() }));
        assert_eq!(s.coordinates(), (vec![at("b", 0.2)], 6));
    }

    #[test]
    fn near_sorts_by_estimated_rtt_with_unknown_nodes_last() {
        let mut s = store_with_nodes(&["a", "b", "c", "d"]);
        s.apply(9, &Request::CoordinateBatchUpdate(vec![at("a", 0.0), at("b", 0.05), at("c", 0.01)]));
        let mut nodes = vec!["d", "b", "c", "a"];
        s.sort_by_distance_from("a", &mut nodes, |n| n);
        assert_eq!(nodes, vec!["a", "c", "b", "d"]);
        let mut unsorted = vec!["d", "b", "c", "a"];
        s.sort_by_distance_from("d", &mut unsorted, |n| n);
        assert_eq!(unsorted, vec!["d", "b", "c", "a"], "a source without a coordinate leaves the order alone");
    }
}
