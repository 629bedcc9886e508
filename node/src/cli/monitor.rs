//! `concord monitor [-log-level=info] [-log-json]`: streams the agent's log (`GET /v1/agent/monitor`) to
//! stdout until the agent closes the stream or the user interrupts (exit 0, as Consul's).

use std::io::Write;

use clap::Args;

use super::common::{HttpArgs, Outcome};
use super::http_client::encode_query_value;
use crate::telemetry::logs::LogLevel;

/// `concord monitor [options]`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Log level to stream: trace, debug, info, warn, err (may be more verbose than the agent's).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
    /// Stream JSON objects, one per line (Consul's `-log-json`).
    #[arg(long)]
    pub log_json: bool,
}

pub(super) async fn monitor(a: MonitorArgs) -> Outcome {
    LogLevel::parse(&a.log_level)?;
    let client = a.http.client()?;
    let mut path = format!("/v1/agent/monitor?loglevel={}", encode_query_value(&a.log_level.to_ascii_lowercase()));
    if a.log_json {
        path.push_str("&logjson");
    }
    let stream = client.stream(&path, |chunk| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(chunk).and_then(|_| out.flush());
    });
    tokio::select! {
        result = stream => {
            result.map_err(|e| format!("Error starting monitor: {e}"))?;
            Ok(Vec::new())
        }
        _ = tokio::signal::ctrl_c() => Ok(Vec::new()),
    }
}
