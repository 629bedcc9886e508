//! What rides foca's custom broadcasts: user events ([`super::events`]) and the keyring's
//! operations and reports ([`super::keyring_sync`]), one MessagePack-encoded [`Item`] each.
//!
//! Owns: the item envelope, its broadcast key (what a newer item replaces in foca's backlog) and
//! the handler foca calls for every item it receives. Never does: decide what an item means (the
//! event log and the keyring do).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::events::{EventLog, UserEvent};
use super::keyring_sync::{KeyringOp, KeyringReport, KeyringState};
use super::GossipId;

/// One broadcast item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Item {
    Event(UserEvent),
    KeyringOp(KeyringOp),
    KeyringReport(KeyringReport),
}

impl Item {
    /// The item's bytes as broadcast.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        rmp_serde::to_vec(self).map_err(|e| e.to_string())
    }
}

/// An item's broadcast key: an event or operation invalidates only itself; a member's keyring
/// report invalidates that member's older reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKey {
    Event(String),
    Op(String),
    Report { node: String, order: (u64, u64) },
}

impl foca::Invalidates for ItemKey {
    fn invalidates(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Report { node, order }, Self::Report { node: n, order: o }) => node == n && order >= o,
            _ => self == other,
        }
    }
}

/// Why a broadcast item was refused.
#[derive(Debug, thiserror::Error)]
#[error("undecodable broadcast item: {0}")]
pub struct BadItem(String);

/// foca's hook for custom broadcasts: decodes each item and hands it to the event log or the
/// keyring.
pub struct Broadcasts {
    pub events: Arc<EventLog>,
    pub keyring: Arc<KeyringState>,
}

impl foca::BroadcastHandler<GossipId> for Broadcasts {
    type Key = ItemKey;
    type Error = BadItem;

    /// From a peer (`sender` set): queued for re-gossip only when new. From this agent (no
    /// sender: a fire, a keyring operation or report, or the origin's re-broadcast): always queued.
    fn receive_item(&mut self, data: &[u8], sender: Option<&GossipId>) -> Result<Option<ItemKey>, BadItem> {
        let item: Item = rmp_serde::from_slice(data).map_err(|e| BadItem(e.to_string()))?;
        let local = sender.is_none();
        let (key, new) = match item {
            Item::Event(event) => (ItemKey::Event(event.id.clone()), self.events.deliver(event)),
            Item::KeyringOp(op) => (ItemKey::Op(op.id.clone()), !local && self.keyring.receive_op(&op)),
            Item::KeyringReport(r) => {
                let new = !local && self.keyring.receive_report(&r);
                (ItemKey::Report { node: r.node, order: (r.generation, r.version) }, new)
            }
        };
        Ok((new || local).then_some(key))
    }
}
