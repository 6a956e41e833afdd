//! The prefix table of one family: for every prefix, the paths received from each peer
//! (the Adj-RIBs-In, pre-policy) with their post-policy attributes (the Loc-RIB
//! candidates), kept in decision order: the best path first, then the other multipath
//! members, then the rest.
//!
//! One table holds both RIBs, as BIRD and FRR do, because that is what makes a million
//! routes cheap: a prefix is stored once, in a dense slab of 24-byte slots (IPv4), with
//! a single path inline; a hash index of slot ids (with 32 bits of their hash) finds it. Prefixes with two or
//! more paths keep their paths in a side list.
//!
//! The index's hash keeps locality: 16 consecutive prefixes of one length share a block
//! of neighbouring buckets (only the block is hashed, with a per-process key). Tables
//! arrive mostly in order (FRR and GoBGP send theirs sorted, pods get consecutive
//! addresses), and then a million inserts touch a cache line of the index per 16 routes
//! instead of two or three per route; an index that misses the cache on every route was
//! 40% of the receive time. Random order costs what it did. A peer still cannot pile
//! prefixes into one place: it picks 4 bits of the bucket, never the block.

use std::{collections::VecDeque, hash::BuildHasher};

use hashbrown::{DefaultHashBuilder, HashTable};

use super::{
    attr_store::AttrId,
    prefix::{LOCAL_BITS, RibPrefix},
};

/// Path flag: marked stale by graceful restart (RFC 4724), until refreshed or swept.
pub(crate) const STALE: u8 = 1;
/// Path flag: failed the AS_PATH / ORIGINATOR_ID / CLUSTER_LIST loop checks.
pub(crate) const LOOPED: u8 = 2;

/// Slot flag: its Loc-RIB state changed since the FIB was last told (it is listed in
/// the table's FIB queue once, however often it changes meanwhile).
const FIB_DIRTY: u8 = 1;
/// Slot flag: no path left, but kept (in the index, with its prefix) until the FIB has
/// been told of the withdrawal.
const FIB_PARKED: u8 = 2;

/// One path of a prefix: what one source announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathRec {
    /// Attributes as received (Adj-RIB-In, pre-policy).
    pub attr_in: AttrId,
    /// Attributes after import policy; `None` when rejected or looped.
    pub attr_out: Option<AttrId>,
    /// The source: 0 for local, else the peer id.
    pub source: u16,
    /// [`STALE`], [`LOOPED`].
    pub flags: u8,
}

#[derive(Debug)]
enum Paths {
    /// A free slot.
    Empty,
    One(PathRec),
    /// Index into the side lists (two or more paths).
    Many(u32),
}

#[derive(Debug)]
struct Slot<P> {
    prefix: P,
    /// Number of multipath members at the head of the paths, the best first; 0: no best.
    mp: u8,
    /// [`FIB_DIRTY`], [`FIB_PARKED`] (in what was padding).
    fib: u8,
    paths: Paths,
}

/// An index entry: the slot id (low 32 bits) and 32 bits of its prefix's hash (high),
/// so that growing the index rehashes without reading a million slots at random.
type IndexEntry = u64;

fn entry(slot: u32, h32: u32) -> IndexEntry {
    u64::from(slot) | (u64::from(h32) << 32)
}

fn entry_slot(e: IndexEntry) -> u32 {
    e as u32
}

/// The table's hash of an entry: its 32 stored bits in both halves (hashbrown picks
/// buckets with the low bits and its control byte from the top seven).
fn entry_hash(e: IndexEntry) -> u64 {
    let h = e >> 32;
    h | (h << 32)
}

/// The prefix table of one family.
#[derive(Debug)]
pub(crate) struct PrefixTable<P> {
    index: HashTable<IndexEntry>,
    slots: Vec<Slot<P>>,
    free: Vec<u32>,
    lists: Vec<Vec<PathRec>>,
    free_lists: Vec<u32>,
    /// Number of prefixes of each length, so a longest-prefix match probes only lengths
    /// that exist.
    by_len: Vec<u32>,
    hasher: DefaultHashBuilder,
    /// Whether changed slots are queued for the FIB (see [`PrefixTable::mark_fib_dirty`]).
    track_fib: bool,
    /// Slots whose Loc-RIB state the FIB has not been told yet, oldest first.
    fib_queue: VecDeque<u32>,
    /// Slots kept only for the FIB ([`FIB_PARKED`]): in the index, not counted.
    parked: usize,
}

