//! Pod-route origination: the host routes a CNI installs for its pods
//! (`10.244.1.5/32 dev cali1a2b scope link`, `fd00:10:244::5/128 dev cali1a2b`),
//! learned from the kernel's main table as they come and go.
//!
//! What counts as a pod route, modelled on what BIRD's `kernel` protocol with `learn`
//! imports for Calico (and what its `direct` protocol leaves to it):
//! - a route of the configured table (main by default), IPv4 or IPv6, whose
//!   destination lies inside one of the pod CIDRs (any prefix length, so a CNI that
//!   routes a block per pod is covered too);
//! - of type unicast (no local, broadcast, blackhole, unreachable, prohibit,
//!   multicast: Calico's per-block blackhole is an aggregate, not a pod);
//! - through a device only: no gateway, no `via`, no multipath, not dead, no
//!   source-specific (IPv6 `from`) part, not a cached clone;
//! - not installed by us (our protocol number: those notifications are dropped by a
//!   socket filter in the kernel, so a full table of ours cannot flood the watcher;
//!   our routes use their own metric, so none replaces a pod route in place unseen),
//!   and not `proto kernel` (the kernel's own subnet routes for interface addresses:
//!   BIRD's `learn` skips those too unless `learn all`, leaving them to `direct`).
//!   Any other protocol (boot, static, a CNI's own number) is accepted, `unspec` too
//!   (BIRD skips it; a CNI writing raw netlink may leave it at 0).
//!
//! When several such routes share a prefix (different metrics), the lowest metric
//! wins, as in the kernel. The kernel removes IPv4 routes of a device that goes down
//! or away without a notification, and accepts no route through a down device, so a
//! link going down or being deleted withdraws the pod routes through it.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::IpNet;
use netlink_packet_core::NLM_F_REPLACE;
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    route::{
        RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol,
        RouteType,
    },
};

use super::{
    NetlinkError, RTPROT_BGP_CTL,
    links::{RTNLGRP_LINK, dump_request as link_dump, parse_link},
    socket::Received,
    watch::{self, Event, KernelTable, Mirror, Watch, WatchOptions},
};

/// `RTNLGRP_IPV4_ROUTE`.
const RTNLGRP_IPV4_ROUTE: u32 = 7;
/// `RTNLGRP_IPV6_ROUTE`.
const RTNLGRP_IPV6_ROUTE: u32 = 11;
/// The main routing table.
pub const RT_TABLE_MAIN: u32 = 254;

/// A pod's host route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRoute {
    /// The pod address (a /32 or /128 for usual CNIs).
    pub prefix: IpNet,
    /// The host-side interface the route points at (the pod's veth).
    pub ifindex: u32,
    /// That interface's name; empty if the kernel has not described it yet.
    pub ifname: String,
}

/// Which routes are pod routes.
#[derive(Debug, Clone)]
pub struct PodRouteConfig {
    /// The pod CIDRs, e.g. `10.244.0.0/16` and `fd00:10:244::/56`.
    pub cidrs: Vec<IpNet>,
    /// The routing table the CNI writes to.
    pub table: u32,
    /// Our own route protocol number: routes with it are ours, never pod routes.
    pub own_protocol: u8,
    /// Also learn `proto kernel` routes (BIRD's `learn all`).
    pub learn_kernel_routes: bool,
}

impl PodRouteConfig {
    /// Pod routes inside `cidrs` in the main table, excluding [`RTPROT_BGP_CTL`] and
    /// `proto kernel` routes.
    pub fn new(cidrs: Vec<IpNet>) -> Self {
        Self {
            cidrs,
            table: RT_TABLE_MAIN,
            own_protocol: RTPROT_BGP_CTL,
            learn_kernel_routes: false,
        }
    }
}

/// Identity of a route within one table, as the kernel keys it (enough for ours:
/// IPv4 also keys by TOS, which CNIs do not use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RouteKey {
    prefix: IpNet,
    metric: u32,
}

/// What a route message means for pod-route learning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Classified {
    /// Not in our table, not an IP route, or outside the pod CIDRs.
    Outside,
    /// A pod route through `ifindex`.
    Pod { key: RouteKey, ifindex: u32 },
    /// In our table and CIDRs but not a pod route (a gateway, a blackhole, ours...).
    NotPod { key: RouteKey },
}

