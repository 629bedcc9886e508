//! `concord catalog datacenters|nodes|services`: Consul's catalog commands over `/v1/catalog/*`,
//! with its columns and messages.

use clap::{Args, Subcommand};
use hyper::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::common::{HttpArgs, Outcome};
use super::http_client::{encode_path, encode_query_value};
use super::operator::columnize;

/// `concord catalog <command>`.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Lists all known datacenters.
    Datacenters(DatacentersArgs),
    /// Lists all nodes in the given datacenter.
    Nodes(NodesArgs),
    /// Lists all registered services in a datacenter.
    Services(ServicesArgs),
}

/// `concord catalog datacenters`.
#[derive(Debug, Args)]
pub struct DatacentersArgs {
    #[command(flatten)]
    pub http: HttpArgs,
}

/// `concord catalog nodes [-detailed] [-service=NAME] [-node-meta=k=v]`.
#[derive(Debug, Args)]
pub struct NodesArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Output detailed information about each node (full ID, tagged addresses, meta).
    #[arg(long)]
    pub detailed: bool,
    /// Only nodes that run this service.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Node metadata filter `key=value` (repeatable).
    #[arg(long = "node-meta", value_name = "KEY=VALUE")]
    pub node_meta: Vec<String>,
    /// Datacenter to query (default: the agent's).
    #[arg(long, value_name = "DC")]
    pub datacenter: Option<String>,
}

/// `concord catalog services [-tags] [-node=NAME]`.
#[derive(Debug, Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Display each service's tags as a comma-separated list beside its name.
    #[arg(long)]
    pub tags: bool,
    /// Only services on this node.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Node metadata filter `key=value` (repeatable).
    #[arg(long = "node-meta", value_name = "KEY=VALUE")]
    pub node_meta: Vec<String>,
    /// Datacenter to query (default: the agent's).
    #[arg(long, value_name = "DC")]
    pub datacenter: Option<String>,
}

pub(super) async fn run(cmd: CatalogCommand) -> Outcome {
    match cmd {
        CatalogCommand::Datacenters(a) => datacenters(a).await,
        CatalogCommand::Nodes(a) => nodes(a).await,
        CatalogCommand::Services(a) => services(a).await,
    }
}

/// `?dc=` and `?node-meta=k:v` (the CLI spells meta `k=v`, the API `k:v`).
fn query(datacenter: &Option<String>, node_meta: &[String]) -> Result<String, String> {
    let mut q = Vec::new();
    if let Some(dc) = datacenter {
        q.push(format!("dc={}", encode_query_value(dc)));
    }
    for m in node_meta {
        let (k, v) = m.split_once('=').ok_or_else(|| format!("Error parsing node-meta {m:?}: want key=value"))?;
        q.push(format!("node-meta={}", encode_query_value(&format!("{k}:{v}"))));
    }
    Ok(if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) })
}

async fn get<T: DeserializeOwned>(http: &HttpArgs, path: &str, what: &str) -> Result<T, String> {
    let resp = http.client()?.request(Method::GET, path, Vec::new()).await.map_err(|e| format!("Error listing {what}: {e}"))?;
    if !resp.status.is_success() {
        return Err(format!("Error listing {what}: {}", resp.unexpected()));
    }
    serde_json::from_slice(&resp.body).map_err(|e| format!("Error listing {what}: bad JSON: {e}"))
}

