//! User events (Consul `agent/user_event.go`, Serf user events): a name and a small payload,
//! fired on one agent and delivered to every agent of the LAN pool by gossip, de-duplicated by
//! event ID, each stamped with a Lamport time. Every agent keeps the last [`EVENT_BUFFER`]
//! events it received for `/v1/event/list`.
//!
//! Delivery rides foca's custom broadcasts: an event is one broadcast item
//! ([`super::broadcast::Item::Event`]), re-gossiped by every agent that sees it for the first time, a bounded number of
//! times, as memberlist does. A broadcast rides only messages to members the sender believes
//! alive, so an event fired while membership is still settling (just after a partition heals)
//! could miss an agent for good; the origin therefore broadcasts each event it fired again every
//! [`REFIRE_INTERVAL`] for [`REFIRE_WINDOW`] (Serf closes the same gap with push-pull syncs of
//! recent events). Receivers drop the repeats by ID. An agent cut off for the whole window still
//! misses the event, as in Serf.
//!
//! Filters, as Consul's `shouldProcessUserEvent`: an event with a `NodeFilter` (a regular
//! expression) is kept only by agents whose node name matches; with a `ServiceFilter`, only by
//! agents with a local service whose ID matches, and with a `TagFilter` too, one of that
//! service's tags must match. Agents that do not keep an event still pass it on.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;


/// How many received events an agent keeps (Consul's `agent/user_event.go`: 256).
pub const EVENT_BUFFER: usize = 256;
/// How often the origin broadcasts a recent event again.
pub const REFIRE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);
/// For how long after firing the origin keeps broadcasting an event.
pub const REFIRE_WINDOW: std::time::Duration = std::time::Duration::from_secs(30);
/// How many event keys an agent remembers to drop repeats (kept or not; the oldest go first).
const SEEN_LIMIT: usize = 4 * EVENT_BUFFER;
/// Largest payload, bytes (Consul: `UserEventSizeLimit`, 512 bytes with the name).
pub const MAX_EVENT_BYTES: usize = 512;

/// One user event, in Consul's `/v1/event/*` JSON shape (`Payload` is base64, or null).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEvent {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Payload", with = "payload_base64")]
    pub payload: Option<Vec<u8>>,
    #[serde(rename = "NodeFilter")]
    pub node_filter: String,
    #[serde(rename = "ServiceFilter")]
    pub service_filter: String,
    #[serde(rename = "TagFilter")]
    pub tag_filter: String,
    #[serde(rename = "Version")]
    pub version: u32,
    #[serde(rename = "LTime")]
    pub ltime: u64,
}

mod payload_base64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&base64::engine::general_purpose::STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| base64::engine::general_purpose::STANDARD.decode(t).map_err(serde::de::Error::custom)).transpose()
    }
}

#[derive(Default)]
struct Log {
    /// The Lamport clock: above every event time seen or given out.
    clock: u64,
    /// Keys of the last [`SEEN_LIMIT`] events delivered, kept or filtered out, and their order.
    seen: BTreeSet<String>,
    seen_order: VecDeque<String>,
    recent: VecDeque<UserEvent>,
}

/// This agent's local services, as (service ID, tags), for service and tag filters.
pub type ServiceSource = Box<dyn Fn() -> Vec<(String, Vec<String>)> + Send + Sync>;

/// The events this agent received, newest last; shared by the gossip driver and the HTTP API.
pub struct EventLog {
    node: String,
    /// Where service filters look (none set: an event with a service filter is not kept).
    services: std::sync::OnceLock<ServiceSource>,
    log: Mutex<Log>,
    /// Bumped on every delivery (the index of `/v1/event/list` blocking queries).
    version: watch::Sender<u64>,
    /// Deliberate bug (simulator only): events are told apart by name, not ID.
    dedup_by_name: bool,
}

impl EventLog {
    /// An empty log for the agent named `node`.
    pub fn new(node: &str, dedup_by_name: bool) -> Self {
        Self { node: node.to_string(), services: std::sync::OnceLock::new(), log: Mutex::default(), version: watch::channel(0).0, dedup_by_name }
    }

    /// Gives service and tag filters this agent's local services (once; later calls are ignored).
    pub fn set_service_source(&self, source: ServiceSource) {
        let _ = self.services.set(source);
    }

    /// Whether this agent keeps `event` (see the module docs). An invalid expression keeps nothing.
    fn wanted(&self, event: &UserEvent) -> bool {
        let matches = |re: &str, text: &str| regex::Regex::new(re).is_ok_and(|r| r.is_match(text));
        if !event.node_filter.is_empty() && !matches(&event.node_filter, &self.node) {
            return false;
        }
        if event.service_filter.is_empty() {
            return true;
        }
        let services = self.services.get().map(|source| source()).unwrap_or_default();
        services.iter().any(|(id, tags)| {
            matches(&event.service_filter, id) && (event.tag_filter.is_empty() || tags.iter().any(|t| matches(&event.tag_filter, t)))
        })
    }

    /// Stamps a new event with the next Lamport time (Serf: the clock, then increment).
    pub fn stamp(&self, mut event: UserEvent) -> UserEvent {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        event.ltime = log.clock;
        log.clock += 1;
        event
    }