fn classify(message: &RouteMessage, config: &PodRouteConfig) -> Classified {
    let header = &message.header;
    if !matches!(
        header.address_family,
        AddressFamily::Inet | AddressFamily::Inet6
    ) || header.flags.contains(RouteFlags::Cloned)
    {
        return Classified::Outside;
    }
    let mut table = u32::from(header.table);
    let mut destination = None;
    let mut metric = 0;
    let mut oif = None;
    let mut via_gateway = false;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => destination = address(a),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(_) | RouteAttribute::Via(_) | RouteAttribute::MultiPath(_) => {
                via_gateway = true
            }
            _ => {}
        }
    }
    if table != config.table {
        return Classified::Outside;
    }
    let unspecified = match header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        _ => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let Ok(prefix) = IpNet::new(
        destination.unwrap_or(unspecified),
        header.destination_prefix_length,
    ) else {
        return Classified::Outside;
    };
    let prefix = prefix.trunc();
    if !config.cidrs.iter().any(|cidr| cidr.contains(&prefix)) {
        return Classified::Outside;
    }
    let key = RouteKey { prefix, metric };
    let protocol = u8::from(header.protocol);
    let pod = header.kind == RouteType::Unicast
        && protocol != config.own_protocol
        && (config.learn_kernel_routes || header.protocol != RouteProtocol::Kernel)
        && !via_gateway
        && !header.flags.contains(RouteFlags::Dead)
        && header.source_prefix_length == 0;
    match oif {
        Some(ifindex) if pod => Classified::Pod { key, ifindex },
        _ => Classified::NotPod { key },
    }
}

fn address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// A route dump of one family in `table` (the kernel filters by table under strict
/// checking; we filter again anyway).
pub(crate) fn route_dump(family: AddressFamily, table: u32) -> RouteNetlinkMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = family;
    message.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    message.attributes.push(RouteAttribute::Table(table));
    RouteNetlinkMessage::GetRoute(message)
}

/// The pod routes of the kernel, derived from its links and routes.
pub(crate) struct PodRouteTable {
    config: PodRouteConfig,
    /// Interface names, for [`PodRoute::ifname`].
    names: BTreeMap<u32, String>,
    /// Every pod route the kernel has, by kernel identity, to its device.
    routes: BTreeMap<RouteKey, u32>,
    /// What was reported: the best route of each prefix.
    mirror: Mirror<IpNet, PodRoute>,
}

impl PodRouteTable {
    pub fn new(config: PodRouteConfig) -> Self {
        Self {
            config,
            names: BTreeMap::new(),
            routes: BTreeMap::new(),
            mirror: Mirror::new(),
        }
    }

    /// The route the kernel uses for `prefix` among its pod routes: the lowest metric.
    fn best(&self, prefix: IpNet) -> Option<PodRoute> {
        let low = RouteKey { prefix, metric: 0 };
        let high = RouteKey {
            prefix,
            metric: u32::MAX,
        };
        self.routes
            .range(low..=high)
            .next()
            .map(|(_, &ifindex)| PodRoute {
                prefix,
                ifindex,
                ifname: self.names.get(&ifindex).cloned().unwrap_or_default(),
            })
    }

    fn refresh(&mut self, prefix: IpNet, out: &mut Vec<Event<PodRoute>>) {
        match self.best(prefix) {
            Some(route) => self.mirror.set(prefix, route, out),
            None => self.mirror.remove(&prefix, out),
        }
    }

    /// A device went down or away: the kernel dropped its routes (IPv4 silently).
    fn drop_device(&mut self, ifindex: u32, out: &mut Vec<Event<PodRoute>>) {
        let gone: Vec<RouteKey> = self
            .routes
            .iter()
            .filter(|&(_, &i)| i == ifindex)
            .map(|(k, _)| *k)
            .collect();
        for key in &gone {
            self.routes.remove(key);
        }
        for key in gone {
            self.refresh(key.prefix, out);
        }
    }

    fn apply_route(
        &mut self,
        message: &RouteMessage,
        new: bool,
        flags: u16,
        out: &mut Vec<Event<PodRoute>>,
    ) {
        match (classify(message, &self.config), new) {
            (Classified::Outside, _) => {}
            (Classified::Pod { key, ifindex }, true) => {
                self.routes.insert(key, ifindex);
                self.refresh(key.prefix, out);
            }
            (Classified::Pod { key, .. }, false) => {
                self.routes.remove(&key);
                self.refresh(key.prefix, out);
            }
            // A pod route replaced in place by something else.
            (Classified::NotPod { key }, true) if flags & NLM_F_REPLACE != 0 => {
                self.routes.remove(&key);
                self.refresh(key.prefix, out);
            }
            (Classified::NotPod { .. }, _) => {}
        }
    }
}