impl<P: RibPrefix> Default for PrefixTable<P> {
    fn default() -> Self {
        PrefixTable {
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            lists: Vec::new(),
            free_lists: Vec::new(),
            by_len: vec![0; usize::from(P::MAX_LEN) + 1],
            hasher: DefaultHashBuilder::default(),
            track_fib: false,
            fib_queue: VecDeque::new(),
            parked: 0,
        }
    }
}

impl<P: RibPrefix> PrefixTable<P> {
    /// Number of prefixes (with a path).
    pub fn len(&self) -> usize {
        self.index.len() - self.parked
    }

    /// 32 bits of `prefix`'s hash: its block's keyed hash, with the prefix's place in
    /// the block mixed into the low bits (which pick the bucket: the block's prefixes
    /// share 16 neighbouring buckets) and the top bits (hashbrown's tag, so that they
    /// do not all match each other's).
    fn h32(&self, prefix: &P) -> u32 {
        let (block, local) = prefix.hash_split();
        let h = self.hasher.hash_one(block) as u32;
        h ^ local ^ (local << (32 - LOCAL_BITS))
    }

    /// The slot of `prefix`, if present.
    pub fn find(&self, prefix: &P) -> Option<u32> {
        let h = self.h32(prefix);
        let slots = &self.slots;
        self.index
            .find(entry_hash(entry(0, h)), |&e| {
                (e >> 32) as u32 == h && slots[entry_slot(e) as usize].prefix == *prefix
            })
            .map(|&e| entry_slot(e))
    }

    /// The slot of `prefix`, looked at first in `hint` (a slot it had: free or reused
    /// since, the index is probed as by [`Self::find`]).
    pub fn find_hinted(&self, prefix: &P, hint: u32) -> Option<u32> {
        match self.slots.get(hint as usize) {
            Some(s) if s.prefix == *prefix && !matches!(s.paths, Paths::Empty) => Some(hint),
            _ => self.find(prefix),
        }
    }

    /// The slot of `prefix`, created empty if absent.
    pub fn find_or_insert(&mut self, prefix: P) -> u32 {
        let h = self.h32(&prefix);
        let slots = &mut self.slots;
        if let Some(&e) = self.index.find(entry_hash(entry(0, h)), |&e| {
            (e >> 32) as u32 == h && slots[entry_slot(e) as usize].prefix == prefix
        }) {
            return entry_slot(e);
        }
        let slot = Slot {
            prefix,
            mp: 0,
            fib: 0,
            paths: Paths::Empty,
        };
        let id = match self.free.pop() {
            Some(id) => {
                slots[id as usize] = slot;
                id
            }
            None => {
                slots.push(slot);
                (slots.len() - 1) as u32
            }
        };
        self.index
            .insert_unique(entry_hash(entry(0, h)), entry(id, h), |&e| entry_hash(e));
        if let Some(n) = self.by_len.get_mut(usize::from(prefix.len())) {
            *n += 1;
        }
        id
    }

    /// Frees `slot` if it has no path left (or parks it, while the FIB has not been
    /// told).
    pub fn remove_if_empty(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if !matches!(s.paths, Paths::Empty) {
            return;
        }
        if s.fib & FIB_DIRTY != 0 {
            if s.fib & FIB_PARKED == 0 {
                s.fib |= FIB_PARKED;
                self.parked += 1;
            }
            return;
        }
        if s.fib & FIB_PARKED != 0 {
            s.fib &= !FIB_PARKED;
            self.parked -= 1;
        }
        let prefix = s.prefix;
        let h = self.h32(&prefix);
        if let Ok(e) = self
            .index
            .find_entry(entry_hash(entry(0, h)), |&e| entry_slot(e) == slot)
        {
            e.remove();
            self.free.push(slot);
            if let Some(n) = self.by_len.get_mut(usize::from(prefix.len())) {
                *n -= 1;
            }
        }
    }

