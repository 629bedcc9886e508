//! `concord kv export [PREFIX]` and `concord kv import [DATA]`: Consul's KV backup format, a JSON
//! array of `{"key","flags","value"}` with `value` base64, printed as Go's
//! `json.MarshalIndent(..., "", "\t")` prints it, so files move between Consul and Concord.

use base64::Engine;
use clap::Args;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::common::{line, HttpArgs, Outcome};
use super::http_client::encode_path;
use super::kv::{with_query, write_answer};
use super::kv_format::KvPair;

/// One exported entry (Consul's `kvExportEntry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportEntry {
    pub key: String,
    pub flags: u64,
    /// The value, base64.
    pub value: String,
}

/// `concord kv export [options] [PREFIX]`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Let any server answer, even without a leader (may be stale).
    #[arg(long)]
    pub stale: bool,
    #[arg(default_value = "")]
    pub prefix: String,
}

/// `concord kv import [options] [DATA]`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Key prefix prepended to every imported key.
    #[arg(long, value_name = "PREFIX", default_value = "")]
    pub prefix: String,
    /// The JSON: literal, `@FILE`, or `-` (stdin, also when omitted).
    #[arg(allow_hyphen_values = true)]
    pub data: Option<String>,
}

/// Renders entries as Consul's export does (tab-indented JSON and a newline).
pub fn render(entries: &[ExportEntry]) -> Result<String, String> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"\t"));
    entries.serialize(&mut ser).map_err(|e| format!("Error exporting KV data: {e}"))?;
    Ok(format!("{}\n", String::from_utf8_lossy(&out)))
}

pub(super) async fn export(a: ExportArgs) -> Outcome {
    let prefix = a.prefix.strip_prefix('/').unwrap_or(&a.prefix).to_string();
    let client = a.http.client()?;
    let mut query = vec!["recurse".to_string()];
    if a.stale {
        query.push("stale".to_string());
    }
    let path = with_query(&format!("/v1/kv/{}", encode_path(&prefix)), &query);
    let resp = client.request(Method::GET, &path, Vec::new()).await.map_err(|e| format!("Error querying Concord agent: {e}"))?;
    let pairs: Vec<KvPair> = match resp.status {
        StatusCode::NOT_FOUND => Vec::new(),
        s if s.is_success() => serde_json::from_slice(&resp.body).map_err(|e| format!("Error querying Concord agent: bad JSON: {e}"))?,
        _ => return Err(format!("Error querying Concord agent: {}", resp.unexpected())),
    };
    let entries: Vec<ExportEntry> = pairs
        .into_iter()
        .map(|p| ExportEntry { key: p.key, flags: p.flags, value: p.value.unwrap_or_default() })
        .collect();
    render(&entries).map(String::into_bytes)
}

fn read_data(data: Option<&str>) -> Result<Vec<u8>, String> {
    use std::io::Read;
    match data {
        None | Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("Error! Failed to read stdin: {e}"))?;
            Ok(buf)
        }
        Some(v) if v.starts_with('@') => std::fs::read(&v[1..]).map_err(|e| format!("Error! Failed to read file: {e}")),
        Some(v) => Ok(v.as_bytes().to_vec()),
    }
}

pub(super) async fn import(a: ImportArgs) -> Outcome {
    let data = read_data(a.data.as_deref())?;
    let entries: Vec<ExportEntry> =
        serde_json::from_slice(&data).map_err(|e| format!("Cannot unmarshal data: {e}"))?;
    let client = a.http.client()?;
    let mut out = Vec::new();
    for entry in entries {
        let value = base64::engine::general_purpose::STANDARD
            .decode(entry.value.as_bytes())
            .map_err(|e| format!("Error base 64 decoding value for key {}: {e}", entry.key))?;
        let key = format!("{}{}", a.prefix, entry.key);
        let path = with_query(&format!("/v1/kv/{}", encode_path(&key)), &[format!("flags={}", entry.flags)]);
        let answer = match client.request(Method::PUT, &path, value).await {
            Ok(resp) => write_answer(&resp),
            Err(e) => Err(e),
        };
        match answer {
            Ok(true) => out.extend(line(format!("Imported: {key}"))),
            Ok(false) => return Err(format!("Error! Failed writing data for key {key}: the agent answered false")),
            Err(e) => return Err(format!("Error! Failed writing data for key {key}: {e}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_renders_like_go_marshal_indent_and_round_trips() {
        let entries = vec![ExportEntry { key: "a/b".into(), flags: 42, value: "YmFy".into() }];
        let text = render(&entries).unwrap();
        assert_eq!(text, "[\n\t{\n\t\t\"key\": \"a/b\",\n\t\t\"flags\": 42,\n\t\t\"value\": \"YmFy\"\n\t}\n]\n");
        let back: Vec<ExportEntry> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, entries);
        assert_eq!(render(&[]).unwrap(), "[]\n");
    }
}