impl KernelTable for PodRouteTable {
    type Item = PodRoute;
    const NAME: &'static str = "pod route";

    fn groups(&self) -> Vec<u32> {
        // Links on the same socket, so their changes are ordered with the routes'.
        vec![RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE]
    }

    fn ignored_protocol(&self) -> Option<u8> {
        // Our own kernel FIB may hold a full table: keep its churn out of this socket.
        Some(self.config.own_protocol)
    }

    fn dumps(&self) -> Vec<(&'static str, RouteNetlinkMessage)> {
        vec![
            ("link", link_dump()),
            (
                "IPv4 route",
                route_dump(AddressFamily::Inet, self.config.table),
            ),
            (
                "IPv6 route",
                route_dump(AddressFamily::Inet6, self.config.table),
            ),
        ]
    }

    fn load(&mut self, dumped: Vec<RouteNetlinkMessage>, out: &mut Vec<Event<PodRoute>>) {
        self.names.clear();
        self.routes.clear();
        for message in &dumped {
            match message {
                RouteNetlinkMessage::NewLink(m) => {
                    if let Some(link) = parse_link(m) {
                        self.names.insert(link.ifindex, link.name);
                    }
                }
                RouteNetlinkMessage::NewRoute(m) => {
                    if let Classified::Pod { key, ifindex } = classify(m, &self.config) {
                        self.routes.insert(key, ifindex);
                    }
                }
                _ => {}
            }
        }
        let prefixes: Vec<IpNet> = self.routes.keys().map(|k| k.prefix).collect();
        let fresh = prefixes
            .into_iter()
            .filter_map(|p| self.best(p).map(|r| (p, r)))
            .collect();
        self.mirror.replace_all(fresh, out);
    }

    fn apply(&mut self, received: Received, out: &mut Vec<Event<PodRoute>>) {
        match &received.message {
            RouteNetlinkMessage::NewRoute(m) => self.apply_route(m, true, received.flags, out),
            RouteNetlinkMessage::DelRoute(m) => self.apply_route(m, false, received.flags, out),
            RouteNetlinkMessage::NewLink(m) => {
                let Some(link) = parse_link(m) else { return };
                let renamed = self.names.get(&link.ifindex) != Some(&link.name);
                self.names.insert(link.ifindex, link.name);
                if !link.admin_up {
                    self.drop_device(link.ifindex, out);
                } else if renamed {
                    let prefixes: Vec<IpNet> = self
                        .routes
                        .iter()
                        .filter(|&(_, &i)| i == link.ifindex)
                        .map(|(k, _)| k.prefix)
                        .collect();
                    for prefix in prefixes {
                        self.refresh(prefix, out);
                    }
                }
            }
            RouteNetlinkMessage::DelLink(m)
                if m.header.interface_family == AddressFamily::Unspec =>
            {
                self.drop_device(m.header.index, out);
                self.names.remove(&m.header.index);
            }
            _ => {}
        }
    }
}

