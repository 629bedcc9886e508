//! `concord join [-wan] ADDRESS...`: asks the agent to join the LAN gossip pool (with `-wan`,
//! a server's WAN pool) through each address (`PUT /v1/agent/join/<address>[?wan=1]`), as
//! Consul's `consul join` does.

use clap::Args;
use hyper::Method;

use super::common::{line, HttpArgs, Outcome};

/// `concord join [options] ADDRESS...`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Join the WAN pool through WAN gossip addresses (default port 8302); servers only.
    #[arg(long)]
    pub wan: bool,
    /// Gossip addresses of agents already in the cluster (`ip` or `ip:port`, default port 8301,
    /// 8302 with -wan).
    #[arg(required = true, value_name = "ADDRESS")]
    pub addresses: Vec<String>,
}

/// Joins through every address; succeeds if at least one answered. Consul's texts:
/// "Successfully joined cluster by contacting N nodes." / "Failed to join any nodes.".
pub(super) async fn join(a: JoinArgs) -> Outcome {
    let client = a.http.client()?;
    let query = if a.wan { "?wan=1" } else { "" };
    let mut joined = 0;
    let mut errors = Vec::new();
    for address in &a.addresses {
        let path = format!("/v1/agent/join/{address}{query}");
        match client.request(Method::PUT, &path, Vec::new()).await {
            Ok(r) if r.status.is_success() => joined += 1,
            Ok(r) => errors.push(r.unexpected()),
            Err(e) => errors.push(format!("Error joining address '{address}': {e}")),
        }
    }
    if joined == 0 {
        errors.push("Failed to join any nodes.".to_string());
        return Err(errors.join("\n"));
    }
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(line(&format!("Successfully joined cluster by contacting {joined} nodes.")))
}
