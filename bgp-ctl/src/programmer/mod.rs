//! The FIB programmer: keeps the XDP maps equal to the Loc-RIB.
//!
//! It turns each [`RibChange`] into routes of the dataplane's [`Fib`]: a multipath set
//! becomes a shared next-hop group (the `Fib` deduplicates groups by member set), a BGP
//! next hop becomes a next hop on the interface the kernel would use to reach it, with
//! the neighbor's MAC from the kernel's neighbor table, and a local pod route becomes a
//! next hop on the pod's host-side veth with the pod's MAC.
//!
//! A next hop whose MAC is not known yet points at the kernel (XDP_PASS), so the kernel
//! resolves it and nothing is lost; when the neighbor watcher reports the MAC, that one
//! next-hop entry is rewritten and every route through it follows. A peer going down
//! removes its next hops from the groups in place first, so the route changes that
//! follow find their groups already right and write nothing per route.
//!
//! The node's own addresses, from the kernel's address lists, are local entries ahead
//! of every route ([`local`]): a route from a peer that covers them, or names one of
//! them, does not take the node's own traffic away.
//!
//! The programmer is synchronous; the daemon's task around it does the netlink work it
//! asks for (route lookups of new next hops, neighbor resolution requests).

pub mod local;

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::Arc,
};

use bgp_wire::MpNextHop;
use ipnet::IpNet;
use xdp_fwd_common::{NH_BLACKHOLE, NH_FORWARD, NH_LOCAL, NH_UNRESOLVED, NextHop};

use crate::{
    fib::{Fib, FibError, NextHopKey},
    netlink::{Address, Egress},
    rib::{NextHopMember, PathSource, PeerId, RibChange},
};
use local::{ALWAYS_LOCAL, LocalAddresses, LocalChange};

/// What a locally originated prefix forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTarget {
    /// A pod behind its host-side veth (`ifindex`): forwarded to the pod's MAC.
    Pod {
        /// The host-side veth.
        ifindex: u32,
    },
    /// The node itself (static routes for host services): passed to the kernel.
    Kernel,
    /// Dropped: the uncovered space of an aggregate.
    Blackhole,
}

/// An interface as the dataplane needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    /// Its MAC, the source of forwarded frames.
    pub mac: [u8; 6],
    /// Its MTU.
    pub mtu: u32,
    /// Up and running.
    pub usable: bool,
}

/// Work for the daemon's netlink side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requests {
    /// Neighbors whose MAC is needed (ask the kernel to resolve and keep them resolved).
    pub resolve: Vec<(u32, IpAddr)>,
}

/// Keeps a [`Fib`] equal to the Loc-RIB.
pub struct FibProgrammer {
    fib: Fib,
    links: HashMap<u32, LinkInfo>,
    neighbors: HashMap<(u32, IpAddr), [u8; 6]>,
    /// Kernel's answer for each BGP next hop seen (`None`: unreachable).
    egress: HashMap<IpAddr, Option<Egress>>,
    local: HashMap<IpNet, LocalTarget>,
    /// Which peers' paths use each next hop (for the in-place removal on peer down).
    users: HashMap<NextHopKey, HashSet<PathSource>>,
    /// Routes not installed because no member could be resolved to an interface.
    unroutable: HashSet<IpNet>,
    /// The node's addresses, as the kernel reports them.
    addresses: LocalAddresses,
}

impl FibProgrammer {
    /// Takes over `fib` (opened on the pinned maps, possibly adopted from a previous run).
    pub fn new(fib: Fib) -> Self {
        FibProgrammer {
            fib,
            links: HashMap::new(),
            neighbors: HashMap::new(),
            egress: HashMap::new(),
            local: HashMap::new(),
            users: HashMap::new(),
            unroutable: HashSet::new(),
            addresses: LocalAddresses::default(),
        }
    }

    /// The dataplane table.
    pub fn fib(&self) -> &Fib {
        &self.fib
    }

