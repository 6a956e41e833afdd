//! The Adj-RIBs-Out: what was advertised to each peer, and the export step that decides
//! what should be, so that a change produces only the UPDATEs that differ and a route
//! refresh can resend everything.
//!
//! Export of the best path of a prefix to peer T, in order:
//! 1. rules (RFC 4271, RFC 1997, RFC 4456): never back to the peer it came from (for
//!    eBGP too: the peer would drop it by its AS loop check anyway); NO_ADVERTISE to
//!    nobody; NO_EXPORT and NO_EXPORT_SUBCONFED not to eBGP peers; iBGP-learned routes
//!    to iBGP peers only by reflection: from a client to everyone, from a non-client to
//!    clients only (without clients, the full-mesh rule: not at all);
//! 2. rewriting before policy: to eBGP, LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST are
//!    removed, and a learned MED too unless the peer has `send_med`; when reflecting,
//!    ORIGINATOR_ID is set (if absent) and our cluster id prepended to CLUSTER_LIST;
//!    optional non-transitive attributes we do not know are dropped;
//! 3. the export filter (policy);
//! 4. rewriting after policy: to eBGP, our AS prepended, the next hop set to our
//!    session address, and LOCAL_PREF and the reflection attributes removed even if
//!    policy set them; to iBGP, LOCAL_PREF set to the default if missing and the next hop
//!    set to ours for local routes or with `next_hop_self`.

use std::sync::Arc;

use hashbrown::{HashMap, hash_map::Entry};
use ipnet::IpNet;

use bgp_wire::{Community, Family};

use super::{
    Core,
    attr_store::{AttrId, RouteAttrs},
    filter::{Filtered, RouteFilter},
    prefix::RibPrefix,
    table::PrefixTable,
};

/// What one peer was sent for one family.
pub(crate) type AdjRibOut<P> = HashMap<P, AttrId>;

/// Routes with one attribute set, to be sent in as few UPDATEs as fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The attributes, next hop included ([`RouteAttrs::to_wire`] gives the wire form).
    pub attrs: Arc<RouteAttrs>,
    /// The prefixes.
    pub prefixes: Vec<IpNet>,
}

/// The UPDATEs an export produced for one peer: withdrawals and announcements grouped by
/// attribute set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertisements {
    /// Prefixes to withdraw.
    pub withdraw: Vec<IpNet>,
    /// Prefixes to announce, grouped by attributes.
    pub announce: Vec<Announcement>,
}

impl Advertisements {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.withdraw.is_empty() && self.announce.is_empty()
    }

    /// Number of prefixes announced.
    pub fn announced(&self) -> usize {
        self.announce.iter().map(|a| a.prefixes.len()).sum()
    }
}

/// Builds [`Advertisements`], grouping announcements by attribute id.
#[derive(Debug, Default)]
pub(crate) struct AdvertisementBuilder {
    out: Advertisements,
    groups: HashMap<AttrId, usize>,
}

impl AdvertisementBuilder {
    pub fn withdraw(&mut self, prefix: IpNet) {
        self.out.withdraw.push(prefix);
    }

    pub fn announce(&mut self, core: &Core, id: AttrId, prefix: IpNet) {
        let announce = &mut self.out.announce;
        let i = *self.groups.entry(id).or_insert_with(|| {
            announce.push(Announcement {
                attrs: core.attrs.get(id).clone(),
                prefixes: Vec::new(),
            });
            announce.len() - 1
        });
        if let Some(a) = announce.get_mut(i) {
            a.prefixes.push(prefix);
        }
    }

    pub fn finish(self) -> Advertisements {
        self.out
    }
}

/// One export run towards one peer: the Adj-RIB-Out updates and what must be sent.
pub(crate) struct Exporter<'a> {
    core: &'a mut Core,
    target: u16,
    filter: &'a mut dyn RouteFilter,
    /// Export results by (family, source, Loc-RIB attribute id), for filters that do not
    /// depend on the prefix (the family matters: it picks our next hop). Holds a reference
    /// on every id it remembers.
    memo: HashMap<(Family, u16, AttrId), Option<AttrId>>,
    /// The memo's entry used last (consecutive routes mostly share attributes).
    last: Option<((Family, u16, AttrId), Option<AttrId>)>,
    out: AdvertisementBuilder,
}