/// Follows the pod routes of the kernel: each one present as `Added` then `Synced`,
/// then `Added` / `Changed` (moved to another device) / `Removed` as the CNI changes
/// them. Event-driven (netlink multicast), never polling. Must be called within a
/// tokio runtime.
pub fn watch_pod_routes(
    config: PodRouteConfig,
    options: &WatchOptions,
) -> Result<Watch<PodRoute>, NetlinkError> {
    if config.cidrs.is_empty() {
        return Err(NetlinkError::Invalid(
            "pod route watcher needs at least one pod CIDR".to_owned(),
        ));
    }
    watch::start(PodRouteTable::new(config), options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::{
        link::{LinkAttribute, LinkFlags, LinkMessage},
        route::{RouteNextHop, RouteScope},
    };

    fn config() -> PodRouteConfig {
        PodRouteConfig::new(vec![
            "10.244.0.0/16".parse().unwrap(),
            "fd00:10:244::/56".parse().unwrap(),
        ])
    }

    fn route(prefix: &str, oif: u32) -> RouteMessage {
        let prefix: IpNet = prefix.parse().unwrap();
        let mut m = RouteMessage::default();
        m.header.address_family = match prefix {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        };
        m.header.destination_prefix_length = prefix.prefix_len();
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Link;
        m.header.kind = RouteType::Unicast;
        m.attributes = vec![
            RouteAttribute::Table(254),
            RouteAttribute::Destination(prefix.addr().into()),
            RouteAttribute::Oif(oif),
        ];
        m
    }

    fn is_pod(m: &RouteMessage) -> bool {
        matches!(classify(m, &config()), Classified::Pod { .. })
    }

    #[test]
    fn cni_host_routes_are_pod_routes() {
        assert_eq!(
            classify(&route("10.244.1.5/32", 9), &config()),
            Classified::Pod {
                key: RouteKey {
                    prefix: "10.244.1.5/32".parse().unwrap(),
                    metric: 0
                },
                ifindex: 9
            }
        );
        assert!(is_pod(&route("fd00:10:244::5/128", 9)));
        // A block per pod is inside the CIDR too.
        assert!(is_pod(&route("10.244.1.16/28", 9)));
    }

    #[test]
    fn routes_outside_the_cidrs_or_the_table_are_outside() {
        assert_eq!(
            classify(&route("10.245.1.5/32", 9), &config()),
            Classified::Outside
        );
        assert_eq!(
            classify(&route("10.0.0.0/8", 9), &config()),
            Classified::Outside
        );
        assert_eq!(
            classify(&route("fd00:10:245::5/128", 9), &config()),
            Classified::Outside
        );
        let mut other_table = route("10.244.1.5/32", 9);
        other_table.attributes[0] = RouteAttribute::Table(100);
        assert_eq!(classify(&other_table, &config()), Classified::Outside);
        let mut local_table = route("10.244.1.5/32", 9);
        local_table.header.table = 255;
        local_table.attributes.remove(0);
        assert_eq!(classify(&local_table, &config()), Classified::Outside);
    }

    #[test]
    fn gateways_other_types_ours_and_kernel_routes_are_not_pod_routes() {
        let mut gw = route("10.244.1.5/32", 9);
        gw.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(
                "192.0.2.1".parse().unwrap(),
            )));
        assert!(!is_pod(&gw));
        let mut multipath = route("10.244.1.5/32", 9);
        multipath
            .attributes
            .push(RouteAttribute::MultiPath(vec![RouteNextHop::default()]));
        assert!(!is_pod(&multipath));
        for kind in [
            RouteType::BlackHole,
            RouteType::Local,
            RouteType::Broadcast,
            RouteType::Unreachable,
        ] {
            let mut m = route("10.244.1.0/26", 9);
            m.header.kind = kind;
            assert!(!is_pod(&m), "{kind:?}");
        }
        let mut ours = route("10.244.1.5/32", 9);
        ours.header.protocol = RouteProtocol::from(RTPROT_BGP_CTL);
        assert!(!is_pod(&ours));
        let mut kernel = route("10.244.1.0/24", 9);
        kernel.header.protocol = RouteProtocol::Kernel;
        assert!(!is_pod(&kernel));
        let mut learn_all = config();
        learn_all.learn_kernel_routes = true;
        assert!(matches!(
            classify(&kernel, &learn_all),
            Classified::Pod { .. }
        ));
        let mut cloned = route("fd00:10:244::5/128", 9);
        cloned.header.flags = RouteFlags::Cloned;
        assert_eq!(classify(&cloned, &config()), Classified::Outside);
        let mut no_dev = route("10.244.1.5/32", 9);
        no_dev.attributes.pop();
        assert!(!is_pod(&no_dev));
    }

    fn received(message: RouteNetlinkMessage, flags: u16) -> Received {
        Received { flags, message }
    }

    fn link(ifindex: u32, name: &str, up: bool) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = ifindex;
        if up {
            m.header.flags = LinkFlags::Up;
        }
        m.attributes = vec![LinkAttribute::IfName(name.into())];
        m
    }

    fn pod(prefix: &str, ifindex: u32, ifname: &str) -> PodRoute {
        PodRoute {
            prefix: prefix.parse().unwrap(),
            ifindex,
            ifname: ifname.into(),
        }
    }

    #[test]
    fn notifications_add_replace_and_remove_pod_routes() {
        let mut t = PodRouteTable::new(config());
        let mut out = Vec::new();
        t.load(
            vec![RouteNetlinkMessage::NewLink(link(9, "cali1", true))],
            &mut out,
        );
        assert_eq!(out, vec![]);
        t.apply(
            received(RouteNetlinkMessage::NewRoute(route("10.244.1.5/32", 9)), 0),
            &mut out,
        );
        assert_eq!(out, vec![Event::Added(pod("10.244.1.5/32", 9, "cali1"))]);
        out.clear();
        // Outside the CIDR: nothing.
        t.apply(
            received(RouteNetlinkMessage::NewRoute(route("192.168.0.5/32", 9)), 0),
            &mut out,
        );
        assert_eq!(out, vec![]);
        // Replaced in place by a gateway route: withdrawn.
        let mut gw = route("10.244.1.5/32", 9);
        gw.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(
                "192.0.2.1".parse().unwrap(),
            )));
        t.apply(
            received(RouteNetlinkMessage::NewRoute(gw.clone()), 0),
            &mut out,
        );
        assert_eq!(out, vec![], "an added gateway route alone changes nothing");
        t.apply(
            received(RouteNetlinkMessage::NewRoute(gw), NLM_F_REPLACE),
            &mut out,
        );
        assert_eq!(out, vec![Event::Removed(pod("10.244.1.5/32", 9, "cali1"))]);
        out.clear();
        t.apply(
            received(RouteNetlinkMessage::NewRoute(route("10.244.1.6/32", 9)), 0),
            &mut out,
        );
        t.apply(
            received(RouteNetlinkMessage::DelRoute(route("10.244.1.6/32", 9)), 0),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                Event::Added(pod("10.244.1.6/32", 9, "cali1")),
                Event::Removed(pod("10.244.1.6/32", 9, "cali1"))
            ]
        );
    }

    #[test]
    fn lowest_metric_wins_and_links_going_down_withdraw_their_routes() {
        let mut t = PodRouteTable::new(config());
        let mut out = Vec::new();
        let mut low = route("10.244.1.5/32", 9);
        low.attributes.push(RouteAttribute::Priority(10));
        let mut high = route("10.244.1.5/32", 11);
        high.attributes.push(RouteAttribute::Priority(20));
        t.load(
            vec![
                RouteNetlinkMessage::NewLink(link(9, "cali1", true)),
                RouteNetlinkMessage::NewLink(link(11, "cali2", true)),
                RouteNetlinkMessage::NewRoute(high.clone()),
                RouteNetlinkMessage::NewRoute(low.clone()),
                RouteNetlinkMessage::NewRoute(route("fd00:10:244::5/128", 11)),
            ],
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                Event::Added(pod("10.244.1.5/32", 9, "cali1")),
                Event::Added(pod("fd00:10:244::5/128", 11, "cali2")),
            ]
        );
        out.clear();
        // cali1 goes down: the kernel flushed its IPv4 routes without telling.
        t.apply(
            received(RouteNetlinkMessage::NewLink(link(9, "cali1", false)), 0),
            &mut out,
        );
        assert_eq!(out, vec![Event::Changed(pod("10.244.1.5/32", 11, "cali2"))]);
        out.clear();
        // Renamed: routes through it carry the new name.
        t.apply(
            received(RouteNetlinkMessage::NewLink(link(11, "pod7", true)), 0),
            &mut out,
        );
        assert_eq!(out.len(), 2, "{out:?}");
        out.clear();
        t.apply(
            received(RouteNetlinkMessage::DelLink(link(11, "pod7", true)), 0),
            &mut out,
        );
        let mut removed: Vec<_> = out.iter().map(|e| format!("{e:?}")).collect();
        removed.sort();
        assert_eq!(removed.len(), 2);
        assert!(
            removed.iter().all(|e| e.starts_with("Removed")),
            "{removed:?}"
        );
    }

    #[test]
    fn a_redump_reports_only_what_changed_while_notifications_were_lost() {
        let mut t = PodRouteTable::new(config());
        let mut out = Vec::new();
        let base = vec![
            RouteNetlinkMessage::NewLink(link(9, "cali1", true)),
            RouteNetlinkMessage::NewRoute(route("10.244.1.5/32", 9)),
            RouteNetlinkMessage::NewRoute(route("10.244.1.6/32", 9)),
        ];
        t.load(base, &mut out);
        assert_eq!(out.len(), 2);
        out.clear();
        t.load(
            vec![
                RouteNetlinkMessage::NewLink(link(9, "cali1", true)),
                RouteNetlinkMessage::NewRoute(route("10.244.1.6/32", 9)),
                RouteNetlinkMessage::NewRoute(route("10.244.1.7/32", 9)),
            ],
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                Event::Removed(pod("10.244.1.5/32", 9, "cali1")),
                Event::Added(pod("10.244.1.7/32", 9, "cali1")),
            ]
        );
    }
}
