//! The Loc-RIB: running the decision process on a prefix after its paths changed, and
//! reading the selected routes back.
//!
//! The Loc-RIB is not a separate map: it is the head of each prefix's path list (the best
//! path, then the other multipath members), kept in order by [`decide`]. That costs one
//! byte per prefix on top of the Adj-RIBs-In.

use std::sync::Arc;

use super::{
    Core,
    attr_store::RouteAttrs,
    best_path::Candidate,
    change::{BestRoute, ChangeBuilder, NextHopMember, RibChange},
    multipath,
    peer::PathSource,
    prefix::RibPrefix,
    table::{LOOPED, PathRec, PrefixTable, STALE},
};

/// Records the Loc-RIB state of `slot` (its multipath members, best first) before its
/// paths change; [`decide`] compares against it.
pub(crate) fn snapshot<P: RibPrefix>(table: &PrefixTable<P>, core: &mut Core, slot: u32) {
    let old = &mut core.scratch.old;
    old.clear();
    old.extend(
        table
            .paths(slot)
            .iter()
            .take(table.mp(slot))
            .map(|p| (p.source, p.attr_out)),
    );
}

/// Runs the decision process for `slot`, reorders its paths (best first, multipath
/// members next), records a change if the best path or the multipath set differ from
/// the last [`snapshot`], and frees the slot if no path is left.
pub(crate) fn decide<P: RibPrefix>(
    table: &mut PrefixTable<P>,
    core: &mut Core,
    slot: u32,
    changes: &mut ChangeBuilder,
) {
    let paths = table.paths(slot);
    core.scratch.selected.clear();
    if paths.len() == 1 {
        // The common case: one path, no comparison.
        if eligible(core, &paths[0]) {
            core.scratch.selected.push(0);
        }
    } else if !paths.is_empty() {
        let mut cands = std::mem::take(&mut core.scratch.cands);
        cands.clear();
        for (i, p) in paths.iter().enumerate() {
            if eligible(core, p) {
                cands.push(candidate(core, i, p));
            }
        }
        let mut selected = std::mem::take(&mut core.scratch.selected);
        multipath::select(
            &mut cands,
            core.config.decision,
            core.config.multipath,
            &mut selected,
        );
        core.scratch.selected = selected;
        core.scratch.cands = cands;
        let s = &mut core.scratch;
        s.order.clear();
        s.order.extend_from_slice(&s.selected);
        for i in 0..paths.len() {
            if !s.selected.contains(&i) {
                s.order.push(i);
            }
        }
        table.reorder(slot, &s.order, &mut s.paths);
    }
    let mp = core.scratch.selected.len();
    table.set_mp(slot, mp);
    let paths = table.paths(slot);
    let changed = core.scratch.old.len() != mp
        || paths
            .iter()
            .zip(&core.scratch.old)
            .any(|(p, o)| (p.source, p.attr_out) != *o);
    if changed {
        let mut members = std::mem::take(&mut core.scratch.members);
        let best = best_route(table, core, slot, changes, &mut members);
        core.scratch.members = members;
        changes.push(RibChange {
            prefix: table.prefix(slot).into(),
            best,
            slot,
        });
        table.mark_fib_dirty(slot);
    }
    table.remove_if_empty(slot);
}

/// Whether a path takes part in the decision (RFC 4271 9.1.2.1 and import policy).
fn eligible(core: &Core, p: &PathRec) -> bool {
    let Some(out) = p.attr_out else {
        return false;
    };
    if p.source == 0 || core.unreachable.is_empty() {
        return true;
    }
    !core
        .unreachable
        .contains(&core.attrs.get(out).next_hop_addr())
}

/// The decision inputs of an eligible path.
fn candidate(core: &Core, index: usize, p: &PathRec) -> Candidate {
    let attrs = match p.attr_out {
        Some(out) => core.attrs.get(out),
        None => core.attrs.get(p.attr_in),
    };
    let a = &attrs.path;
    let peer = core.peer_raw(p.source);
    Candidate {
        index,
        local: p.source == 0,
        local_pref: a.local_pref.unwrap_or(core.config.default_local_pref),
        as_path_len: a.as_path.length(),
        origin: a.origin,
        med: a.med.unwrap_or(0),
        neighbor_as: a.as_path.first_as().unwrap_or(core.config.local_asn),
        ebgp: peer.is_some_and(|p| p.ebgp),
        stale: p.flags & STALE != 0,
        cluster_list_len: a.cluster_list.len(),
        router_id: a.originator_id.unwrap_or(match peer {
            Some(p) => p.router_id,
            None => core.config.router_id,
        }),
        peer_address: peer.map(|p| p.config.address),
    }
}

/// The Loc-RIB route of `slot`, if it has a best path; equal multipath sets are shared
/// through `sets`; `members` is scratch space.
pub(crate) fn best_route<P: RibPrefix>(
    table: &PrefixTable<P>,
    core: &Core,
    slot: u32,
    sets: &mut ChangeBuilder,
    members: &mut Vec<NextHopMember>,
) -> Option<BestRoute> {
    let mp = table.mp(slot);
    let paths = table.paths(slot);
    let best = paths.first().filter(|_| mp > 0)?;
    let attr_id = best.attr_out?;
    members.clear();
    members.extend(paths.iter().take(mp).filter_map(|p| {
        p.attr_out.map(|out| NextHopMember {
            source: PathSource::from_raw(p.source),
            next_hop: core.attrs.get(out).next_hop,
        })
    }));
    Some(BestRoute {
        source: PathSource::from_raw(best.source),
        attr_id,
        attrs: core.attrs.get(attr_id).clone(),
        multipath: sets.members(members),
    })
}

/// One path of a prefix, for `show routes PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathView {
    /// Where the path came from.
    pub source: PathSource,
    /// Attributes as received (Adj-RIB-In).
    pub received: Arc<RouteAttrs>,
    /// Attributes after import policy; `None` if rejected or looped.
    pub accepted: Option<Arc<RouteAttrs>>,
    /// The best path.
    pub best: bool,
    /// A member of the multipath set (the best path is one too).
    pub multipath: bool,
    /// Marked stale by graceful restart.
    pub stale: bool,
    /// Failed the AS_PATH, ORIGINATOR_ID or CLUSTER_LIST loop checks.
    pub looped: bool,
    /// Its next hop is marked unreachable.
    pub next_hop_unreachable: bool,
}

/// The paths of `slot`, in decision order.
pub(crate) fn path_views<P: RibPrefix>(
    table: &PrefixTable<P>,
    core: &Core,
    slot: u32,
) -> Vec<PathView> {
    let mp = table.mp(slot);
    table
        .paths(slot)
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let received = core.attrs.get(p.attr_in).clone();
            PathView {
                source: PathSource::from_raw(p.source),
                next_hop_unreachable: p.source != 0
                    && core.unreachable.contains(&received.next_hop_addr()),
                received,
                accepted: p.attr_out.map(|o| core.attrs.get(o).clone()),
                best: i == 0 && mp > 0,
                multipath: i < mp,
                stale: p.flags & STALE != 0,
                looped: p.flags & LOOPED != 0,
            }
        })
        .collect()
}
