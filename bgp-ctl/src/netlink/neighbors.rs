//! The neighbor (ARP / NDP) table: next-hop and pod MACs, with change events, and
//! requests that make the kernel resolve an address.
//!
//! The FIB programmer needs two kinds of MAC, both from here:
//! - a BGP next hop's: the neighbor entry for the next-hop address on the egress
//!   interface;
//! - a local pod's: the neighbor entry for the pod IP on the pod route's host-side veth
//!   ([`super::PodRoute::ifindex`]), since the pod answers ARP/ND for its address.
//!
//! When the entry is missing or has no MAC, [`NeighborResolver::request_resolution`]
//! makes the kernel send ARP/ND now, and the watcher then reports the answer. The XDP
//! dataplane forwards without the kernel ever using these entries, so they would age to
//! STALE and never be re-confirmed; [`NeighborResolver::keep_resolved`] creates a
//! *managed* entry instead, which the kernel keeps resolved by itself.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourFlags, NeighbourMessage,
        NeighbourState,
    },
};

use super::{
    NetlinkError,
    socket::{NetlinkSocket, Received},
    watch::{self, Event, KernelTable, Mirror, Watch, WatchOptions},
};

/// `RTNLGRP_NEIGH`.
const RTNLGRP_NEIGH: u32 = 3;

/// State of a neighbor entry (`NUD_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighborState {
    /// Resolution in progress: no MAC yet.
    Incomplete,
    /// Confirmed recently.
    Reachable,
    /// Not confirmed recently, MAC still used.
    Stale,
    /// Waiting before probing, MAC used.
    Delay,
    /// Being re-confirmed by unicast probes, MAC used.
    Probe,
    /// Resolution failed: no MAC.
    Failed,
    /// No resolution needed on this device; the MAC is fixed.
    NoArp,
    /// Set by an administrator.
    Permanent,
    /// Created but not resolved yet (e.g. just after a resolution request).
    None,
    /// A state this code does not know.
    Unknown(u16),
}

impl NeighborState {
    /// Whether the kernel holds a usable link-layer address in this state.
    pub fn has_mac(self) -> bool {
        matches!(
            self,
            Self::Reachable
                | Self::Stale
                | Self::Delay
                | Self::Probe
                | Self::NoArp
                | Self::Permanent
        )
    }
}

impl From<NeighbourState> for NeighborState {
    fn from(state: NeighbourState) -> Self {
        match state {
            NeighbourState::Incomplete => Self::Incomplete,
            NeighbourState::Reachable => Self::Reachable,
            NeighbourState::Stale => Self::Stale,
            NeighbourState::Delay => Self::Delay,
            NeighbourState::Probe => Self::Probe,
            NeighbourState::Failed => Self::Failed,
            NeighbourState::Noarp => Self::NoArp,
            NeighbourState::Permanent => Self::Permanent,
            NeighbourState::None => Self::None,
            other => Self::Unknown(u16::from(other)),
        }
    }
}

/// A neighbor entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    /// The interface it is on.
    pub ifindex: u32,
    /// The IP address.
    pub addr: IpAddr,
    /// The Ethernet address, when the state has one ([`NeighborState::has_mac`]) and
    /// it is 6 bytes long.
    pub mac: Option<[u8; 6]>,
    /// The entry's state.
    pub state: NeighborState,
}

/// Parses an `RTM_NEWNEIGH`/`RTM_DELNEIGH` of an IP neighbor. `None` for bridge FDB
/// entries, proxy entries and messages without an IP destination.
fn parse_neighbor(message: &NeighbourMessage) -> Option<Neighbor> {
    let header = &message.header;
    if !matches!(header.family, AddressFamily::Inet | AddressFamily::Inet6)
        || header.flags.contains(NeighbourFlags::Proxy)
    {
        return None;
    }
    let mut addr = None;
    let mut lladdr = None;
    for attribute in &message.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                addr = Some(IpAddr::V4(*a))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                addr = Some(IpAddr::V6(*a))
            }
            NeighbourAttribute::LinkLayerAddress(l) => {
                lladdr = <[u8; 6]>::try_from(l.as_slice()).ok()
            }
            _ => {}
        }
    }
    let state = NeighborState::from(header.state);
    Some(Neighbor {
        ifindex: header.ifindex,
        addr: addr?,
        mac: lladdr.filter(|_| state.has_mac()),
        state,
    })
}

