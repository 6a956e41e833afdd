//! The RIBs of the BGP speaker: Adj-RIBs-In (pre-policy), the Loc-RIB with the decision
//! process and multipath sets, Adj-RIBs-Out, attribute interning, graceful restart
//! helper operations and the change stream the FIB programmer and export consume.
//!
//! Pure data structures: no I/O, no timers. The layer above (the speaker) feeds it the
//! UPDATEs of each peer, applies policy through the [`RouteFilter`] hook (this module
//! does not know policy), and sends what [`Rib::export`] returns.
//!
//! Typical flow for one received UPDATE:
//! ```text
//! let changes = rib.announce(peer, &update_prefixes, attrs, &mut import_filter)?;
//! fib.apply(&changes);                                   // the FIB programmer
//! for p in established_peers {
//!     let adv = rib.export(p, &changes, &mut export_filter_of(p))?;
//!     send_updates(p, adv);
//! }
//! ```
//!
//! Storage: both address families have one prefix table each (module `table`); every prefix
//! holds the paths of all peers with their received (Adj-RIB-In) and accepted (Loc-RIB
//! candidate) attribute ids, best path first. Adj-RIBs-Out are per peer maps from prefix
//! to attribute id.

mod adj_in;
mod adj_out;
pub mod attr_store;
mod best_path;
mod change;
mod filter;
mod loc_rib;
pub mod multipath;
mod peer;
mod prefix;
mod table;

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
};

use bgp_wire::Family;
use hashbrown::HashSet;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub use adj_out::{Advertisements, Announcement};
pub use attr_store::{AttrId, AttrStore, RouteAttrs};
pub use best_path::DecisionOptions;
pub use change::{BestRoute, NextHopMember, RibChange};
pub use filter::{AcceptAll, Filtered, RejectAll, RouteFilter};
pub use loc_rib::PathView;
pub use multipath::MultipathOptions;
pub use peer::{PathSource, PeerConfig, PeerCounts, PeerId, PeerSession};

use adj_in::{Importer, Sweep};
use adj_out::{AdjRibOut, Exporter};
use best_path::Candidate;
use change::ChangeBuilder;
use peer::{PeerState, family_index};
use prefix::RibPrefix;
use table::{PathRec, PrefixTable};

/// RIB-wide configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibConfig {
    /// Our AS.
    pub local_asn: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Route reflection cluster id (RFC 4456); `None`: the router id.
    pub cluster_id: Option<Ipv4Addr>,
    /// LOCAL_PREF assumed for paths without one, and sent to iBGP peers when missing.
    pub default_local_pref: u32,
    /// Decision process options.
    pub decision: DecisionOptions,
    /// Multipath options.
    pub multipath: MultipathOptions,
}

impl RibConfig {
    /// Defaults for AS `local_asn` and identifier `router_id`: LOCAL_PREF 100, MED compared
    /// within a neighbor AS, up to 16 paths from the same neighbor AS.
    pub fn new(local_asn: u32, router_id: Ipv4Addr) -> Self {
        RibConfig {
            local_asn,
            router_id,
            cluster_id: None,
            default_local_pref: 100,
            decision: DecisionOptions::default(),
            multipath: MultipathOptions::default(),
        }
    }
}

/// Errors of RIB operations: all are caller mistakes, none comes from a peer's data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    /// No peer has this id.
    #[error("no peer with id {0}")]
    UnknownPeer(u16),
    /// A peer with this address is configured already.
    #[error("a peer with address {0} is configured already")]
    DuplicatePeer(IpAddr),
    /// The RIB keeps IPv4 and IPv6 unicast only.
    #[error("address family {0} is not supported (IPv4 and IPv6 unicast are)")]
    UnsupportedFamily(Family),
    /// Export needs an established session.
    #[error("peer {0} has no established session")]
    NotEstablished(u16),
    /// A peer's address or AS cannot be changed in place.
    #[error("peer {0}: address and AS cannot change; remove the peer and add it again")]
    PeerIdentityChanged(u16),
    /// Peer ids are 16 bits.
    #[error("too many peers (at most 65535)")]
    TooManyPeers,
}

