//! The WAN pool: the servers of every datacenter, gossiping on `serf_wan` (8302).
//!
//! Source: Consul `agent/consul/server_serf.go` (`setupSerf` with `wan=true`: member name
//! `<node>.<dc>`, the same tags as the LAN pool, memberlist's `DefaultWANConfig`) and
//! `agent/router/router.go` (the WAN pool is how a server finds the servers of another
//! datacenter, and `GET /v1/catalog/datacenters` lists the datacenters it knows).
//!
//! Owns: the WAN identity ([`wan_identity`]), the WAN pool's settings ([`WanSettings`]), and
//! what the WAN view answers ([`datacenters`], [`servers_of`]). The pool itself is a second
//! [`Pool`] run by the same [`super::driver`] with [`GossipConfig::wan`] set. Never does: run on
//! a client agent (Consul clients have no WAN pool), or carry user events (they are LAN-only).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use super::{GossipConfig, GossipId, Member, Pool};

/// Consul's default WAN gossip port, for a WAN join address given without one.
pub const DEFAULT_SERF_WAN_PORT: u16 = 8302;

/// Salt of the WAN driver's seed (ASCII "wan"), so its random stream is apart from the LAN one's.
pub const WAN_SEED_SALT: u64 = 0x77_616e;

/// The WAN pool's settings (servers only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WanSettings {
    /// Run the WAN pool. The `concord` binary turns it on for every server (as Consul does); the
    /// simulator only for the scenario that judges it, so other scenarios' traces stay the same.
    pub enabled: bool,
    /// `-retry-join-wan` / `retry_join_wan`: WAN gossip addresses (`ip` or `ip:port`, port 8302)
    /// announced to whenever this server sees no other live WAN member.
    pub retry_join: Vec<String>,
    /// `-join-wan` / `start_join_wan`: WAN gossip addresses announced to once at start.
    pub start_join: Vec<String>,
}

impl WanSettings {
    /// Parses `entries` as WAN gossip addresses (a bare IP gets `default_port`). Errors name the entry.
    pub fn parse(entries: &[String], default_port: u16) -> Result<Vec<SocketAddr>, String> {
        entries
            .iter()
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, default_port)))
                    .map_err(|_| format!("WAN join address {s:?} is not ip or ip:port"))
            })
            .collect()
    }
}

/// This server's WAN name, `<node>.<dc>` (Consul `server_serf.go`: `NodeName + "." + Datacenter`).
pub fn wan_name(node: &str, datacenter: &str) -> String {
    format!("{node}.{datacenter}")
}

/// This server's WAN identity: its LAN identity renamed `<node>.<dc>`, at the `serf_wan` address.
pub fn wan_identity(lan: &GossipId, config: &crate::config::AgentConfig) -> GossipId {
    GossipId { name: wan_name(&config.node_name, &config.datacenter), addr: SocketAddr::new(config.bind_addr, config.ports.serf_wan), ..lan.clone() }
}

/// The WAN pool for `me`: its keyring from `remote.keyring` in the data dir when there is one,
/// else `-encrypt` (Consul's `serf/remote.keyring`; keyring operations on a server act on both
/// pools, see [`crate::http::keyring`]). Deliberate bug `wan-keyring-not-persisted`: the file is
/// neither read nor written, so a restarted server gossips on the WAN with its `-encrypt` key
/// whatever rotations happened since. Errors: an unreadable or bad keyring file.
pub async fn open_pool(
    me: &GossipId,
    config: &crate::config::AgentConfig,
    disk: std::sync::Arc<dyn crate::io::Disk>,
    decrypt_failures: prometheus_client::metrics::counter::Counter,
) -> Result<Pool, String> {
    let encrypt = config.gossip.encrypt.clone();
    if config.bugs.wan_keyring_not_persisted {
        let mut pool = Pool::new(me);
        let ring = encrypt.map(super::keyring::Keyring::new);
        pool.keyring = std::sync::Arc::new(super::keyring_sync::KeyringState::new(&me.name, me.generation, ring, decrypt_failures, false));
        return Ok(pool);
    }
    Pool::open(me, encrypt, super::keyring_sync::WAN_KEYRING_FILE, disk, decrypt_failures).await
}

/// The WAN pool's timing: the LAN settings with the WAN profile, and the bug `wan-no-reconnect`.
pub fn gossip_config(config: &crate::config::AgentConfig) -> GossipConfig {
    GossipConfig { wan: true, no_reconnect: config.bugs.wan_no_reconnect, hasty_failure: false, ..config.gossip.clone() }
}

/// The datacenters a WAN view knows: `own` always, and the `dc` tag of every server member that is
/// not failed or left, own first then by name (Consul sorts by estimated round-trip time; WAN
/// coordinates of other members are not kept yet, so this order stands in for it).
pub fn datacenters(members: &[Member], own: &str) -> Vec<String> {
    let others: BTreeSet<&str> = members
        .iter()
        .filter(|m| m.status.is_live() && m.tags.get("role").map(String::as_str) == Some("consul"))
        .filter_map(|m| m.tags.get("dc").map(String::as_str))
        .filter(|dc| *dc != own)
        .collect();
    std::iter::once(own.to_string()).chain(others.into_iter().map(str::to_string)).collect()
}

/// The RPC addresses of the live servers of datacenter `dc` in a WAN view, by member name.
pub fn servers_of(members: &[Member], dc: &str) -> Vec<SocketAddr> {
    members.iter().filter_map(|m| crate::server::router::server_rpc_addr(m, dc)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::MemberStatus;

    fn member(name: &str, dc: &str, status: MemberStatus) -> Member {
        let tags = [("role", "consul"), ("dc", dc), ("port", "8300")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Member { name: format!("{name}.{dc}"), addr: "10.0.0.1:8302".parse().unwrap(), tags, status, generation: 1 }
    }

    #[test]
    fn wan_names_are_node_dot_datacenter() {
        assert_eq!(wan_name("s1", "dc2"), "s1.dc2");
    }

    #[test]
    fn datacenters_list_own_first_then_live_ones_by_name() {
        let view = [
            member("s3", "west", MemberStatus::Alive),
            member("s2", "east", MemberStatus::Suspect),
            member("s4", "gone", MemberStatus::Failed),
            member("s1", "dc1", MemberStatus::Alive),
        ];
        assert_eq!(datacenters(&view, "dc1"), ["dc1", "east", "west"]);
        assert_eq!(datacenters(&[], "dc9"), ["dc9"], "the own datacenter is always listed");
    }

    #[test]
    fn only_live_servers_of_the_datacenter_are_forwarding_targets() {
        let view = [member("s1", "dc2", MemberStatus::Alive), member("s2", "dc2", MemberStatus::Failed), member("s3", "dc1", MemberStatus::Alive)];
        assert_eq!(servers_of(&view, "dc2"), vec!["10.0.0.1:8300".parse::<SocketAddr>().unwrap()]);
        assert!(servers_of(&view, "dc3").is_empty());
    }

    #[test]
    fn wan_join_addresses_default_to_the_wan_port() {
        let got = WanSettings::parse(&["10.0.0.7".into(), "10.0.0.8:9302".into()], DEFAULT_SERF_WAN_PORT).unwrap();
        assert_eq!(got, vec!["10.0.0.7:8302".parse().unwrap(), "10.0.0.8:9302".parse::<SocketAddr>().unwrap()]);
        assert!(WanSettings::parse(&["nowhere".into()], 8302).unwrap_err().contains("nowhere"));
    }
}
