//! The Adj-RIBs-In: routes as received from each peer, kept before policy so that a
//! policy change re-runs import without asking the peer (soft reconfiguration), with the
//! import step (loop checks, then the import filter) that feeds the Loc-RIB, and the
//! graceful restart helper operations (stale marking and sweeping).

use hashbrown::HashMap;
use ipnet::IpNet;

use super::{
    Core,
    attr_store::{AttrId, AttrStore, RouteAttrs},
    change::{ChangeBuilder, RibChange},
    filter::{Filtered, RouteFilter},
    loc_rib::{decide, snapshot},
    peer::PeerCounts,
    prefix::RibPrefix,
    table::{LOOPED, PathRec, PrefixTable, STALE},
};

/// Whether a route fails the loop checks: our AS in its AS_PATH more often than
/// allowas-in permits (RFC 4271 9.1.2), our router id as ORIGINATOR_ID or our cluster id
/// in its CLUSTER_LIST (RFC 4456 8).
pub(crate) fn is_looped(core: &Core, source: u16, attrs: &RouteAttrs) -> bool {
    let Some(peer) = core.peer_raw(source) else {
        return false;
    };
    let own = core.config.local_asn;
    let count: usize = attrs
        .path
        .as_path
        .segments
        .iter()
        .map(|s| s.asns.iter().filter(|&&a| a == own).count())
        .sum();
    if count > usize::from(peer.config.allowas_in) {
        return true;
    }
    attrs.path.originator_id == Some(core.config.router_id)
        || attrs.path.cluster_list.contains(&core.cluster_id())
}

/// Adjusts `counts` for a path going from `old` to `new` (either may be absent).
fn count(counts: &mut PeerCounts, old: Option<&PathRec>, new: Option<&PathRec>) {
    let f = |p: Option<&PathRec>| {
        p.map_or((0, 0, 0), |p| {
            (
                1,
                usize::from(p.attr_out.is_some()),
                usize::from(p.flags & STALE != 0),
            )
        })
    };
    let (r0, a0, s0) = f(old);
    let (r1, a1, s1) = f(new);
    counts.received = counts.received + r1 - r0;
    counts.accepted = counts.accepted + a1 - a0;
    counts.stale = counts.stale + s1 - s0;
}

/// Drops the references a path holds.
fn release_path(store: &mut AttrStore, p: &PathRec) {
    store.release(p.attr_in);
    if let Some(o) = p.attr_out {
        store.release(o);
    }
}

/// Removes the route `prefix` from `source`, if present, and decides.
pub(crate) fn withdraw<P: RibPrefix>(
    table: &mut PrefixTable<P>,
    core: &mut Core,
    source: u16,
    prefix: P,
    changes: &mut ChangeBuilder,
) {
    let Some(slot) = table.find(&prefix) else {
        return;
    };
    remove_at(table, core, source, slot, changes);
}

fn remove_at<P: RibPrefix>(
    table: &mut PrefixTable<P>,
    core: &mut Core,
    source: u16,
    slot: u32,
    changes: &mut ChangeBuilder,
) {
    snapshot(table, core, slot);
    let Some(old) = table.take(slot, source) else {
        return;
    };
    if let Some(c) = core.counts_mut(source, P::INDEX) {
        count(c, Some(&old), None);
    }
    release_path(&mut core.attrs, &old);
    decide(table, core, slot, changes);
}

/// Which paths of a peer an operation on the whole table touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sweep {
    /// Every path of the peer (session down without graceful restart, peer removed).
    All,
    /// Only the stale ones (End-of-RIB or restart timer expiry).
    Stale,
}

/// Removes the paths of `source` selected by `which`, in one pass over the table.
pub(crate) fn remove_paths<P: RibPrefix>(
    table: &mut PrefixTable<P>,
    core: &mut Core,
    source: u16,
    which: Sweep,
    changes: &mut ChangeBuilder,
) {
    let Some(c) = core.counts_mut(source, P::INDEX) else {
        return;
    };
    let nothing = match which {
        Sweep::All => c.received == 0,
        Sweep::Stale => c.stale == 0,
    };
    if nothing {
        return;
    }
    for slot in 0..table.slot_capacity() {
        let hit = table
            .paths(slot)
            .iter()
            .any(|p| p.source == source && (which == Sweep::All || p.flags & STALE != 0));
        if hit {
            remove_at(table, core, source, slot, changes);
        }
    }
}

/// Marks every path of `source` stale (graceful restart: the session went down, the
/// routes stay and keep forwarding until refreshed or swept).
pub(crate) fn mark_stale<P: RibPrefix>(
    table: &mut PrefixTable<P>,
    core: &mut Core,
    source: u16,
    changes: &mut ChangeBuilder,
) {
    let received = core.counts_mut(source, P::INDEX).map_or(0, |c| c.received);
    if received == 0 {
        return;
    }
    let mut marked = 0;
    for slot in 0..table.slot_capacity() {
        let paths = table.paths(slot);
        let Some(i) = paths
            .iter()
            .position(|p| p.source == source && p.flags & STALE == 0)
        else {
            continue;
        };
        // Staleness only matters against other paths (fresh over stale).
        let multi = paths.len() > 1;
        if multi {
            snapshot(table, core, slot);
        }
        if let Some(p) = table.paths_mut(slot).get_mut(i) {
            p.flags |= STALE;
            marked += 1;
        }
        if multi {
            decide(table, core, slot, changes);
        }
    }
    if let Some(c) = core.counts_mut(source, P::INDEX) {
        c.stale += marked;
    }
}

