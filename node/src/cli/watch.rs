//! `concord watch -type=TYPE [type flags] [HANDLER...]`: Consul's `consul watch`. Runs a watch
//! plan ([`super::watch_plan`]); every changed result is given to HANDLER (run through `sh -c`)
//! as JSON on its stdin, with `CONSUL_INDEX` set to the result's index. Without a handler the
//! first result is printed to stdout and the command exits, as Consul's does.
//!
//! Types: `key` (`-key`), `keyprefix` (`-prefix`), `services`, `nodes`, `service` (`-service`,
//! `-tag`, `-passingonly`), `checks` (`-service` or `-state`), `event` (`-name`). A handler that
//! fails is reported on stderr and the watch goes on. Exit codes: 0 (the printed result), 1 for
//! bad flags or an agent that cannot answer the first query.

use std::time::Duration;

use clap::Args;

use super::common::{line, HttpArgs, Outcome};
use super::watch_plan::{Plan, WatchFlags, WatchType};
use crate::io::process::{OsProcesses, Processes, SpawnSpec};

/// `?wait=` of each blocking query (Consul's watch uses the agent's default, 5 min).
const WATCH_WAIT: Duration = Duration::from_secs(300);

/// `concord watch` options.
#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// The watch type: key, keyprefix, services, nodes, service, checks or event.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: String,
    /// The key (`-type=key`).
    #[arg(long)]
    pub key: Option<String>,
    /// The key prefix (`-type=keyprefix`).
    #[arg(long)]
    pub prefix: Option<String>,
    /// The service (`-type=service`, or `checks` of one service).
    #[arg(long)]
    pub service: Option<String>,
    /// A tag the service's instances must have (`-type=service`).
    #[arg(long)]
    pub tag: Option<String>,
    /// Only instances whose checks all pass (`-type=service`).
    #[arg(long = "passingonly")]
    pub passing_only: bool,
    /// The check state (`-type=checks`): any, passing, warning, critical.
    #[arg(long)]
    pub state: Option<String>,
    /// The event name (`-type=event`).
    #[arg(long)]
    pub name: Option<String>,
    /// Let any server answer (`?stale`).
    #[arg(long)]
    pub stale: bool,
    /// The handler, run through `sh -c` with the JSON on stdin.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub handler: Vec<String>,
}

/// Runs the watch: the first result as pretty JSON (no handler), or the handler on every change
/// until the process is stopped. Errors: bad flags, or (no handler) an agent that cannot answer.
pub(super) async fn watch(a: WatchArgs) -> Outcome {
    let flags = WatchFlags {
        key: a.key.clone(),
        prefix: a.prefix.clone(),
        service: a.service.clone(),
        tag: a.tag.clone(),
        passing_only: a.passing_only,
        state: a.state.clone(),
        name: a.name.clone(),
    };
    let kind = WatchType::from_flags(&a.kind, &flags)?;
    // A blocking query waits up to WATCH_WAIT (plus the agent's jitter), so the client waits longer.
    let client = a.http.client()?.with_request_timeout(WATCH_WAIT + WATCH_WAIT / 8 + Duration::from_secs(10));
    let mut plan = Plan::new(client, kind, a.stale, WATCH_WAIT);
    if a.handler.is_empty() {
        let first = plan.fetch().await.map_err(|e| format!("Error querying Concord agent: {e}"))?;
        let text = serde_json::to_string_pretty(&first.value).map_err(|e| e.to_string())?;
        return Ok(line(&text));
    }
    let script = a.handler.join(" ");
    plan.run(
        None,
        |result| {
            let script = script.clone();
            async move {
                run_handler(&script, result.index, &result.value).await;
                true
            }
        },
        |e| eprintln!("Error querying Concord agent (retrying): {e}"),
    )
    .await;
    Ok(Vec::new())
}

/// Runs the handler once with `value` on stdin; reports a failure on stderr.
async fn run_handler(script: &str, index: u64, value: &serde_json::Value) {
    let spec = SpawnSpec {
        args: vec!["sh".into(), "-c".into(), script.to_string()],
        env: vec![("CONSUL_INDEX".into(), index.to_string())],
        pass_stdin: false,
        stdin: Some(serde_json::to_vec(value).unwrap_or_default()),
    };
    let outcome = match OsProcesses.spawn(&spec) {
        Ok(mut child) => child.wait().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(Some(0)) => {}
        Ok(code) => eprintln!("Error executing handler: exit status {code:?}"),
        Err(e) => eprintln!("Error executing handler: {e}"),
    }
}
