//! The node's own addresses: every IPv4 and IPv6 address the kernel has on any
//! interface, with change events (`RTM_NEWADDR` / `RTM_DELADDR`).
//!
//! The dataplane hands packets to these addresses to the kernel ahead of any route (a
//! default route from a peer must not capture the node's own BGP and BFD), so it needs
//! all of them, not only the uplinks': loopback and router-id addresses, addresses added
//! and removed later, link-local ones.

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressMessage},
};

use super::{
    NetlinkError,
    socket::Received,
    watch::{self, Event, KernelTable, Mirror, Watch, WatchOptions},
};

/// `RTNLGRP_IPV4_IFADDR`.
const RTNLGRP_IPV4_IFADDR: u32 = 5;
/// `RTNLGRP_IPV6_IFADDR`.
const RTNLGRP_IPV6_IFADDR: u32 = 9;

/// An address on an interface (one `ip addr` line).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// The interface it is on.
    pub ifindex: u32,
    /// The node's address: `IFA_LOCAL` when present (on a point-to-point link
    /// `IFA_ADDRESS` is the far end's), else `IFA_ADDRESS`.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The IPv4 broadcast address of its subnet (`IFA_BROADCAST`), when set.
    pub broadcast: Option<Ipv4Addr>,
}

impl Address {
    /// What the kernel tells an address by: interface, address and prefix length (one
    /// address may be on several interfaces, or twice on one with two lengths).
    fn key(&self) -> (u32, IpAddr, u8) {
        (self.ifindex, self.addr, self.prefix_len)
    }
}

/// Parses an `RTM_NEWADDR`/`RTM_DELADDR` of IPv4 or IPv6. `None` for other families
/// or without an address.
fn parse_address(message: &AddressMessage) -> Option<Address> {
    let header = &message.header;
    if !matches!(header.family, AddressFamily::Inet | AddressFamily::Inet6) {
        return None;
    }
    let mut local = None;
    let mut address = None;
    let mut broadcast = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Broadcast(b) => broadcast = Some(*b),
            _ => {}
        }
    }
    Some(Address {
        ifindex: header.index,
        addr: local.or(address)?,
        prefix_len: header.prefix_len,
        broadcast,
    })
}

fn dump_request(family: AddressFamily) -> RouteNetlinkMessage {
    let mut message = AddressMessage::default();
    message.header.family = family;
    RouteNetlinkMessage::GetAddress(message)
}

/// The address lists of all interfaces as a [`KernelTable`].
struct AddressTable {
    mirror: Mirror<(u32, IpAddr, u8), Address>,
}

impl KernelTable for AddressTable {
    type Item = Address;
    const NAME: &'static str = "address";

    fn groups(&self) -> Vec<u32> {
        vec![RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR]
    }

    fn dumps(&self) -> Vec<(&'static str, RouteNetlinkMessage)> {
        vec![
            ("IPv4 address", dump_request(AddressFamily::Inet)),
            ("IPv6 address", dump_request(AddressFamily::Inet6)),
        ]
    }

    fn load(&mut self, dumped: Vec<RouteNetlinkMessage>, out: &mut Vec<Event<Address>>) {
        let fresh = dumped
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => parse_address(a),
                _ => None,
            })
            .map(|a| (a.key(), a))
            .collect();
        self.mirror.replace_all(fresh, out);
    }

    fn apply(&mut self, received: Received, out: &mut Vec<Event<Address>>) {
        match &received.message {
            RouteNetlinkMessage::NewAddress(m) => {
                if let Some(a) = parse_address(m) {
                    self.mirror.set(a.key(), a, out);
                }
            }
            RouteNetlinkMessage::DelAddress(m) => {
                if let Some(a) = parse_address(m) {
                    self.mirror.remove(&a.key(), out);
                }
            }
            _ => {}
        }
    }
}

/// Follows the addresses of every interface, IPv4 and IPv6: each as `Added` then
/// `Synced`, then `Added`, `Changed` (its broadcast address) and `Removed` as they
/// happen (an interface that goes away or down takes its addresses with it, each
/// reported). Must be called within a tokio runtime.
pub fn watch_addresses(options: &WatchOptions) -> Result<Watch<Address>, NetlinkError> {
    watch::start(
        AddressTable {
            mirror: Mirror::new(),
        },
        options,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(
        family: AddressFamily,
        prefix_len: u8,
        attrs: Vec<AddressAttribute>,
    ) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = family;
        m.header.prefix_len = prefix_len;
        m.header.index = 3;
        m.attributes = attrs;
        m
    }

    #[test]
    fn ipv4_addresses_give_the_local_address_and_broadcast() {
        let m = message(
            AddressFamily::Inet,
            24,
            vec![
                AddressAttribute::Address("192.0.2.11".parse().unwrap()),
                AddressAttribute::Local("192.0.2.11".parse().unwrap()),
                AddressAttribute::Broadcast("192.0.2.255".parse().unwrap()),
                AddressAttribute::Label("n0".into()),
            ],
        );
        assert_eq!(
            parse_address(&m),
            Some(Address {
                ifindex: 3,
                addr: "192.0.2.11".parse().unwrap(),
                prefix_len: 24,
                broadcast: Some("192.0.2.255".parse().unwrap()),
            })
        );
    }

    #[test]
    fn point_to_point_links_give_our_end_not_the_peer() {
        let m = message(
            AddressFamily::Inet,
            32,
            vec![
                AddressAttribute::Address("10.0.0.2".parse().unwrap()),
                AddressAttribute::Local("10.0.0.1".parse().unwrap()),
            ],
        );
        assert_eq!(
            parse_address(&m).unwrap().addr,
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ipv6_addresses_come_as_ifa_address_and_other_families_are_ignored() {
        let attrs = vec![AddressAttribute::Address("fe80::1".parse().unwrap())];
        let a = parse_address(&message(AddressFamily::Inet6, 64, attrs.clone())).unwrap();
        assert_eq!(
            (a.addr, a.prefix_len, a.broadcast),
            ("fe80::1".parse().unwrap(), 64, None)
        );
        assert_eq!(
            parse_address(&message(AddressFamily::Packet, 64, attrs)),
            None
        );
        assert_eq!(
            parse_address(&message(AddressFamily::Inet, 24, vec![])),
            None
        );
    }
}