    /// The prefix of `slot`.
    pub fn prefix(&self, slot: u32) -> P {
        self.slots[slot as usize].prefix
    }

    /// Multipath count of `slot` (0: no best path).
    pub fn mp(&self, slot: u32) -> usize {
        usize::from(self.slots[slot as usize].mp)
    }

    /// Sets the multipath count of `slot`.
    pub fn set_mp(&mut self, slot: u32, mp: usize) {
        self.slots[slot as usize].mp = u8::try_from(mp).unwrap_or(u8::MAX);
    }

    /// The paths of `slot`, in decision order.
    pub fn paths(&self, slot: u32) -> &[PathRec] {
        match &self.slots[slot as usize].paths {
            Paths::Empty => &[],
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(l) => &self.lists[*l as usize],
        }
    }

    /// The paths of `slot`, mutable.
    pub fn paths_mut(&mut self, slot: u32) -> &mut [PathRec] {
        match &mut self.slots[slot as usize].paths {
            Paths::Empty => &mut [],
            Paths::One(p) => std::slice::from_mut(p),
            Paths::Many(l) => &mut self.lists[*l as usize],
        }
    }

    /// Adds `rec`, or replaces the path of the same source; returns the replaced one.
    /// A new path goes last (the decision reorders).
    pub fn upsert(&mut self, slot: u32, rec: PathRec) -> Option<PathRec> {
        if let Some(p) = self
            .paths_mut(slot)
            .iter_mut()
            .find(|p| p.source == rec.source)
        {
            return Some(std::mem::replace(p, rec));
        }
        let s = &mut self.slots[slot as usize];
        match s.paths {
            Paths::Empty => {
                s.paths = Paths::One(rec);
                if s.fib & FIB_PARKED != 0 {
                    s.fib &= !FIB_PARKED;
                    self.parked -= 1;
                }
            }
            Paths::One(first) => {
                let l = match self.free_lists.pop() {
                    Some(l) => l,
                    None => {
                        self.lists.push(Vec::with_capacity(2));
                        (self.lists.len() - 1) as u32
                    }
                };
                let list = &mut self.lists[l as usize];
                list.push(first);
                list.push(rec);
                s.paths = Paths::Many(l);
            }
            Paths::Many(l) => self.lists[l as usize].push(rec),
        }
        None
    }

    /// Removes the path of `source`, keeping the order of the others.
    pub fn take(&mut self, slot: u32, source: u16) -> Option<PathRec> {
        let s = &mut self.slots[slot as usize];
        match s.paths {
            Paths::Empty => None,
            Paths::One(p) => {
                if p.source != source {
                    return None;
                }
                s.paths = Paths::Empty;
                Some(p)
            }
            Paths::Many(l) => {
                let list = &mut self.lists[l as usize];
                let pos = list.iter().position(|p| p.source == source)?;
                let removed = list.remove(pos);
                if list.len() == 1 {
                    let only = list[0];
                    list.clear();
                    self.free_lists.push(l);
                    s.paths = Paths::One(only);
                }
                Some(removed)
            }
        }
    }

    /// Puts the paths of `slot` in the order given by indices into the current order.
    /// `order` must be a permutation; `scratch` is reused storage.
    pub fn reorder(&mut self, slot: u32, order: &[usize], scratch: &mut Vec<PathRec>) {
        let paths = self.paths_mut(slot);
        if order.iter().enumerate().all(|(i, &o)| i == o) {
            return;
        }
        scratch.clear();
        scratch.extend(order.iter().filter_map(|&i| paths.get(i).copied()));
        if scratch.len() == paths.len() {
            paths.copy_from_slice(scratch);
        }
    }