async fn datacenters(a: DatacentersArgs) -> Outcome {
    let dcs: Vec<String> = get(&a.http, "/v1/catalog/datacenters", "datacenters").await?;
    if dcs.is_empty() {
        return Err("No datacenters found".into());
    }
    Ok(dcs.iter().map(|d| format!("{d}\n")).collect::<String>().into_bytes())
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// `k1=v1, k2=v2` for a string map.
fn pairs(v: Option<&Value>) -> String {
    let Some(map) = v.and_then(Value::as_object) else { return String::new() };
    map.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(", ")
}

/// Renders nodes as Consul's `catalog nodes` does: `Node ID Address DC`, the ID cut to 8
/// characters unless `detailed` (which adds TaggedAddresses and Meta).
pub fn render_nodes(nodes: &[Value], detailed: bool) -> String {
    let mut rows = vec![if detailed {
        ["Node", "ID", "Address", "DC", "TaggedAddresses", "Meta"].map(String::from).to_vec()
    } else {
        ["Node", "ID", "Address", "DC"].map(String::from).to_vec()
    }];
    for n in nodes {
        let id = field(n, "ID");
        let id = if detailed { id.to_string() } else { id.chars().take(8).collect() };
        let mut row = vec![field(n, "Node").to_string(), id, field(n, "Address").to_string(), field(n, "Datacenter").to_string()];
        if detailed {
            row.push(pairs(n.get("TaggedAddresses")));
            row.push(pairs(n.get("Meta")));
        }
        rows.push(row);
    }
    columnize(&rows)
}

async fn nodes(a: NodesArgs) -> Outcome {
    let q = query(&a.datacenter, &a.node_meta)?;
    let nodes: Vec<Value> = match &a.service {
        // A service's instances carry their node's fields under Consul's flat names.
        Some(svc) => {
            let rows: Vec<Value> = get(&a.http, &format!("/v1/catalog/service/{}{q}", encode_path(svc)), "nodes").await?;
            let mut seen = std::collections::BTreeMap::new();
            for r in rows {
                let node = serde_json::json!({
                    "Node": field(&r, "Node"), "ID": field(&r, "ID"), "Address": field(&r, "Address"),
                    "Datacenter": field(&r, "Datacenter"), "TaggedAddresses": r.get("TaggedAddresses"), "Meta": r.get("NodeMeta"),
                });
                seen.insert(field(&r, "Node").to_string(), node);
            }
            seen.into_values().collect()
        }
        None => get(&a.http, &format!("/v1/catalog/nodes{q}"), "nodes").await?,
    };
    if nodes.is_empty() {
        return Err("No nodes match the given query - try expanding your search.".into());
    }
    Ok(render_nodes(&nodes, a.detailed).into_bytes())
}

async fn services(a: ServicesArgs) -> Outcome {
    let q = query(&a.datacenter, &a.node_meta)?;
    let by_name: Vec<(String, Vec<String>)> = match &a.node {
        Some(node) => {
            let doc: Value = get(&a.http, &format!("/v1/catalog/node/{}{q}", encode_path(node)), "services").await?;
            let mut names: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
            for s in doc.get("Services").and_then(Value::as_object).into_iter().flat_map(|m| m.values()) {
                let tags = s.get("Tags").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(String::from);
                names.entry(field(s, "Service").to_string()).or_default().extend(tags);
            }
            names.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect()
        }
        None => {
            let map: std::collections::BTreeMap<String, Vec<String>> = get(&a.http, &format!("/v1/catalog/services{q}"), "services").await?;
            map.into_iter().collect()
        }
    };
    if by_name.is_empty() {
        return Err("No services match the given query - try expanding your search.".into());
    }
    let out = if a.tags {
        columnize(&by_name.iter().map(|(n, t)| vec![n.clone(), t.join(",")]).collect::<Vec<_>>())
    } else {
        by_name.iter().map(|(n, _)| format!("{n}\n")).collect()
    };
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_render_in_consuls_columns_with_short_ids() {
        let nodes = vec![serde_json::json!({
            "Node": "worker-01", "ID": "1b662d97-8b5c-3cc2-0ac0-96f55ad423b5", "Address": "10.4.5.31", "Datacenter": "dc1",
            "TaggedAddresses": {"lan": "10.4.5.31"}, "Meta": {"rack": "r1"}
        })];
        assert_eq!(render_nodes(&nodes, false), "Node       ID        Address    DC\nworker-01  1b662d97  10.4.5.31  dc1\n");
        let detailed = render_nodes(&nodes, true);
        assert!(detailed.contains("1b662d97-8b5c-3cc2-0ac0-96f55ad423b5") && detailed.contains("lan=10.4.5.31") && detailed.contains("rack=r1"));
    }

    #[test]
    fn node_meta_flags_become_api_filters() {
        assert_eq!(query(&Some("dc2".into()), &["rack=r1".into()]).expect("ok"), "?dc=dc2&node-meta=rack%3Ar1");
        assert!(query(&None, &["nokey".into()]).is_err());
    }
}
