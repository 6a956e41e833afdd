//! Installed prefixes and a value each (their group), keyed compactly: a million IPv4
//! host routes, the bulk of a container fabric's table, cost 9 bytes per hash bucket
//! (a 4-byte address and the value) instead of 25 with `IpNet` keys.

use std::collections::HashMap;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Prefix -> `V`.
#[derive(Debug, Clone)]
pub(super) struct RouteIndex<V> {
    /// IPv4 /32s by address.
    hosts_v4: HashMap<u32, V>,
    /// Other IPv4 prefixes: address and length in one integer.
    nets_v4: HashMap<u64, V>,
    /// IPv6 prefixes.
    v6: HashMap<(u128, u8), V>,
}

impl<V> Default for RouteIndex<V> {
    fn default() -> Self {
        RouteIndex {
            hosts_v4: HashMap::new(),
            nets_v4: HashMap::new(),
            v6: HashMap::new(),
        }
    }
}

enum Key {
    Host(u32),
    V4(u64),
    V6(u128, u8),
}

fn key(p: &IpNet) -> Key {
    match p.trunc() {
        IpNet::V4(n) if n.prefix_len() == 32 => Key::Host(u32::from(n.addr())),
        IpNet::V4(n) => Key::V4(u64::from(u32::from(n.addr())) << 8 | u64::from(n.prefix_len())),
        IpNet::V6(n) => Key::V6(u128::from(n.addr()), n.prefix_len()),
    }
}

fn v4(packed: u64) -> IpNet {
    let len = (packed & 0xff) as u8;
    let addr = std::net::Ipv4Addr::from((packed >> 8) as u32);
    // Keys are made from valid prefixes; fall back to the host route rather than panic.
    IpNet::V4(Ipv4Net::new(addr, len).unwrap_or_else(|_| Ipv4Net::from(addr)))
}

fn v6(addr: u128, len: u8) -> IpNet {
    let addr = std::net::Ipv6Addr::from(addr);
    IpNet::V6(Ipv6Net::new(addr, len).unwrap_or_else(|_| Ipv6Net::from(addr)))
}

impl<V: Copy> RouteIndex<V> {
    /// The value of `prefix`.
    pub fn get(&self, prefix: &IpNet) -> Option<V> {
        match key(prefix) {
            Key::Host(a) => self.hosts_v4.get(&a).copied(),
            Key::V4(k) => self.nets_v4.get(&k).copied(),
            Key::V6(a, l) => self.v6.get(&(a, l)).copied(),
        }
    }

    /// Sets the value of `prefix`; returns the previous one.
    pub fn insert(&mut self, prefix: IpNet, value: V) -> Option<V> {
        match key(&prefix) {
            Key::Host(a) => self.hosts_v4.insert(a, value),
            Key::V4(k) => self.nets_v4.insert(k, value),
            Key::V6(a, l) => self.v6.insert((a, l), value),
        }
    }

    /// Removes `prefix`; returns its value.
    pub fn remove(&mut self, prefix: &IpNet) -> Option<V> {
        match key(prefix) {
            Key::Host(a) => self.hosts_v4.remove(&a),
            Key::V4(k) => self.nets_v4.remove(&k),
            Key::V6(a, l) => self.v6.remove(&(a, l)),
        }
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.hosts_v4.len() + self.nets_v4.len() + self.v6.len()
    }

    /// Every prefix with its value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, V)> + '_ {
        let hosts = self
            .hosts_v4
            .iter()
            .map(|(a, v)| (IpNet::V4(Ipv4Net::from(std::net::Ipv4Addr::from(*a))), *v));
        let nets = self.nets_v4.iter().map(|(k, v)| (v4(*k), *v));
        let six = self.v6.iter().map(|((a, l), v)| (v6(*a, *l), *v));
        hosts.chain(nets).chain(six)
    }

    /// Removes everything, returning the prefixes.
    pub fn drain(&mut self) -> Vec<IpNet> {
        let out = self.iter().map(|(p, _)| p).collect();
        *self = RouteIndex {
            hosts_v4: HashMap::new(),
            nets_v4: HashMap::new(),
            v6: HashMap::new(),
        };
        out
    }

    /// The most specific prefix that covers `want` (an address is a host prefix), with
    /// its value: one lookup per candidate length.
    pub fn longest_match(&self, want: &IpNet) -> Option<(IpNet, V)> {
        (0..=want.prefix_len()).rev().find_map(|len| {
            let p = match want {
                IpNet::V4(n) => IpNet::V4(Ipv4Net::new(n.addr(), len).ok()?.trunc()),
                IpNet::V6(n) => IpNet::V6(Ipv6Net::new(n.addr(), len).ok()?.trunc()),
            };
            Some((p, self.get(&p)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_prefix_goes_in_and_comes_out_unchanged() {
        let mut idx = RouteIndex::default();
        let list: Vec<IpNet> = [
            "10.244.1.5/32",
            "10.244.1.0/24",
            "0.0.0.0/0",
            "255.255.255.255/32",
            "fd00:10:244::5/128",
            "fd00::/8",
            "::/0",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for (i, p) in list.iter().enumerate() {
            assert_eq!(idx.insert(*p, i as u32), None);
        }
        assert_eq!(idx.len(), list.len());
        for (i, p) in list.iter().enumerate() {
            assert_eq!(idx.get(p), Some(i as u32), "{p}");
        }
        let mut back: Vec<IpNet> = idx.iter().map(|(p, _)| p).collect();
        back.sort();
        let mut want = list.clone();
        want.sort();
        assert_eq!(back, want);
        // Host bits do not make another prefix.
        assert_eq!(idx.get(&"10.244.1.77/24".parse().unwrap()), Some(1));
        assert_eq!(idx.insert("10.244.1.5/32".parse().unwrap(), 9), Some(0));
        assert_eq!(idx.remove(&"fd00::/8".parse().unwrap()), Some(5));
        assert_eq!(idx.get(&"fd00::/8".parse().unwrap()), None);
        assert_eq!(idx.len(), list.len() - 1);
    }

    #[test]
    fn longest_match_finds_the_most_specific_cover() {
        let mut idx = RouteIndex::default();
        for (p, v) in [
            ("10.0.0.0/8", 1u32),
            ("10.244.1.0/24", 2),
            ("10.244.1.5/32", 3),
        ] {
            idx.insert(p.parse().unwrap(), v);
        }
        let lm = |s: &str| {
            idx.longest_match(&s.parse().unwrap())
                .map(|(p, v)| (p.to_string(), v))
        };
        assert_eq!(lm("10.244.1.5/32"), Some(("10.244.1.5/32".into(), 3)));
        assert_eq!(lm("10.244.1.6/32"), Some(("10.244.1.0/24".into(), 2)));
        assert_eq!(lm("10.244.1.0/24"), Some(("10.244.1.0/24".into(), 2)));
        assert_eq!(lm("10.9.0.0/16"), Some(("10.0.0.0/8".into(), 1)));
        assert_eq!(lm("11.0.0.1/32"), None);
        assert_eq!(lm("fd00::1/128"), None);
        assert_eq!(idx.drain().len(), 3);
        assert_eq!(idx.len(), 0);
    }
}
