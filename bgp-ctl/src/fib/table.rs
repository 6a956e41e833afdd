//! The forwarding table as the control plane sees it: routes -> shared next-hop groups
//! -> next hops, with ids, reference counts and the dedup of groups by member set.
//!
//! Every change is the smallest set of map writes that makes it: a next hop that changes
//! (a neighbor MAC resolved) is one entry rewritten, whatever the number of routes
//! behind it; a next hop that goes away (a peer down) rewrites the groups that hold it,
//! never the routes.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
};

use ipnet::IpNet;
use xdp_fwd_common::{
    CFG_F_FORWARD_FRAGMENTS, Counters, GROUP_BUCKETS, MAX_GROUP_MEMBERS, MAX_GROUPS, MAX_NEXT_HOPS,
    NH_FORWARD, NH_LOCAL, NHK_BLACKHOLE, NHK_LOCAL, NHK_NEIGHBOR_V4, NHK_NEIGHBOR_V6, NextHop,
    NextHopGroup, NextHopKeyEntry, ROUTE_F_LOCAL_ADDRESS,
};

use super::{
    FibError,
    buckets::rebalance,
    maps::{FibMaps, MapOps, RcuBarrier},
    route_index::RouteIndex,
};

/// What a next hop is, independently of how it is currently reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHopKey {
    /// A neighbor (a BGP next hop, or a local pod) on an interface.
    Neighbor {
        /// Interface it is reached through.
        ifindex: u32,
        /// Its address.
        addr: IpAddr,
    },
    /// The node itself: packets go to the kernel.
    Local,
    /// Packets are dropped.
    Blackhole,
}

impl NextHopKey {
    fn to_entry(self) -> NextHopKeyEntry {
        let mut e = NextHopKeyEntry::default();
        match self {
            Self::Neighbor { ifindex, addr } => {
                e.ifindex = ifindex;
                match addr {
                    IpAddr::V4(a) => {
                        e.kind = NHK_NEIGHBOR_V4;
                        e.addr[..4].copy_from_slice(&a.octets());
                    }
                    IpAddr::V6(a) => {
                        e.kind = NHK_NEIGHBOR_V6;
                        e.addr = a.octets();
                    }
                }
            }
            Self::Local => e.kind = NHK_LOCAL,
            Self::Blackhole => e.kind = NHK_BLACKHOLE,
        }
        e
    }

    fn from_entry(e: &NextHopKeyEntry) -> Option<Self> {
        Some(match e.kind {
            NHK_NEIGHBOR_V4 => Self::Neighbor {
                ifindex: e.ifindex,
                addr: IpAddr::from([e.addr[0], e.addr[1], e.addr[2], e.addr[3]]),
            },
            NHK_NEIGHBOR_V6 => Self::Neighbor {
                ifindex: e.ifindex,
                addr: IpAddr::from(e.addr),
            },
            NHK_LOCAL => Self::Local,
            NHK_BLACKHOLE => Self::Blackhole,
            _ => return None,
        })
    }
}

/// Double-buffer bookkeeping of one id: which slot is live, and when each slot was last
/// retired (the barrier epoch then), so a slot is rewritten only after a grace period
/// that started later.
#[derive(Clone, Copy, Default)]
struct Slots {
    live: Option<u32>,
    retired_at: [u64; 2],
}

struct NextHopEntry {
    key: NextHopKey,
    value: NextHop,
    /// Groups holding this next hop.
    groups: u32,
}

struct GroupEntry {
    /// Member next-hop ids; `buckets` index into this.
    members: Vec<u32>,
    buckets: [u8; GROUP_BUCKETS],
    /// Routes using this group.
    routes: u64,
}

impl GroupEntry {
    fn value(&self) -> NextHopGroup {
        let mut g = NextHopGroup {
            n_members: self.members.len() as u32,
            buckets: self.buckets,
            ..Default::default()
        };
        g.members[..self.members.len()].copy_from_slice(&self.members);
        g
    }
}

