//! `concord operator raft list-peers|remove-peer|transfer-leader`: Consul's Raft operator
//! commands over `/v1/operator/raft/*`.

use clap::{Args, Subcommand};
use hyper::Method;
use serde::Deserialize;

use super::common::{line, HttpArgs, Outcome};
use super::http_client::encode_query_value;

/// `concord operator <command>`.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Provides cluster-level tools for Consul operators: the Raft subsystem.
    #[command(subcommand)]
    Raft(RaftCommand),
}

/// `concord operator raft <command>`.
#[derive(Debug, Subcommand)]
pub enum RaftCommand {
    /// Displays the current Raft peer configuration.
    ListPeers(ListPeersArgs),
    /// Removes a Concord server from the Raft configuration.
    RemovePeer(RemovePeerArgs),
    /// Transfer raft leadership to another node.
    TransferLeader(TransferLeaderArgs),
}

/// `concord operator raft transfer-leader [-id=ID]`.
#[derive(Debug, Args)]
pub struct TransferLeaderArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// The ID of the node to transfer leadership to (as list-peers prints it, or its node name);
    /// default: the most up-to-date other voter.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
}

/// `concord operator raft list-peers [options]`.
#[derive(Debug, Args)]
pub struct ListPeersArgs {
    #[command(flatten)]
    pub http: HttpArgs,
}

/// `concord operator raft remove-peer -id=ID | -address=IP:PORT`.
#[derive(Debug, Args)]
pub struct RemovePeerArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// The server's ID (as list-peers prints it).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// The server's RPC address, IP:port.
    #[arg(long, value_name = "IP:PORT")]
    pub address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RaftServer {
    #[serde(rename = "ID")]
    id: String,
    node: String,
    address: String,
    leader: bool,
    voter: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RaftConfiguration {
    servers: Vec<RaftServer>,
}

/// Columns padded to their widest cell and two spaces apart (Consul's `columnize`).
pub fn columnize(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| if c + 1 == row.len() { s.clone() } else { format!("{s:<w$}", w = widths[c]) })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub(super) async fn run(cmd: OperatorCommand) -> Outcome {
    match cmd {
        OperatorCommand::Raft(RaftCommand::ListPeers(a)) => list_peers(a).await,
        OperatorCommand::Raft(RaftCommand::RemovePeer(a)) => remove_peer(a).await,
        OperatorCommand::Raft(RaftCommand::TransferLeader(a)) => transfer_leader(a).await,
    }
}

/// Prints Consul's `Success`; errors as Consul's "Error transfering leadership: …" (sic).
async fn transfer_leader(a: TransferLeaderArgs) -> Outcome {
    let client = a.http.client()?;
    let path = match &a.id {
        Some(id) => format!("/v1/operator/raft/transfer-leader?id={}", encode_query_value(id)),
        None => "/v1/operator/raft/transfer-leader".to_string(),
    };
    let resp = client
        .request(Method::POST, &path, Vec::new())
        .await
        .map_err(|e| format!("Error transfering leadership: Failed to transfer leadership {e}"))?;
    if !resp.status.is_success() {
        return Err(format!("Error transfering leadership: Failed to transfer leadership {}", resp.unexpected()));
    }
    let reply: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
    if reply["Success"] != serde_json::Value::Bool(true) {
        return Err("Error transfering leadership: Failed to transfer leadership".into());
    }
    Ok(line("Success".to_string()))
}

async fn list_peers(a: ListPeersArgs) -> Outcome {
    let client = a.http.client()?;
    let resp = client
        .request(Method::GET, "/v1/operator/raft/configuration", Vec::new())
        .await
        .map_err(|e| format!("Error getting peers: {e}"))?;
    if !resp.status.is_success() {
        return Err(format!("Error getting peers: {}", resp.unexpected()));
    }
    let conf: RaftConfiguration = serde_json::from_slice(&resp.body).map_err(|e| format!("Error getting peers: bad JSON: {e}"))?;
    let mut rows = vec![["Node", "ID", "Address", "State", "Voter", "RaftProtocol"].map(String::from).to_vec()];
    for s in conf.servers {
        let state = if s.leader { "leader" } else { "follower" };
        rows.push(vec![s.node, s.id, s.address, state.into(), s.voter.to_string(), "3".into()]);
    }
    Ok(columnize(&rows).into_bytes())
}

async fn remove_peer(a: RemovePeerArgs) -> Outcome {
    let (param, value) = match (&a.id, &a.address) {
        (Some(id), None) => ("id", id),
        (None, Some(address)) => ("address", address),
        _ => return Err("Must specify either -id or -address".into()),
    };
    let client = a.http.client()?;
    let path = format!("/v1/operator/raft/peer?{param}={}", encode_query_value(value));
    let resp = client.request(Method::DELETE, &path, Vec::new()).await.map_err(|e| format!("Error removing peer: {e}"))?;
    if !resp.status.is_success() {
        return Err(format!("Error removing peer: {}", resp.unexpected()));
    }
    Ok(line(format!("Removed peer with {param} {value:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_the_widest_cell() {
        let rows = vec![vec!["Node".into(), "ID".into(), "State".into()], vec!["s1".into(), "abcdef".into(), "leader".into()]];
        assert_eq!(columnize(&rows), "Node  ID      State\ns1    abcdef  leader\n");
    }
}
