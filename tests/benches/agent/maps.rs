//! The agent's XDP maps read from their pins, as the program sees them: a route's
//! host-table entry, its group's live slot and that slot's members' identities.

use std::{net::Ipv4Addr, path::Path};

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, Map, MapData, MapError};
use xdp_fwd_common::{
    GroupSlotRef, Ipv4Key, NHK_NEIGHBOR_V4, NextHopGroup, NextHopKeyEntry, ROUTE_F_LOCAL_ADDRESS,
    Route, map_name,
};

/// The pinned maps of one agent.
pub struct PinnedMaps {
    hosts_v4: HashMap<MapData, Ipv4Key, Route>,
    group_refs: Array<MapData, GroupSlotRef>,
    groups: Array<MapData, NextHopGroup>,
    next_hop_keys: Array<MapData, NextHopKeyEntry>,
}

fn pinned(dir: &Path, name: &str) -> Result<MapData> {
    MapData::from_pin(dir.join(name)).with_context(|| format!("opening pinned map {name}"))
}

impl PinnedMaps {
    /// Opens the maps pinned in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(PinnedMaps {
            hosts_v4: HashMap::try_from(Map::HashMap(pinned(dir, map_name::HOSTS_V4)?))?,
            group_refs: Array::try_from(Map::Array(pinned(dir, map_name::GROUP_REFS)?))?,
            groups: Array::try_from(Map::Array(pinned(dir, map_name::GROUPS)?))?,
            next_hop_keys: Array::try_from(Map::Array(pinned(dir, map_name::NEXT_HOP_KEYS)?))?,
        })
    }

    /// The host-table entry of `addr`/32: what a packet to it finds first.
    pub fn host(&self, addr: Ipv4Addr) -> Result<Option<Route>> {
        match self.hosts_v4.get(
            &Ipv4Key {
                addr: addr.octets(),
            },
            0,
        ) {
            Ok(r) => Ok(Some(r)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The IPv4 neighbors in the live slot of the group that `addr`/32 points at, as a
    /// packet would read them (None: no such route).
    pub fn neighbors(&self, addr: Ipv4Addr) -> Result<Option<Vec<Ipv4Addr>>> {
        let Some(route) = self.host(addr)? else {
            return Ok(None);
        };
        let slot = self.group_refs.get(&route.group, 0)?.slot;
        let g = self.groups.get(&slot, 0)?;
        let n = (g.n_members as usize).min(g.members.len());
        let mut out = Vec::with_capacity(n);
        for id in &g.members[..n] {
            let k = self.next_hop_keys.get(id, 0)?;
            if k.kind == NHK_NEIGHBOR_V4 {
                out.push(Ipv4Addr::new(k.addr[0], k.addr[1], k.addr[2], k.addr[3]));
            }
        }
        Ok(Some(out))
    }

    /// Number of /32 routes in the host table, the node's own addresses left out
    /// (walks it: slow at a million).
    pub fn host_count(&self) -> Result<usize> {
        let mut n = 0;
        for entry in self.hosts_v4.iter() {
            let (_, route) = entry?;
            if route.flags & ROUTE_F_LOCAL_ADDRESS == 0 {
                n += 1;
            }
        }
        Ok(n)
    }
}