/// Reusable buffers of the decision process, so that deciding allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    cands: Vec<Candidate>,
    selected: Vec<usize>,
    order: Vec<usize>,
    paths: Vec<PathRec>,
    old: Vec<(u16, Option<AttrId>)>,
    members: Vec<NextHopMember>,
}

/// Everything but the prefix tables: split from them so that the generic code can hold
/// one table and the rest mutably at once.
#[derive(Debug)]
pub(crate) struct Core {
    config: RibConfig,
    attrs: AttrStore,
    /// Indexed by raw source: slot 0 (local) is always `None`.
    peers: Vec<Option<PeerState>>,
    local_counts: [PeerCounts; 2],
    /// Next hops the speaker reported unreachable; every other one is reachable.
    unreachable: HashSet<IpAddr>,
    scratch: Scratch,
}

impl Core {
    fn peer_raw(&self, raw: u16) -> Option<&PeerState> {
        self.peers.get(usize::from(raw)).and_then(Option::as_ref)
    }

    fn counts_mut(&mut self, raw: u16, family: usize) -> Option<&mut PeerCounts> {
        if raw == 0 {
            return self.local_counts.get_mut(family);
        }
        self.peers
            .get_mut(usize::from(raw))
            .and_then(Option::as_mut)
            .and_then(|p| p.counts.get_mut(family))
    }

    fn cluster_id(&self) -> Ipv4Addr {
        self.config.cluster_id.unwrap_or(self.config.router_id)
    }
}

/// One family's prefix table and Adj-RIBs-Out (indexed by raw peer id).
#[derive(Debug)]
struct FamilyRib<P> {
    table: PrefixTable<P>,
    adj_out: Vec<AdjRibOut<P>>,
}

impl<P: RibPrefix> Default for FamilyRib<P> {
    fn default() -> Self {
        FamilyRib {
            table: PrefixTable::default(),
            adj_out: Vec::new(),
        }
    }
}

impl<P: RibPrefix> FamilyRib<P> {
    fn adj_out_mut(&mut self, raw: u16) -> &mut AdjRibOut<P> {
        let i = usize::from(raw);
        if self.adj_out.len() <= i {
            self.adj_out.resize_with(i + 1, AdjRibOut::default);
        }
        &mut self.adj_out[i]
    }
}

/// A stream of routes with their attributes (Adj-RIB-In or Adj-RIB-Out contents).
pub type RouteIter<'a> = Box<dyn Iterator<Item = (IpNet, Arc<RouteAttrs>)> + 'a>;

/// The RIBs.
#[derive(Debug)]
pub struct Rib {
    core: Core,
    v4: FamilyRib<Ipv4Net>,
    v6: FamilyRib<Ipv6Net>,
}

/// Calls `$body` with `$fam` bound to the family RIB of `$family` (IPv4 or IPv6
/// unicast) and `$core` to the core; evaluates to `Err(UnsupportedFamily)` otherwise.
macro_rules! with_family {
    ($self:ident, $family:expr, |$fam:ident, $core:ident| $body:expr) => {{
        let family: Family = $family;
        if family == Family::IPV4_UNICAST {
            let ($fam, $core) = (&mut $self.v4, &mut $self.core);
            Ok($body)
        } else if family == Family::IPV6_UNICAST {
            let ($fam, $core) = (&mut $self.v6, &mut $self.core);
            Ok($body)
        } else {
            Err(RibError::UnsupportedFamily(family))
        }
    }};
}

