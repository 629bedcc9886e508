//! The WAN pool: the servers of every datacenter, gossiping on `serf_wan` (8302).
//!
//! Source: Consul `agent/consul/server_serf.go` (`setupSerf` with `wan=true`: member name
//! `<node>.<dc>`, the same tags as the LAN pool, memberlist's `DefaultWANConfig`) and
//! `agent/router/router.go` (the WAN pool is how a server finds the servers of another
//! datacenter, and `GET /v1/catalog/datacenters` lists the datacenters it knows).
//!
//! Owns: the WAN identity ([`wan_identity`]), the WAN pool's settings ([`WanSettings`]), what
//! the WAN view answers ([`datacenters`], [`servers_of`]), and flood joins ([`flood_joins`]: the
//! datacenter's servers found on the LAN are joined into the WAN pool). The pool itself is a second
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

/// How often [`flood_joins`] looks for missing servers besides every change of the LAN view
/// (Consul's `SerfFloodInterval`).
pub const FLOOD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// The LAN tag that carries a server's WAN gossip port (Consul's `wan_join_port`).
pub const WAN_JOIN_PORT_TAG: &str = "wan_join_port";

/// The WAN gossip addresses of the servers of datacenter `dc` that are alive in the LAN view
/// `lan` but absent from the WAN view `wan` under any status (a failed one is the WAN pool's own
/// reconnect's business): their LAN address with the port of their [`WAN_JOIN_PORT_TAG`].
/// Source: Consul `agent/router/serf_flooder.go` `FloodJoins`.
pub fn flood_targets(lan: &[Member], wan: &[Member], dc: &str) -> Vec<SocketAddr> {
    let suffix = format!(".{dc}");
    let in_wan: BTreeSet<&str> = wan
        .iter()
        .filter(|m| m.is_server_of(dc))
        .filter_map(|m| m.name.strip_suffix(&suffix))
        .collect();
    lan.iter()
        .filter(|m| m.status == super::MemberStatus::Alive && m.is_server_of(dc) && !in_wan.contains(m.name.as_str()))
        .filter_map(|m| Some(SocketAddr::new(m.addr.ip(), m.tags.get(WAN_JOIN_PORT_TAG)?.parse().ok()?)))
        .collect()
}

/// Keeps every server of this datacenter that the LAN pool knows in the WAN pool, so servers need
/// `-retry-join-wan` only across datacenters (Consul `agent/consul/flood.go` `Flood`): on every
/// change of the LAN view and every [`FLOOD_INTERVAL`], announces the WAN pool to each
/// [`flood_targets`] address. Runs until the LAN pool is dropped.
pub async fn flood_joins(lan: std::sync::Arc<Pool>, wan: std::sync::Arc<Pool>, dc: String) {
    let mut changes = lan.subscribe();
    loop {
        for addr in flood_targets(&lan.members(), &wan.members(), &dc) {
            tracing::debug!(node = %wan.me(), %addr, "WAN flood join");
            wan.announce(addr);
        }
        match tokio::time::timeout(FLOOD_INTERVAL, changes.changed()).await {
            Ok(Err(_)) => return,
            Ok(Ok(())) | Err(_) => {}
        }
    }
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
    fn flood_joins_target_live_lan_servers_of_the_datacenter_missing_from_the_wan_pool() {
        let lan = |name: &str, dc: &str, status, port: Option<&str>| {
            let mut m = member(name, dc, status);
            m.name = name.to_string();
            m.addr = "10.0.0.7:8301".parse().unwrap();
            if let Some(p) = port {
                m.tags.insert(WAN_JOIN_PORT_TAG.to_string(), p.to_string());
            }
            m
        };
        let mut client = lan("c1", "dc1", MemberStatus::Alive, Some("8302"));
        client.tags.insert("role".into(), "node".into());
        let lan_view = [
            lan("s1", "dc1", MemberStatus::Alive, Some("8302")), // in the WAN pool already
            lan("s2", "dc1", MemberStatus::Alive, Some("9302")), // missing: joined
            lan("s3", "dc1", MemberStatus::Failed, Some("8302")), // not alive on the LAN
            lan("s4", "dc1", MemberStatus::Alive, None),          // no WAN pool
            lan("s5", "dc1", MemberStatus::Alive, Some("8302")), // failed in the WAN pool: its reconnect's business
            client,
        ];
        let wan_view = [member("s1", "dc1", MemberStatus::Alive), member("s5", "dc1", MemberStatus::Failed), member("s2", "dc2", MemberStatus::Alive)];
        assert_eq!(flood_targets(&lan_view, &wan_view, "dc1"), vec!["10.0.0.7:9302".parse::<SocketAddr>().unwrap()]);
        assert!(flood_targets(&lan_view, &wan_view, "dc9").is_empty(), "only the own datacenter's servers");
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
