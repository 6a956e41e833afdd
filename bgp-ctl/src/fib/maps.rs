//! Typed handles to the pinned dataplane maps, and the write protocol that keeps every
//! update atomic for packets: double-buffered slots, flipped by one 32-bit store, with an
//! RCU grace period before a retired slot is written again.

use std::path::{Path, PathBuf};

use aya::maps::{
    Array, DevMapHash, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, lpm_trie::Key,
    of_maps::ArrayOfMaps,
};
use ipnet::IpNet;
use xdp_fwd_common::{
    Config, Counters, GroupSlotRef, Ipv4Key, Ipv6Key, NextHop, NextHopGroup, NextHopKeyEntry,
    NextHopSlotRef, Route, map_name,
};

use super::FibError;

/// How many map operations of each kind were issued; lets tests prove that an event
/// touched only what it should.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapOps {
    /// Route entries written or deleted (tries and host tables).
    pub route_writes: u64,
    /// Group slots and group references written.
    pub group_writes: u64,
    /// Next-hop slots, references and keys written.
    pub next_hop_writes: u64,
    /// RCU grace periods waited for by the writer (it blocked meanwhile).
    pub barriers: u64,
    /// RCU grace periods started on the barrier thread (the writer went on).
    pub background_barriers: u64,
}

/// The pinned maps, opened from their pins.
pub struct FibMaps {
    pub(super) routes_v4: LpmTrie<MapData, Ipv4Key, Route>,
    pub(super) routes_v6: LpmTrie<MapData, Ipv6Key, Route>,
    pub(super) hosts_v4: HashMap<MapData, Ipv4Key, Route>,
    pub(super) hosts_v6: HashMap<MapData, Ipv6Key, Route>,
    pub(super) group_refs: Array<MapData, GroupSlotRef>,
    pub(super) groups: Array<MapData, NextHopGroup>,
    pub(super) next_hop_refs: Array<MapData, NextHopSlotRef>,
    pub(super) next_hops: Array<MapData, NextHop>,
    pub(super) next_hop_keys: Array<MapData, NextHopKeyEntry>,
    pub(super) egress_ifs: DevMapHash<MapData>,
    pub(super) counters: PerCpuArray<MapData, Counters>,
    pub(super) config: Array<MapData, Config>,
    barrier: RcuBarrier,
    /// Where the maps are pinned.
    pub(super) dir: PathBuf,
    /// Operations issued so far.
    pub ops: MapOps,
}

/// Waits for an RCU grace period: the kernel calls synchronize_rcu() after updating a
/// map-in-map, so when the update returns, every program run that started before it
/// has finished.
pub(super) struct RcuBarrier {
    outer: ArrayOfMaps<MapData, Array<MapData, u32>>,
    inner: Array<MapData, u32>,
}

impl RcuBarrier {
    /// Opens the pinned barrier map in `dir`, with an inner map of its own.
    pub fn open(dir: &Path) -> Result<Self, FibError> {
        Ok(RcuBarrier {
            outer: open(dir, map_name::RCU_BARRIER, Map::ArrayOfMaps)?.try_into()?,
            inner: Array::create(1, 0)?,
        })
    }

    /// Blocks for one grace period.
    pub fn wait(&mut self) -> Result<(), FibError> {
        self.outer.set(0, &self.inner, 0)?;
        Ok(())
    }
}

fn open(dir: &Path, name: &'static str, wrap: fn(MapData) -> Map) -> Result<Map, FibError> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path).map_err(|e| match e {
        MapError::SyscallError(ref s) if s.io_error.kind() == std::io::ErrorKind::NotFound => {
            if dir.exists() {
                FibError::NotPinned(dir.to_path_buf(), name)
            } else {
                FibError::NoPins(dir.to_path_buf())
            }
        }
        e => FibError::Map(e),
    })?;
    Ok(wrap(data))
}

impl FibMaps {
    /// Opens the maps pinned in `pin_dir` (created by [`super::Dataplane::open`]).
    pub fn open(pin_dir: impl AsRef<Path>) -> Result<Self, FibError> {
        let d = pin_dir.as_ref();
        Ok(Self {
            routes_v4: open(d, map_name::ROUTES_V4, Map::LpmTrie)?.try_into()?,
            routes_v6: open(d, map_name::ROUTES_V6, Map::LpmTrie)?.try_into()?,
            hosts_v4: open(d, map_name::HOSTS_V4, Map::HashMap)?.try_into()?,
            hosts_v6: open(d, map_name::HOSTS_V6, Map::HashMap)?.try_into()?,
            group_refs: open(d, map_name::GROUP_REFS, Map::Array)?.try_into()?,
            groups: open(d, map_name::GROUPS, Map::Array)?.try_into()?,
            next_hop_refs: open(d, map_name::NEXT_HOP_REFS, Map::Array)?.try_into()?,
            next_hops: open(d, map_name::NEXT_HOPS, Map::Array)?.try_into()?,
            next_hop_keys: open(d, map_name::NEXT_HOP_KEYS, Map::Array)?.try_into()?,
            egress_ifs: open(d, map_name::EGRESS_IFS, Map::DevMapHash)?.try_into()?,
            counters: open(d, map_name::COUNTERS, Map::PerCpuArray)?.try_into()?,
            config: open(d, map_name::CONFIG, Map::Array)?.try_into()?,
            barrier: RcuBarrier::open(d)?,
            dir: d.to_path_buf(),
            ops: MapOps::default(),
        })
    }

