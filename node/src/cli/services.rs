//! `concord services register|deregister`: Consul's commands for this agent's services, from
//! flags or from service definition files, over `/v1/agent/service/*`.

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Map, Value};

use super::common::{HttpArgs, Outcome};
use super::http_client::encode_path;

/// `concord services <command>`.
#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// Register services with the local agent.
    Register(RegisterArgs),
    /// Deregister services with the local agent.
    Deregister(DeregisterArgs),
}

/// `concord services register [options] [FILE...]`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Name of the service to register (when no file is given).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// ID of the service (default: its name).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Address of the service (default: the node's).
    #[arg(long, value_name = "ADDR")]
    pub address: Option<String>,
    /// Port of the service.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Tag to add to the service (repeatable).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Metadata `key=value` (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Service definition files (JSON: `{"Service": {...}}` or `{"Services": [...]}`).
    pub files: Vec<std::path::PathBuf>,
}

/// `concord services deregister [-id=ID] [FILE...]`.
#[derive(Debug, Args)]
pub struct DeregisterArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// ID of the service to deregister.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Service definition files naming the services to deregister.
    pub files: Vec<std::path::PathBuf>,
}

pub(super) async fn run(cmd: ServicesCommand) -> Outcome {
    match cmd {
        ServicesCommand::Register(a) => register(a).await,
        ServicesCommand::Deregister(a) => deregister(a).await,
    }
}

/// The service definitions in a config file: `service` / `services` (either case), as Consul's
/// config loader accepts them. Errors name the file.
pub fn definitions_in(path: &std::path::Path, text: &str) -> Result<Vec<Value>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("Error reading {}: {e}", path.display()))?;
    let one = doc.get("Service").or_else(|| doc.get("service"));
    let many = doc.get("Services").or_else(|| doc.get("services"));
    match (one, many) {
        (Some(s), None) if s.is_object() => Ok(vec![s.clone()]),
        (None, Some(Value::Array(list))) => Ok(list.clone()),
        _ => Err(format!("Error reading {}: expected a \"service\" object or a \"services\" array", path.display())),
    }
}

fn read_definitions(files: &[std::path::PathBuf]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("Error reading {}: {e}", f.display()))?;
        out.extend(definitions_in(f, &text)?);
    }
    Ok(out)
}

/// A definition from the command line's flags. Errors: no `-name`.
fn from_flags(a: &RegisterArgs) -> Result<Value, String> {
    let name = a.name.clone().ok_or("Service name must be specified with the -name flag")?;
    let mut meta = Map::new();
    for m in &a.meta {
        let (k, v) = m.split_once('=').ok_or_else(|| format!("Error parsing meta {m:?}: want key=value"))?;
        meta.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(json!({
        "Name": name, "ID": a.id.clone().unwrap_or_default(), "Address": a.address.clone().unwrap_or_default(),
        "Port": a.port.unwrap_or(0), "Tags": a.tag, "Meta": meta,
    }))
}

fn name_of(def: &Value) -> String {
    ["Name", "name"].iter().find_map(|k| def.get(*k).and_then(Value::as_str)).unwrap_or_default().to_string()
}

async fn register(a: RegisterArgs) -> Outcome {
    let defs = if a.files.is_empty() { vec![from_flags(&a)?] } else { read_definitions(&a.files)? };
    let client = a.http.client()?;
    let mut out = String::new();
    for def in defs {
        let name = name_of(&def);
        let body = serde_json::to_vec(&def).map_err(|e| e.to_string())?;
        let resp = client
            .request(Method::PUT, "/v1/agent/service/register", body)
            .await
            .map_err(|e| format!("Error registering service {name:?}: {e}"))?;
        if !resp.status.is_success() {
            return Err(format!("Error registering service {name:?}: {}", resp.unexpected()));
        }
        out.push_str(&format!("Registered service: {name}\n"));
    }
    Ok(out.into_bytes())
}

async fn deregister(a: DeregisterArgs) -> Outcome {
    let ids: Vec<String> = match (&a.id, a.files.is_empty()) {
        (Some(id), true) => vec![id.clone()],
        (None, false) => read_definitions(&a.files)?
            .iter()
            .map(|d| ["ID", "id"].iter().find_map(|k| d.get(*k).and_then(Value::as_str)).map(String::from).unwrap_or_else(|| name_of(d)))
            .collect(),
        (Some(_), false) => return Err("Only one of -id or a file may be specified".into()),
        (None, true) => return Err("Either -id or a service definition file must be specified".into()),
    };
    let client = a.http.client()?;
    let mut out = String::new();
    for id in ids {
        let path = format!("/v1/agent/service/deregister/{}", encode_path(&id));
        let resp = client.request(Method::PUT, &path, Vec::new()).await.map_err(|e| format!("Error deregistering service {id:?}: {e}"))?;
        if !resp.status.is_success() {
            return Err(format!("Error deregistering service {id:?}: {}", resp.unexpected()));
        }
        out.push_str(&format!("Deregistered service: {id}\n"));
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_files_take_service_or_services_in_either_case() {
        let p = std::path::Path::new("web.json");
        assert_eq!(definitions_in(p, r#"{"service": {"name": "web"}}"#).expect("one").len(), 1);
        assert_eq!(definitions_in(p, r#"{"Services": [{"Name": "a"}, {"Name": "b"}]}"#).expect("many").len(), 2);
        let err = definitions_in(p, r#"{"check": {}}"#).expect_err("no service");
        assert!(err.contains("web.json"), "{err}");
        assert!(definitions_in(p, "{").expect_err("bad json").contains("web.json"));
    }
}
