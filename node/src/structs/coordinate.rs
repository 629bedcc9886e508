//! Network-coordinate shapes (Consul `agent/structs/structs.go`: `Coordinate`,
//! `CoordinateUpdateRequest`, `DatacenterMap`), shared by the HTTP API, RPC and the state store.
//! The coordinate itself is serf's ([`crate::gossip::coordinate::Coordinate`]).

use serde::{Deserialize, Serialize};

use crate::gossip::coordinate::Coordinate;

/// One node's coordinate as stored and listed (Consul `structs.Coordinate`; JSON
/// `{"Node","Segment","Coord":{"Vec","Error","Adjustment","Height"}}`; Consul's `Partition` is
/// `omitempty` and empty outside Enterprise, so it is left out).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoordinateEntry {
    #[serde(rename = "Node")]
    pub node: String,
    /// Network segment (Enterprise); always "" here.
    #[serde(rename = "Segment", default)]
    pub segment: String,
    #[serde(rename = "Coord")]
    pub coord: Coordinate,
}

/// Stored entries are validated finite before they are applied (no NaN), so equality is total.
impl Eq for CoordinateEntry {}

/// `PUT /v1/coordinate/update` body and the `Coordinate.Update` RPC (Consul
/// `CoordinateUpdateRequest`: `Datacenter`, `Node`, `Segment`, `Coord`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoordinateUpdateRequest {
    #[serde(rename = "Datacenter", default)]
    pub datacenter: String,
    #[serde(rename = "Node")]
    pub node: String,
    #[serde(rename = "Segment", default)]
    pub segment: String,
    #[serde(rename = "Coord")]
    pub coord: Coordinate,
}

/// One datacenter's coordinates in `/v1/coordinate/datacenters` (Consul `structs.DatacenterMap`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatacenterMap {
    #[serde(rename = "Datacenter")]
    pub datacenter: String,
    #[serde(rename = "AreaID")]
    pub area_id: String,
    #[serde(rename = "Coordinates")]
    pub coordinates: Vec<CoordinateEntry>,
}

/// A coordinate read: one node's (`name` non-empty) or every node's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinateQuery {
    pub name: String,
    pub opts: super::QueryOptions,
}
