//! `/v1/coordinate`: node network coordinates.
//!
//! Source: Consul HTTP API, "Network Coordinates" (`website/content/api-docs/coordinate.mdx`) and
//! `agent/coordinate_endpoint.go`. `nodes` and `node/<node>` support blocking queries and the
//! consistency modes; `nodes` answers `[]` when none are known, `node/<node>` 404 for a node with
//! no coordinate, both sorted by node name as Consul does. `datacenters` answers Consul's
//! `[{Datacenter, AreaID: "wan", Coordinates}]`: with no WAN pool yet, the servers' LAN
//! coordinates stand in for their WAN ones, named `<node>.<datacenter>` as Consul names WAN members.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};

use super::catalog::{decode_body, indexed_json};
use super::ApiError;
use crate::server::coordinate::CoordinateUpdateError;
use crate::server::Server;
use crate::structs::{Consistency, CoordinateQuery, CoordinateUpdateRequest, DatacenterMap, QueryOptions};

/// The coordinate routes.
pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/v1/coordinate/datacenters", get(datacenters))
        .route("/v1/coordinate/nodes", get(nodes))
        .route("/v1/coordinate/node/{node}", get(node))
        .route("/v1/coordinate/update", put(update))
}

impl From<CoordinateUpdateError> for ApiError {
    fn from(e: CoordinateUpdateError) -> Self {
        match e {
            CoordinateUpdateError::Invalid(m) => ApiError::bad_request(m),
            CoordinateUpdateError::Write(w) => w.into(),
        }
    }
}

/// `GET /v1/coordinate/nodes`.
pub async fn nodes(State(server): State<Arc<Server>>, opts: QueryOptions) -> Result<Response, ApiError> {
    let answer = server.coordinate_list_nodes(CoordinateQuery { name: String::new(), opts }, false).await?;
    Ok(indexed_json(answer))
}

/// `GET /v1/coordinate/node/<node>`: `[entry]`, or 404 when the node has no coordinate.
pub async fn node(State(server): State<Arc<Server>>, Path(name): Path<String>, opts: QueryOptions) -> Result<Response, ApiError> {
    let answer = server.coordinate_node(CoordinateQuery { name, opts }, false).await?;
    if answer.value.is_empty() {
        let headers = super::query::meta_headers(&answer.meta);
        return Ok((StatusCode::NOT_FOUND, headers).into_response());
    }
    Ok(indexed_json(answer))
}

/// `PUT /v1/coordinate/update` (Consul `CoordinateUpdateRequest` body): 200 with an empty body.
/// Errors: 400 undecodable, no node, or a coordinate that is not finite and 8-dimensional.
pub async fn update(State(server): State<Arc<Server>>, opts: QueryOptions, body: Bytes) -> Result<Response, ApiError> {
    server.check_datacenter(&opts)?;
    let req: CoordinateUpdateRequest = decode_body(&body)?;
    server.coordinate_update(req, false).await?;
    Ok(StatusCode::OK.into_response())
}

/// `GET /v1/coordinate/datacenters`: this datacenter's servers (see the module header).
pub async fn datacenters(State(server): State<Arc<Server>>) -> Result<Json<Vec<DatacenterMap>>, ApiError> {
    let dc = server.config.datacenter.clone();
    let servers: std::collections::BTreeSet<String> =
        server.gossip.members().into_iter().filter(|m| m.tags.get("role").is_some_and(|r| r == "consul")).map(|m| m.name).collect();
    let opts = QueryOptions { consistency: Consistency::Stale, ..QueryOptions::default() };
    let all = server.coordinate_list_nodes(CoordinateQuery { name: String::new(), opts }, false).await?.value;
    let coordinates = all
        .into_iter()
        .filter(|c| servers.contains(&c.node))
        .map(|mut c| {
            c.node = format!("{}.{dc}", c.node);
            c
        })
        .collect();
    Ok(Json(vec![DatacenterMap { datacenter: dc, area_id: "wan".into(), coordinates }]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::coordinate::{Config, Coordinate};
    use crate::structs::CoordinateEntry;

    fn entry() -> CoordinateEntry {
        let mut coord = Coordinate::new(&Config::default());
        coord.vec = vec![0.0011, -0.0004, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0025];
        coord.error = 0.35;
        coord.adjustment = -0.0001;
        coord.height = 0.00012;
        CoordinateEntry { node: "s1".into(), segment: String::new(), coord }
    }

    /// Consul's `/v1/coordinate/nodes` row: Node, Segment, Coord{Vec, Error, Adjustment, Height}.
    #[test]
    fn coordinate_entry_has_consuls_shape() {
        insta::assert_json_snapshot!("coordinate_entry", entry());
    }

    /// Consul's `/v1/coordinate/datacenters` entry: Datacenter, AreaID, Coordinates.
    #[test]
    fn datacenter_map_has_consuls_shape() {
        let mut e = entry();
        e.node = "s1.dc1".into();
        insta::assert_json_snapshot!("datacenter_map", DatacenterMap { datacenter: "dc1".into(), area_id: "wan".into(), coordinates: vec![e] });
    }

    #[test]
    fn an_update_body_decodes_as_consul_sends_it() {
        let body = br#"{"Node":"c1","Coord":{"Vec":[0,0,0,0,0,0,0,0.001],"Error":1.5,"Adjustment":0,"Height":0.00001}}"#;
        let req: CoordinateUpdateRequest = decode_body(body).expect("Consul's shape");
        assert_eq!(req.node, "c1");
        assert_eq!(req.coord.vec.len(), 8);
        assert!(decode_body::<CoordinateUpdateRequest>(br#"{"Node":"c1","Coord":{"Vec":"x"}}"#).is_err());
    }
}