    /// The dataplane table, for counters and options.
    pub fn fib_mut(&mut self) -> &mut Fib {
        &mut self.fib
    }

    /// BGP next hops of `changes` whose egress is not known yet: look them up with
    /// [`crate::netlink::RouteLookup`] and report with [`FibProgrammer::set_egress`]
    /// before [`FibProgrammer::apply`].
    pub fn unknown_next_hops(&self, changes: &[RibChange]) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        let mut last: Option<&Arc<[NextHopMember]>> = None;
        for c in changes {
            let Some(best) = &c.best else { continue };
            // Changes of one batch share member sets: look at each set once.
            if last.is_some_and(|l| Arc::ptr_eq(l, &best.multipath)) {
                continue;
            }
            last = Some(&best.multipath);
            for m in best.multipath.iter() {
                if m.source == PathSource::Local {
                    continue;
                }
                let addr = next_hop_addr(&m.next_hop);
                if !self.egress.contains_key(&addr) && !out.contains(&addr) {
                    out.push(addr);
                }
            }
        }
        out
    }

    /// The kernel's route to a BGP next hop, as last looked up (`None`: unknown or
    /// unreachable).
    pub fn egress(&self, next_hop: IpAddr) -> Option<Egress> {
        self.egress.get(&next_hop).copied().flatten()
    }

    /// Records the kernel's route to a BGP next hop.
    pub fn set_egress(&mut self, next_hop: IpAddr, egress: Option<Egress>) {
        self.egress.insert(next_hop, egress);
    }

    /// Declares what a locally originated prefix forwards to (before its RIB change).
    pub fn set_local_target(&mut self, prefix: IpNet, target: LocalTarget) {
        self.local.insert(prefix.trunc(), target);
    }

    /// Forgets a local prefix's target (after its RIB withdrawal).
    pub fn remove_local_target(&mut self, prefix: &IpNet) {
        self.local.remove(&prefix.trunc());
    }

    /// Applies Loc-RIB changes. Returns the neighbors to resolve.
    pub fn apply(&mut self, changes: &[RibChange]) -> Result<Requests, FibError> {
        let mut req = Requests::default();
        let mut keys = Vec::with_capacity(16);
        let mut last: Option<Arc<[NextHopMember]>> = None;
        for c in changes {
            let prefix = c.prefix.trunc();
            let Some(best) = &c.best else {
                self.unroutable.remove(&prefix);
                self.fib.del_route(&prefix)?;
                continue;
            };
            // Consecutive changes with the same (shared) member set of BGP paths resolve
            // to the same keys: reuse them.
            let shared = best.multipath.iter().all(|m| m.source != PathSource::Local);
            if !(shared
                && last
                    .as_ref()
                    .is_some_and(|l| Arc::ptr_eq(l, &best.multipath)))
            {
                keys.clear();
                for m in best.multipath.iter() {
                    if let Some(key) = self.member_key(prefix, m, &mut req)? {
                        if !keys.contains(&key) {
                            keys.push(key);
                        }
                        self.users.entry(key).or_default().insert(m.source);
                    }
                }
                last = shared.then(|| best.multipath.clone());
            }
            if keys.is_empty() {
                // No member reachable: leave the prefix to the kernel.
                self.unroutable.insert(prefix);
                self.fib.del_route(&prefix)?;
                continue;
            }
            self.unroutable.remove(&prefix);
            self.fib.add_route(prefix, &keys)?;
        }
        Ok(req)
    }

    /// The dataplane key of one multipath member, creating its next hop if new.
    fn member_key(
        &mut self,
        prefix: IpNet,
        member: &NextHopMember,
        req: &mut Requests,
    ) -> Result<Option<NextHopKey>, FibError> {
        let (key, ifindex, neighbor) = match member.source {
            PathSource::Local => match self.local.get(&prefix) {
                Some(LocalTarget::Pod { ifindex }) => (
                    NextHopKey::Neighbor {
                        ifindex: *ifindex,
                        addr: prefix.addr(),
                    },
                    *ifindex,
                    prefix.addr(),
                ),
                Some(LocalTarget::Blackhole) => {
                    self.ensure_special(NextHopKey::Blackhole, NH_BLACKHOLE)?;
                    return Ok(Some(NextHopKey::Blackhole));
                }
                Some(LocalTarget::Kernel) | None => {
                    self.ensure_special(NextHopKey::Local, NH_LOCAL)?;
                    return Ok(Some(NextHopKey::Local));
                }
            },
            PathSource::Peer(_) => {
                let addr = next_hop_addr(&member.next_hop);
                let Some(Some(egress)) = self.egress.get(&addr) else {
                    return Ok(None);
                };
                let neighbor = egress.neighbor(addr);
                (
                    NextHopKey::Neighbor {
                        ifindex: egress.ifindex,
                        addr: neighbor,
                    },
                    egress.ifindex,
                    neighbor,
                )
            }
        };
        let value = self.next_hop_value(ifindex, neighbor);
        match self.fib.next_hop(&key) {
            None => {
                if value.kind != NH_FORWARD {
                    req.resolve.push((ifindex, neighbor));
                }
                self.fib.set_next_hop(key, value)?;
            }
            // Known now (an entry adopted after a restart, written before the link and
            // neighbor were): bring it up to date. An unresolved answer is left to the
            // link and neighbor events, which know whether it is missing or gone.
            Some(old) if value.kind == NH_FORWARD && old != value => {
                self.fib.set_next_hop(key, value)?;
            }
            Some(_) => {}
        }
        Ok(Some(key))
    }

    fn ensure_special(&mut self, key: NextHopKey, kind: u32) -> Result<(), FibError> {
        if self.fib.next_hop(&key).is_none() {
            self.fib.set_next_hop(
                key,
                NextHop {
                    kind,
                    ..NextHop::default()
                },
            )?;
        }
        Ok(())
    }

    /// Forward when the link is usable and the neighbor's MAC known; else to the kernel.
    fn next_hop_value(&self, ifindex: u32, neighbor: IpAddr) -> NextHop {
        match (
            self.links.get(&ifindex),
            self.neighbors.get(&(ifindex, neighbor)),
        ) {
            (Some(link), Some(mac)) if link.usable => NextHop {
                kind: NH_FORWARD,
                ifindex,
                mtu: link.mtu,
                src_mac: link.mac,
                dst_mac: *mac,
            },
            _ => NextHop {
                kind: NH_UNRESOLVED,
                ifindex,
                ..NextHop::default()
            },
        }
    }

    /// A neighbor entry changed (`mac` `None`: unresolved or gone). Rewrites the one next
    /// hop that uses it, if any; `true` when a next hop uses it (a gone entry must then
    /// be resolved again: nothing else would ask the kernel).
    pub fn neighbor_changed(
        &mut self,
        ifindex: u32,
        addr: IpAddr,
        mac: Option<[u8; 6]>,
    ) -> Result<bool, FibError> {
        match mac {
            Some(mac) => self.neighbors.insert((ifindex, addr), mac),
            None => self.neighbors.remove(&(ifindex, addr)),
        };
        let key = NextHopKey::Neighbor { ifindex, addr };
        // Before its link is known (the watchers' first dumps come in any order), the
        // entry is left as it is: the link's report rewrites it.
        let used = self.fib.next_hop(&key).is_some();
        if self.links.contains_key(&ifindex) && used {
            let value = self.next_hop_value(ifindex, addr);
            self.fib.set_next_hop(key, value)?;
        }
        Ok(used)
    }

    /// A link appeared or changed (`None`: removed). Rewrites the next hops on it.
    pub fn link_changed(&mut self, ifindex: u32, link: Option<LinkInfo>) -> Result<(), FibError> {
        match link {
            Some(l) => self.links.insert(ifindex, l),
            None => self.links.remove(&ifindex),
        };
        // Every next hop on the link, adopted ones too (no route may use them yet).
        let on_link: Vec<(NextHopKey, IpAddr)> = self
            .fib
            .next_hop_keys()
            .filter_map(|k| match k {
                NextHopKey::Neighbor { ifindex: i, addr } if i == ifindex => Some((k, addr)),
                _ => None,
            })
            .collect();
        for (key, addr) in on_link {
            if self.fib.next_hop(&key).is_some() {
                let value = self.next_hop_value(ifindex, addr);
                self.fib.set_next_hop(key, value)?;
            }
        }
        Ok(())
    }

    /// A peer's session went down without graceful restart: its next hops leave every
    /// group now, before the RIB's changes for its routes arrive, so that those changes
    /// find their groups already shrunk and write nothing per route. Returns the number
    /// of groups rewritten.
    pub fn peer_down(&mut self, peer: PeerId) -> Result<usize, FibError> {
        let source = PathSource::Peer(peer);
        let mut rewritten = 0;
        let keys: Vec<NextHopKey> = self
            .users
            .iter_mut()
            .filter_map(|(k, users)| (users.remove(&source) && users.is_empty()).then_some(*k))
            .collect();
        for key in keys {
            self.users.remove(&key);
            rewritten += self.fib.remove_next_hop(&key)?;
        }
        Ok(rewritten)
    }

    /// Installs the address space that is always the node's ([`ALWAYS_LOCAL`]): at
    /// start, before any route.
    pub fn install_always_local(&mut self) -> Result<(), FibError> {
        for p in ALWAYS_LOCAL {
            self.fib.add_local(p)?;
        }
        Ok(())
    }

    /// One of the node's addresses appeared or changed (`present`), or went away: its
    /// host prefixes become, or stop being, local entries.
    pub fn address_changed(&mut self, a: &Address, present: bool) -> Result<(), FibError> {
        let change = if present {
            self.addresses.set(a)
        } else {
            self.addresses.remove(a)
        };
        self.apply_local(change)
    }

    /// The address watcher has reported every address the kernel has (its first dump,
    /// or a re-dump): local entries that no address accounts for go (adopted from a
    /// previous run, for addresses removed meanwhile), missing ones come. Returns how
    /// many were added and removed.
    pub fn addresses_synced(&mut self) -> Result<(usize, usize), FibError> {
        let change = self.addresses.reconcile(self.fib.local_prefixes());
        let counts = (change.add.len(), change.remove.len());
        self.apply_local(change)?;
        Ok(counts)
    }

    fn apply_local(&mut self, change: LocalChange) -> Result<(), FibError> {
        for p in &change.add {
            self.fib.add_local(*p)?;
        }
        for p in &change.remove {
            self.fib.del_local(p)?;
        }
        Ok(())
    }

    /// Routes the programmer could not install (no member had a route in the kernel).
    pub fn unroutable(&self) -> usize {
        self.unroutable.len()
    }
}

/// The address a BGP next hop is reached at (IPv6: the global address; the link-local
/// one FRR adds is on the same link).
pub fn next_hop_addr(nh: &MpNextHop) -> IpAddr {
    match nh {
        MpNextHop::Ipv4(a) => IpAddr::V4(*a),
        MpNextHop::Ipv6 { global, .. } => IpAddr::V6(*global),
    }
}

/// What the speaker sends the programmer's task, in order.
#[derive(Debug)]
pub enum Work {
    /// Loc-RIB changes to apply.
    Changes(Vec<RibChange>),
    /// A peer went down without graceful restart; its changes follow.
    PeerDown(PeerId),
    /// What a local prefix forwards to (before its changes), or `None` once withdrawn.
    LocalTarget(IpNet, Option<LocalTarget>),
}
