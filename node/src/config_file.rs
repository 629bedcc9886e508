//! Consul-style JSON agent config files (`-config-file`, `-config-dir`): parsing and merging.
//!
//! Owns: the keys a config file may hold, their validation (errors name the file and the field),
//! and Consul's merge rule across files — a later file's scalar replaces an earlier one's,
//! objects (`ports`, `dns_config`) merge field by field, and lists (`retry_join`, `recursors`,
//! `service(s)`, `check(s)`) are appended (Consul `agent/config/merge.go`). The command-line
//! flags are applied over the merged result by the CLI ([`crate::cli::agent`]).
//!
//! Pure: file names and contents in, a [`FileConfig`] out. It never reads a file or a directory;
//! the CLI does (`-config-dir` loads `*.json` in lexical order). HCL is not supported: a `.hcl`
//! file is refused with an error that says so. An unknown key is an error, as in Consul.
//!
//! Source: Consul "Agent configuration files" docs (`website/content/docs/agent/config/config-files.mdx`),
//! "Services" and "Checks" definition docs.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::local::definition::{parse_check, parse_service};
use crate::local::ConfigEntries;
use crate::structs::duration::parse_go_duration;

/// Consul's default port for a recursor given without one.
pub const RECURSOR_DEFAULT_PORT: u16 = 53;
/// The only config file format Concord reads.
pub const JSON_EXTENSION: &str = "json";
/// Consul's other format, refused with a clear message.
pub const HCL_EXTENSION: &str = "hcl";

/// One config file: its name (for errors) and its bytes.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Why the config files were refused; names the file (and the field when there is one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigFileError {
    #[error("config file {file}: HCL is not supported by Concord; write the config as JSON (.json)")]
    Hcl { file: String },
    #[error("config file {file}: invalid JSON: {message}")]
    Json { file: String, message: String },
    #[error("config file {file}: unknown or unsupported key {key:?}")]
    UnknownKey { file: String, key: String },
    #[error("config file {file}: field {field:?}: {message}")]
    Field { file: String, field: String, message: String },
}

/// Per-port overrides (`ports {}`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilePorts {
    pub http: Option<u16>,
    pub dns: Option<u16>,
    pub server: Option<u16>,
    pub serf_lan: Option<u16>,
    pub serf_wan: Option<u16>,
}

/// `dns_config {}` overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileDnsConfig {
    pub only_passing: Option<bool>,
    pub enable_truncate: Option<bool>,
    pub node_ttl_ms: Option<u64>,
    pub service_ttl_ms: Option<u64>,
    pub udp_answer_limit: Option<usize>,
}

/// A service or check definition as written, with the file it came from (validated by
/// [`FileConfig::entries`], once `enable_script_checks` is known).
#[derive(Clone, Debug, PartialEq)]
pub struct Definition {
    pub file: String,
    /// `service`, `services[2]`, `check`, `checks[0]`.
    pub field: String,
    pub body: Value,
}

/// The merged content of every config file; `None` means "not set in any file".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileConfig {
    pub node_name: Option<String>,
    pub datacenter: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub server: Option<bool>,
    pub bootstrap: Option<bool>,
    pub bootstrap_expect: Option<usize>,
    pub bind_addr: Option<IpAddr>,
    pub client_addr: Option<IpAddr>,
    pub ports: FilePorts,
    pub retry_join: Vec<String>,
    /// Consul's `retry_join_wan`: WAN gossip addresses (servers only).
    pub retry_join_wan: Vec<String>,
    /// Consul's `start_join_wan`: WAN gossip addresses joined once at start (servers only).
    pub start_join_wan: Vec<String>,
    /// Lowercase with one trailing dot ([`parse_domain`]).
    pub domain: Option<String>,
    pub recursors: Vec<SocketAddr>,
    pub dns_config: FileDnsConfig,
    pub enable_script_checks: Option<bool>,
    /// Consul's `encrypt`: the gossip key, base64 (validated when read).
    pub encrypt: Option<String>,
    pub log_level: Option<String>,
    pub services: Vec<Definition>,
    pub checks: Vec<Definition>,
}

