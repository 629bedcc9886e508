//! `concord leave`: asks the agent to leave the cluster gracefully (`PUT /v1/agent/leave`): it is
//! removed from the Raft configuration (a leader steps down first) and then exits.

use clap::Args;
use hyper::Method;

use super::common::{line, HttpArgs, Outcome};

/// `concord leave [options]`.
#[derive(Debug, Args)]
pub struct LeaveArgs {
    #[command(flatten)]
    pub http: HttpArgs,
}

pub(super) async fn leave(a: LeaveArgs) -> Outcome {
    let client = a.http.client()?;
    let resp = client.request(Method::PUT, "/v1/agent/leave", Vec::new()).await.map_err(|e| format!("Error leaving: {e}"))?;
    if !resp.status.is_success() {
        return Err(format!("Error leaving: {}", resp.unexpected()));
    }
    Ok(line("Graceful leave complete"))
}
