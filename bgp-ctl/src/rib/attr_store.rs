//! Interning of route attribute sets: identical sets are stored once and routes hold a
//! 4-byte [`AttrId`], so a million routes sharing a handful of sets cost a handful of sets.
//!
//! Reference counts are explicit: every place in the RIB that stores an id holds one
//! reference ([`AttrStore::intern`] and [`AttrStore::retain`] add one, [`AttrStore::release`]
//! drops one), and a set is freed, and its id reused, when the last reference goes.

use std::{hash::BuildHasher, net::IpAddr, num::NonZeroU32, sync::Arc};

use bgp_wire::{MpNextHop, PathAttributes};
use hashbrown::{DefaultHashBuilder, HashTable};

/// A route's attributes as the RIB keeps them: the path attributes and the next hop of the
/// route's family (NEXT_HOP for IPv4, the MP_REACH_NLRI next hop otherwise).
///
/// `path.next_hop` is always `None` here (see [`RouteAttrs::new`]): `next_hop` is the one
/// place the next hop lives, whatever the family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    /// Next hop of the route.
    pub next_hop: MpNextHop,
    /// Path attributes, without the next hop.
    pub path: PathAttributes,
}

impl RouteAttrs {
    /// Attributes with the given next hop; `path.next_hop` is cleared so that two sets with
    /// the same meaning compare (and intern) equal.
    pub fn new(mut path: PathAttributes, next_hop: MpNextHop) -> Self {
        path.next_hop = None;
        RouteAttrs { next_hop, path }
    }

    /// Attributes of an IPv4 unicast route received in the NLRI field: the next hop is the
    /// NEXT_HOP attribute, `None` when it is missing.
    pub fn from_ipv4_update(path: PathAttributes) -> Option<Self> {
        let nh = path.next_hop?;
        Some(RouteAttrs::new(path, MpNextHop::Ipv4(nh)))
    }

    /// The next hop's address (the global one for IPv6).
    pub fn next_hop_addr(&self) -> IpAddr {
        match self.next_hop {
            MpNextHop::Ipv4(a) => IpAddr::V4(a),
            MpNextHop::Ipv6 { global, .. } => IpAddr::V6(global),
        }
    }

    /// The path attributes to encode: for an IPv4 next hop NEXT_HOP is filled in (the
    /// encoder uses it for routes in the NLRI field); an IPv6 next hop goes in MP_REACH_NLRI.
    pub fn to_wire(&self) -> PathAttributes {
        let mut p = self.path.clone();
        p.next_hop = match self.next_hop {
            MpNextHop::Ipv4(a) => Some(a),
            MpNextHop::Ipv6 { .. } => None,
        };
        p
    }
}

/// Identifier of an interned attribute set, valid while a reference to it is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrId(NonZeroU32);

impl AttrId {
    /// The raw index (for display and tests).
    pub fn index(self) -> u32 {
        self.0.get() - 1
    }

    fn from_index(i: u32) -> Self {
        AttrId(NonZeroU32::MIN.saturating_add(i))
    }
}

#[derive(Debug)]
struct Entry {
    attrs: Arc<RouteAttrs>,
    hash: u64,
    refs: u32,
}

/// The interning store of attribute sets, with reference counts.
#[derive(Debug, Default)]
pub struct AttrStore {
    /// Ids of the live entries, hashed by their value.
    index: HashTable<u32>,
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    hasher: DefaultHashBuilder,
}

