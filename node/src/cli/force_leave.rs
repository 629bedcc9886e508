//! `concord force-leave [-prune] NODE`: turns a failed member `left` on every agent, `-prune`
//! erases it from the member list (`PUT /v1/agent/force-leave/<node>[?prune]`), as Consul's
//! `consul force-leave` (`command/forceleave`). Prints nothing on success.

use clap::Args;
use hyper::Method;

use super::common::{HttpArgs, Outcome};

/// `concord force-leave [options] NODE`.
#[derive(Debug, Args)]
pub struct ForceLeaveArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Remove the agent from the list of members entirely.
    #[arg(long)]
    pub prune: bool,
    /// Leave the agent from the WAN gossip pool only (Concord has none yet: refused).
    #[arg(long)]
    pub wan: bool,
    /// The node name of the member.
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
}

/// Consul's usage error when not exactly one node is named.
pub const ONE_NODE: &str = "A single node name must be specified to force leave.";

pub(super) async fn force_leave(a: ForceLeaveArgs) -> Outcome {
    let [node] = a.nodes.as_slice() else { return Err(ONE_NODE.to_string()) };
    let client = a.http.client()?;
    let mut query = Vec::new();
    if a.prune {
        query.push("prune=1");
    }
    if a.wan {
        query.push("wan=1");
    }
    let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
    let path = format!("/v1/agent/force-leave/{node}{query}");
    let resp = client.request(Method::PUT, &path, Vec::new()).await.map_err(|e| format!("Error force leaving: {e}"))?;
    if !resp.status.is_success() {
        return Err(format!("Error force leaving: {}", resp.unexpected()));
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_and_the_node_parse_with_consuls_single_dash() {
        let args = ["concord", "force-leave", "-prune", "s3"].map(std::ffi::OsString::from).to_vec();
        let cli = crate::cli::parse_from(args).expect("parses");
        let crate::cli::Command::ForceLeave(a) = cli.command else { panic!("expected force-leave") };
        assert!(a.prune && !a.wan);
        assert_eq!(a.nodes, ["s3"]);
    }
}
