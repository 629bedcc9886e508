//! The coordinate endpoints (Consul `agent/consul/coordinate_endpoint.go`): `Coordinate.Update`,
//! `Coordinate.ListNodes`, `Coordinate.Node`; and the agent's loop that sends its own coordinate
//! to the servers (Consul `agent.sendCoordinate`).
//!
//! Consul's leader batches updates and applies them every 5 s; here each agent's update is one
//! write through the shared write path (forwarded to the leader like any write), every
//! [`SYNC_COORDINATE_INTERVAL`] plus a random stagger: the same rate for a small cluster, one
//! Raft entry per agent per interval. Reads go through `route_read` and `blocking_query`.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::Server;
use crate::gossip::coordinate::DIMENSIONALITY;
use crate::state::{Table, WatchKey};
use crate::structs::{Command, CommandResult, CoordinateEntry, CoordinateQuery, CoordinateUpdateRequest, Indexed, QueryError, WriteError};

pub const COORDINATE_UPDATE: &str = "Coordinate.Update";
pub const COORDINATE_LIST_NODES: &str = "Coordinate.ListNodes";
pub const COORDINATE_NODE: &str = "Coordinate.Node";
/// Every coordinate method (for the RPC metrics' label set).
pub const COORDINATE_METHODS: [&str; 3] = [COORDINATE_UPDATE, COORDINATE_LIST_NODES, COORDINATE_NODE];

/// How often an agent sends its coordinate, at least (Consul `SyncCoordinateIntervalMin`, 15 s;
/// Consul scales it up past 64 nodes per second, `SyncCoordinateRateTarget`, which a Concord
/// cluster of this size never reaches). A random stagger of up to the same again is added.
pub const SYNC_COORDINATE_INTERVAL: Duration = Duration::from_secs(15);

/// Why a coordinate update was refused.
#[derive(Debug, thiserror::Error)]
pub enum CoordinateUpdateError {
    /// Not a finite 8-dimensional coordinate, or no node named (400 at the HTTP edge).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl Server {
    /// `Coordinate.Update`: validates (Consul: "invalid coordinate", dimensionality), then writes
    /// through Raft. An update for a node the catalog does not hold is accepted and skipped.
    pub async fn coordinate_update(&self, mut req: CoordinateUpdateRequest, forwarded: bool) -> Result<CommandResult, CoordinateUpdateError> {
        if req.node.is_empty() {
            return Err(CoordinateUpdateError::Invalid("Must provide node".into()));
        }
        if req.coord.vec.len() != DIMENSIONALITY {
            return Err(CoordinateUpdateError::Invalid("coordinate dimensionality does not match".into()));
        }
        if !req.coord.is_valid() {
            return Err(CoordinateUpdateError::Invalid("invalid coordinate".into()));
        }
        if req.datacenter.is_empty() {
            req.datacenter = self.config.datacenter.clone();
        }
        let entry = vec![CoordinateEntry { node: req.node, segment: String::new(), coord: req.coord }];
        Ok(self.apply_write(COORDINATE_UPDATE, entry, forwarded, Command::coordinate_batch_update).await?)
    }

    /// `Coordinate.ListNodes` (`/v1/coordinate/nodes`): every node's coordinate, by node name.
    pub async fn coordinate_list_nodes(&self, q: CoordinateQuery, forwarded: bool) -> Result<Indexed<Vec<CoordinateEntry>>, QueryError> {
        let opts = q.opts.clone();
        self.route_read(COORDINATE_LIST_NODES, q, &opts, forwarded, |q| async move {
            let (value, meta) = self.blocking_query(&q.opts, WatchKey::Table(Table::Coordinates), |s| s.coordinates()).await?;
            Ok(Indexed { value, meta })
        })
        .await
    }

    /// `Coordinate.Node` (`/v1/coordinate/node/<node>`): that node's coordinates (empty if none).
    pub async fn coordinate_node(&self, q: CoordinateQuery, forwarded: bool) -> Result<Indexed<Vec<CoordinateEntry>>, QueryError> {
        let opts = q.opts.clone();
        self.route_read(COORDINATE_NODE, q, &opts, forwarded, |q| async move {
            let watch = WatchKey::Row(Table::Coordinates, q.name.clone());
            let (value, meta) = self.blocking_query(&q.opts, watch, |s| s.node_coordinates(&q.name)).await?;
            Ok(Indexed { value, meta })
        })
        .await
    }
}

/// Sends this agent's coordinate to the servers every [`SYNC_COORDINATE_INTERVAL`] plus a
/// stagger drawn from the agent's seeded RNG, once the gossip pool has measured at least one RTT
/// (Consul `agent.sendCoordinate`). A failed send is logged and retried at the next interval.
pub async fn sync_coordinate(server: Arc<Server>) {
    loop {
        let stagger_ms = server.rng().gen_range(0..=SYNC_COORDINATE_INTERVAL.as_millis() as u64);
        tokio::time::sleep(SYNC_COORDINATE_INTERVAL + Duration::from_millis(stagger_ms)).await;
        let Some(coord) = server.gossip.coordinates.get() else { continue };
        let node = server.config.node_name.clone();
        let req = CoordinateUpdateRequest { datacenter: server.config.datacenter.clone(), node: node.clone(), segment: String::new(), coord };
        match server.coordinate_update(req, false).await {
            Ok(_) => tracing::debug!(node = %node, "coordinate sent to the servers"),
            Err(e) => tracing::warn!(node = %node, error = %e, "coordinate update failed"),
        }
    }
}
