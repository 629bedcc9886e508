//! `concord keyring -list | -install=KEY | -use=KEY | -remove=KEY`: manages the gossip
//! encryption keys of the datacenter's LAN pool through the agent (`/v1/operator/keyring`), as
//! `consul keyring` does. Exactly one action per call. Changes reach every member by gossip
//! ([`crate::gossip::keyring_sync`]); `-list` shows how many members hold each key, so rotate
//! with install, wait until `-list` shows the new key on every node, use, wait again, remove.

use clap::Args;
use hyper::Method;

use super::common::{HttpArgs, Outcome};

/// `concord keyring` options.
#[derive(Debug, Args)]
pub struct KeyringArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// List the installed keys and how many members hold each.
    #[arg(long)]
    pub list: bool,
    /// Install a new key (base64) on every member.
    #[arg(long, value_name = "KEY")]
    pub install: Option<String>,
    /// Make an installed key the primary (the one that encrypts) on every member.
    #[arg(long = "use", value_name = "KEY")]
    pub use_key: Option<String>,
    /// Remove a key that is not the primary from every member.
    #[arg(long, value_name = "KEY")]
    pub remove: Option<String>,
}

/// Runs the one action given. Errors: none or several actions (Consul's texts), the agent's.
pub(super) async fn keyring(a: KeyringArgs) -> Outcome {
    let actions = [a.list, a.install.is_some(), a.use_key.is_some(), a.remove.is_some()].iter().filter(|x| **x).count();
    if actions > 1 {
        return Err("Only a single action is allowed".into());
    }
    if actions == 0 {
        return Err("Must provide a valid action".into());
    }
    let client = a.http.client()?;
    if a.list {
        let r = client.request(Method::GET, "/v1/operator/keyring", Vec::new()).await.map_err(|e| format!("error: {e}"))?;
        if !r.status.is_success() {
            return Err(format!("error: {}", r.unexpected()));
        }
        let pools: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| format!("error: bad answer: {e}"))?;
        return Ok(format_list(&pools).into_bytes());
    }
    let (method, key, banner) = match (&a.install, &a.use_key, &a.remove) {
        (Some(k), _, _) => (Method::POST, k, "==> Installing new gossip encryption key..."),
        (_, Some(k), _) => (Method::PUT, k, "==> Changing primary gossip encryption key..."),
        (_, _, Some(k)) => (Method::DELETE, k, "==> Removing gossip encryption key..."),
        _ => return Err("Must provide a valid action".into()),
    };
    let body = serde_json::json!({ "Key": key }).to_string().into_bytes();
    let r = client.request(method, "/v1/operator/keyring", body).await.map_err(|e| format!("error: {e}"))?;
    if !r.status.is_success() {
        return Err(format!("{banner}\nerror: {}", r.unexpected()));
    }
    Ok(format!("{banner}\n").into_bytes())
}

/// Consul's `-list` text: per pool `<dc> (LAN):` then `  <key> [<holders>/<nodes>]`.
fn format_list(pools: &serde_json::Value) -> String {
    let mut out = String::from("==> Gathering installed encryption keys...\n");
    for pool in pools.as_array().into_iter().flatten() {
        let dc = pool["Datacenter"].as_str().unwrap_or_default();
        let kind = if pool["WAN"].as_bool().unwrap_or(false) { "WAN" } else { "LAN" };
        let nodes = pool["NumNodes"].as_u64().unwrap_or(0);
        out.push_str(&format!("\n{dc} ({kind}):\n"));
        for (key, count) in pool["Keys"].as_object().into_iter().flatten() {
            out.push_str(&format!("  {key} [{}/{nodes}]\n", count.as_u64().unwrap_or(0)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{parse_from, Command};

    fn agent_config(args: &[&str]) -> Result<crate::config::AgentConfig, String> {
        let argv = ["concord", "agent", "-dev"].iter().chain(args).map(|s| std::ffi::OsString::from(*s)).collect();
        let Command::Agent(a) = parse_from(argv).unwrap().command else { panic!("not agent") };
        super::super::agent::config_from_args(&a, &Default::default())
    }

    #[test]
    fn the_encrypt_flag_takes_a_base64_aes_key() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let c = agent_config(&[&format!("-encrypt={key}")]).unwrap();
        assert_eq!(c.gossip.encrypt.map(|k| k.to_base64()).as_deref(), Some(key));
        assert_eq!(agent_config(&["-encrypt=AAAA"]).unwrap_err(), "-encrypt: key size must be 16, 24 or 32 bytes");
        assert!(agent_config(&["-encrypt=not base64!"]).unwrap_err().starts_with("-encrypt: Error decoding key"));
        assert!(agent_config(&[]).unwrap().gossip.encrypt.is_none(), "off by default");
    }

    #[test]
    fn a_config_file_may_carry_the_key_and_the_flag_wins() {
        let (file_key, flag_key) = ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "ERERERERERERERERERERESIiIiIiIiIiIiIiIiIiIiI=");
        let load = |json: &str| crate::config_file::load(&[crate::config_file::Source { name: "a.json".into(), bytes: json.as_bytes().to_vec() }]);
        let file = load(&format!(r#"{{"encrypt":"{file_key}"}}"#)).unwrap();
        let argv = ["concord", "agent", "-dev"].iter().map(|s| std::ffi::OsString::from(*s)).collect();
        let Command::Agent(a) = parse_from(argv).unwrap().command else { panic!("not agent") };
        let c = super::super::agent::config_from_args(&a, &file).unwrap();
        assert_eq!(c.gossip.encrypt.map(|k| k.to_base64()).as_deref(), Some(file_key));
        let flag = format!("-encrypt={flag_key}");
        let argv = ["concord", "agent", "-dev", flag.as_str()].iter().map(|s| std::ffi::OsString::from(*s)).collect();
        let Command::Agent(a) = parse_from(argv).unwrap().command else { panic!("not agent") };
        let c = super::super::agent::config_from_args(&a, &file).unwrap();
        assert_eq!(c.gossip.encrypt.map(|k| k.to_base64()).as_deref(), Some(flag_key));
        assert!(load(r#"{"encrypt":"AAAA"}"#).unwrap_err().to_string().contains("key size must be 16, 24 or 32 bytes"));
    }
    #[test]
    fn the_list_prints_holders_over_nodes() {
        let pools = serde_json::json!([{"WAN":false,"Datacenter":"dc1","Segment":"","Keys":{"a=":3,"b=":1},"PrimaryKeys":{"a=":3},"NumNodes":3}]);
        assert_eq!(super::format_list(&pools), "==> Gathering installed encryption keys...\n\ndc1 (LAN):\n  a= [3/3]\n  b= [1/3]\n");
    }
}
