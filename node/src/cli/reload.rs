//! `concord reload`: asks the agent to re-read its config files (`PUT /v1/agent/reload`), as
//! SIGHUP does. Services and checks from the files are replaced; other options need a restart.

use clap::Args;
use hyper::Method;

use super::common::{line, HttpArgs, Outcome};

/// `concord reload [options]`.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub http: HttpArgs,
}

pub(super) async fn reload(a: ReloadArgs) -> Outcome {
    let client = a.http.client()?;
    let resp =
        client.request(Method::PUT, "/v1/agent/reload", Vec::new()).await.map_err(|e| format!("Error reloading: {e}"))?;
    if !resp.status.is_success() {
        return Err(format!("Error reloading: {}", resp.unexpected()));
    }
    Ok(line("Configuration reload triggered"))
}