/// Parses and merges `sources` in order (later files win). Errors: the first bad file.
pub fn load(sources: &[Source]) -> Result<FileConfig, ConfigFileError> {
    let mut merged = FileConfig::default();
    for s in sources {
        merge_file(&mut merged, s)?;
    }
    Ok(merged)
}

fn has_extension(name: &str, ext: &str) -> bool {
    std::path::Path::new(name).extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Whether `-config-dir` loads this file name (`*.json`; Consul also reads `*.hcl`, Concord
/// does not, and both ignore everything else).
pub fn loads_from_dir(name: &str) -> bool {
    has_extension(name, JSON_EXTENSION)
}

/// Whether a file name is HCL (skipped in a directory, refused when named explicitly).
pub fn is_hcl(name: &str) -> bool {
    has_extension(name, HCL_EXTENSION)
}

fn merge_file(into: &mut FileConfig, s: &Source) -> Result<(), ConfigFileError> {
    let file = s.name.clone();
    if is_hcl(&file) {
        return Err(ConfigFileError::Hcl { file });
    }
    let root: Value =
        serde_json::from_slice(&s.bytes).map_err(|e| ConfigFileError::Json { file: file.clone(), message: e.to_string() })?;
    let Value::Object(root) = root else {
        return Err(ConfigFileError::Json { file, message: "the top level must be a JSON object".into() });
    };
    let f = FileCtx { file: &file };
    for (key, v) in root {
        match key.as_str() {
            "node_name" => into.node_name = Some(f.non_empty(&key, v)?),
            "datacenter" => into.datacenter = Some(f.non_empty(&key, v)?),
            "data_dir" => into.data_dir = Some(PathBuf::from(f.non_empty(&key, v)?)),
            "server" => into.server = Some(f.typed(&key, v)?),
            "bootstrap" => into.bootstrap = Some(f.typed(&key, v)?),
            "bootstrap_expect" => into.bootstrap_expect = Some(f.typed(&key, v)?),
            "bind_addr" => into.bind_addr = Some(f.typed::<String>(&key, v).and_then(|s| f.ip(&key, &s))?),
            "client_addr" => into.client_addr = Some(f.typed::<String>(&key, v).and_then(|s| f.ip(&key, &s))?),
            "ports" => f.ports(&mut into.ports, v)?,
            "retry_join" => into.retry_join.extend(f.typed::<Vec<String>>(&key, v)?),
            "retry_join_wan" => into.retry_join_wan.extend(f.typed::<Vec<String>>(&key, v)?),
            "start_join_wan" => into.start_join_wan.extend(f.typed::<Vec<String>>(&key, v)?),
            "domain" => {
                let d: String = f.typed(&key, v)?;
                into.domain = Some(parse_domain(&d).map_err(|m| f.field(&key, m))?);
            }
            "recursors" => {
                for r in f.typed::<Vec<String>>(&key, v)? {
                    into.recursors.push(parse_recursor(&r).map_err(|m| f.field(&key, m))?);
                }
            }
            "dns_config" => f.dns_config(&mut into.dns_config, v)?,
            "enable_script_checks" => into.enable_script_checks = Some(f.typed(&key, v)?),
            "encrypt" => {
                let k: String = f.typed(&key, v)?;
                crate::gossip::keyring::GossipKey::parse(&k).map_err(|e| f.field(&key, e.to_string()))?;
                into.encrypt = Some(k);
            }
            "log_level" => {
                let level: String = f.typed(&key, v)?;
                crate::telemetry::logs::LogLevel::parse(&level).map_err(|m| f.field(&key, m))?;
                into.log_level = Some(level);
            }
            "service" | "services" => f.definitions(&mut into.services, &key, v)?,
            "check" | "checks" => f.definitions(&mut into.checks, &key, v)?,
            _ => return Err(ConfigFileError::UnknownKey { file, key }),
        }
    }
    Ok(())
}

/// One file being decoded: builds errors that name it.
struct FileCtx<'a> {
    file: &'a str,
}

impl FileCtx<'_> {
    fn field(&self, field: &str, message: impl Into<String>) -> ConfigFileError {
        ConfigFileError::Field { file: self.file.to_string(), field: field.to_string(), message: message.into() }
    }

    fn typed<T: DeserializeOwned>(&self, field: &str, v: Value) -> Result<T, ConfigFileError> {
        serde_json::from_value(v).map_err(|e| self.field(field, e.to_string()))
    }

    fn non_empty(&self, field: &str, v: Value) -> Result<String, ConfigFileError> {
        let s: String = self.typed(field, v)?;
        if s.trim().is_empty() {
            return Err(self.field(field, "must not be empty"));
        }
        Ok(s)
    }

    fn ip(&self, field: &str, s: &str) -> Result<IpAddr, ConfigFileError> {
        s.parse().map_err(|_| self.field(field, format!("{s:?} is not an IP address")))
    }

    fn object(&self, field: &str, v: Value) -> Result<Map<String, Value>, ConfigFileError> {
        match v {
            Value::Object(m) => Ok(m),
            other => Err(self.field(field, format!("expected an object, got {other}"))),
        }
    }

    fn ports(&self, into: &mut FilePorts, v: Value) -> Result<(), ConfigFileError> {
        for (key, v) in self.object("ports", v)? {
            let path = format!("ports.{key}");
            let slot = match key.as_str() {
                "http" => &mut into.http,
                "dns" => &mut into.dns,
                "server" => &mut into.server,
                "serf_lan" => &mut into.serf_lan,
                "serf_wan" => &mut into.serf_wan,
                _ => return Err(ConfigFileError::UnknownKey { file: self.file.to_string(), key: path }),
            };
            *slot = Some(self.typed(&path, v)?);
        }
        Ok(())
    }

    fn dns_config(&self, into: &mut FileDnsConfig, v: Value) -> Result<(), ConfigFileError> {
        for (key, v) in self.object("dns_config", v)? {
            let path = format!("dns_config.{key}");
            match key.as_str() {
                "only_passing" => into.only_passing = Some(self.typed(&path, v)?),
                "enable_truncate" => into.enable_truncate = Some(self.typed(&path, v)?),
                "node_ttl" => into.node_ttl_ms = Some(self.duration_ms(&path, v)?),
                "service_ttl" => into.service_ttl_ms = Some(self.duration_ms(&path, v)?),
                "udp_answer_limit" => into.udp_answer_limit = Some(self.typed(&path, v)?),
                _ => return Err(ConfigFileError::UnknownKey { file: self.file.to_string(), key: path }),
            }
        }
        Ok(())
    }

    /// A Go duration string (`"10s"`), as Consul's config takes.
    fn duration_ms(&self, field: &str, v: Value) -> Result<u64, ConfigFileError> {
        let s: String = self.typed(field, v)?;
        parse_go_duration(&s).map(|d| d.as_millis() as u64).ok_or_else(|| self.field(field, format!("{s:?} is not a duration")))
    }

    /// `service`/`services`/`check`/`checks`: one object or a list of them (Consul accepts both).
    fn definitions(&self, into: &mut Vec<Definition>, key: &str, v: Value) -> Result<(), ConfigFileError> {
        let items = match v {
            Value::Array(items) => items.into_iter().enumerate().map(|(i, v)| (format!("{key}[{i}]"), v)).collect(),
            one => vec![(key.to_string(), one)],
        };
        for (field, body) in items {
            if !body.is_object() {
                return Err(self.field(&field, format!("expected an object, got {body}")));
            }
            into.push(Definition { file: self.file.to_string(), field, body });
        }
        Ok(())
    }
}