fn dump_request(family: AddressFamily) -> RouteNetlinkMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = family;
    RouteNetlinkMessage::GetNeighbour(message)
}

/// The neighbor table as a [`KernelTable`].
struct NeighborTable {
    mirror: Mirror<(u32, IpAddr), Neighbor>,
}

impl KernelTable for NeighborTable {
    type Item = Neighbor;
    const NAME: &'static str = "neighbor";

    fn groups(&self) -> Vec<u32> {
        vec![RTNLGRP_NEIGH]
    }

    fn dumps(&self) -> Vec<(&'static str, RouteNetlinkMessage)> {
        vec![
            ("ARP", dump_request(AddressFamily::Inet)),
            ("NDP", dump_request(AddressFamily::Inet6)),
        ]
    }

    fn load(&mut self, dumped: Vec<RouteNetlinkMessage>, out: &mut Vec<Event<Neighbor>>) {
        let fresh = dumped
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => parse_neighbor(n),
                _ => None,
            })
            .map(|n| ((n.ifindex, n.addr), n))
            .collect();
        self.mirror.replace_all(fresh, out);
    }

    fn apply(&mut self, received: Received, out: &mut Vec<Event<Neighbor>>) {
        match &received.message {
            RouteNetlinkMessage::NewNeighbour(m) => {
                if let Some(n) = parse_neighbor(m) {
                    self.mirror.set((n.ifindex, n.addr), n, out);
                }
            }
            RouteNetlinkMessage::DelNeighbour(m) => {
                if let Some(n) = parse_neighbor(m) {
                    self.mirror.remove(&(n.ifindex, n.addr), out);
                }
            }
            _ => {}
        }
    }
}

/// Follows the kernel's IPv4 and IPv6 neighbor tables: every entry as `Added` then
/// `Synced`, then `Added` / `Changed` (state or MAC) / `Removed` as they happen. Must
/// be called within a tokio runtime.
pub fn watch_neighbors(options: &WatchOptions) -> Result<Watch<Neighbor>, NetlinkError> {
    watch::start(
        NeighborTable {
            mirror: Mirror::new(),
        },
        options,
    )
}

/// Asks the kernel to resolve addresses; answers arrive through [`watch_neighbors`].
pub struct NeighborResolver {
    socket: NetlinkSocket,
}

impl NeighborResolver {
    /// Opens the request socket. Must be called within a tokio runtime.
    pub fn new() -> Result<Self, NetlinkError> {
        Ok(Self {
            socket: NetlinkSocket::requests()?,
        })
    }

    /// Makes the kernel send an ARP request / neighbor solicitation for `addr` on
    /// `ifindex` now, creating the entry if needed (`RTM_NEWNEIGH` with `NTF_USE`, as
    /// `ip neigh replace ADDR dev DEV use` and FRR do). An entry that is already
    /// resolved is re-confirmed. The kernel reports nothing while the entry is
    /// INCOMPLETE: the answer comes as a resolved entry, and silence as a FAILED one once
    /// the probes ran out (about 3 s with default settings, measured on 6.18). Not for
    /// administratively set (permanent) entries: the kernel turns those into ordinary
    /// ones.
    pub async fn request_resolution(
        &mut self,
        ifindex: u32,
        addr: IpAddr,
    ) -> Result<(), NetlinkError> {
        let message = new_neighbor(
            ifindex,
            addr,
            NeighbourFlags::Use,
            NeighbourExtFlags::empty(),
        );
        self.socket
            .request(
                RouteNetlinkMessage::NewNeighbour(message),
                NLM_F_CREATE | NLM_F_REPLACE,
                || format!("RTM_NEWNEIGH use {addr} ifindex {ifindex}"),
            )
            .await
    }

    /// Creates a *managed* entry for `addr` on `ifindex` (`NTF_EXT_MANAGED`, Linux 5.16):
    /// the kernel resolves it at once and keeps re-resolving it, so it stays usable
    /// even when no kernel traffic uses it, and it is never garbage-collected. For
    /// next hops the dataplane forwards to. Remove it with [`Self::forget`].
    pub async fn keep_resolved(&mut self, ifindex: u32, addr: IpAddr) -> Result<(), NetlinkError> {
        let message = new_neighbor(
            ifindex,
            addr,
            NeighbourFlags::Use,
            NeighbourExtFlags::Managed,
        );
        self.socket
            .request(
                RouteNetlinkMessage::NewNeighbour(message),
                NLM_F_CREATE | NLM_F_REPLACE,
                || format!("RTM_NEWNEIGH managed {addr} ifindex {ifindex}"),
            )
            .await
    }