impl<'a> Exporter<'a> {
    pub fn new(core: &'a mut Core, target: u16, filter: &'a mut dyn RouteFilter) -> Self {
        Exporter {
            core,
            target,
            filter,
            memo: HashMap::new(),
            last: None,
            out: AdvertisementBuilder::default(),
        }
    }

    /// The advertisements; drops the memo's references.
    pub fn finish(self) -> Advertisements {
        for id in self.memo.into_values().flatten() {
            self.core.attrs.release(id);
        }
        self.out.finish()
    }

    /// The attribute id to advertise for the best path (`source`, `best_id`) of `prefix`,
    /// with a reference taken; `None` when nothing should be advertised.
    fn export_attrs(
        &mut self,
        prefix: IpNet,
        family: Family,
        source: u16,
        best_id: AttrId,
    ) -> Option<AttrId> {
        let memoize = self.filter.prefix_independent();
        let key = (family, source, best_id);
        if memoize {
            let hit = match self.last {
                Some((k, out)) if k == key => Some(out),
                _ => self.memo.get(&key).copied(),
            };
            if let Some(out) = hit {
                if let Some(o) = out {
                    self.core.attrs.retain(o);
                }
                self.last = Some((key, out));
                return out;
            }
        }
        let core = &mut *self.core;
        let best = core.attrs.get(best_id).clone();
        let out = before_policy(core, self.target, source, &best)
            .and_then(|pre| match self.filter.filter(prefix, &pre) {
                Filtered::Accept => Some(pre),
                Filtered::Replace(a) => Some(a),
                Filtered::Reject => None,
            })
            .and_then(|a| after_policy(core, self.target, source, family, a))
            .map(|a| core.attrs.intern(a));
        if memoize {
            if let Some(o) = out {
                core.attrs.retain(o);
            }
            self.memo.insert(key, out);
            self.last = Some((key, out));
        }
        out
    }

    /// Brings the Adj-RIB-Out entry of `prefix` in line with the Loc-RIB, recording what
    /// must be sent.
    pub fn export_prefix<P: RibPrefix>(
        &mut self,
        table: &PrefixTable<P>,
        adj_out: &mut AdjRibOut<P>,
        prefix: P,
        hint: u32,
    ) {
        let best = table
            .find_hinted(&prefix, hint)
            .and_then(|slot| best_of(table, slot));
        self.export_best(adj_out, prefix, best);
    }

    /// Brings the Adj-RIB-Out entry of `prefix` in line with its best path (source,
    /// Loc-RIB attribute id).
    fn export_best<P: RibPrefix>(
        &mut self,
        adj_out: &mut AdjRibOut<P>,
        prefix: P,
        best: Option<(u16, AttrId)>,
    ) {
        // Never back to its source (as `before_policy` says, without the memo lookup: a
        // table from one peer is mostly exported to that peer's session for nothing).
        let desired = best
            .filter(|&(source, _)| source != self.target)
            .and_then(|(source, id)| self.export_attrs(prefix.into(), P::FAMILY, source, id));
        if desired.is_none() && adj_out.is_empty() {
            return;
        }
        let core = &mut *self.core;
        let old = match (desired, adj_out.entry(prefix)) {
            (Some(d), Entry::Occupied(mut e)) => {
                if *e.get() == d {
                    core.attrs.release(d);
                    return;
                }
                self.out.announce(core, d, prefix.into());
                Some(e.insert(d))
            }
            (Some(d), Entry::Vacant(e)) => {
                e.insert(d);
                self.out.announce(core, d, prefix.into());
                None
            }
            (None, Entry::Occupied(e)) => {
                self.out.withdraw(prefix.into());
                Some(e.remove())
            }
            (None, Entry::Vacant(_)) => None,
        };
        if let Some(o) = old {
            core.attrs.release(o);
        }
    }

