//! `concord kv put|get|delete`: Consul's KV commands, with Consul's flags, messages and exit codes,
//! driven over a running agent's HTTP API ([`super::http_client`]).
//!
//! Owns: turning flags into `/v1/kv` requests and rendering the answers (raw value, `key:value`
//! lines, or the `-detailed` table). Never talks to Raft or the state store directly.

use std::io::{Read, Write};

use base64::Engine;
use clap::{Args, Subcommand};
use hyper::{Method, StatusCode};

use super::http_client::{encode_path, encode_query_value, HttpClient};
use super::kv_format::{detailed, render_value, KvPair};
use super::EXIT_FAILURE;

/// Options shared by every command that talks to an agent.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Agent HTTP address, `host:port` or `http://host:port` [env: CONSUL_HTTP_ADDR; default: 127.0.0.1:8500].
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,
}

/// `concord kv <command>`.
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Sets or updates data in the KV store.
    Put(PutArgs),
    /// Retrieves or lists data from the KV store.
    Get(GetArgs),
    /// Removes data from the KV store.
    Delete(DeleteArgs),
}

/// `concord kv put [options] KEY [DATA]`.
#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Check-And-Set: write only if the key's ModifyIndex equals -modify-index.
    #[arg(long)]
    pub cas: bool,
    /// The ModifyIndex the key must have, with -cas (0: only if the key does not exist).
    #[arg(long, value_name = "N")]
    pub modify_index: Option<u64>,
    /// Unsigned integer stored with the key, opaque to Concord.
    #[arg(long, value_name = "N")]
    pub flags: Option<u64>,
    /// DATA is base64-encoded.
    #[arg(long)]
    pub base64: bool,
    pub key: String,
    /// The value; `@FILE` reads a file, `-` reads stdin; omitted means empty.
    #[arg(allow_hyphen_values = true)]
    pub value: Option<String>,
}

/// `concord kv get [options] [KEY_OR_PREFIX]`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Print every key under the prefix as `key:value`.
    #[arg(long)]
    pub recurse: bool,
    /// Print all metadata (CreateIndex, Flags, ...) as well as the value.
    #[arg(long)]
    pub detailed: bool,
    /// List key names under the prefix, not their values.
    #[arg(long)]
    pub keys: bool,
    /// With -keys, group keys up to the next occurrence of this string.
    #[arg(long, value_name = "SEP", default_value = "/")]
    pub separator: String,
    /// Base64-encode printed values.
    #[arg(long)]
    pub base64: bool,
    /// Let any server answer, even without a leader (may be stale).
    #[arg(long)]
    pub stale: bool,
    #[arg(default_value = "")]
    pub key: String,
}

/// `concord kv delete [options] KEY_OR_PREFIX`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Delete every key under the prefix.
    #[arg(long)]
    pub recurse: bool,
    /// Check-And-Set: delete only if the key's ModifyIndex equals -modify-index.
    #[arg(long)]
    pub cas: bool,
    /// The ModifyIndex the key must have, with -cas.
    #[arg(long, value_name = "N")]
    pub modify_index: Option<u64>,
    #[arg(default_value = "")]
    pub key: String,
}

/// What a command produced: text for stdout, or an error for stderr (exit 1).
type Outcome = Result<Vec<u8>, String>;

/// Runs a `concord kv` command; returns the exit code.
pub fn run(cmd: KvCommand) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error! cannot build the tokio runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cmd {
            KvCommand::Put(a) => put(a).await,
            KvCommand::Get(a) => get(a).await,
            KvCommand::Delete(a) => delete(a).await,
        }
    });
    match outcome {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(&out).and_then(|_| stdout.flush()).is_err() {
                return EXIT_FAILURE;
            }
            0
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_FAILURE
        }
    }
}

/// The agent client for `-http-addr` / `CONSUL_HTTP_ADDR`.
fn client(http: &HttpArgs) -> Result<HttpClient, String> {
    HttpClient::from_flag_or_env(http.http_addr.as_deref()).map_err(|e| format!("Error connecting to Concord agent: {e}"))
}

/// Consul strips one leading `/` from keys "to be nice".
fn strip_leading_slash(key: &str) -> &str {
    key.strip_prefix('/').unwrap_or(key)
}

fn line(s: impl AsRef<str>) -> Vec<u8> {
    format!("{}\n", s.as_ref()).into_bytes()
}

/// Reads the value as Consul does: `@file`, `-` (stdin), or the literal.
fn value_bytes(a: &PutArgs) -> Result<Vec<u8>, String> {
    let data = match a.value.as_deref() {
        None | Some("") => Vec::new(),
        Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("Error! Failed to read stdin: {e}"))?;
            buf
        }
        Some(v) if v.starts_with('@') => {
            std::fs::read(&v[1..]).map_err(|e| format!("Error! Failed to read file: {e}"))?
        }
        Some(v) => v.as_bytes().to_vec(),
    };
    if !a.base64 {
        return Ok(data);
    }
    let text = String::from_utf8_lossy(&data);
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("Error! Cannot base 64 decode data: {e}"))
}