impl FileConfig {
    /// The service and check definitions, validated as `PUT /v1/agent/service/register` and
    /// `/v1/agent/check/register` validate them, in file order. Errors name the file and field.
    pub fn entries(&self, enable_script_checks: bool) -> Result<ConfigEntries, ConfigFileError> {
        let err = |d: &Definition, message: String| ConfigFileError::Field { file: d.file.clone(), field: d.field.clone(), message };
        let bytes = |d: &Definition| serde_json::to_vec(&d.body).expect("a JSON value serialises");
        let mut out = ConfigEntries::default();
        for d in &self.services {
            out.services.push(parse_service(&bytes(d), enable_script_checks).map_err(|m| err(d, m))?);
        }
        for d in &self.checks {
            out.checks.push(parse_check(&bytes(d), enable_script_checks).map_err(|m| err(d, m))?);
        }
        Ok(out)
    }
}

/// `domain` / `-domain`: lowercase, one trailing dot, labels of 1–63 characters.
pub fn parse_domain(s: &str) -> Result<String, String> {
    let trimmed = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !trimmed.is_empty()
        && trimmed.split('.').all(|l| !l.is_empty() && l.len() <= 63 && !l.contains(char::is_whitespace));
    if !ok {
        return Err(format!("{s:?} is not a DNS domain (e.g. consul)"));
    }
    Ok(format!("{trimmed}."))
}