    /// Exports the whole Loc-RIB (session up, export policy changed), then withdraws what
    /// is advertised but no longer in the Loc-RIB.
    pub fn export_table<P: RibPrefix>(
        &mut self,
        table: &PrefixTable<P>,
        adj_out: &mut AdjRibOut<P>,
    ) {
        for slot in table.slot_ids() {
            if let Some(best) = best_of(table, slot) {
                self.export_best(adj_out, table.prefix(slot), Some(best));
            }
        }
        let gone: Vec<P> = adj_out
            .keys()
            .filter(|p| table.find(p).is_none_or(|s| table.mp(s) == 0))
            .copied()
            .collect();
        for p in gone {
            if let Some(id) = adj_out.remove(&p) {
                self.core.attrs.release(id);
                self.out.withdraw(p.into());
            }
        }
    }

    /// Everything in the Adj-RIB-Out, to resend (route refresh).
    pub fn resend<P: RibPrefix>(&mut self, adj_out: &AdjRibOut<P>) {
        for (p, &id) in adj_out {
            self.out.announce(self.core, id, (*p).into());
        }
    }
}

/// The best path of `slot`: (source, Loc-RIB attribute id).
fn best_of<P: RibPrefix>(table: &PrefixTable<P>, slot: u32) -> Option<(u16, AttrId)> {
    let p = table.paths(slot).first().filter(|_| table.mp(slot) > 0)?;
    Some((p.source, p.attr_out?))
}

/// Steps 1 and 2 for the best path (`source`, `attrs`) towards `target`.
fn before_policy(core: &Core, target: u16, source: u16, attrs: &RouteAttrs) -> Option<RouteAttrs> {
    if source == target {
        return None;
    }
    let to = core.peer_raw(target)?;
    let from = core.peer_raw(source);
    let comms = &attrs.path.communities;
    if comms.contains(&Community::NO_ADVERTISE) {
        return None;
    }
    if to.ebgp
        && (comms.contains(&Community::NO_EXPORT)
            || comms.contains(&Community::NO_EXPORT_SUBCONFED))
    {
        return None;
    }
    let reflect = !to.ebgp && from.is_some_and(|f| !f.ebgp);
    if reflect && !from.is_some_and(|f| f.config.rr_client) && !to.config.rr_client {
        return None;
    }
    let mut out = attrs.clone();
    out.path
        .unknown
        .retain(|a| !a.flags.optional() || a.flags.transitive());
    if to.ebgp {
        out.path.local_pref = None;
        out.path.originator_id = None;
        out.path.cluster_list.clear();
        if from.is_some() && !to.config.send_med {
            out.path.med = None;
        }
    } else if let (true, Some(from)) = (reflect, from) {
        out.path.originator_id.get_or_insert(from.router_id);
        out.path.cluster_list.insert(0, core.cluster_id());
    }
    Some(out)
}

/// Step 4.
fn after_policy(
    core: &Core,
    target: u16,
    source: u16,
    family: Family,
    mut attrs: RouteAttrs,
) -> Option<RouteAttrs> {
    let to = core.peer_raw(target)?;
    let own = to.session.as_ref()?.next_hop_self(family);
    if to.ebgp {
        // Never sent to eBGP peers, whatever policy set.
        attrs.path.local_pref = None;
        attrs.path.originator_id = None;
        attrs.path.cluster_list.clear();
        attrs.path.as_path.prepend(core.config.local_asn, 1);
        attrs.next_hop = own?;
    } else {
        attrs
            .path
            .local_pref
            .get_or_insert(core.config.default_local_pref);
        if source == 0 || to.config.next_hop_self {
            attrs.next_hop = own?;
        }
    }
    Some(attrs)
}

/// Empties an Adj-RIB-Out (session down), dropping its references.
pub(crate) fn clear<P: RibPrefix>(adj_out: &mut AdjRibOut<P>, core: &mut Core) {
    for (_, id) in adj_out.drain() {
        core.attrs.release(id);
    }
}