    /// The per-CPU counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, FibError> {
        let per_cpu = self.counters.get(&0, 0)?;
        Ok(per_cpu.iter().fold(Counters::default(), sum_counters))
    }

    /// Reads, changes and writes back the config entry (one aligned store per field
    /// that the program reads, so it sees the old or the new value).
    pub fn update_config(&mut self, f: impl FnOnce(&mut Config)) -> Result<(), FibError> {
        let mut c = self.config.get(&0, 0)?;
        f(&mut c);
        self.config.set(0, c, 0)?;
        Ok(())
    }

    /// Waits until every program run that started before now has finished.
    pub(super) fn rcu_barrier(&mut self) -> Result<(), FibError> {
        self.barrier.wait()?;
        self.ops.barriers += 1;
        Ok(())
    }

    pub(super) fn write_group(
        &mut self,
        id: u32,
        slot: u32,
        g: &NextHopGroup,
    ) -> Result<(), FibError> {
        self.groups.set(slot, g, 0)?;
        self.group_refs.set(id, GroupSlotRef { slot }, 0)?;
        self.ops.group_writes += 2;
        Ok(())
    }

    pub(super) fn write_next_hop(
        &mut self,
        id: u32,
        slot: u32,
        nh: &NextHop,
    ) -> Result<(), FibError> {
        self.next_hops.set(slot, nh, 0)?;
        self.next_hop_refs.set(id, NextHopSlotRef { slot }, 0)?;
        self.ops.next_hop_writes += 2;
        Ok(())
    }

    pub(super) fn write_next_hop_key(
        &mut self,
        id: u32,
        key: &NextHopKeyEntry,
    ) -> Result<(), FibError> {
        self.next_hop_keys.set(id, key, 0)?;
        self.ops.next_hop_writes += 1;
        Ok(())
    }

    /// Installs `prefix -> group` with `flags` (`ROUTE_F_*`): always in the trie (the
    /// source of truth), and for a host route also in the exact-match table that packets
    /// look at first. An installed prefix is replaced in place (no moment without it).
    pub(super) fn insert_route(
        &mut self,
        prefix: IpNet,
        group: u32,
        flags: u32,
    ) -> Result<(), FibError> {
        let route = Route { group, flags };
        match prefix {
            IpNet::V4(p) => {
                let addr = Ipv4Key {
                    addr: p.network().octets(),
                };
                self.routes_v4
                    .insert(&Key::new(p.prefix_len().into(), addr), route, 0)?;
                if p.prefix_len() == 32 {
                    self.hosts_v4.insert(addr, route, 0)?;
                    self.ops.route_writes += 1;
                }
            }
            IpNet::V6(p) => {
                let addr = Ipv6Key {
                    addr: p.network().octets(),
                };
                self.routes_v6
                    .insert(&Key::new(p.prefix_len().into(), addr), route, 0)?;
                if p.prefix_len() == 128 {
                    self.hosts_v6.insert(addr, route, 0)?;
                    self.ops.route_writes += 1;
                }
            }
        }
        self.ops.route_writes += 1;
        Ok(())
    }

    /// Removes a route (host table first, so no packet finds a host entry whose trie
    /// entry is gone).
    pub(super) fn remove_route(&mut self, prefix: IpNet) -> Result<(), FibError> {
        match prefix {
            IpNet::V4(p) => {
                let addr = Ipv4Key {
                    addr: p.network().octets(),
                };
                if p.prefix_len() == 32 {
                    ignore_missing(self.hosts_v4.remove(&addr))?;
                    self.ops.route_writes += 1;
                }
                ignore_missing(
                    self.routes_v4
                        .remove(&Key::new(p.prefix_len().into(), addr)),
                )?;
            }
            IpNet::V6(p) => {
                let addr = Ipv6Key {
                    addr: p.network().octets(),
                };
                if p.prefix_len() == 128 {
                    ignore_missing(self.hosts_v6.remove(&addr))?;
                    self.ops.route_writes += 1;
                }
                ignore_missing(
                    self.routes_v6
                        .remove(&Key::new(p.prefix_len().into(), addr)),
                )?;
            }
        }
        self.ops.route_writes += 1;
        Ok(())
    }
}

fn ignore_missing(r: Result<(), MapError>) -> Result<(), FibError> {
    match r {
        Ok(()) => Ok(()),
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(s)) if s.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn sum_counters(mut a: Counters, b: &Counters) -> Counters {
    a.rx += b.rx;
    a.forwarded += b.forwarded;
    a.pass_not_ip += b.pass_not_ip;
    a.pass_vlan += b.pass_vlan;
    a.pass_malformed += b.pass_malformed;
    a.pass_no_route += b.pass_no_route;
    a.pass_ttl += b.pass_ttl;
    a.pass_ip_options += b.pass_ip_options;
    a.pass_fragment += b.pass_fragment;
    a.pass_neigh_unresolved += b.pass_neigh_unresolved;
    a.pass_local += b.pass_local;
    a.pass_too_big += b.pass_too_big;
    a.pass_no_next_hop += b.pass_no_next_hop;
    a.pass_no_egress += b.pass_no_egress;
    a.drop_blackhole += b.drop_blackhole;
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_directory_that_is_not_there_is_named_as_such() {
        let dir = Path::new("/sys/fs/bpf/bgp-ctl-test-no-such-pins");
        match FibMaps::open(dir) {
            Err(FibError::NoPins(d)) => assert_eq!(d, dir),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("opened maps that are not there"),
        }
    }
}