/// A recursor: `ip` or `ip:port` (port 53 by default).
pub fn parse_recursor(s: &str) -> Result<SocketAddr, String> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, RECURSOR_DEFAULT_PORT))
        .map_err(|_| format!("{s:?} is not ip or ip:port"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::definition::CheckKind;

    fn src(name: &str, json: &str) -> Source {
        Source { name: name.into(), bytes: json.as_bytes().to_vec() }
    }

    #[test]
    fn later_files_override_scalars_merge_objects_and_append_lists() {
        let c = load(&[
            src("a.json", r#"{"datacenter":"east","node_name":"n1","ports":{"http":1,"dns":2},"retry_join":["10.0.0.1"],
                "dns_config":{"only_passing":true,"node_ttl":"10s"}}"#),
            src("b.json", r#"{"datacenter":"west","ports":{"http":3},"retry_join":["10.0.0.2"],"recursors":["1.1.1.1"],
                "dns_config":{"service_ttl":"1m","udp_answer_limit":5},"domain":"Example."}"#),
        ])
        .unwrap();
        assert_eq!((c.datacenter.as_deref(), c.node_name.as_deref()), (Some("west"), Some("n1")));
        assert_eq!((c.ports.http, c.ports.dns), (Some(3), Some(2)), "ports merge field by field");
        assert_eq!(c.retry_join, ["10.0.0.1", "10.0.0.2"], "lists append, as Consul merges them");
        assert_eq!(c.recursors, ["1.1.1.1:53".parse::<SocketAddr>().unwrap()]);
        assert_eq!(c.dns_config, FileDnsConfig {
            only_passing: Some(true),
            enable_truncate: None,
            node_ttl_ms: Some(10_000),
            service_ttl_ms: Some(60_000),
            udp_answer_limit: Some(5),
        });
        assert_eq!(c.domain.as_deref(), Some("example."));
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_file_and_the_key() {
        let e = load(&[src("ok.json", "{}"), src("/etc/concord/x.json", r#"{"ui":true}"#)]).unwrap_err();
        assert_eq!(e, ConfigFileError::UnknownKey { file: "/etc/concord/x.json".into(), key: "ui".into() });
        assert!(e.to_string().contains("/etc/concord/x.json") && e.to_string().contains("\"ui\""), "{e}");
        let e = load(&[src("p.json", r#"{"ports":{"grpc":8502}}"#)]).unwrap_err();
        assert_eq!(e, ConfigFileError::UnknownKey { file: "p.json".into(), key: "ports.grpc".into() });
    }

    #[test]
    fn bad_json_and_bad_fields_name_the_file_and_field() {
        let e = load(&[src("broken.json", r#"{"datacenter": "#)]).unwrap_err();
        assert!(matches!(&e, ConfigFileError::Json { file, .. } if file == "broken.json"), "{e:?}");
        assert!(e.to_string().starts_with("config file broken.json: invalid JSON"), "{e}");
        let e = load(&[src("t.json", r#"{"ports":{"http":"eighty"}}"#)]).unwrap_err();
        assert!(matches!(&e, ConfigFileError::Field { file, field, .. } if file == "t.json" && field == "ports.http"), "{e:?}");
        let e = load(&[src("d.json", r#"{"dns_config":{"node_ttl":"soon"}}"#)]).unwrap_err();
        assert!(e.to_string().contains("dns_config.node_ttl"), "{e}");
        let e = load(&[src("b.json", r#"{"bind_addr":"not-an-ip"}"#)]).unwrap_err();
        assert!(e.to_string().contains("\"bind_addr\""), "{e}");
        assert!(matches!(load(&[src("a.json", "[1]")]).unwrap_err(), ConfigFileError::Json { .. }));
        assert!(matches!(load(&[src("c.hcl", "{}")]).unwrap_err(), ConfigFileError::Hcl { .. }));
        assert!(load(&[src("c.hcl", "{}")]).unwrap_err().to_string().contains("HCL is not supported"));
    }

    #[test]
    fn service_services_check_and_checks_are_collected_in_order_and_validated() {
        let c = load(&[
            src("a.json", r#"{"service":{"name":"web","port":80,"check":{"ttl":"30s"}},
                "services":[{"name":"db","checks":[{"tcp":"127.0.0.1:5432","interval":"10s"}]},{"Name":"cache"}]}"#),
            src("b.json", r#"{"check":{"name":"mem","ttl":"15s"},"checks":[{"id":"disk","name":"disk","ttl":"1m","service_id":"web"}]}"#),
        ])
        .unwrap();
        let fields: Vec<_> = c.services.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["service", "services[0]", "services[1]"]);
        let e = c.entries(false).unwrap();
        let names: Vec<_> = e.services.iter().map(|s| s.service.service.as_str()).collect();
        assert_eq!(names, ["web", "db", "cache"]);
        assert_eq!(e.services[0].checks[0].spec.kind, CheckKind::Ttl { ttl: std::time::Duration::from_secs(30) });
        assert_eq!(e.services[1].checks[0].spec.kind, CheckKind::Tcp { addr: "127.0.0.1:5432".into() });
        let checks: Vec<_> = e.checks.iter().map(|c| (c.check.check_id.as_str(), c.check.service_id.as_str())).collect();
        assert_eq!(checks, [("mem", ""), ("disk", "web")]);
    }

    #[test]
    fn an_invalid_definition_names_the_file_and_field() {
        let c = load(&[src("svc.json", r#"{"services":[{"name":"ok"},{"name":"bad","check":{"http":"http://x/"}}]}"#)]).unwrap();
        let e = c.entries(false).unwrap_err();
        assert_eq!(e, ConfigFileError::Field {
            file: "svc.json".into(),
            field: "services[1]".into(),
            message: "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks".into(),
        });
        let scripts = load(&[src("s.json", r#"{"check":{"name":"s","args":["true"],"interval":"5s"}}"#)]).unwrap();
        assert!(scripts.entries(false).unwrap_err().to_string().contains("Scripts are disabled"));
        assert!(scripts.entries(true).is_ok());
        assert!(load(&[src("n.json", r#"{"service":"web"}"#)]).unwrap_err().to_string().contains("\"service\""));
    }

    #[test]
    fn only_json_files_load_from_a_directory() {
        assert!(loads_from_dir("a.json") && loads_from_dir("B.JSON"));
        assert!(!loads_from_dir("a.hcl") && !loads_from_dir("a.json.bak") && !loads_from_dir("README"));
    }
}
