//! The node's own addresses in the dataplane: which prefixes go to the kernel ahead of
//! any route, from the addresses the kernel reports (the way Cilium and Katran keep
//! the host's addresses in their maps).
//!
//! A peer may advertise a route that covers the node's addresses (a default route, an
//! uplink's subnet) or even one of them as a /32; without these entries the program
//! would forward the node's own BGP, BFD and ICMP traffic back out. Each address the
//! kernel has, on any interface, becomes a host prefix (/32, /128) with the local next
//! hop, and so does an IPv4 subnet's broadcast address; link-local IPv6 and multicast
//! are covered once for all by [`ALWAYS_LOCAL`].

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::netlink::Address;

/// Address space that is always the node's, whatever the routes say: the IPv4 limited
/// broadcast, IPv4 multicast, IPv6 link-local (every interface's `fe80::` address, and
/// the link-local BGP next hops' neighbor discovery) and IPv6 multicast (neighbor
/// discovery's solicited-node groups). Unicast BGP routes none of it.
pub const ALWAYS_LOCAL: [IpNet; 4] = [
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::BROADCAST, 32)),
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4)),
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
    )),
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
    )),
];

/// The host prefixes one kernel address makes the node's: the address, and an IPv4
/// subnet's broadcast address; nothing that [`ALWAYS_LOCAL`] covers already, nor an
/// unspecified address.
pub fn host_prefixes(a: &Address) -> Vec<IpNet> {
    let mut out = Vec::with_capacity(2);
    for addr in std::iter::once(a.addr).chain(a.broadcast.map(IpAddr::V4)) {
        if addr.is_unspecified() || ALWAYS_LOCAL.iter().any(|n| n.contains(&addr)) {
            continue;
        }
        let p = IpNet::from(addr);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Local entries to install and to remove.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LocalChange {
    /// Prefixes that became the node's.
    pub add: Vec<IpNet>,
    /// Prefixes that no longer are.
    pub remove: Vec<IpNet>,
}

/// The host prefixes the kernel's addresses make local, counted: one address may be on
/// several interfaces (or twice on one), and stays local until the last goes.
#[derive(Debug, Default)]
pub struct LocalAddresses {
    /// Each kernel address (interface, address, prefix length) -> its host prefixes.
    entries: HashMap<(u32, IpAddr, u8), Vec<IpNet>>,
    /// Host prefix -> how many kernel addresses make it local.
    count: HashMap<IpNet, u32>,
}

impl LocalAddresses {
    /// An address appeared or changed (the watcher's `Added`, `Changed`).
    pub fn set(&mut self, a: &Address) -> LocalChange {
        let new = host_prefixes(a);
        let old = self
            .entries
            .insert((a.ifindex, a.addr, a.prefix_len), new.clone())
            .unwrap_or_default();
        let mut change = LocalChange::default();
        for p in new.iter().filter(|p| !old.contains(p)) {
            let n = self.count.entry(*p).or_insert(0);
            *n += 1;
            if *n == 1 {
                change.add.push(*p);
            }
        }
        self.forget(old.iter().filter(|p| !new.contains(p)), &mut change);
        change
    }

    /// An address went away (the watcher's `Removed`).
    pub fn remove(&mut self, a: &Address) -> LocalChange {
        let old = self
            .entries
            .remove(&(a.ifindex, a.addr, a.prefix_len))
            .unwrap_or_default();
        let mut change = LocalChange::default();
        self.forget(old.iter(), &mut change);
        change
    }

    fn forget<'a>(&mut self, gone: impl Iterator<Item = &'a IpNet>, change: &mut LocalChange) {
        for p in gone {
            if let Some(n) = self.count.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    self.count.remove(p);
                    change.remove.push(*p);
                }
            }
        }
    }

    /// Whether `prefix` must be local now.
    pub fn wants(&self, prefix: &IpNet) -> bool {
        ALWAYS_LOCAL.contains(prefix) || self.count.contains_key(prefix)
    }

    /// What turns `installed` (the local entries in the maps, adopted ones too) into
    /// what the kernel's addresses want, once the watcher has reported all of them.
    pub fn reconcile(&self, installed: impl IntoIterator<Item = IpNet>) -> LocalChange {
        let installed: HashSet<IpNet> = installed.into_iter().collect();
        let mut change = LocalChange {
            add: ALWAYS_LOCAL
                .iter()
                .chain(self.count.keys())
                .filter(|p| !installed.contains(p))
                .copied()
                .collect(),
            remove: installed.into_iter().filter(|p| !self.wants(p)).collect(),
        };
        change.add.sort();
        change.add.dedup();
        change.remove.sort();
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ifindex: u32, a: &str, len: u8, brd: Option<&str>) -> Address {
        Address {
            ifindex,
            addr: a.parse().unwrap(),
            prefix_len: len,
            broadcast: brd.map(|b| b.parse().unwrap()),
        }
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn which_host_prefixes_an_address_makes_local() {
        let cases: [(Address, &[&str]); 9] = [
            (
                addr(2, "192.0.2.11", 24, Some("192.0.2.255")),
                &["192.0.2.11/32", "192.0.2.255/32"],
            ),
            (addr(2, "192.0.2.11", 24, None), &["192.0.2.11/32"]),
            (addr(1, "127.0.0.1", 8, None), &["127.0.0.1/32"]),
            (addr(1, "10.0.0.1", 32, Some("10.0.0.1")), &["10.0.0.1/32"]),
            (addr(2, "fd00::11", 64, None), &["fd00::11/128"]),
            (addr(1, "::1", 128, None), &["::1/128"]),
            // Covered by fe80::/10 once for all interfaces.
            (addr(2, "fe80::1", 64, None), &[]),
            // A /0 "broadcast" is the limited broadcast, always local already.
            (
                addr(2, "198.51.100.1", 0, Some("255.255.255.255")),
                &["198.51.100.1/32"],
            ),
            (addr(2, "0.0.0.0", 0, None), &[]),
        ];
        for (a, want) in cases {
            assert_eq!(host_prefixes(&a), nets(want), "{a:?}");
        }
    }

    #[test]
    fn the_always_local_space_covers_broadcast_multicast_and_link_local() {
        for a in [
            "255.255.255.255",
            "224.0.0.5",
            "239.1.2.3",
            "fe80::1",
            "ff02::1:ff00:11",
        ] {
            let a: IpAddr = a.parse().unwrap();
            assert!(ALWAYS_LOCAL.iter().any(|n| n.contains(&a)), "{a}");
        }
        for a in [
            "192.0.2.255",
            "223.255.255.255",
            "240.0.0.1",
            "fec0::1",
            "fd00::1",
        ] {
            let a: IpAddr = a.parse().unwrap();
            assert!(!ALWAYS_LOCAL.iter().any(|n| n.contains(&a)), "{a}");
        }
    }

    #[test]
    fn an_address_on_two_interfaces_stays_local_until_the_last_goes() {
        let mut l = LocalAddresses::default();
        let on_n0 = addr(2, "192.0.2.11", 24, Some("192.0.2.255"));
        let on_lo = addr(1, "192.0.2.11", 32, None);
        assert_eq!(
            l.set(&on_n0).add,
            nets(&["192.0.2.11/32", "192.0.2.255/32"])
        );
        assert_eq!(l.set(&on_lo), LocalChange::default());
        // A repeated notification changes nothing.
        assert_eq!(l.set(&on_n0), LocalChange::default());
        assert_eq!(
            l.remove(&on_n0),
            LocalChange {
                add: vec![],
                remove: nets(&["192.0.2.255/32"])
            }
        );
        assert!(l.wants(&"192.0.2.11/32".parse().unwrap()));
        assert_eq!(l.remove(&on_lo).remove, nets(&["192.0.2.11/32"]));
        // Removing what is not there changes nothing.
        assert_eq!(l.remove(&on_lo), LocalChange::default());
        assert!(!l.wants(&"192.0.2.11/32".parse().unwrap()));
    }

    #[test]
    fn a_changed_broadcast_moves_only_the_broadcast_entry() {
        let mut l = LocalAddresses::default();
        l.set(&addr(2, "192.0.2.11", 24, Some("192.0.2.255")));
        assert_eq!(
            l.set(&addr(2, "192.0.2.11", 24, Some("192.0.2.127"))),
            LocalChange {
                add: nets(&["192.0.2.127/32"]),
                remove: nets(&["192.0.2.255/32"]),
            }
        );
    }

    #[test]
    fn reconcile_keeps_what_addresses_want_and_removes_stale_adopted_entries() {
        let mut l = LocalAddresses::default();
        l.set(&addr(2, "192.0.2.11", 24, None));
        l.set(&addr(2, "fd00::11", 64, None));
        // Adopted from the previous run: one address still there, one removed while the
        // daemon was down, and part of the always-local space.
        let installed = nets(&["192.0.2.11/32", "192.0.2.77/32", "224.0.0.0/4", "fe80::/10"]);
        assert_eq!(
            l.reconcile(installed),
            LocalChange {
                add: nets(&["255.255.255.255/32", "fd00::11/128", "ff00::/8"]),
                remove: nets(&["192.0.2.77/32"]),
            }
        );
        let all: Vec<IpNet> = ALWAYS_LOCAL
            .iter()
            .copied()
            .chain(nets(&["192.0.2.11/32", "fd00::11/128"]))
            .collect();
        assert_eq!(l.reconcile(all), LocalChange::default());
    }
}