/// Allocates ids from 1 (0 is what zeroed map memory says, so it never names a live
/// entry), reusing freed ids oldest first.
struct Ids {
    next: u32,
    max: u32,
    free: VecDeque<u32>,
}

impl Ids {
    fn new(max: u32) -> Self {
        Self {
            next: 1,
            max,
            free: VecDeque::new(),
        }
    }
    fn alloc(&mut self, what: &'static str) -> Result<u32, FibError> {
        if let Some(id) = self.free.pop_front() {
            return Ok(id);
        }
        if self.next >= self.max {
            return Err(FibError::Full(what));
        }
        self.next += 1;
        Ok(self.next - 1)
    }
    fn release(&mut self, id: u32) {
        self.free.push_back(id);
    }
}

/// The control plane's view of the dataplane tables, and the only writer of them.
pub struct Fib {
    maps: FibMaps,
    /// Barrier epoch: incremented each time a grace period is started; a slot retired in
    /// epoch E is free once a barrier started in a later epoch has completed.
    epoch: u64,
    /// The latest epoch whose barrier has completed.
    done: u64,
    /// A slot was retired in the current epoch.
    retired_now: bool,
    /// The epoch of the latest retirement.
    last_retired: u64,
    /// Barriers run on a thread of their own (see [`Fib::background_barriers`]).
    background: Option<Background>,
    next_hops: HashMap<u32, NextHopEntry>,
    next_hop_ids: HashMap<NextHopKey, u32>,
    next_hop_slots: Vec<Slots>,
    nh_ids: Ids,
    groups: HashMap<u32, GroupEntry>,
    group_ids_by_members: HashMap<Vec<u32>, u32>,
    group_slots: Vec<Slots>,
    g_ids: Ids,
    /// Route -> group: the Loc-RIB's routes. One whose prefix is also in `locals` is
    /// kept here but not in the maps (the local entry holds its place there).
    routes: RouteIndex<u32>,
    /// The node's own addresses (and address space always its own) -> the group of the
    /// local next hop: in the maps with `ROUTE_F_LOCAL_ADDRESS`, ahead of any route.
    locals: RouteIndex<u32>,
    /// Adopted routes not re-added since the restart.
    stale: RouteIndex<()>,
    /// Egress ifindex -> forward next hops using it.
    egress: HashMap<u32, u32>,
}

impl Fib {
    /// Opens the maps pinned in `pin_dir` and adopts what they hold: a restarted process
    /// continues from the previous one's table instead of flushing it.
    pub fn open(pin_dir: impl AsRef<Path>) -> Result<Self, FibError> {
        let maps = FibMaps::open(pin_dir)?;
        let mut fib = Self {
            maps,
            epoch: 1,
            done: 1,
            retired_now: false,
            last_retired: 0,
            background: None,
            next_hops: HashMap::new(),
            next_hop_ids: HashMap::new(),
            next_hop_slots: vec![Slots::default(); MAX_NEXT_HOPS as usize],
            nh_ids: Ids::new(MAX_NEXT_HOPS),
            groups: HashMap::new(),
            group_ids_by_members: HashMap::new(),
            group_slots: vec![Slots::default(); MAX_GROUPS as usize],
            g_ids: Ids::new(MAX_GROUPS),
            routes: RouteIndex::default(),
            locals: RouteIndex::default(),
            stale: RouteIndex::default(),
            egress: HashMap::new(),
        };
        fib.adopt()?;
        Ok(fib)
    }

    /// Map operations issued since open.
    pub fn ops(&self) -> MapOps {
        self.maps.ops
    }

    /// Number of routes installed (the Loc-RIB's; local addresses are not routes).
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// Number of local-address entries (see [`Fib::add_local`]).
    pub fn local_count(&self) -> usize {
        self.locals.len()
    }

    /// Number of groups in use.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Number of next hops defined.
    pub fn next_hop_count(&self) -> usize {
        self.next_hops.len()
    }