    /// Number of slots, live or free: `0..slot_capacity()` covers every live slot, and a
    /// free slot has no path. Operations over a whole table iterate this range, which stays
    /// valid while they free slots.
    pub fn slot_capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Ids of all live slots (a scan of the slab: fast, cache friendly).
    pub fn slot_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !matches!(s.paths, Paths::Empty))
            .map(|(i, _)| i as u32)
    }

    /// Queues the slots that change from now on for the FIB.
    pub fn track_fib(&mut self) {
        self.track_fib = true;
    }

    /// Queues `slot` for the FIB, unless it is queued already (or nobody tracks).
    pub fn mark_fib_dirty(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if self.track_fib && s.fib & FIB_DIRTY == 0 {
            s.fib |= FIB_DIRTY;
            self.fib_queue.push_back(slot);
        }
    }

    /// Slots queued for the FIB.
    pub fn fib_queued(&self) -> usize {
        self.fib_queue.len()
    }

    /// The oldest slot queued for the FIB, taken off the queue. Once the caller has read
    /// its state, [`PrefixTable::remove_if_empty`] frees it if it was parked.
    pub fn pop_fib_dirty(&mut self) -> Option<u32> {
        let slot = self.fib_queue.pop_front()?;
        self.slots[slot as usize].fib &= !FIB_DIRTY;
        if self.fib_queue.is_empty() && self.fib_queue.capacity() > 1 << 16 {
            // A burst's queue (a table: megabytes) is given back once sent.
            self.fib_queue = VecDeque::new();
        }
        Some(slot)
    }

    /// The slot of the longest prefix that covers `prefix` (itself included).
    pub fn longest_match(&self, prefix: &P) -> Option<u32> {
        (0..=prefix.len()).rev().find_map(|len| {
            if self.by_len.get(usize::from(len)).copied().unwrap_or(0) == 0 {
                return None;
            }
            self.find(&prefix.shortened(len))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::attr_store::{AttrStore, RouteAttrs};
    use bgp_wire::{MpNextHop, PathAttributes};
    use ipnet::{Ipv4Net, Ipv6Net};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn rec(store: &mut AttrStore, source: u16) -> PathRec {
        let id = store.intern(RouteAttrs::new(
            PathAttributes::default(),
            MpNextHop::Ipv4(Ipv4Addr::new(10, 0, 0, source as u8)),
        ));
        PathRec {
            attr_in: id,
            attr_out: Some(id),
            source,
            flags: 0,
        }
    }

    #[test]
    fn slots_are_small() {
        // The memory budget rests on these sizes.
        assert_eq!(std::mem::size_of::<PathRec>(), 12);
        assert!(std::mem::size_of::<Slot<Ipv4Net>>() <= 24);
    }

    #[test]
    fn a_slot_hint_is_used_only_while_it_still_holds_the_prefix() {
        let mut store = AttrStore::new();
        let mut t = PrefixTable::<Ipv4Net>::default();
        let (a, b): (Ipv4Net, Ipv4Net) = (
            "10.1.0.0/16".parse().unwrap(),
            "10.2.0.0/16".parse().unwrap(),
        );
        let sa = t.find_or_insert(a);
        t.upsert(sa, rec(&mut store, 1));
        assert_eq!(t.find_hinted(&a, sa), Some(sa));
        assert_eq!(t.find_hinted(&a, 12345), Some(sa), "a bad hint falls back");
        // a goes; its slot is reused by b; a comes back elsewhere.
        t.take(sa, 1);
        t.remove_if_empty(sa);
        assert_eq!(t.find_hinted(&a, sa), None, "a freed slot is no hint");
        let sb = t.find_or_insert(b);
        t.upsert(sb, rec(&mut store, 2));
        assert_eq!(sb, sa);
        assert_eq!(t.find_hinted(&a, sa), None);
        assert_eq!(t.find_hinted(&b, sa), Some(sb));
        let sa2 = t.find_or_insert(a);
        t.upsert(sa2, rec(&mut store, 1));
        assert_ne!(sa2, sa);
        assert_eq!(t.find_hinted(&a, sa), Some(sa2));
    }

    #[test]
    fn paths_go_inline_then_to_a_list_and_back() {
        let mut store = AttrStore::new();
        let mut t = PrefixTable::<Ipv4Net>::default();
        let p: Ipv4Net = "10.1.0.0/16".parse().unwrap();
        let s = t.find_or_insert(p);
        assert_eq!(t.find_or_insert(p), s);
        let (a, b, c) = (rec(&mut store, 1), rec(&mut store, 2), rec(&mut store, 3));
        assert_eq!(t.upsert(s, a), None);
        assert_eq!(t.upsert(s, b), None);
        assert_eq!(t.upsert(s, c), None);
        assert_eq!(t.paths(s).len(), 3);
        let a2 = PathRec { flags: STALE, ..a };
        assert_eq!(t.upsert(s, a2), Some(a));
        t.reorder(s, &[2, 0, 1], &mut Vec::new());
        let order: Vec<u16> = t.paths(s).iter().map(|p| p.source).collect();
        assert_eq!(order, vec![3, 1, 2]);
        assert_eq!(t.take(s, 1), Some(a2));
        assert_eq!(t.take(s, 1), None);
        assert_eq!(t.take(s, 3), Some(c));
        assert_eq!(t.paths(s), &[b]);
        t.remove_if_empty(s);
        assert_eq!(t.len(), 1, "still has a path");
        assert_eq!(t.take(s, 2), Some(b));
        t.remove_if_empty(s);
        assert_eq!(t.len(), 0);
        assert_eq!(t.find(&p), None);
        // The freed slot and list are reused.
        let q: Ipv4Net = "10.2.0.0/16".parse().unwrap();
        assert_eq!(t.find_or_insert(q), s);
    }

    #[test]
    fn the_prefixes_of_a_block_share_their_buckets_but_not_their_tags() {
        let t = PrefixTable::<Ipv4Net>::default();
        let mask = (1u32 << LOCAL_BITS) - 1;
        let tag_mask = mask << (32 - LOCAL_BITS);
        for (base, len) in [(0x0a00_0000u32, 32u8), (0x0a00_0000, 24), (0x6440_0010, 32)] {
            let step = 1u32 << (32 - u32::from(len));
            let net = |i: u32| Ipv4Net::new(Ipv4Addr::from(base + i * step), len).unwrap();
            let h0 = t.h32(&net(0));
            let hs: Vec<u32> = (0..16).map(|i| t.h32(&net(i))).collect();
            for (i, h) in hs.iter().enumerate() {
                assert_eq!(
                    h & !(mask | tag_mask),
                    h0 & !(mask | tag_mask),
                    "{}",
                    net(i as u32)
                );
            }
            let mut low: Vec<u32> = hs.iter().map(|h| h & mask).collect();
            low.sort();
            low.dedup();
            assert_eq!(low.len(), 16, "one bucket each");
            let mut tags: Vec<u32> = hs.iter().map(|h| h & tag_mask).collect();
            tags.sort();
            tags.dedup();
            assert_eq!(tags.len(), 16, "one tag each");
        }
        // The next block, and the same bits at another length, hash elsewhere.
        let a = t.h32(&"10.0.0.0/32".parse().unwrap());
        let b = t.h32(&"10.0.0.16/32".parse().unwrap());
        let c = t.h32(&"10.0.0.0/31".parse().unwrap());
        assert_ne!(a & !(mask | tag_mask), b & !(mask | tag_mask));
        assert_ne!(a & !(mask | tag_mask), c & !(mask | tag_mask));
    }

    /// A prefix from a small universe, so that operations collide: IPv4 lengths 0 to 5
    /// and 28 to 32 over two /24s.
    fn v4_prefix() -> impl Strategy<Value = Ipv4Net> {
        (prop_oneof![0u8..=5, 28u8..=32], 0u32..512, prop::bool::ANY).prop_map(|(len, i, high)| {
            let base = if high { 0xf000_0000u32 } else { 0x0a00_0000 };
            Ipv4Net::new(Ipv4Addr::from(base + i), len).unwrap().trunc()
        })
    }

    fn v6_prefix() -> impl Strategy<Value = Ipv6Net> {
        (prop_oneof![0u8..=5, 60u8..=64, 120u8..=128], 0u128..512).prop_map(|(len, i)| {
            let addr = (0x2001_0db8u128 << 96) | (i << 60) | i;
            Ipv6Net::new(Ipv6Addr::from(addr), len).unwrap().trunc()
        })
    }

    /// What an operation of the model test does.
    #[derive(Debug, Clone, Copy)]
    enum Op {
        Insert,
        Remove,
        /// Tell the FIB of the oldest queued slot.
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![5 => Just(Op::Insert), 3 => Just(Op::Remove), 2 => Just(Op::Pop)]
    }

    /// `ops` on a table that queues changes for the FIB and on a set: the table finds
    /// what the set holds, and only that; it queues each changed prefix once; and once
    /// the queue is empty, nothing is left of the removed prefixes.
    fn check_against_a_set<P: RibPrefix>(ops: &[(Op, P)]) -> Result<(), TestCaseError> {
        let mut store = AttrStore::new();
        let r = rec(&mut store, 1);
        let mut t = PrefixTable::<P>::default();
        t.track_fib();
        let mut model = std::collections::BTreeSet::new();
        let mut queued = std::collections::BTreeSet::new();
        for &(op, p) in ops {
            match op {
                Op::Insert => {
                    let s = t.find_or_insert(p);
                    t.upsert(s, r);
                    t.mark_fib_dirty(s);
                    model.insert(p);
                    queued.insert(p);
                }
                Op::Remove => {
                    if let Some(s) = t.find(&p)
                        && t.take(s, 1).is_some()
                    {
                        t.mark_fib_dirty(s);
                        t.remove_if_empty(s);
                        model.remove(&p);
                        queued.insert(p);
                    }
                }
                Op::Pop => {
                    if let Some(s) = t.pop_fib_dirty() {
                        prop_assert!(queued.remove(&t.prefix(s)));
                        t.remove_if_empty(s);
                    }
                }
            }
            prop_assert_eq!(t.len(), model.len());
            prop_assert_eq!(t.fib_queued(), queued.len());
        }
        let live = |t: &PrefixTable<P>, p: &P| t.find(p).filter(|&s| !t.paths(s).is_empty());
        for &(_, p) in ops {
            let found = live(&t, &p).map(|s| t.prefix(s));
            prop_assert_eq!(found, model.contains(&p).then_some(p));
        }
        while let Some(s) = t.pop_fib_dirty() {
            t.remove_if_empty(s);
        }
        prop_assert_eq!(t.index.len(), model.len(), "parked slots are freed");
        for &(_, p) in ops {
            prop_assert_eq!(t.find(&p).is_some(), model.contains(&p));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn the_index_finds_exactly_what_was_inserted_v4(
            ops in prop::collection::vec((op(), v4_prefix()), 1..400),
        ) {
            check_against_a_set(&ops)?;
        }

        #[test]
        fn the_index_finds_exactly_what_was_inserted_v6(
            ops in prop::collection::vec((op(), v6_prefix()), 1..400),
        ) {
            check_against_a_set(&ops)?;
        }
    }

    #[test]
    fn longest_match_probes_present_lengths() {
        let mut store = AttrStore::new();
        let mut t = PrefixTable::<Ipv4Net>::default();
        for p in ["0.0.0.0/0", "10.0.0.0/8", "10.244.1.0/24"] {
            let s = t.find_or_insert(p.parse().unwrap());
            t.upsert(s, rec(&mut store, 1));
        }
        let lm = |q: &str| {
            t.longest_match(&q.parse().unwrap())
                .map(|s| t.prefix(s).to_string())
        };
        assert_eq!(lm("10.244.1.7/32").as_deref(), Some("10.244.1.0/24"));
        assert_eq!(lm("10.244.2.7/32").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(lm("10.0.0.0/8").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(lm("192.0.2.1/32").as_deref(), Some("0.0.0.0/0"));
    }
}
