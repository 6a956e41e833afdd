//! Which interface (and gateway) the kernel would use to reach an address: `ip route get`.
//!
//! The FIB programmer asks this for every BGP next hop: in the fabric a next hop is a
//! directly connected leaf, so the answer is its uplink and no gateway; a next hop behind
//! a gateway resolves to that gateway's MAC on the egress interface.

use std::net::IpAddr;

use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteVia},
};

use super::{NetlinkError, socket::NetlinkSocket};

/// Where the kernel sends packets for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    /// Outgoing interface.
    pub ifindex: u32,
    /// Gateway, when the address is not on a connected subnet.
    pub gateway: Option<IpAddr>,
}

impl Egress {
    /// The neighbor whose MAC a frame towards the address needs: the gateway, or the
    /// address itself when it is connected.
    pub fn neighbor(&self, addr: IpAddr) -> IpAddr {
        self.gateway.unwrap_or(addr)
    }
}

/// Route lookups over one netlink socket.
pub struct RouteLookup {
    socket: NetlinkSocket,
}

impl RouteLookup {
    /// Opens the socket (inside a tokio runtime).
    pub fn new() -> Result<Self, NetlinkError> {
        Ok(RouteLookup {
            socket: NetlinkSocket::requests()?,
        })
    }

    /// The kernel's route to `addr`; `None` when it has none (unreachable).
    pub async fn egress(&mut self, addr: IpAddr) -> Result<Option<Egress>, NetlinkError> {
        let mut request = RouteMessage::default();
        let (family, len) = match addr {
            IpAddr::V4(_) => (AddressFamily::Inet, 32),
            IpAddr::V6(_) => (AddressFamily::Inet6, 128),
        };
        request.header.address_family = family;
        request.header.destination_prefix_length = len;
        request
            .attributes
            .push(RouteAttribute::Destination(match addr {
                IpAddr::V4(a) => RouteAddress::Inet(a),
                IpAddr::V6(a) => RouteAddress::Inet6(a),
            }));
        let answer = self
            .socket
            .get(RouteNetlinkMessage::GetRoute(request), || {
                format!("route lookup of {addr}")
            })
            .await;
        let message = match answer {
            Ok(RouteNetlinkMessage::NewRoute(m)) => m,
            Ok(_) => return Ok(None),
            // ENETUNREACH / EHOSTUNREACH: no route.
            Err(e) if matches!(e.errno(), Some(libc::ENETUNREACH | libc::EHOSTUNREACH)) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let mut ifindex = None;
        let mut gateway = None;
        for attribute in &message.attributes {
            match attribute {
                RouteAttribute::Oif(i) => ifindex = Some(*i),
                RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(IpAddr::V4(*a)),
                RouteAttribute::Gateway(RouteAddress::Inet6(a)) => gateway = Some(IpAddr::V6(*a)),
                RouteAttribute::Via(RouteVia::Inet(a)) => gateway = Some(IpAddr::V4(*a)),
                RouteAttribute::Via(RouteVia::Inet6(a)) => gateway = Some(IpAddr::V6(*a)),
                _ => {}
            }
        }
        Ok(ifindex.map(|ifindex| Egress { ifindex, gateway }))
    }
}