/// Parses a `true`/`false` write answer.
fn write_answer(resp: &super::http_client::Response) -> Result<bool, String> {
    if !resp.status.is_success() {
        return Err(resp.unexpected());
    }
    match resp.text().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

async fn put(a: PutArgs) -> Outcome {
    let key = a.key.clone();
    if key.is_empty() {
        return Err("Error! Missing KEY argument".into());
    }
    if a.cas && a.modify_index.is_none() {
        return Err("Must specify -modify-index with -cas!".into());
    }
    if a.modify_index.is_some() && !a.cas {
        return Err("Cannot specify -modify-index without -cas!".into());
    }
    let value = value_bytes(&a)?;
    let client = client(&a.http)?;
    let mut query = Vec::new();
    if let Some(flags) = a.flags {
        query.push(format!("flags={flags}"));
    }
    if let (true, Some(idx)) = (a.cas, a.modify_index) {
        query.push(format!("cas={idx}"));
    }
    let path = with_query(&format!("/v1/kv/{}", encode_path(&key)), &query);
    let answer = match client.request(Method::PUT, &path, value).await {
        Ok(resp) => write_answer(&resp),
        Err(e) => Err(e),
    };
    match answer {
        Ok(true) => Ok(line(format!("Success! Data written to: {key}"))),
        Ok(false) if a.cas => Err(format!("Error! Did not write to {key}: CAS failed")),
        Ok(false) => Err(format!("Error! Failed writing data to {key}: the agent answered false")),
        // The agent could not tell whether the write committed (or never answered): saying
        // "failed" would be a lie if it is applied later.
        Err(e) if outcome_unknown(&e) => Err(format!("Error! The write to {key} may have been applied; its outcome is unknown: {e}")),
        Err(e) if a.cas => Err(format!("Error! Did not write to {key}: {e}")),
        Err(e) => Err(format!("Error! Failed writing data: {e}")),
    }
}

/// Whether a write error leaves the outcome unknown: the agent said so, or never answered.
fn outcome_unknown(err: &str) -> bool {
    err.contains("may have been applied") || err.contains("no answer within")
}

fn with_query(path: &str, query: &[String]) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

async fn get(a: GetArgs) -> Outcome {
    let key = strip_leading_slash(&a.key).to_string();
    if key.is_empty() && !(a.recurse || a.keys) {
        return Err("Error! Missing KEY argument".into());
    }
    let client = client(&a.http)?;
    let mut query = Vec::new();
    if a.keys {
        query.push("keys".to_string());
        query.push(format!("separator={}", encode_query_value(&a.separator)));
    } else if a.recurse {
        query.push("recurse".to_string());
    }
    if a.stale {
        query.push("stale".to_string());
    }
    let path = with_query(&format!("/v1/kv/{}", encode_path(&key)), &query);
    let resp = client.request(Method::GET, &path, Vec::new()).await.map_err(|e| format!("Error querying Concord agent: {e}"))?;
    let list_mode = a.keys || a.recurse;
    if resp.status == StatusCode::NOT_FOUND {
        // Consul: an empty prefix lists nothing and succeeds; a missing single key is an error.
        return if list_mode { Ok(Vec::new()) } else { Err(format!("Error! No key exists at: {key}")) };
    }
    if !resp.status.is_success() {
        return Err(format!("Error querying Concord agent: {}", resp.unexpected()));
    }
    if a.keys {
        let keys: Vec<String> =
            serde_json::from_slice(&resp.body).map_err(|e| format!("Error querying Concord agent: bad JSON: {e}"))?;
        return Ok(keys.iter().flat_map(line).collect());
    }
    let pairs: Vec<KvPair> =
        serde_json::from_slice(&resp.body).map_err(|e| format!("Error querying Concord agent: bad JSON: {e}"))?;
    if !a.recurse {
        let Some(pair) = pairs.first() else { return Err(format!("Error! No key exists at: {key}")) };
        if a.detailed {
            return detailed(pair, a.base64).map(String::into_bytes);
        }
        let mut out = if a.base64 { render_value(pair, true)?.into_bytes() } else { pair.bytes()? };
        out.push(b'\n');
        return Ok(out);
    }
    let mut out = String::new();
    for (i, pair) in pairs.iter().enumerate() {
        if a.detailed {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&detailed(pair, a.base64)?);
        } else {
            out.push_str(&format!("{}:{}\n", pair.key, render_value(pair, a.base64)?));
        }
    }
    Ok(out.into_bytes())
}

async fn delete(a: DeleteArgs) -> Outcome {
    let key = strip_leading_slash(&a.key).to_string();
    if key.is_empty() && !a.recurse {
        return Err("Error! Missing KEY argument".into());
    }
    if a.cas && a.modify_index.unwrap_or(0) == 0 {
        return Err("Cannot delete a key that does not exist. Provide a -modify-index greater than 0.".into());
    }
    if a.modify_index.is_some() && !a.cas {
        return Err("Cannot specify -modify-index without -cas!".into());
    }
    if a.recurse && a.cas {
        return Err("Cannot specify both -cas and -recurse!".into());
    }
    let client = client(&a.http)?;
    let mut query = Vec::new();
    if a.recurse {
        query.push("recurse".to_string());
    }
    if let (true, Some(idx)) = (a.cas, a.modify_index) {
        query.push(format!("cas={idx}"));
    }
    let path = with_query(&format!("/v1/kv/{}", encode_path(&key)), &query);
    let answer = match client.request(Method::DELETE, &path, Vec::new()).await {
        Ok(resp) => write_answer(&resp),
        Err(e) => Err(e),
    };
    match (answer, a.recurse) {
        (Ok(_), true) => Ok(line(format!("Success! Deleted keys with prefix: {key}"))),
        (Err(e), true) => Err(format!("Error! Did not delete prefix {key}: {e}")),
        (Ok(true), false) => Ok(line(format!("Success! Deleted key: {key}"))),
        (Ok(false), false) if a.cas => Err(format!("Error! Did not delete key {key}: CAS failed")),
        (Ok(_), false) => Ok(line(format!("Success! Deleted key: {key}"))),
        (Err(e), false) if a.cas => Err(format!("Error! Did not delete key {key}: {e}")),
        (Err(e), false) => Err(format!("Error deleting key {key}: {e}")),
    }
}
