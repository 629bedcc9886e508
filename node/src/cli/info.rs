//! `concord version` and `concord info` (Consul's: the agent's `Stats` sections, each key as
//! `key = value`, sorted).

use clap::Args;
use hyper::Method;
use serde_json::Value;

use super::common::{HttpArgs, Outcome};
use crate::version::{CONCORD_VERSION, CONSUL_API_VERSION, REVISION};

/// `concord info [options]`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub http: HttpArgs,
}

/// `concord version`'s text: Concord's version and revision, and the Consul API level it
/// reports to clients.
pub fn version_text() -> String {
    format!(
        "Concord v{CONCORD_VERSION}\nRevision {REVISION}\nConsul API v{CONSUL_API_VERSION} \
         (reported to clients as the agent's Consul version)\n"
    )
}

/// Renders `Stats` as Consul's `info` does: sections sorted, then `\tkey = value` sorted.
pub fn render_stats(stats: &Value) -> String {
    let mut out = String::new();
    let Some(sections) = stats.as_object() else { return out };
    let mut names: Vec<&String> = sections.keys().collect();
    names.sort();
    for name in names {
        out.push_str(&format!("{name}:\n"));
        if let Some(kv) = sections[name].as_object() {
            let mut keys: Vec<&String> = kv.keys().collect();
            keys.sort();
            for k in keys {
                let v = match &kv[k] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.push_str(&format!("\t{k} = {v}\n"));
            }
        }
    }
    out
}

pub(super) async fn info(a: InfoArgs) -> Outcome {
    let client = a.http.client()?;
    let resp = client.request(Method::GET, "/v1/agent/self", Vec::new()).await.map_err(|e| format!("Error querying agent: {e}"))?;
    if !resp.status.is_success() {
        return Err(format!("Error querying agent: {}", resp.unexpected()));
    }
    let doc: Value = serde_json::from_slice(&resp.body).map_err(|e| format!("Error querying agent: bad JSON: {e}"))?;
    Ok(render_stats(&doc["Stats"]).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_prints_sorted_sections_and_keys() {
        let stats = serde_json::json!({ "raft": { "term": "3", "state": "Leader" }, "consul": { "leader": "true" } });
        assert_eq!(render_stats(&stats), "consul:\n\tleader = true\nraft:\n\tstate = Leader\n\tterm = 3\n");
    }
}
