//! `concord event -name=NAME [-node=RE] [-service=RE] [-tag=RE] [PAYLOAD]`: fires a user event
//! through the agent (`PUT /v1/event/fire/<name>`), as Consul's `consul event` does, and prints
//! `Event ID: <id>`.

use clap::Args;
use hyper::Method;

use super::common::{line, HttpArgs, Outcome};
use super::http_client::{encode_path, encode_query_value};

/// `concord event` options.
#[derive(Debug, Args)]
pub struct EventArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// The event's name.
    #[arg(long, required = true)]
    pub name: String,
    /// Regular expression of the node names that keep the event.
    #[arg(long)]
    pub node: Option<String>,
    /// Regular expression of the local service IDs an agent must have to keep the event.
    #[arg(long)]
    pub service: Option<String>,
    /// Regular expression one tag of that service must match (needs `-service`).
    #[arg(long)]
    pub tag: Option<String>,
    /// The payload (at most 512 bytes).
    pub payload: Option<String>,
}

/// Fires the event; prints its ID. Errors: `-tag` without `-service` (Consul's text), the agent's.
pub(super) async fn event(a: EventArgs) -> Outcome {
    if a.tag.is_some() && a.service.is_none() {
        return Err("Cannot provide tag filter without service filter.".into());
    }
    let client = a.http.client()?;
    let filters: Vec<String> = [("node", &a.node), ("service", &a.service), ("tag", &a.tag)]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode_query_value(v))))
        .collect();
    let query = if filters.is_empty() { String::new() } else { format!("?{}", filters.join("&")) };
    let path = format!("/v1/event/fire/{}{query}", encode_path(&a.name));
    let r = client.request(Method::PUT, &path, a.payload.unwrap_or_default().into_bytes()).await.map_err(|e| format!("Error firing event: {e}"))?;
    if !r.status.is_success() {
        return Err(format!("Error firing event: {}", r.unexpected()));
    }
    let id = serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| v.get("ID").and_then(|id| id.as_str()).map(str::to_string))
        .ok_or("Error firing event: no ID in the answer")?;
    Ok(line(&format!("Event ID: {id}")))
}
