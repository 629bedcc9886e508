//! `concord members [-detailed] [-wan]`: the LAN gossip pool (with `-wan`, the WAN pool of
//! servers of every datacenter, named `<node>.<dc>`) as the agent sees it
//! (`GET /v1/agent/members[?wan=1]`), in Consul's columns.
//!
//! Source: Consul `command/members/members.go`. Default columns: Node, Address (`ip:port`),
//! Status (`alive`, `leaving`, `left`, `failed`), Type (`server` for role `consul`, `client` for
//! role `node`), Build (the `build` tag up to `:`), Protocol (the `vsn` tag), DC, Partition
//! (`default`) and Segment (`<all>` for servers). `-detailed`: Node, Address, Status and every
//! tag as `k=v`, sorted, comma-separated. Rows are sorted by node name.

use std::collections::BTreeMap;

use clap::Args;
use hyper::Method;
use serde::Deserialize;

use super::common::{HttpArgs, Outcome};
use super::operator::columnize;

/// `concord members [options]`.
#[derive(Debug, Args)]
pub struct MembersArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Print every member tag instead of the summary columns.
    #[arg(long)]
    pub detailed: bool,
    /// List the WAN pool's members (servers of every datacenter) instead of the LAN pool's.
    #[arg(long)]
    pub wan: bool,
}

/// One entry of `/v1/agent/members` (the fields this command prints).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiMember {
    name: String,
    addr: String,
    port: u16,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    status: u8,
}

/// Serf's status names by code.
fn status_name(code: u8) -> &'static str {
    match code {
        0 => "none",
        1 => "alive",
        2 => "leaving",
        3 => "left",
        4 => "failed",
        _ => "unknown",
    }
}

pub(super) async fn members(a: MembersArgs) -> Outcome {
    let client = a.http.client()?;
    let resp = client
        .request(Method::GET, if a.wan { "/v1/agent/members?wan=1" } else { "/v1/agent/members" }, Vec::new())
        .await
        .map_err(|e| format!("Error retrieving members: {e}"))?;
    if !resp.status.is_success() {
        return Err(format!("Error retrieving members: {}", resp.unexpected()));
    }
    let mut list: Vec<ApiMember> =
        serde_json::from_slice(&resp.body).map_err(|e| format!("Error retrieving members: bad JSON: {e}"))?;
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(render(&list, a.detailed).into_bytes())
}

fn render(list: &[ApiMember], detailed: bool) -> String {
    let mut rows = Vec::with_capacity(list.len() + 1);
    if detailed {
        rows.push(["Node", "Address", "Status", "Tags"].map(String::from).to_vec());
    } else {
        rows.push(["Node", "Address", "Status", "Type", "Build", "Protocol", "DC", "Partition", "Segment"].map(String::from).to_vec());
    }
    for m in list {
        let addr = host_port(&m.addr, m.port);
        let status = status_name(m.status).to_string();
        if detailed {
            let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            rows.push(vec![m.name.clone(), addr, status, tags.join(",")]);
            continue;
        }
        let tag = |k: &str| m.tags.get(k).cloned().unwrap_or_default();
        let server = tag("role") == "consul";
        let build = tag("build").split(':').next().unwrap_or_default().to_string();
        rows.push(vec![
            m.name.clone(),
            addr,
            status,
            if server { "server" } else { "client" }.into(),
            build,
            tag("vsn"),
            tag("dc"),
            "default".into(),
            if server { "<all>".into() } else { tag("segment") },
        ]);
    }
    columnize(&rows)
}

/// `ip:port`, with IPv6 addresses in brackets.
fn host_port(ip: &str, port: u16) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{ip}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, role: &str, status: u8) -> ApiMember {
        let tags = [("role", role), ("dc", "dc1"), ("build", "1.20.0:abc123"), ("vsn", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ApiMember { name: name.into(), addr: "127.0.0.1".into(), port: 8301, tags, status }
    }

    #[test]
    fn prints_consuls_columns() {
        let out = render(&[m("s1", "consul", 1), m("c1", "node", 4)], false);
        assert_eq!(
            out,
            "Node  Address         Status  Type    Build   Protocol  DC   Partition  Segment\n\
             s1    127.0.0.1:8301  alive   server  1.20.0  2         dc1  default    <all>\n\
             c1    127.0.0.1:8301  failed  client  1.20.0  2         dc1  default\n"
        );
    }

    #[test]
    fn detailed_prints_every_tag() {
        let out = render(&[m("s1", "consul", 3)], true);
        assert!(out.contains("s1    127.0.0.1:8301  left    build=1.20.0:abc123,dc=dc1,role=consul,vsn=2"), "{out}");
    }
}