    /// Deletes the entry for `addr` on `ifindex`. `Ok(false)` if there was none.
    pub async fn forget(&mut self, ifindex: u32, addr: IpAddr) -> Result<bool, NetlinkError> {
        let message = new_neighbor(
            ifindex,
            addr,
            NeighbourFlags::empty(),
            NeighbourExtFlags::empty(),
        );
        match self
            .socket
            .request(RouteNetlinkMessage::DelNeighbour(message), 0, || {
                format!("RTM_DELNEIGH {addr} ifindex {ifindex}")
            })
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn new_neighbor(
    ifindex: u32,
    addr: IpAddr,
    flags: NeighbourFlags,
    ext: NeighbourExtFlags,
) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message.header.ifindex = ifindex;
    // NUD_NONE: with NTF_USE the kernel keeps the entry's state and only triggers
    // resolution; a new entry starts unresolved and subject to normal garbage collection.
    message.header.state = NeighbourState::None;
    message.header.flags = flags;
    message
        .attributes
        .push(NeighbourAttribute::Destination(addr.into()));
    if !ext.is_empty() {
        message.attributes.push(NeighbourAttribute::ExtFlags(ext));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(
        family: AddressFamily,
        state: NeighbourState,
        attrs: Vec<NeighbourAttribute>,
    ) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.family = family;
        m.header.ifindex = 4;
        m.header.state = state;
        m.attributes = attrs;
        m
    }

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn resolved(state: NeighbourState) -> NeighbourMessage {
        message(
            AddressFamily::Inet,
            state,
            vec![
                NeighbourAttribute::Destination(NeighbourAddress::Inet(
                    "192.0.2.2".parse().unwrap(),
                )),
                NeighbourAttribute::LinkLayerAddress(MAC.to_vec()),
            ],
        )
    }

    #[test]
    fn usable_states_carry_the_mac() {
        for state in [
            NeighbourState::Reachable,
            NeighbourState::Stale,
            NeighbourState::Delay,
            NeighbourState::Probe,
            NeighbourState::Permanent,
        ] {
            let n = parse_neighbor(&resolved(state)).unwrap();
            assert_eq!(n.mac, Some(MAC), "{state:?}");
            assert_eq!(n.ifindex, 4);
            assert_eq!(n.addr, "192.0.2.2".parse::<IpAddr>().unwrap());
        }
    }

    #[test]
    fn failed_and_incomplete_entries_have_no_mac_even_if_the_kernel_sends_one() {
        for state in [
            NeighbourState::Failed,
            NeighbourState::Incomplete,
            NeighbourState::None,
        ] {
            let n = parse_neighbor(&resolved(state)).unwrap();
            assert_eq!(n.mac, None, "{state:?}");
        }
    }

    #[test]
    fn bridge_fdb_and_proxy_entries_are_not_neighbors() {
        let mut fdb = resolved(NeighbourState::Reachable);
        fdb.header.family = AddressFamily::Bridge;
        assert!(parse_neighbor(&fdb).is_none());
        let mut proxy = resolved(NeighbourState::Reachable);
        proxy.header.flags = NeighbourFlags::Proxy;
        assert!(parse_neighbor(&proxy).is_none());
        let no_dst = message(AddressFamily::Inet6, NeighbourState::Reachable, vec![]);
        assert!(parse_neighbor(&no_dst).is_none());
    }

    #[test]
    fn resolution_requests_use_ntf_use_and_managed_ones_the_ext_flag() {
        let m = new_neighbor(
            3,
            "fe80::1".parse().unwrap(),
            NeighbourFlags::Use,
            NeighbourExtFlags::Managed,
        );
        assert_eq!(m.header.family, AddressFamily::Inet6);
        assert_eq!(m.header.ifindex, 3);
        assert!(m.header.flags.contains(NeighbourFlags::Use));
        assert!(
            m.attributes
                .contains(&NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed))
        );
    }
}