impl Rib {
    /// An empty RIB.
    pub fn new(config: RibConfig) -> Self {
        Rib {
            core: Core {
                config,
                attrs: AttrStore::new(),
                peers: vec![None],
                local_counts: [PeerCounts::default(); 2],
                unreachable: HashSet::new(),
                scratch: Scratch::default(),
            },
            v4: FamilyRib::default(),
            v6: FamilyRib::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RibConfig {
        &self.core.config
    }

    /// The attribute store (for statistics and tests).
    pub fn attr_store(&self) -> &AttrStore {
        &self.core.attrs
    }

    /// Changes the decision and multipath options and re-runs the decision everywhere.
    pub fn set_options(
        &mut self,
        decision: DecisionOptions,
        multipath: MultipathOptions,
    ) -> Vec<RibChange> {
        self.core.config.decision = decision;
        self.core.config.multipath = multipath;
        let mut changes = ChangeBuilder::default();
        decide_all(&mut self.v4.table, &mut self.core, &mut changes, |_| true);
        decide_all(&mut self.v6.table, &mut self.core, &mut changes, |_| true);
        changes.finish()
    }

    // ---- peers ----

    /// Adds a peer; its routes are accepted once it is established.
    pub fn add_peer(&mut self, config: PeerConfig) -> Result<PeerId, RibError> {
        if self
            .core
            .peers
            .iter()
            .flatten()
            .any(|p| p.config.address == config.address)
        {
            return Err(RibError::DuplicatePeer(config.address));
        }
        let state = PeerState::new(config, self.core.config.local_asn);
        let free = self
            .core
            .peers
            .iter()
            .skip(1)
            .position(Option::is_none)
            .map(|i| i + 1);
        let raw = match free {
            Some(i) => i,
            None => {
                self.core.peers.push(None);
                self.core.peers.len() - 1
            }
        };
        let id = u16::try_from(raw).map_err(|_| RibError::TooManyPeers)?;
        self.core.peers[raw] = Some(state);
        Ok(PeerId(id))
    }

    /// The configuration of a peer.
    pub fn peer_config(&self, peer: PeerId) -> Result<&PeerConfig, RibError> {
        Ok(&self.peer(peer)?.config)
    }

    /// Whether a peer is eBGP (its AS differs from ours).
    pub fn is_ebgp(&self, peer: PeerId) -> Result<bool, RibError> {
        Ok(self.peer(peer)?.ebgp)
    }

    /// Replaces a peer's options. Address and AS cannot change this way (remove the peer
    /// and add it again). Routes already received are not re-examined: call
    /// [`Rib::reimport`] and [`Rib::export_all`] as needed.
    pub fn update_peer_config(&mut self, peer: PeerId, config: PeerConfig) -> Result<(), RibError> {
        let p = self.peer_mut(peer)?;
        if p.config.address != config.address || p.config.remote_asn != config.remote_asn {
            return Err(RibError::PeerIdentityChanged(peer.0));
        }
        p.config = config;
        Ok(())
    }

    /// Removes a peer with its routes; its id may be reused.
    pub fn remove_peer(&mut self, peer: PeerId) -> Result<Vec<RibChange>, RibError> {
        let changes = self.peer_down(peer, &[])?;
        self.core.peers[usize::from(peer.0)] = None;
        Ok(changes)
    }

    /// Records an established session: its router id and negotiated families. Stale
    /// routes stay stale until re-announced or swept.
    pub fn peer_up(&mut self, peer: PeerId, session: PeerSession) -> Result<(), RibError> {
        let p = self.peer_mut(peer)?;
        p.router_id = session.router_id;
        p.session = Some(session);
        Ok(())
    }

    /// The session went down. Routes of the families in `graceful` (those the peer's
    /// graceful restart capability listed with state preserved) are kept and marked stale;
    /// all others are removed. The Adj-RIBs-Out of the peer are emptied.
    pub fn peer_down(
        &mut self,
        peer: PeerId,
        graceful: &[Family],
    ) -> Result<Vec<RibChange>, RibError> {
        self.peer_mut(peer)?.session = None;
        let mut changes = ChangeBuilder::default();
        for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            with_family!(self, family, |fam, core| {
                if graceful.contains(&family) {
                    adj_in::mark_stale(&mut fam.table, core, peer.0, &mut changes);
                } else {
                    adj_in::remove_paths(&mut fam.table, core, peer.0, Sweep::All, &mut changes);
                }
                adj_out::clear(fam.adj_out_mut(peer.0), core);
            })?;
        }
        self.update_advertised(peer);
        Ok(changes.finish())
    }

    /// Marks the routes of `peer` in `families` stale (graceful restart helper).
    pub fn mark_stale(
        &mut self,
        peer: PeerId,
        families: &[Family],
    ) -> Result<Vec<RibChange>, RibError> {
        self.peer(peer)?;
        let mut changes = ChangeBuilder::default();
        for &family in families {
            with_family!(self, family, |fam, core| {
                adj_in::mark_stale(&mut fam.table, core, peer.0, &mut changes)
            })?;
        }
        Ok(changes.finish())
    }

    /// Removes the routes of `peer` in `family` that are still stale (End-of-RIB received
    /// or restart timer expired).
    pub fn sweep_stale(
        &mut self,
        peer: PeerId,
        family: Family,
    ) -> Result<Vec<RibChange>, RibError> {
        self.peer(peer)?;
        let mut changes = ChangeBuilder::default();
        with_family!(self, family, |fam, core| {
            adj_in::remove_paths(&mut fam.table, core, peer.0, Sweep::Stale, &mut changes)
        })?;
        Ok(changes.finish())
    }

    // ---- routes in ----

    /// Stores routes received from `peer` with the same attributes (one UPDATE's NLRI or
    /// MP_REACH_NLRI) in its Adj-RIB-In, runs the loop checks and `import` on them, and
    /// decides. A LOCAL_PREF received from an eBGP peer is dropped (RFC 4271 5.1.5).
    pub fn announce(
        &mut self,
        peer: PeerId,
        prefixes: &[IpNet],
        mut attrs: RouteAttrs,
        import: &mut dyn RouteFilter,
    ) -> Result<Vec<RibChange>, RibError> {
        if self.peer(peer)?.ebgp {
            attrs.path.local_pref = None;
        }
        Ok(self.store(peer.0, prefixes, attrs, import))
    }

    /// Removes routes of `peer` (withdrawn, or RFC 7606 treat-as-withdraw).
    pub fn withdraw(
        &mut self,
        peer: PeerId,
        prefixes: &[IpNet],
    ) -> Result<Vec<RibChange>, RibError> {
        self.peer(peer)?;
        Ok(self.remove(peer.0, prefixes))
    }

    /// Re-runs import for the routes of `peer` in `family` from its Adj-RIB-In (soft
    /// reconfiguration after an import policy or peer option change).
    pub fn reimport(
        &mut self,
        peer: PeerId,
        family: Family,
        import: &mut dyn RouteFilter,
    ) -> Result<Vec<RibChange>, RibError> {
        self.peer(peer)?;
        let mut importer = Importer::new(&mut self.core, peer.0, import);
        if family == Family::IPV4_UNICAST {
            importer.reimport(&mut self.v4.table);
        } else if family == Family::IPV6_UNICAST {
            importer.reimport(&mut self.v6.table);
        } else {
            importer.finish();
            return Err(RibError::UnsupportedFamily(family));
        }
        Ok(importer.finish())
    }

    /// Originates local routes (pod routes, statics, aggregates): they beat learned
    /// routes in the decision process. The next hop in `attrs` is what the FIB gets; on
    /// export it is replaced by our session address.
    pub fn originate(&mut self, prefixes: &[IpNet], attrs: RouteAttrs) -> Vec<RibChange> {
        self.store(0, prefixes, attrs, &mut AcceptAll)
    }

    /// Removes local routes.
    pub fn withdraw_local(&mut self, prefixes: &[IpNet]) -> Vec<RibChange> {
        self.remove(0, prefixes)
    }

    fn store(
        &mut self,
        source: u16,
        prefixes: &[IpNet],
        attrs: RouteAttrs,
        import: &mut dyn RouteFilter,
    ) -> Vec<RibChange> {
        let in_id = self.core.attrs.intern(attrs);
        let mut importer = Importer::new(&mut self.core, source, import);
        for p in prefixes {
            match p.trunc() {
                IpNet::V4(n) => importer.announce(&mut self.v4.table, n, in_id),
                IpNet::V6(n) => importer.announce(&mut self.v6.table, n, in_id),
            }
        }
        let changes = importer.finish();
        self.core.attrs.release(in_id);
        changes
    }

    fn remove(&mut self, source: u16, prefixes: &[IpNet]) -> Vec<RibChange> {
        let mut changes = ChangeBuilder::default();
        for p in prefixes {
            match p.trunc() {
                IpNet::V4(n) => {
                    adj_in::withdraw(&mut self.v4.table, &mut self.core, source, n, &mut changes)
                }
                IpNet::V6(n) => {
                    adj_in::withdraw(&mut self.v6.table, &mut self.core, source, n, &mut changes)
                }
            }
        }
        changes.finish()
    }

    /// Tells the RIB whether a next hop is reachable (resolvable). All next hops are
    /// reachable until said otherwise; paths through an unreachable one are not eligible
    /// (RFC 4271 9.1.2.1). Local routes are never affected.
    pub fn set_next_hop_reachable(&mut self, next_hop: IpAddr, reachable: bool) -> Vec<RibChange> {
        let changed = if reachable {
            self.core.unreachable.remove(&next_hop)
        } else {
            self.core.unreachable.insert(next_hop)
        };
        let mut changes = ChangeBuilder::default();
        if !changed {
            return changes.finish();
        }
        let ids: HashSet<AttrId> = self
            .core
            .attrs
            .ids_with_next_hop(next_hop)
            .into_iter()
            .collect();
        if !ids.is_empty() {
            let uses = |paths: &[PathRec]| {
                paths
                    .iter()
                    .any(|p| p.source != 0 && p.attr_out.is_some_and(|o| ids.contains(&o)))
            };
            decide_all(&mut self.v4.table, &mut self.core, &mut changes, uses);
            decide_all(&mut self.v6.table, &mut self.core, &mut changes, uses);
        }
        changes.finish()
    }

    // ---- routes out ----

    /// Brings the Adj-RIB-Out of `peer` up to date for the prefixes of `changes` (from
    /// any RIB operation) and returns what to send. The current Loc-RIB is read, so
    /// changes may be exported late or twice without harm. Families the session did not
    /// negotiate are skipped.
    pub fn export(
        &mut self,
        peer: PeerId,
        changes: &[RibChange],
        export: &mut dyn RouteFilter,
    ) -> Result<Advertisements, RibError> {
        let families = self.established_families(peer)?;
        let (v4_on, v6_on) = (
            families.contains(&Family::IPV4_UNICAST),
            families.contains(&Family::IPV6_UNICAST),
        );
        // The Adj-RIB-Out maps are taken out so that the exporter can hold the core.
        let mut out4 = std::mem::take(self.v4.adj_out_mut(peer.0));
        let mut out6 = std::mem::take(self.v6.adj_out_mut(peer.0));
        let mut exporter = Exporter::new(&mut self.core, peer.0, export);
        for c in changes {
            match c.prefix.trunc() {
                IpNet::V4(n) if v4_on => {
                    exporter.export_prefix(&self.v4.table, &mut out4, n, c.slot)
                }
                IpNet::V6(n) if v6_on => {
                    exporter.export_prefix(&self.v6.table, &mut out6, n, c.slot)
                }
                _ => {}
            }
        }
        let adv = exporter.finish();
        *self.v4.adj_out_mut(peer.0) = out4;
        *self.v6.adj_out_mut(peer.0) = out6;
        self.update_advertised(peer);
        Ok(adv)
    }

    /// Exports the whole Loc-RIB of `family` to `peer` (session established, export
    /// policy changed): announces what differs from its Adj-RIB-Out and withdraws what
    /// should no longer be advertised.
    pub fn export_all(
        &mut self,
        peer: PeerId,
        family: Family,
        export: &mut dyn RouteFilter,
    ) -> Result<Advertisements, RibError> {
        let families = self.established_families(peer)?;
        if !families.contains(&family) {
            return Ok(Advertisements::default());
        }
        let adv = with_family!(self, family, |fam, core| {
            let mut out = std::mem::take(fam.adj_out_mut(peer.0));
            let mut exporter = Exporter::new(core, peer.0, export);
            exporter.export_table(&fam.table, &mut out);
            let adv = exporter.finish();
            *fam.adj_out_mut(peer.0) = out;
            adv
        })?;
        self.update_advertised(peer);
        Ok(adv)
    }

    /// Everything advertised to `peer` in `family`, to send again (route refresh).
    pub fn resend(&mut self, peer: PeerId, family: Family) -> Result<Advertisements, RibError> {
        self.established_families(peer)?;
        with_family!(self, family, |fam, core| {
            let out = std::mem::take(fam.adj_out_mut(peer.0));
            let mut accept = AcceptAll;
            let mut exporter = Exporter::new(core, peer.0, &mut accept);
            exporter.resend(&out);
            let adv = exporter.finish();
            *fam.adj_out_mut(peer.0) = out;
            adv
        })
    }

    fn established_families(&self, peer: PeerId) -> Result<Vec<Family>, RibError> {
        self.peer(peer)?
            .session
            .as_ref()
            .map(|s| s.families.clone())
            .ok_or(RibError::NotEstablished(peer.0))
    }

    fn update_advertised(&mut self, peer: PeerId) {
        let n4 = self.v4.adj_out_mut(peer.0).len();
        let n6 = self.v6.adj_out_mut(peer.0).len();
        if let Ok(p) = self.peer_mut(peer) {
            p.counts[0].advertised = n4;
            p.counts[1].advertised = n6;
        }
    }

    // ---- observability ----

    /// Route counts of `peer` in `family`.
    pub fn peer_counts(&self, peer: PeerId, family: Family) -> Result<PeerCounts, RibError> {
        let i = family_index(family).ok_or(RibError::UnsupportedFamily(family))?;
        Ok(self.peer(peer)?.counts[i])
    }

    /// Counts of locally originated routes in `family` (`advertised` is unused).
    pub fn local_counts(&self, family: Family) -> Result<PeerCounts, RibError> {
        let i = family_index(family).ok_or(RibError::UnsupportedFamily(family))?;
        Ok(self.core.local_counts[i])
    }

    /// Number of prefixes with at least one path (received or local) in `family`.
    pub fn prefix_count(&self, family: Family) -> usize {
        if family == Family::IPV4_UNICAST {
            self.v4.table.len()
        } else if family == Family::IPV6_UNICAST {
            self.v6.table.len()
        } else {
            0
        }
    }

    /// All paths of exactly `prefix`, best first, then the other multipath members.
    pub fn paths(&self, prefix: IpNet) -> Vec<PathView> {
        match prefix.trunc() {
            IpNet::V4(n) => self
                .v4
                .table
                .find(&n)
                .map(|s| loc_rib::path_views(&self.v4.table, &self.core, s)),
            IpNet::V6(n) => self
                .v6
                .table
                .find(&n)
                .map(|s| loc_rib::path_views(&self.v6.table, &self.core, s)),
        }
        .unwrap_or_default()
    }

    /// The Loc-RIB route of exactly `prefix`.
    pub fn best(&self, prefix: IpNet) -> Option<BestRoute> {
        fn best_of<P: RibPrefix>(t: &PrefixTable<P>, core: &Core, prefix: P) -> Option<BestRoute> {
            let slot = t.find(&prefix)?;
            loc_rib::best_route(
                t,
                core,
                slot,
                &mut ChangeBuilder::default(),
                &mut Vec::new(),
            )
        }
        match prefix.trunc() {
            IpNet::V4(n) => best_of(&self.v4.table, &self.core, n),
            IpNet::V6(n) => best_of(&self.v6.table, &self.core, n),
        }
    }

    /// From now on, queues every prefix whose Loc-RIB state changes for the FIB
    /// programmer, to be taken with [`Rib::take_fib_changes`]. A prefix is queued once
    /// however often it changes before it is taken, and a withdrawn one keeps its place
    /// in the table until then: the queue never outgrows the table, where keeping the
    /// changes themselves until the FIB could take them grew with the churn.
    pub fn track_fib_changes(&mut self) {
        self.v4.table.track_fib();
        self.v6.table.track_fib();
    }

    /// Prefixes queued for the FIB (see [`Rib::track_fib_changes`]).
    pub fn fib_pending(&self) -> usize {
        self.v4.table.fib_queued() + self.v6.table.fib_queued()
    }

    /// Up to `max` of the prefixes queued for the FIB, oldest first (IPv4 before IPv6),
    /// each with its Loc-RIB state now (`best: None`: withdrawn). Equal multipath sets
    /// are shared.
    pub fn take_fib_changes(&mut self, max: usize) -> Vec<RibChange> {
        fn take<P: RibPrefix>(
            table: &mut PrefixTable<P>,
            core: &Core,
            max: usize,
            sets: &mut ChangeBuilder,
            out: &mut Vec<RibChange>,
        ) {
            let mut members = Vec::new();
            while out.len() < max {
                let Some(slot) = table.pop_fib_dirty() else {
                    return;
                };
                let best = loc_rib::best_route(table, core, slot, sets, &mut members);
                out.push(RibChange {
                    prefix: table.prefix(slot).into(),
                    best,
                    slot,
                });
                table.remove_if_empty(slot);
            }
        }
        let (mut sets, mut out) = (ChangeBuilder::default(), Vec::new());
        take(&mut self.v4.table, &self.core, max, &mut sets, &mut out);
        take(&mut self.v6.table, &self.core, max, &mut sets, &mut out);
        out
    }

    /// The longest prefix in the Loc-RIB that covers `prefix` (an address is a /32 or
    /// /128), for `show routes PREFIX`.
    pub fn longest_match(&self, prefix: IpNet) -> Option<(IpNet, BestRoute)> {
        let found = match prefix.trunc() {
            IpNet::V4(n) => lpm_loc_rib(&self.v4.table, n).map(IpNet::V4),
            IpNet::V6(n) => lpm_loc_rib(&self.v6.table, n).map(IpNet::V6),
        }?;
        Some((found, self.best(found)?))
    }

    /// Every Loc-RIB route of `family`, streamed in no particular order (an unsupported
    /// family has none). Routes with equal multipath sets share one set.
    pub fn loc_rib(&self, family: Family) -> Box<dyn Iterator<Item = (IpNet, BestRoute)> + '_> {
        fn iter<'a, P: RibPrefix>(
            t: &'a PrefixTable<P>,
            core: &'a Core,
        ) -> Box<dyn Iterator<Item = (IpNet, BestRoute)> + 'a> {
            let (mut sets, mut members) = (ChangeBuilder::default(), Vec::new());
            Box::new(t.slot_ids().filter_map(move |s| {
                let b = loc_rib::best_route(t, core, s, &mut sets, &mut members)?;
                Some((t.prefix(s).into(), b))
            }))
        }
        if family == Family::IPV4_UNICAST {
            iter(&self.v4.table, &self.core)
        } else if family == Family::IPV6_UNICAST {
            iter(&self.v6.table, &self.core)
        } else {
            Box::new(std::iter::empty())
        }
    }

    /// The Adj-RIB-In of `peer` in `family`, streamed: attributes as received, before
    /// policy.
    pub fn adj_rib_in(&self, peer: PeerId, family: Family) -> Result<RouteIter<'_>, RibError> {
        self.peer(peer)?;
        fn iter<'a, P: RibPrefix>(
            t: &'a PrefixTable<P>,
            core: &'a Core,
            raw: u16,
        ) -> RouteIter<'a> {
            Box::new(t.slot_ids().filter_map(move |s| {
                let p = t.paths(s).iter().find(|p| p.source == raw)?;
                Some((t.prefix(s).into(), core.attrs.get(p.attr_in).clone()))
            }))
        }
        if family == Family::IPV4_UNICAST {
            Ok(iter(&self.v4.table, &self.core, peer.0))
        } else if family == Family::IPV6_UNICAST {
            Ok(iter(&self.v6.table, &self.core, peer.0))
        } else {
            Err(RibError::UnsupportedFamily(family))
        }
    }

    /// The Adj-RIB-Out of `peer` in `family`, streamed: what was advertised.
    pub fn adj_rib_out(&self, peer: PeerId, family: Family) -> Result<RouteIter<'_>, RibError> {
        self.peer(peer)?;
        fn iter<'a, P: RibPrefix>(f: &'a FamilyRib<P>, core: &'a Core, raw: u16) -> RouteIter<'a> {
            match f.adj_out.get(usize::from(raw)) {
                Some(m) => Box::new(
                    m.iter()
                        .map(|(p, id)| ((*p).into(), core.attrs.get(*id).clone())),
                ),
                None => Box::new(std::iter::empty()),
            }
        }
        if family == Family::IPV4_UNICAST {
            Ok(iter(&self.v4, &self.core, peer.0))
        } else if family == Family::IPV6_UNICAST {
            Ok(iter(&self.v6, &self.core, peer.0))
        } else {
            Err(RibError::UnsupportedFamily(family))
        }
    }

    fn peer(&self, peer: PeerId) -> Result<&PeerState, RibError> {
        if peer.0 == 0 {
            return Err(RibError::UnknownPeer(0));
        }
        self.core
            .peer_raw(peer.0)
            .ok_or(RibError::UnknownPeer(peer.0))
    }

    fn peer_mut(&mut self, peer: PeerId) -> Result<&mut PeerState, RibError> {
        if peer.0 == 0 {
            return Err(RibError::UnknownPeer(0));
        }
        self.core
            .peers
            .get_mut(usize::from(peer.0))
            .and_then(Option::as_mut)
            .ok_or(RibError::UnknownPeer(peer.0))
    }
}

/// Re-runs the decision on every prefix whose paths satisfy `touch`.
fn decide_all<P: RibPrefix>(
    table: &mut PrefixTable<P>,
    core: &mut Core,
    changes: &mut ChangeBuilder,
    touch: impl Fn(&[PathRec]) -> bool,
) {
    for slot in 0..table.slot_capacity() {
        let paths = table.paths(slot);
        if !paths.is_empty() && touch(paths) {
            loc_rib::snapshot(table, core, slot);
            loc_rib::decide(table, core, slot, changes);
        }
    }
}

/// Longest-prefix match among prefixes that have a best path.
fn lpm_loc_rib<P: RibPrefix>(table: &PrefixTable<P>, prefix: P) -> Option<P> {
    let mut len = prefix.len();
    loop {
        let probe = prefix.shortened(len);
        let slot = table.longest_match(&probe)?;
        let found = table.prefix(slot);
        if table.mp(slot) > 0 {
            return Some(found);
        }
        // A prefix whose paths are all rejected: look at shorter ones.
        len = found.len().checked_sub(1)?;
    }
}

#[cfg(test)]
mod tests;