/// One import run for one source: loop checks and import filter between the Adj-RIB-In
/// and the Loc-RIB, and the decisions and changes that follow.
pub(crate) struct Importer<'a> {
    core: &'a mut Core,
    source: u16,
    filter: &'a mut dyn RouteFilter,
    /// Import results per received attribute set, for filters that do not depend on the
    /// prefix: (received id, Loc-RIB id, looped). Holds a reference on every Loc-RIB id.
    last: Option<(AttrId, Option<AttrId>, bool)>,
    memo: HashMap<AttrId, (Option<AttrId>, bool)>,
    changes: ChangeBuilder,
}

impl<'a> Importer<'a> {
    pub fn new(core: &'a mut Core, source: u16, filter: &'a mut dyn RouteFilter) -> Self {
        Importer {
            core,
            source,
            filter,
            last: None,
            memo: HashMap::new(),
            changes: ChangeBuilder::default(),
        }
    }

    /// The Loc-RIB changes; drops the memo's references.
    pub fn finish(self) -> Vec<RibChange> {
        for (out, _) in self.memo.into_values() {
            if let Some(o) = out {
                self.core.attrs.release(o);
            }
        }
        self.changes.finish()
    }

    /// The import result for received attributes `in_id`: the Loc-RIB attributes (with a
    /// reference taken) or `None`, and whether the loop checks failed. Local routes are
    /// not filtered.
    fn import(&mut self, prefix: IpNet, in_id: AttrId) -> (Option<AttrId>, bool) {
        let core = &mut *self.core;
        if self.source == 0 {
            core.attrs.retain(in_id);
            return (Some(in_id), false);
        }
        let memoize = self.filter.prefix_independent();
        if memoize {
            let hit = match self.last {
                Some((k, out, looped)) if k == in_id => Some((out, looped)),
                _ => self.memo.get(&in_id).copied(),
            };
            if let Some((out, looped)) = hit {
                if let Some(o) = out {
                    core.attrs.retain(o);
                }
                return (out, looped);
            }
        }
        let attrs = core.attrs.get(in_id).clone();
        let looped = is_looped(core, self.source, &attrs);
        let out = if looped {
            None
        } else {
            match self.filter.filter(prefix, &attrs) {
                Filtered::Accept => {
                    core.attrs.retain(in_id);
                    Some(in_id)
                }
                Filtered::Replace(a) => Some(core.attrs.intern(a)),
                Filtered::Reject => None,
            }
        };
        if memoize {
            if self.memo.insert(in_id, (out, looped)).is_none()
                && let Some(o) = out
            {
                core.attrs.retain(o);
            }
            self.last = Some((in_id, out, looped));
        }
        (out, looped)
    }

    /// Stores the route `prefix` with received attributes `in_id` (the caller keeps its
    /// own reference) and decides.
    pub fn announce<P: RibPrefix>(&mut self, table: &mut PrefixTable<P>, prefix: P, in_id: AttrId) {
        let (out, looped) = self.import(prefix.into(), in_id);
        let core = &mut *self.core;
        core.attrs.retain(in_id);
        let rec = PathRec {
            attr_in: in_id,
            attr_out: out,
            source: self.source,
            flags: if looped { LOOPED } else { 0 },
        };
        let slot = table.find_or_insert(prefix);
        snapshot(table, core, slot);
        let old = table.upsert(slot, rec);
        if let Some(c) = core.counts_mut(self.source, P::INDEX) {
            count(c, old.as_ref(), Some(&rec));
        }
        if let Some(old) = old {
            release_path(&mut core.attrs, &old);
            if old == rec {
                // A repeated announcement: nothing changed.
                return;
            }
        }
        decide(table, core, slot, &mut self.changes);
    }

    /// Re-runs import for every path of the source from its stored Adj-RIB-In attributes
    /// (soft reconfiguration inbound), deciding where the result changed.
    pub fn reimport<P: RibPrefix>(&mut self, table: &mut PrefixTable<P>) {
        let source = self.source;
        if self
            .core
            .counts_mut(source, P::INDEX)
            .is_none_or(|c| c.received == 0)
        {
            return;
        }
        for slot in 0..table.slot_capacity() {
            let Some(&old) = table.paths(slot).iter().find(|p| p.source == source) else {
                continue;
            };
            let (out, looped) = self.import(table.prefix(slot).into(), old.attr_in);
            let core = &mut *self.core;
            let rec = PathRec {
                attr_out: out,
                flags: (old.flags & !LOOPED) | if looped { LOOPED } else { 0 },
                ..old
            };
            if rec == old {
                // Unchanged: drop the reference `import` took for the id the path holds.
                if let Some(o) = out {
                    core.attrs.release(o);
                }
                continue;
            }
            if let Some(o) = old.attr_out {
                core.attrs.release(o);
            }
            snapshot(table, core, slot);
            table.upsert(slot, rec);
            if let Some(c) = core.counts_mut(source, P::INDEX) {
                count(c, Some(&old), Some(&rec));
            }
            decide(table, core, slot, &mut self.changes);
        }
    }
}
