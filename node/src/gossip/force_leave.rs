//! Force-leave (`consul force-leave [-prune] NODE`, `PUT /v1/agent/force-leave/<node>`): an
//! operator turns a member that failed into one that left, or (`-prune`) erases it from the member
//! list, without waiting for the pool to reap it.
//!
//! Serf does this with a leave intent naming the member (serf `forceLeave`,
//! `handleNodeLeaveIntent`): a failed member becomes left (`EventMemberLeave (forced)`), a left one
//! stays left, and with prune both are erased (`EventMemberReap (forced)`); a live member refutes
//! the intent and stays alive. foca spreads identities, not intents, so here the intent is an
//! identity: the member's own identity with `left` (and `pruned`) set, at the same generation,
//! declared down. It outranks the failed identity at that address ([`super::identity`]), so it
//! replaces it on every agent through foca's ordinary dissemination, and an agent that restarts
//! later (a higher generation) outranks it in turn and rejoins, as Consul's docs say a returning
//! agent does. Owns: choosing that identity and applying it to this agent's foca. Never does: touch
//! a live member (Serf's refutation ends with the member alive, so nothing is spread), or write to
//! the catalog (the leader's reconcile deregisters a left member's node).

use foca::{AccumulatingRuntime, State};

use super::GossipId;

/// What a force-leave did on this agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForceLeave {
    /// The member is alive (or this agent itself): unchanged, as after Serf's refutation.
    Alive,
    /// A failed member now left (and pruned, with `prune`); spread to the pool.
    Forced,
    /// A member that had left is now pruned; spread to the pool.
    Pruned,
    /// Already left (without `prune`) or already pruned: nothing to do.
    Unchanged,
}

/// Consul's error for a name no member carries (`agent.ForceLeave`, after `IsMember`).
pub fn not_found(name: &str) -> String {
    format!("agent: No node found with name '{name}'")
}

/// Applies a force-leave of `name` to `foca` (whose own identity is `me`); the new identity rides
/// foca's update backlog to the other members. Errors: no member of that name (a pruned member
/// counts as none, as Serf erased it).
pub(super) fn apply(foca: &mut super::driver::Swim, rt: &mut AccumulatingRuntime<GossipId>, name: &str, prune: bool) -> Result<ForceLeave, String> {
    if foca.identity().name == name {
        return Ok(ForceLeave::Alive);
    }
    // One identity per address in foca; a name may sit at two addresses (a moved agent): the
    // newest generation is the member, as in the view.
    let found = foca
        .iter_membership_state()
        .filter(|m| m.id().name == name && !m.id().pruned)
        .max_by_key(|m| m.id().generation)
        .map(|m| (m.id().clone(), m.incarnation(), m.state()));
    let (id, incarnation, state) = found.ok_or_else(|| not_found(name))?;
    let outcome = match (state, id.left) {
        (State::Alive | State::Suspect, _) => return Ok(ForceLeave::Alive),
        (State::Down, false) => ForceLeave::Forced,
        (State::Down, true) if prune => ForceLeave::Pruned,
        (State::Down, true) => return Ok(ForceLeave::Unchanged),
    };
    let forced = GossipId { left: true, pruned: prune, ..id };
    if outcome == ForceLeave::Forced {
        tracing::info!(member = %name, addr = %forced.addr, "EventMemberLeave (forced): member left");
    }
    if prune {
        tracing::info!(member = %name, addr = %forced.addr, "EventMemberReap (forced): member pruned");
    }
    foca.apply_many(std::iter::once(foca::Member::new(forced, incarnation, State::Down)), true, rt)
        .map_err(|e| format!("force-leave of {name} not applied: {e}"))?;
    Ok(outcome)
}