    /// Delivers `event` unless it was seen before; true when it is new (then it is re-gossiped).
    /// An event this agent's filters do not match is passed on but not kept.
    pub fn deliver(&self, event: UserEvent) -> bool {
        let key = if self.dedup_by_name { event.name.clone() } else { event.id.clone() };
        {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            if !log.seen.insert(key.clone()) {
                return false;
            }
            log.seen_order.push_back(key);
            if log.seen_order.len() > SEEN_LIMIT {
                if let Some(old) = log.seen_order.pop_front() {
                    log.seen.remove(&old);
                }
            }
            log.clock = log.clock.max(event.ltime + 1);
        }
        // The filters read the agent's local services: not under the log's lock.
        if self.wanted(&event) {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            log.recent.push_back(event);
            if log.recent.len() > EVENT_BUFFER {
                log.recent.pop_front();
            }
            drop(log);
            self.version.send_modify(|v| *v += 1);
        }
        true
    }

    /// The kept events named `name` (all with `None`), oldest first, and the log's index.
    pub fn list(&self, name: Option<&str>) -> (Vec<UserEvent>, u64) {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let events = log.recent.iter().filter(|e| name.is_none_or(|n| e.name == n)).cloned().collect();
        (events, *self.version.borrow())
    }

    /// A receiver that changes on every kept event.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

/// The broadcast item of `event`. Errors: it does not fit [`MAX_EVENT_BYTES`] plus its envelope.
pub fn encode(event: &UserEvent) -> Result<Vec<u8>, String> {
    let bytes = super::broadcast::Item::Event(event.clone()).encode()?;
    if bytes.len() > MAX_EVENT_BYTES + 256 {
        return Err(format!("User event exceeds size limit of {MAX_EVENT_BYTES} bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::BroadcastHandler;

    use std::sync::Arc;

    use crate::gossip::broadcast::Broadcasts;
    use crate::gossip::keyring_sync::KeyringState;

    fn event(id: &str, name: &str, ltime: u64) -> UserEvent {
        UserEvent { id: id.into(), name: name.into(), payload: Some(b"hi".to_vec()), node_filter: String::new(), service_filter: String::new(), tag_filter: String::new(), version: 1, ltime }
    }

    #[test]
    fn events_are_delivered_once_and_advance_the_lamport_clock() {
        let log = Arc::new(EventLog::new("n1", false));
        let keyring = Arc::new(KeyringState::new("n1", 1, None, Default::default(), false));
        let mut h = Broadcasts { events: log.clone(), keyring };
        let peer = crate::gossip::GossipId::placeholder("127.0.0.1:8301".parse().unwrap());
        let item = encode(&event("a", "deploy", 7)).unwrap();
        assert!(h.receive_item(&item, Some(&peer)).unwrap().is_some(), "new: re-gossiped");
        assert!(h.receive_item(&item, Some(&peer)).unwrap().is_none(), "seen: dropped");
        assert!(h.receive_item(&item, None).unwrap().is_some(), "the origin's re-broadcast is queued again");
        assert!(h.receive_item(&encode(&event("b", "deploy", 2)).unwrap(), Some(&peer)).unwrap().is_some(), "same name, new ID");
        assert_eq!(log.list(Some("deploy")).0.len(), 2);
        assert_eq!(log.stamp(event("c", "x", 0)).ltime, 8, "the clock passed the highest time seen");
        assert!(h.receive_item(b"\xff\x00", Some(&peer)).is_err());
    }

    #[test]
    fn a_node_filter_keeps_the_event_off_other_nodes() {
        let log = EventLog::new("web-1", false);
        let mut e = event("a", "deploy", 0);
        e.node_filter = "^db-".into();
        assert!(log.deliver(e), "passed on");
        assert!(log.list(None).0.is_empty(), "not kept on web-1");
    }

    #[test]
    fn service_and_tag_filters_need_a_matching_local_service() {
        let log = EventLog::new("web-1", false);
        log.set_service_source(Box::new(|| vec![("web".to_string(), vec!["v2".to_string()])]));
        let with = |id: &str, service: &str, tag: &str| UserEvent { service_filter: service.into(), tag_filter: tag.into(), ..event(id, "deploy", 0) };
        log.deliver(with("a", "^web$", ""));
        log.deliver(with("b", "^db$", ""));
        log.deliver(with("c", "web", "^v2$"));
        log.deliver(with("d", "web", "^v1$"));
        let kept: Vec<String> = log.list(None).0.into_iter().map(|e| e.id).collect();
        assert_eq!(kept, ["a", "c"]);
    }

    #[test]
    fn the_buffer_keeps_the_last_256() {
        let log = EventLog::new("n1", false);
        for i in 0..300 {
            log.deliver(event(&format!("e{i}"), "n", i));
        }
        let (kept, index) = log.list(None);
        assert_eq!((kept.len(), kept[0].id.as_str(), index), (EVENT_BUFFER, "e44", 300));
    }

    #[test]
    fn the_json_shape_is_consuls() {
        let json = serde_json::to_value(event("a", "deploy", 3)).unwrap();
        insta::assert_json_snapshot!(json);
    }
}