impl AttrStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `attrs`, stored if new; takes one reference.
    pub fn intern(&mut self, attrs: RouteAttrs) -> AttrId {
        let hash = self.hasher.hash_one(&attrs);
        match self.find(hash, &attrs) {
            Some(id) => id,
            None => self.insert(hash, attrs),
        }
    }

    /// The id of `attrs`, cloned into the store only if new; takes one reference.
    pub fn intern_ref(&mut self, attrs: &RouteAttrs) -> AttrId {
        let hash = self.hasher.hash_one(attrs);
        match self.find(hash, attrs) {
            Some(id) => id,
            None => self.insert(hash, attrs.clone()),
        }
    }

    /// The id of `attrs` if stored, with a reference taken.
    fn find(&mut self, hash: u64, attrs: &RouteAttrs) -> Option<AttrId> {
        let entries = &mut self.entries;
        let &id = self.index.find(hash, |&i| {
            entries[i as usize]
                .as_ref()
                .is_some_and(|e| *e.attrs == *attrs)
        })?;
        if let Some(e) = entries[id as usize].as_mut() {
            e.refs += 1;
        }
        Some(AttrId::from_index(id))
    }

    /// Stores a new set with one reference.
    fn insert(&mut self, hash: u64, attrs: RouteAttrs) -> AttrId {
        let entries = &mut self.entries;
        let entry = Entry {
            attrs: Arc::new(attrs),
            hash,
            refs: 1,
        };
        let id = match self.free.pop() {
            Some(id) => {
                entries[id as usize] = Some(entry);
                id
            }
            None => {
                entries.push(Some(entry));
                (entries.len() - 1) as u32
            }
        };
        self.index.insert_unique(hash, id, |&i| {
            entries[i as usize].as_ref().map_or(0, |e| e.hash)
        });
        AttrId::from_index(id)
    }

    /// Takes one more reference to `id`.
    pub fn retain(&mut self, id: AttrId) {
        if let Some(Some(e)) = self.entries.get_mut(id.index() as usize) {
            e.refs += 1;
        }
    }

    /// Drops one reference to `id`; the set is freed with its last reference.
    pub fn release(&mut self, id: AttrId) {
        let Some(slot) = self.entries.get_mut(id.index() as usize) else {
            return;
        };
        let Some(e) = slot.as_mut() else {
            return;
        };
        e.refs -= 1;
        if e.refs > 0 {
            return;
        }
        let hash = e.hash;
        *slot = None;
        if let Ok(found) = self.index.find_entry(hash, |&i| i == id.index()) {
            found.remove();
        }
        self.free.push(id.index());
    }

    /// The attributes of a live id.
    ///
    /// Ids come only from this store and stay valid while referenced, so a dead id is a
    /// bug of the RIB, not something input can cause.
    pub fn get(&self, id: AttrId) -> &Arc<RouteAttrs> {
        match self.entries.get(id.index() as usize) {
            Some(Some(e)) => &e.attrs,
            _ => panic!("attribute set {} is not live", id.index()),
        }
    }

    /// Number of references held on `id` (0 if it is not live).
    pub fn refs(&self, id: AttrId) -> u32 {
        match self.entries.get(id.index() as usize) {
            Some(Some(e)) => e.refs,
            _ => 0,
        }
    }

    /// Number of distinct live sets.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no set is live.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Ids of the live sets whose next hop is `addr`.
    pub fn ids_with_next_hop(&self, addr: IpAddr) -> Vec<AttrId> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.as_ref()
                    .filter(|e| e.attrs.next_hop_addr() == addr)
                    .map(|_| AttrId::from_index(i as u32))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_wire::AsPath;
    use std::net::Ipv4Addr;

    fn attrs(lp: u32) -> RouteAttrs {
        RouteAttrs::new(
            PathAttributes {
                as_path: AsPath::from_sequence([65001]),
                local_pref: Some(lp),
                next_hop: Some(Ipv4Addr::new(9, 9, 9, 9)),
                ..PathAttributes::default()
            },
            MpNextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 1)),
        )
    }

    #[test]
    fn same_set_gets_the_same_id_and_counts_references() {
        let mut s = AttrStore::new();
        let a = s.intern(attrs(100));
        let b = s.intern_ref(&attrs(100));
        let c = s.intern(attrs(200));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(s.len(), 2);
        assert_eq!(s.refs(a), 2);
        assert_eq!(s.get(a).path.local_pref, Some(100));
        // The next hop is held once, outside the path attributes.
        assert_eq!(s.get(a).path.next_hop, None);
        assert_eq!(
            s.get(a).next_hop_addr(),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
        );
    }

    #[test]
    fn dropping_the_last_reference_frees_the_set_and_reuses_its_id() {
        let mut s = AttrStore::new();
        let a = s.intern(attrs(100));
        s.retain(a);
        s.release(a);
        assert_eq!(s.len(), 1, "one reference left");
        s.release(a);
        assert_eq!(s.len(), 0);
        assert_eq!(s.refs(a), 0);
        let c = s.intern(attrs(300));
        assert_eq!(c, a, "the freed id is reused");
        assert_eq!(s.get(c).path.local_pref, Some(300));
        // The freed value is no longer found under its old hash.
        let d = s.intern(attrs(100));
        assert_ne!(d, c);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn next_hop_index_finds_sets_by_next_hop() {
        let mut s = AttrStore::new();
        let a = s.intern(attrs(100));
        let other = RouteAttrs::new(
            PathAttributes::default(),
            MpNextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 2)),
        );
        let b = s.intern(other);
        assert_eq!(
            s.ids_with_next_hop(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            vec![a]
        );
        assert_ne!(a, b);
        let wire = s.get(a).to_wire();
        assert_eq!(wire.next_hop, Some(Ipv4Addr::new(192, 0, 2, 1)));
    }
}
