//! Peers as the RIB sees them: identity, the options that change import and export, the
//! session facts learned at OPEN, and per-family counters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgp_wire::{Family, MpNextHop};

/// A configured peer. Ids are small and reused after [`crate::rib::Rib::remove_peer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub(crate) u16);

impl PeerId {
    /// The raw index (for display).
    pub fn index(self) -> u16 {
        self.0
    }
}

/// Where a path comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSource {
    /// Originated by this node (pod routes, statics, aggregates).
    Local,
    /// Learned from a peer.
    Peer(PeerId),
}

impl PathSource {
    /// The source of a path record (0 is local, peers start at 1).
    pub(crate) fn from_raw(raw: u16) -> Self {
        if raw == 0 {
            PathSource::Local
        } else {
            PathSource::Peer(PeerId(raw))
        }
    }
}

/// What the RIB needs to know about a peer from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's address (last tie-breaker of the decision process).
    pub address: IpAddr,
    /// The peer's AS; equal to the local AS makes it an iBGP peer.
    pub remote_asn: u32,
    /// Route reflector client (RFC 4456); only meaningful for iBGP peers.
    pub rr_client: bool,
    /// How many times our own AS may appear in a received AS_PATH (allowas-in); 0 is
    /// the RFC 4271 behaviour.
    pub allowas_in: u8,
    /// Set the next hop to our session address on export to this (iBGP) peer. eBGP
    /// exports always do.
    pub next_hop_self: bool,
    /// Keep MULTI_EXIT_DISC on export to this eBGP peer (it is stripped by default:
    /// RFC 4271 5.1.4 forbids passing a MED received from one AS on to another).
    pub send_med: bool,
}

impl PeerConfig {
    /// A peer with default options.
    pub fn new(address: IpAddr, remote_asn: u32) -> Self {
        PeerConfig {
            address,
            remote_asn,
            rr_client: false,
            allowas_in: 0,
            next_hop_self: false,
            send_med: false,
        }
    }
}

/// What an established session tells the RIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSession {
    /// The peer's BGP identifier (from its OPEN).
    pub router_id: Ipv4Addr,
    /// Families negotiated on the session: only these are exported.
    pub families: Vec<Family>,
    /// Our next hop for IPv4 routes sent on this session (our session address when IPv4).
    pub ipv4_next_hop: Option<Ipv4Addr>,
    /// Our next hop for IPv6 routes sent on this session (global, optional link-local).
    pub ipv6_next_hop: Option<MpNextHop>,
}

impl PeerSession {
    /// A session whose local address is `local`: it becomes the next hop of its family.
    pub fn new(router_id: Ipv4Addr, local: IpAddr, families: Vec<Family>) -> Self {
        let (ipv4_next_hop, ipv6_next_hop) = match local {
            IpAddr::V4(a) => (Some(a), None),
            IpAddr::V6(a) => (
                None,
                Some(MpNextHop::Ipv6 {
                    global: a,
                    link_local: None,
                }),
            ),
        };
        PeerSession {
            router_id,
            families,
            ipv4_next_hop,
            ipv6_next_hop,
        }
    }

    /// Sets the IPv6 next hop (global and optional link-local) for IPv6 routes.
    pub fn with_ipv6_next_hop(mut self, global: Ipv6Addr, link_local: Option<Ipv6Addr>) -> Self {
        self.ipv6_next_hop = Some(MpNextHop::Ipv6 { global, link_local });
        self
    }

    /// Our next hop for `family` on this session.
    pub fn next_hop_self(&self, family: Family) -> Option<MpNextHop> {
        if family == Family::IPV4_UNICAST {
            self.ipv4_next_hop.map(MpNextHop::Ipv4)
        } else if family == Family::IPV6_UNICAST {
            self.ipv6_next_hop
        } else {
            None
        }
    }
}

/// Per-peer, per-family route counts (for `show neighbors`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounts {
    /// Routes in the Adj-RIB-In (received, before policy).
    pub received: usize,
    /// Of those, routes that passed loop checks and import policy.
    pub accepted: usize,
    /// Of the received ones, routes marked stale by graceful restart.
    pub stale: usize,
    /// Routes in the Adj-RIB-Out (advertised to the peer).
    pub advertised: usize,
}

/// A peer's state inside the RIB.
#[derive(Debug)]
pub(crate) struct PeerState {
    pub config: PeerConfig,
    pub ebgp: bool,
    /// The session, while established.
    pub session: Option<PeerSession>,
    /// The last router id learned: kept while the session is down, for stale routes.
    pub router_id: Ipv4Addr,
    /// Counts for IPv4 and IPv6 unicast (`advertised` is the Adj-RIB-Out's length).
    pub counts: [PeerCounts; 2],
}

impl PeerState {
    pub fn new(config: PeerConfig, local_asn: u32) -> Self {
        PeerState {
            ebgp: config.remote_asn != local_asn,
            config,
            session: None,
            router_id: Ipv4Addr::UNSPECIFIED,
            counts: [PeerCounts::default(); 2],
        }
    }
}

/// Index of a supported family in per-family arrays.
pub(crate) fn family_index(family: Family) -> Option<usize> {
    if family == Family::IPV4_UNICAST {
        Some(0)
    } else if family == Family::IPV6_UNICAST {
        Some(1)
    } else {
        None
    }
}
