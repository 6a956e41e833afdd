//! The Loc-RIB change stream: what the FIB programmer and the Adj-RIB-Out export consume.
//!
//! Every operation that changes the Loc-RIB returns one [`RibChange`] per prefix whose
//! best path (source or attributes) or multipath set changed, computed in one pass over
//! the prefixes it touched. Within one batch, equal multipath sets are one shared
//! `Arc<[NextHopMember]>`: when a peer with 100,000 routes goes down, the changes point
//! at a handful of sets, so the FIB programmer resolves each set to a shared next-hop
//! group once (by value or by pointer) instead of once per route.

use std::sync::Arc;

use bgp_wire::MpNextHop;
use hashbrown::HashSet;
use ipnet::IpNet;

use super::{
    attr_store::{AttrId, RouteAttrs},
    peer::PathSource,
};

/// One member of a multipath set: where traffic goes and who said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NextHopMember {
    /// The path's source.
    pub source: PathSource,
    /// Its next hop.
    pub next_hop: MpNextHop,
}

/// The Loc-RIB's route for a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestRoute {
    /// Source of the best path.
    pub source: PathSource,
    /// Interned id of the best path's post-policy attributes.
    pub attr_id: AttrId,
    /// The best path's post-policy attributes.
    pub attrs: Arc<RouteAttrs>,
    /// The multipath set, the best path first (at least one member).
    pub multipath: Arc<[NextHopMember]>,
}

/// A change of the Loc-RIB.
#[derive(Debug, Clone)]
pub struct RibChange {
    /// The prefix.
    pub prefix: IpNet,
    /// The new route, `None` when the prefix left the Loc-RIB.
    pub best: Option<BestRoute>,
    /// Where the prefix was in its table when the change was made ([`NO_SLOT`] if
    /// unknown): finding it again there costs no hash probe. Only a hint: checked
    /// before use (the slot may have been freed or reused since).
    pub(crate) slot: u32,
}

/// [`RibChange::slot`]: no hint.
pub(crate) const NO_SLOT: u32 = u32::MAX;

impl RibChange {
    /// A change of `prefix` to `best`.
    pub fn new(prefix: IpNet, best: Option<BestRoute>) -> Self {
        RibChange {
            prefix,
            best,
            slot: NO_SLOT,
        }
    }
}

// The slot is a lookup hint, not part of what changed.
impl PartialEq for RibChange {
    fn eq(&self, other: &Self) -> bool {
        self.prefix == other.prefix && self.best == other.best
    }
}

impl Eq for RibChange {}

/// Collects the changes of one operation, sharing equal multipath sets.
#[derive(Debug, Default)]
pub(crate) struct ChangeBuilder {
    changes: Vec<RibChange>,
    sets: HashSet<Arc<[NextHopMember]>>,
    last: Option<Arc<[NextHopMember]>>,
}

impl ChangeBuilder {
    /// Interns `members` for this batch.
    pub fn members(&mut self, members: &[NextHopMember]) -> Arc<[NextHopMember]> {
        if let Some(last) = &self.last
            && **last == *members
        {
            return last.clone();
        }
        let set = match self.sets.get(members) {
            Some(s) => s.clone(),
            None => {
                let s: Arc<[NextHopMember]> = Arc::from(members);
                self.sets.insert(s.clone());
                s
            }
        };
        self.last = Some(set.clone());
        set
    }

    /// Records a change.
    pub fn push(&mut self, change: RibChange) {
        self.changes.push(change);
    }

    /// The changes, in the order they happened.
    pub fn finish(self) -> Vec<RibChange> {
        self.changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::peer::PeerId;
    use std::net::Ipv4Addr;

    #[test]
    fn equal_sets_in_a_batch_are_shared() {
        let mut b = ChangeBuilder::default();
        let m = |p: u16, a: u8| NextHopMember {
            source: PathSource::Peer(PeerId(p)),
            next_hop: MpNextHop::Ipv4(Ipv4Addr::new(10, 0, 0, a)),
        };
        let s1 = b.members(&[m(1, 1), m(2, 2)]);
        let s2 = b.members(&[m(3, 3)]);
        let s3 = b.members(&[m(1, 1), m(2, 2)]);
        assert!(Arc::ptr_eq(&s1, &s3));
        assert!(!Arc::ptr_eq(&s1, &s2));
        assert_eq!(&*s2, &[m(3, 3)]);
    }
}