    /// The per-CPU counters, summed.
    pub fn counters(&self) -> Result<Counters, FibError> {
        self.maps.counters()
    }

    /// Forward IP fragments (hashed on addresses and protocol, so every fragment of a
    /// packet takes one path) instead of handing them to the kernel.
    pub fn set_forward_fragments(&mut self, on: bool) -> Result<(), FibError> {
        self.maps.update_config(|c| {
            if on {
                c.flags |= CFG_F_FORWARD_FRAGMENTS;
            } else {
                c.flags &= !CFG_F_FORWARD_FRAGMENTS;
            }
        })
    }

    /// The members of the group `prefix` uses, as next-hop keys, if installed.
    pub fn route(&self, prefix: &IpNet) -> Option<Vec<NextHopKey>> {
        let g = self.groups.get(&self.routes.get(prefix)?)?;
        Some(g.members.iter().map(|id| self.next_hops[id].key).collect())
    }

    /// Every installed route with its members.
    pub fn routes(&self) -> impl Iterator<Item = (IpNet, Vec<NextHopKey>)> + '_ {
        self.routes
            .iter()
            .filter_map(|(p, _)| Some((p, self.route(&p)?)))
    }

    /// Every installed prefix, in no particular order.
    pub fn prefixes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.routes.iter().map(|(p, _)| p)
    }

    /// Every local-address prefix, in no particular order.
    pub fn local_prefixes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.locals.iter().map(|(p, _)| p)
    }

    /// Whether `prefix` is a local-address entry (then it is what the maps hold for it,
    /// whatever route the Loc-RIB has for the same prefix).
    pub fn is_local(&self, prefix: &IpNet) -> bool {
        self.locals.get(prefix).is_some()
    }

    /// The most specific prefix in the maps covering `want` (an address: a host
    /// prefix), route or local address: the entry a packet to it matches.
    pub fn longest_match(&self, want: &IpNet) -> Option<IpNet> {
        let route = self.routes.longest_match(want).map(|(p, _)| p);
        let local = self.locals.longest_match(want).map(|(p, _)| p);
        match (route, local) {
            (Some(r), Some(l)) if r.prefix_len() > l.prefix_len() => Some(r),
            (r, None) => r,
            (_, l) => l,
        }
    }

    /// Every defined next hop's key (adopted ones too).
    pub fn next_hop_keys(&self) -> impl Iterator<Item = NextHopKey> + '_ {
        self.next_hops.values().map(|e| e.key)
    }

    /// The current value of a next hop.
    pub fn next_hop(&self, key: &NextHopKey) -> Option<NextHop> {
        Some(self.next_hops.get(self.next_hop_ids.get(key)?)?.value)
    }

    /// Defines or updates a next hop. Updating rewrites that one entry (atomically for
    /// packets), and every route through it follows.
    pub fn set_next_hop(&mut self, key: NextHopKey, value: NextHop) -> Result<(), FibError> {
        let existing = self.next_hop_ids.get(&key).copied();
        let old = existing.map(|id| self.next_hops[&id].value);
        if old == Some(value) {
            return Ok(());
        }
        if value.kind == NH_FORWARD {
            // The egress must be redirectable before any packet can pick this next hop.
            self.egress_ref(value.ifindex)?;
        }
        let id = match existing {
            Some(id) => id,
            None => {
                let id = self.nh_ids.alloc("next hops")?;
                self.maps.write_next_hop_key(id, &key.to_entry())?;
                id
            }
        };
        self.write_next_hop(id, &value)?;
        self.next_hop_ids.insert(key, id);
        if let Some(old) = old.filter(|o| o.kind == NH_FORWARD) {
            self.egress_unref(old.ifindex)?;
        }
        self.next_hops.insert(
            id,
            NextHopEntry {
                key,
                value,
                groups: self.next_hops.get(&id).map_or(0, |e| e.groups),
            },
        );
        Ok(())
    }

    /// Removes a next hop from every group holding it (a peer went down), then forgets
    /// it. Only those groups are rewritten; the routes through them stay as they are.
    /// Returns the number of groups rewritten.
    pub fn remove_next_hop(&mut self, key: &NextHopKey) -> Result<usize, FibError> {
        let Some(&id) = self.next_hop_ids.get(key) else {
            return Ok(0);
        };
        let holding: Vec<u32> = self
            .groups
            .iter()
            .filter(|(_, g)| g.members.contains(&id))
            .map(|(&gid, _)| gid)
            .collect();
        for &gid in &holding {
            let old = &self.groups[&gid];
            let members: Vec<u32> = old.members.iter().copied().filter(|&m| m != id).collect();
            self.set_group_members(gid, members)?;
        }
        let entry = self
            .next_hops
            .remove(&id)
            .ok_or(FibError::Inconsistent("next hop"))?;
        self.next_hop_ids.remove(key);
        self.maps
            .write_next_hop_key(id, &NextHopKeyEntry::default())?;
        if entry.value.kind == NH_FORWARD {
            self.egress_unref(entry.value.ifindex)?;
        }
        self.nh_ids.release(id);
        Ok(holding.len())
    }

    /// Installs or replaces `prefix` through the group of `members` (ECMP), sharing the
    /// group with every other route with the same member set. The next hops must exist.
    pub fn add_route(&mut self, prefix: IpNet, members: &[NextHopKey]) -> Result<(), FibError> {
        let prefix = prefix.trunc();
        let mut ids = members
            .iter()
            .map(|k| {
                self.next_hop_ids
                    .get(k)
                    .copied()
                    .ok_or(FibError::UnknownNextHop(*k))
            })
            .collect::<Result<Vec<u32>, _>>()?;
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() || ids.len() > MAX_GROUP_MEMBERS {
            return Err(FibError::GroupSize(ids.len()));
        }
        self.stale.remove(&prefix);
        // The route's group may already hold exactly these members: a group shrunk in
        // place when a next hop went away. Then nothing is written, whatever the number
        // of routes the RIB re-sends after a peer down.
        if let Some(cur) = self.routes.get(&prefix)
            && self.groups.get(&cur).is_some_and(|g| g.members == ids)
        {
            return Ok(());
        }
        let gid = match self.group_ids_by_members.get(&ids) {
            Some(&gid) => gid,
            None => self.new_group(ids)?,
        };
        let old = self.routes.insert(prefix, gid);
        if old == Some(gid) {
            return Ok(());
        }
        self.groups
            .get_mut(&gid)
            .ok_or(FibError::Inconsistent("group"))?
            .routes += 1;
        // Under a local address the route waits in the index: the local entry stays.
        if self.locals.get(&prefix).is_none() {
            self.maps.insert_route(prefix, gid, 0)?;
        }
        if let Some(old) = old {
            self.group_unref(old)?;
        }
        Ok(())
    }

    /// Hands `prefix` (one of the node's addresses as a host prefix, or address space
    /// that is always the node's) to the kernel, ahead of any route: a route for the
    /// same prefix stays in the Loc-RIB's index but leaves the maps to this entry until
    /// [`Fib::del_local`]; a covering route loses to it by longest match. Not a route:
    /// not counted, listed or resynced with them. Returns whether it was new.
    pub fn add_local(&mut self, prefix: IpNet) -> Result<bool, FibError> {
        let prefix = prefix.trunc();
        if self.locals.get(&prefix).is_some() {
            return Ok(false);
        }
        if self.next_hop(&NextHopKey::Local).is_none() {
            self.set_next_hop(
                NextHopKey::Local,
                NextHop {
                    kind: NH_LOCAL,
                    ..NextHop::default()
                },
            )?;
        }
        let id = self.next_hop_ids[&NextHopKey::Local];
        let gid = match self.group_ids_by_members.get([id].as_slice()) {
            Some(&gid) => gid,
            None => self.new_group(vec![id])?,
        };
        self.groups
            .get_mut(&gid)
            .ok_or(FibError::Inconsistent("group"))?
            .routes += 1;
        self.locals.insert(prefix, gid);
        self.maps.insert_route(prefix, gid, ROUTE_F_LOCAL_ADDRESS)?;
        Ok(true)
    }

    /// Stops handing `prefix` to the kernel: the Loc-RIB's route for the same prefix,
    /// if any, takes its place in the maps (replaced in place), else the entry goes.
    /// Returns whether it was there.
    pub fn del_local(&mut self, prefix: &IpNet) -> Result<bool, FibError> {
        let prefix = prefix.trunc();
        let Some(gid) = self.locals.remove(&prefix) else {
            return Ok(false);
        };
        match self.routes.get(&prefix) {
            Some(route) => self.maps.insert_route(prefix, route, 0)?,
            None => self.maps.remove_route(prefix)?,
        }
        self.group_unref(gid)?;
        Ok(true)
    }

    /// The group of an installed route and, per member, its next hop and the number of
    /// the group's buckets pointing at it; for a local address, those of its local
    /// entry (what the maps hold).
    pub fn route_group(&self, prefix: &IpNet) -> Option<(u32, Vec<(NextHopKey, u16)>)> {
        let prefix = prefix.trunc();
        let gid = self
            .locals
            .get(&prefix)
            .or_else(|| self.routes.get(&prefix))?;
        let g = self.groups.get(&gid)?;
        let members = g
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, id)| {
                let key = self.next_hops.get(id)?.key;
                let n = g.buckets.iter().filter(|&&b| usize::from(b) == i).count();
                Some((key, u16::try_from(n).unwrap_or(u16::MAX)))
            })
            .collect();
        Some((gid, members))
    }

    /// Starts the grace period that makes the slots retired so far writable again, if a
    /// slot was retired since the last one: in the background when
    /// [`Fib::background_barriers`] runs, else waiting for it. Called when idle, it takes
    /// the wait off the next urgent change (a peer down rewriting its groups). Returns
    /// whether a grace period was started.
    pub fn quiesce(&mut self) -> Result<bool, FibError> {
        if !self.retired_now {
            return Ok(false);
        }
        match &self.background {
            Some(b) => {
                self.epoch += 1;
                self.retired_now = false;
                if b.requests.send(self.epoch).is_err() {
                    // The thread is gone: wait here instead.
                    self.background = None;
                    self.barrier_now()?;
                } else {
                    self.maps.ops.background_barriers += 1;
                }
            }
            None => self.barrier_now()?,
        }
        Ok(true)
    }

    /// Runs the barriers [`Fib::quiesce`] starts on a thread of their own, so the
    /// programmer does not wait for them; a write that needs a slot whose grace period
    /// has not completed still waits (for a barrier of its own).
    pub fn background_barriers(&mut self) -> Result<(), FibError> {
        if self.background.is_some() {
            return Ok(());
        }
        let mut barrier = RcuBarrier::open(&self.maps.dir)?;
        let done = Arc::new(AtomicU64::new(self.done));
        let (requests, pending) = mpsc::channel::<u64>();
        let completed = done.clone();
        std::thread::Builder::new()
            .name("rcu-barrier".into())
            .spawn(move || {
                while let Ok(mut epoch) = pending.recv() {
                    // One grace period covers every request made before it starts.
                    while let Ok(later) = pending.try_recv() {
                        epoch = later;
                    }
                    match barrier.wait() {
                        Ok(()) => {
                            completed.fetch_max(epoch, Ordering::AcqRel);
                        }
                        Err(e) => tracing::warn!("RCU barrier: {e}"),
                    }
                }
            })
            .map_err(|source| FibError::Io {
                path: self.maps.dir.clone(),
                source,
            })?;
        self.background = Some(Background { requests, done });
        // Slots retired before now get their grace period started too.
        self.quiesce()?;
        Ok(())
    }

    /// Whether a retired slot still waits for its grace period (its rewrite would wait).
    pub fn grace_pending(&mut self) -> bool {
        if let Some(b) = &self.background {
            self.done = self.done.max(b.done.load(Ordering::Acquire));
        }
        self.last_retired >= self.done
    }

    /// Starts a grace period and waits for it.
    fn barrier_now(&mut self) -> Result<(), FibError> {
        self.epoch += 1;
        self.retired_now = false;
        let epoch = self.epoch;
        self.maps.rcu_barrier()?;
        self.done = self.done.max(epoch);
        Ok(())
    }

    /// Removes `prefix`. Returns whether it was installed.
    pub fn del_route(&mut self, prefix: &IpNet) -> Result<bool, FibError> {
        let prefix = prefix.trunc();
        let Some(gid) = self.routes.remove(&prefix) else {
            return Ok(false);
        };
        self.stale.remove(&prefix);
        if self.locals.get(&prefix).is_none() {
            self.maps.remove_route(prefix)?;
        }
        self.group_unref(gid)?;
        Ok(true)
    }

    /// Starts a resync after a restart: every adopted route is marked stale; routes
    /// added again before [`Fib::end_resync`] stay, the others are then removed. Local
    /// addresses are not routes: the address watcher's list settles them
    /// (`FibProgrammer::addresses_synced`).
    pub fn begin_resync(&mut self) {
        self.stale = RouteIndex::default();
        for (p, _) in self.routes.iter() {
            self.stale.insert(p, ());
        }
    }

    /// Removes the routes not re-added since [`Fib::begin_resync`]. Returns how many.
    pub fn end_resync(&mut self) -> Result<usize, FibError> {
        let stale: Vec<IpNet> = self.stale.drain();
        for p in &stale {
            self.del_route(p)?;
        }
        Ok(stale.len())
    }

    fn new_group(&mut self, members: Vec<u32>) -> Result<u32, FibError> {
        let gid = self.g_ids.alloc("next-hop groups")?;
        let entry = GroupEntry {
            buckets: rebalance(&[], &[0; GROUP_BUCKETS], &members),
            members: members.clone(),
            routes: 0,
        };
        self.write_group(gid, &entry.value())?;
        for m in &members {
            if let Some(nh) = self.next_hops.get_mut(m) {
                nh.groups += 1;
            }
        }
        self.group_ids_by_members.insert(members, gid);
        self.groups.insert(gid, entry);
        Ok(gid)
    }

    /// Gives group `gid` a new member set, keeping flows of surviving members in place.
    fn set_group_members(&mut self, gid: u32, members: Vec<u32>) -> Result<(), FibError> {
        let g = self
            .groups
            .get(&gid)
            .ok_or(FibError::Inconsistent("group"))?;
        let old_members = g.members.clone();
        let buckets = if members.is_empty() {
            [0; GROUP_BUCKETS]
        } else {
            rebalance(&old_members, &g.buckets, &members)
        };
        let entry = GroupEntry {
            members: members.clone(),
            buckets,
            routes: g.routes,
        };
        self.write_group(gid, &entry.value())?;
        if self.group_ids_by_members.get(&old_members) == Some(&gid) {
            self.group_ids_by_members.remove(&old_members);
        }
        if !members.is_empty() {
            self.group_ids_by_members
                .entry(members.clone())
                .or_insert(gid);
        }
        for m in old_members.iter().filter(|m| !members.contains(m)) {
            if let Some(nh) = self.next_hops.get_mut(m) {
                nh.groups = nh.groups.saturating_sub(1);
            }
        }
        for m in members.iter().filter(|m| !old_members.contains(m)) {
            if let Some(nh) = self.next_hops.get_mut(m) {
                nh.groups += 1;
            }
        }
        self.groups.insert(gid, entry);
        Ok(())
    }

    fn group_unref(&mut self, gid: u32) -> Result<(), FibError> {
        let g = self
            .groups
            .get_mut(&gid)
            .ok_or(FibError::Inconsistent("group"))?;
        g.routes -= 1;
        if g.routes > 0 {
            return Ok(());
        }
        self.free_group(gid)
    }

    /// Clears an unused group (so dumps show no ghost) and gives its id back.
    fn free_group(&mut self, gid: u32) -> Result<(), FibError> {
        self.set_group_members(gid, Vec::new())?;
        self.groups.remove(&gid);
        self.g_ids.release(gid);
        Ok(())
    }

    fn write_group(&mut self, gid: u32, value: &NextHopGroup) -> Result<(), FibError> {
        let slot = self.flip_target(Table::Groups, gid)?;
        self.maps.write_group(gid, 2 * gid + slot, value)?;
        self.flipped(Table::Groups, gid, slot)
    }

    fn write_next_hop(&mut self, id: u32, value: &NextHop) -> Result<(), FibError> {
        let slot = self.flip_target(Table::NextHops, id)?;
        self.maps.write_next_hop(id, 2 * id + slot, value)?;
        self.flipped(Table::NextHops, id, slot)
    }

    fn slots(&mut self, t: Table, id: u32) -> &mut Slots {
        match t {
            Table::Groups => &mut self.group_slots[id as usize],
            Table::NextHops => &mut self.next_hop_slots[id as usize],
        }
    }

    /// The idle slot of `id`, after waiting for a grace period if packets may still be
    /// reading it since it was retired.
    fn flip_target(&mut self, t: Table, id: u32) -> Result<u32, FibError> {
        if let Some(b) = &self.background {
            self.done = self.done.max(b.done.load(Ordering::Acquire));
        }
        let s = *self.slots(t, id);
        let target = s.live.map_or(0, |l| l ^ 1);
        if s.retired_at[target as usize] >= self.done {
            self.barrier_now()?;
        }
        Ok(target)
    }

    /// Records the flip; with background barriers, the retired slot's grace period
    /// starts at once, so it is over long before the slot is needed again.
    fn flipped(&mut self, t: Table, id: u32, target: u32) -> Result<(), FibError> {
        let epoch = self.epoch;
        let s = self.slots(t, id);
        let retired = s.live.is_some();
        if let Some(old) = s.live {
            s.retired_at[old as usize] = epoch;
        }
        s.live = Some(target);
        if retired {
            self.retired_now = true;
            self.last_retired = epoch;
            if self.background.is_some() {
                self.quiesce()?;
            }
        }
        Ok(())
    }

    fn egress_ref(&mut self, ifindex: u32) -> Result<(), FibError> {
        let n = self.egress.entry(ifindex).or_insert(0);
        if *n == 0 {
            self.maps.egress_ifs.insert(ifindex, ifindex, None, 0)?;
        }
        *n += 1;
        Ok(())
    }

    fn egress_unref(&mut self, ifindex: u32) -> Result<(), FibError> {
        if let Some(n) = self.egress.get_mut(&ifindex) {
            *n -= 1;
            if *n == 0 {
                self.egress.remove(&ifindex);
                self.maps.egress_ifs.remove(ifindex)?;
            }
        }
        Ok(())
    }

    /// Rebuilds the bookkeeping from what the maps hold.
    fn adopt(&mut self) -> Result<(), FibError> {
        // Next hops: every id with a key.
        for id in 1..MAX_NEXT_HOPS {
            let key = self.maps.next_hop_keys.get(&id, 0)?;
            let Some(k) = NextHopKey::from_entry(&key) else {
                continue;
            };
            let slot = self.maps.next_hop_refs.get(&id, 0)?.slot;
            let Some(bit) = slot.checked_sub(2 * id).filter(|b| *b < 2) else {
                continue;
            };
            let value = self.maps.next_hops.get(&slot, 0)?;
            self.next_hop_slots[id as usize].live = Some(bit);
            self.next_hop_ids.insert(k, id);
            self.next_hops.insert(
                id,
                NextHopEntry {
                    key: k,
                    value,
                    groups: 0,
                },
            );
            if value.kind == NH_FORWARD {
                *self.egress.entry(value.ifindex).or_insert(0) += 1;
            }
        }
        // Groups: every id whose live slot holds members that all exist.
        for gid in 1..MAX_GROUPS {
            let slot = self.maps.group_refs.get(&gid, 0)?.slot;
            let Some(bit) = slot.checked_sub(2 * gid).filter(|b| *b < 2) else {
                continue;
            };
            self.group_slots[gid as usize].live = Some(bit);
            let g = self.maps.groups.get(&slot, 0)?;
            let n = g.n_members as usize;
            if n == 0 || n > MAX_GROUP_MEMBERS {
                continue;
            }
            let members = g.members[..n].to_vec();
            if !members.iter().all(|m| self.next_hops.contains_key(m)) {
                continue;
            }
            for m in &members {
                if let Some(nh) = self.next_hops.get_mut(m) {
                    nh.groups += 1;
                }
            }
            self.group_ids_by_members
                .entry(members.clone())
                .or_insert(gid);
            self.groups.insert(
                gid,
                GroupEntry {
                    members,
                    buckets: g.buckets,
                    routes: 0,
                },
            );
        }
        // Routes: the tries are the source of truth; local addresses are told apart by
        // their flag.
        let mut routes = Vec::new();
        for kv in self.maps.routes_v4.iter() {
            let (k, r) = kv?;
            let net = ipnet::Ipv4Net::new(k.data().addr.into(), k.prefix_len() as u8)
                .map_err(|_| FibError::Inconsistent("IPv4 prefix length"))?;
            routes.push((IpNet::V4(net), r));
        }
        for kv in self.maps.routes_v6.iter() {
            let (k, r) = kv?;
            let net = ipnet::Ipv6Net::new(k.data().addr.into(), k.prefix_len() as u8)
                .map_err(|_| FibError::Inconsistent("IPv6 prefix length"))?;
            routes.push((IpNet::V6(net), r));
        }
        for (prefix, r) in routes {
            let gid = r.group;
            match self.groups.get_mut(&gid) {
                Some(g) => {
                    g.routes += 1;
                    if r.flags & ROUTE_F_LOCAL_ADDRESS != 0 {
                        self.locals.insert(prefix, gid);
                    } else {
                        self.routes.insert(prefix, gid);
                    }
                }
                // A route to a group that does not hold together: the kernel is a better
                // place for its packets than a broken entry.
                None => self.maps.remove_route(prefix)?,
            }
        }
        // Ids: gaps are free; unused groups are cleared and freed.
        let max_nh = self.next_hops.keys().max().copied().unwrap_or(0);
        self.nh_ids.next = max_nh + 1;
        for id in (1..=max_nh).filter(|id| !self.next_hops.contains_key(id)) {
            self.nh_ids.release(id);
        }
        let max_g = self.groups.keys().max().copied().unwrap_or(0);
        self.g_ids.next = max_g + 1;
        for id in (1..=max_g).filter(|id| !self.groups.contains_key(id)) {
            self.g_ids.release(id);
        }
        let unused: Vec<u32> = self
            .groups
            .iter()
            .filter(|(_, g)| g.routes == 0)
            .map(|(&id, _)| id)
            .collect();
        for gid in unused {
            self.free_group(gid)?;
        }
        Ok(())
    }
}

/// The barrier thread's side: where to ask for a grace period, and the latest epoch
/// whose grace period has completed.
struct Background {
    requests: mpsc::Sender<u64>,
    done: Arc<AtomicU64>,
}

#[derive(Clone, Copy)]
enum Table {
    Groups,
    NextHops,
}
