//! Host names in report text: the addresses and Raft ids of a run's hosts, replaced by the names
//! a reader knows them by (`s2`, `w1`).
//!
//! Owns: the mapping from a host's IP address (with any `:port`) and its Raft ids (decimal, as
//! the trace prints them, and 16-digit hex, as operator paths carry them) to its name, and the one
//! pass that rewrites a text with it. Error strings the agent records (`rpc to 192.168.0.3:8300:
//! connection lost`), operator paths (`address=192.168.0.2:8300`) and Raft ids in trace lines
//! (`vote saved t1 for 637539755847373129`) all come out named (`rpc to s3: connection lost`).
//! It must never change the trace itself (the trace hash covers its text): it rewrites only what
//! a report shows. Only whole tokens are replaced, so `192.168.0.1` never matches inside
//! `192.168.0.10`, and a value is never mistaken for an id unless it is one exactly.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The names of a run's hosts, by address and by Raft id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostNames {
    by_ip: BTreeMap<Ipv4Addr, String>,
    /// Exact tokens (Raft ids in decimal and hex) to names.
    by_token: BTreeMap<String, String>,
}

impl HostNames {
    /// An empty mapping: [`Self::name_hosts`] then returns its input unchanged.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the host at `ip` `name`. IPv6 addresses are not mapped (the simulator uses IPv4).
    pub fn add_host(&mut self, name: &str, ip: std::net::IpAddr) {
        if let std::net::IpAddr::V4(v4) = ip {
            self.by_ip.insert(v4, name.to_string());
        }
    }

    /// Names the Raft id `id` `name`, in both the decimal and the `{:016x}` forms.
    pub fn add_raft_id(&mut self, name: &str, id: u64) {
        self.by_token.insert(id.to_string(), name.to_string());
        self.by_token.insert(format!("{id:016x}"), name.to_string());
    }

    /// True if nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty() && self.by_token.is_empty()
    }

    /// `text` with every known IP address (and the `:port` after it) and every known Raft id
    /// replaced by its host's name; everything else unchanged.
    pub fn name_hosts(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < bytes.len() {
            if !is_token_byte(bytes[i]) {
                // Copy one whole (possibly multi-byte) character.
                let c = text[i..].chars().next().expect("i is on a char boundary");
                out.push(c);
                i += c.len_utf8();
                continue;
            }
            let start = i;
            while i < bytes.len() && is_token_byte(bytes[i]) {
                i += 1;
            }
            // A sentence may end right after an address: its full stops are not part of it.
            let mut end = i;
            while end > start && bytes[end - 1] == b'.' {
                end -= 1;
            }
            let token = &text[start..end];
            let dots = &text[end..i];
            if let Some(name) = token.parse::<Ipv4Addr>().ok().and_then(|ip| self.by_ip.get(&ip)) {
                out.push_str(name);
                // Drop the port: the name says which host, the text around it says which service.
                if dots.is_empty() && bytes.get(i) == Some(&b':') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            } else if let Some(name) = self.by_token.get(token) {
                out.push_str(name);
            } else {
                out.push_str(token);
            }
            out.push_str(dots);
        }
        out
    }
}

/// Bytes that can be part of an address or id token.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> HostNames {
        let mut n = HostNames::new();
        for i in 1..=10u8 {
            n.add_host(&format!("s{i}"), std::net::IpAddr::V4(Ipv4Addr::new(192, 168, 0, i)));
        }
        n.add_raft_id("s1", 637_539_755_847_373_129);
        n
    }

    #[test]
    fn rpc_errors_name_the_server_not_its_address() {
        let n = names();
        assert_eq!(n.name_hosts("rpc to 192.168.0.3:8300: connection lost"), "rpc to s3: connection lost");
        assert_eq!(
            n.name_hosts("operator: PUT /v1/operator/raft/peer?node=s2&address=192.168.0.2:8300: done"),
            "operator: PUT /v1/operator/raft/peer?node=s2&address=s2: done"
        );
        assert_eq!(n.name_hosts("from 192.168.0.10, then 192.168.0.1."), "from s10, then s1.");
    }

    #[test]
    fn raft_ids_are_named_in_decimal_and_hex() {
        let n = names();
        assert_eq!(n.name_hosts("vote saved t1 for 637539755847373129"), "vote saved t1 for s1");
        assert_eq!(n.name_hosts("transfer-leader?id=0000000000000001"), "transfer-leader?id=0000000000000001");
        assert_eq!(n.name_hosts(&format!("id={:016x}", 637_539_755_847_373_129u64)), "id=s1");
    }

    #[test]
    fn text_without_known_hosts_is_unchanged() {
        let n = names();
        for text in [
            "", "192.168.0.11:8300 is unknown", "value 6375397558473731290 and 4789.000ms", "t=   1.010s  heal all ×2",
            "1.2.3", "a.b.c.d", "ends with a dot.", "…unicode… ∅ →",
        ] {
            assert_eq!(n.name_hosts(text), text);
        }
        assert_eq!(HostNames::new().name_hosts("rpc to 192.168.0.3:8300"), "rpc to 192.168.0.3:8300");
    }
}
