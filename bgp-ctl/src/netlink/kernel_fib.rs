//! Writing our routes into the kernel FIB (optional, for host-originated traffic):
//! install, replace and delete IPv4/IPv6 routes with ECMP next hops, tagged with our
//! protocol number so they can be listed and flushed without touching anyone else's.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteProtocol,
        RouteScope, RouteType, RouteVia,
    },
};
use tracing::debug;

use super::{NetlinkError, RTPROT_BGP_CTL, routes::RT_TABLE_MAIN, socket::NetlinkSocket};

/// One next hop of a kernel route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelNextHop {
    /// The gateway; `None` for a directly connected destination. An IPv6 gateway for an
    /// IPv4 route (RFC 5549) is written as `via inet6`.
    pub gateway: Option<IpAddr>,
    /// The egress interface.
    pub ifindex: u32,
    /// ECMP weight, 1..=256 (the kernel stores weight - 1 in a byte).
    pub weight: u16,
}

impl KernelNextHop {
    /// `via gateway dev ifindex`, weight 1.
    pub fn via(gateway: IpAddr, ifindex: u32) -> Self {
        Self {
            gateway: Some(gateway),
            ifindex,
            weight: 1,
        }
    }
}

/// A route of ours in the kernel FIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    /// Destination.
    pub prefix: IpNet,
    /// Next hops: one for a plain route, several for ECMP.
    pub next_hops: Vec<KernelNextHop>,
}

/// Where and how our routes are written.
#[derive(Debug, Clone)]
pub struct KernelFibConfig {
    /// Routing table (main by default).
    pub table: u32,
    /// Our protocol number ([`RTPROT_BGP_CTL`] by default).
    pub protocol: u8,
    /// The metric of our routes. Routes are identified by prefix and metric, so this
    /// must stay the same for the life of the routes.
    pub metric: u32,
}

impl Default for KernelFibConfig {
    fn default() -> Self {
        Self {
            table: RT_TABLE_MAIN,
            protocol: RTPROT_BGP_CTL,
            // FRR's metric for BGP routes: below the kernel's IPv6 default (1024), above
            // a static default route (0).
            metric: 20,
        }
    }
}

/// A change to make in the kernel FIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibChange {
    /// Install, or replace whatever of ours is there for the prefix.
    Replace(KernelRoute),
    /// Remove ours for the prefix.
    Delete(IpNet),
}

/// Writes routes into the kernel FIB over rtnetlink.
pub struct KernelFib {
    config: KernelFibConfig,
    socket: NetlinkSocket,
}

impl KernelFib {
    /// Opens the request socket. Must be called within a tokio runtime.
    pub fn new(config: KernelFibConfig) -> Result<Self, NetlinkError> {
        Ok(Self {
            config,
            socket: NetlinkSocket::requests()?,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &KernelFibConfig {
        &self.config
    }

    /// Installs `route`, replacing our previous one for the prefix (next hops and all).
    pub async fn replace(&mut self, route: &KernelRoute) -> Result<(), NetlinkError> {
        let message = route_message(&self.config, route)?;
        self.socket
            .request(
                RouteNetlinkMessage::NewRoute(message),
                NLM_F_CREATE | NLM_F_REPLACE,
                || format!("RTM_NEWROUTE {}", route.prefix),
            )
            .await
    }

    /// Deletes our route for `prefix`. `Ok(false)` if we had none.
    pub async fn delete(&mut self, prefix: IpNet) -> Result<bool, NetlinkError> {
        let message = delete_message(&self.config, prefix);
        match self
            .socket
            .request(RouteNetlinkMessage::DelRoute(message), 0, || {
                format!("RTM_DELROUTE {prefix}")
            })
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Applies many changes with many requests in flight (much faster than one at a
    /// time for large tables) and returns each one's outcome, in order. Deleting a
    /// route that is not there counts as done.
    pub async fn apply(
        &mut self,
        changes: &[FibChange],
    ) -> Result<Vec<Result<(), NetlinkError>>, NetlinkError> {
        let mut messages = Vec::with_capacity(changes.len());
        let mut invalid = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            match change {
                FibChange::Replace(route) => match route_message(&self.config, route) {
                    Ok(m) => messages.push((
                        RouteNetlinkMessage::NewRoute(m),
                        NLM_F_CREATE | NLM_F_REPLACE,
                    )),
                    Err(e) => invalid.push((i, e)),
                },
                FibChange::Delete(prefix) => messages.push((
                    RouteNetlinkMessage::DelRoute(delete_message(&self.config, *prefix)),
                    0,
                )),
            }
        }
        let valid: Vec<&FibChange> = changes
            .iter()
            .enumerate()
            .filter(|(i, _)| !invalid.iter().any(|(j, _)| j == i))
            .map(|(_, c)| c)
            .collect();
        let describe = |i: usize| match valid.get(i) {
            Some(FibChange::Replace(r)) => format!("RTM_NEWROUTE {}", r.prefix),
            Some(FibChange::Delete(p)) => format!("RTM_DELROUTE {p}"),
            None => "route change".to_owned(),
        };
        let outcomes = self.socket.request_batch(messages, describe).await?;
        let mut outcomes = outcomes
            .into_iter()
            .zip(valid.iter())
            .map(|(r, c)| match (r, c) {
                (Err(e), FibChange::Delete(_)) if e.errno() == Some(libc::ESRCH) => Ok(()),
                (r, _) => r,
            });
        let mut invalid = invalid.into_iter().peekable();
        let mut results = Vec::with_capacity(changes.len());
        for i in 0..changes.len() {
            if invalid.peek().is_some_and(|(j, _)| *j == i) {
                if let Some((_, e)) = invalid.next() {
                    results.push(Err(e));
                }
            } else {
                results.push(
                    outcomes.next().unwrap_or_else(|| {
                        Err(NetlinkError::Invalid("missing outcome".to_owned()))
                    }),
                );
            }
        }
        debug!(changes = changes.len(), "kernel FIB batch applied");
        Ok(results)
    }

    /// Our routes in the kernel (both families), as they are there now.
    pub async fn routes(&mut self) -> Result<Vec<KernelRoute>, NetlinkError> {
        let mut out = Vec::new();
        for (what, family) in [
            ("IPv4 route", AddressFamily::Inet),
            ("IPv6 route", AddressFamily::Inet6),
        ] {
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            request.header.protocol = RouteProtocol::from(self.config.protocol);
            request
                .attributes
                .push(RouteAttribute::Table(self.config.table));
            let dumped = self
                .socket
                .dump(what, RouteNetlinkMessage::GetRoute(request))
                .await?;
            out.extend(dumped.iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => parse_ours(&self.config, r),
                _ => None,
            }));
        }
        Ok(out)
    }

    /// Deletes every route of ours (our protocol, our table), leaving all others.
    /// Returns how many were removed.
    pub async fn flush(&mut self) -> Result<usize, NetlinkError> {
        let ours = self.routes().await?;
        let changes: Vec<FibChange> = ours.iter().map(|r| FibChange::Delete(r.prefix)).collect();
        let mut removed = 0;
        for outcome in self.apply(&changes).await? {
            outcome?;
            removed += 1;
        }
        debug!(removed, "flushed our kernel routes");
        Ok(removed)
    }
}

fn header(config: &KernelFibConfig, prefix: IpNet) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = family(prefix.addr());
    message.header.destination_prefix_length = prefix.prefix_len();
    message.header.table = u8::try_from(config.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    message.header.protocol = RouteProtocol::from(config.protocol);
    message.header.kind = RouteType::Unicast;
    message
        .attributes
        .push(RouteAttribute::Destination(prefix.trunc().addr().into()));
    message.attributes.push(RouteAttribute::Table(config.table));
    message
        .attributes
        .push(RouteAttribute::Priority(config.metric));
    message
}

fn delete_message(config: &KernelFibConfig, prefix: IpNet) -> RouteMessage {
    let mut message = header(config, prefix);
    // The kernel matches the protocol on delete: only ours goes.
    message.header.scope = RouteScope::NoWhere;
    message
}

fn route_message(
    config: &KernelFibConfig,
    route: &KernelRoute,
) -> Result<RouteMessage, NetlinkError> {
    let prefix = route.prefix;
    let mut message = header(config, prefix);
    let invalid = |why: &str| NetlinkError::Invalid(format!("route {prefix}: {why}"));
    for hop in &route.next_hops {
        if hop.ifindex == 0 {
            return Err(invalid("next hop without an interface"));
        }
        if !(1..=256).contains(&hop.weight) {
            return Err(invalid("next-hop weight outside 1..=256"));
        }
        if let Some(IpAddr::V6(_)) = hop.gateway
            && prefix.addr().is_ipv4()
        {
            // RFC 5549 next hops need RTA_VIA; fine. An IPv4 gateway for IPv6 is not.
        } else if let Some(IpAddr::V4(_)) = hop.gateway
            && prefix.addr().is_ipv6()
        {
            return Err(invalid("IPv4 gateway for an IPv6 route"));
        }
    }
    message.header.scope = if route.next_hops.iter().all(|h| h.gateway.is_none()) {
        RouteScope::Link
    } else {
        RouteScope::Universe
    };
    match route.next_hops.as_slice() {
        [] => return Err(invalid("no next hop")),
        [hop] if hop.weight == 1 => {
            if let Some(gateway) = hop.gateway {
                message.attributes.push(gateway_attribute(prefix, gateway));
            }
            message.attributes.push(RouteAttribute::Oif(hop.ifindex));
        }
        hops => {
            let next_hops = hops
                .iter()
                .map(|hop| {
                    let mut nh = RouteNextHop::default();
                    nh.interface_index = hop.ifindex;
                    // In range: checked above.
                    nh.hops = u8::try_from(hop.weight.saturating_sub(1)).unwrap_or(u8::MAX);
                    if let Some(gateway) = hop.gateway {
                        nh.attributes.push(gateway_attribute(prefix, gateway));
                    }
                    nh
                })
                .collect();
            message
                .attributes
                .push(RouteAttribute::MultiPath(next_hops));
        }
    }
    Ok(message)
}

/// A dumped route as one of ours, if it is.
fn parse_ours(config: &KernelFibConfig, message: &RouteMessage) -> Option<KernelRoute> {
    if u8::from(message.header.protocol) != config.protocol {
        return None;
    }
    let mut table = u32::from(message.header.table);
    let mut destination = None;
    let mut gateway = None;
    let mut oif = None;
    let mut multipath = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => destination = ip(a),
            RouteAttribute::Gateway(a) => gateway = ip(a),
            RouteAttribute::Via(v) => gateway = via(v),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::MultiPath(hops) => multipath = Some(hops),
            _ => {}
        }
    }
    if table != config.table {
        return None;
    }
    let unspecified = match message.header.address_family {
        AddressFamily::Inet => IpAddr::from([0u8; 4]),
        AddressFamily::Inet6 => IpAddr::from([0u8; 16]),
        _ => return None,
    };
    let prefix = IpNet::new(
        destination.unwrap_or(unspecified),
        message.header.destination_prefix_length,
    )
    .ok()?;
    let next_hops = match multipath {
        Some(hops) => hops
            .iter()
            .map(|nh| KernelNextHop {
                gateway: nh.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(a) => ip(a),
                    RouteAttribute::Via(v) => via(v),
                    _ => None,
                }),
                ifindex: nh.interface_index,
                weight: u16::from(nh.hops) + 1,
            })
            .collect(),
        None => vec![KernelNextHop {
            gateway,
            ifindex: oif?,
            weight: 1,
        }],
    };
    Some(KernelRoute { prefix, next_hops })
}

fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn gateway_attribute(prefix: IpNet, gateway: IpAddr) -> RouteAttribute {
    match (prefix.addr(), gateway) {
        (IpAddr::V4(_), IpAddr::V6(v6)) => RouteAttribute::Via(RouteVia::Inet6(v6)),
        _ => RouteAttribute::Gateway(gateway.into()),
    }
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn via(v: &RouteVia) -> Option<IpAddr> {
    match v {
        RouteVia::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteVia::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(route: &KernelRoute) -> Result<RouteMessage, NetlinkError> {
        route_message(&KernelFibConfig::default(), route)
    }

    fn hop(gw: &str, ifindex: u32) -> KernelNextHop {
        KernelNextHop::via(gw.parse().unwrap(), ifindex)
    }

    #[test]
    fn a_single_next_hop_is_gateway_and_oif_and_a_round_trip_parses_back() {
        let route = KernelRoute {
            prefix: "198.51.100.0/24".parse().unwrap(),
            next_hops: vec![hop("192.0.2.1", 3)],
        };
        let m = build(&route).unwrap();
        assert!(m.attributes.contains(&RouteAttribute::Oif(3)));
        assert!(
            m.attributes
                .contains(&RouteAttribute::Gateway(RouteAddress::Inet(
                    "192.0.2.1".parse().unwrap()
                )))
        );
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert_eq!(u8::from(m.header.protocol), RTPROT_BGP_CTL);
        assert_eq!(parse_ours(&KernelFibConfig::default(), &m), Some(route));
    }

    #[test]
    fn ecmp_routes_use_multipath_with_weights_and_rfc5549_uses_via() {
        let route = KernelRoute {
            prefix: "198.51.100.0/24".parse().unwrap(),
            next_hops: vec![
                hop("192.0.2.1", 3),
                KernelNextHop {
                    weight: 3,
                    ..hop("fe80::1", 4)
                },
            ],
        };
        let m = build(&route).unwrap();
        let Some(RouteAttribute::MultiPath(hops)) = m
            .attributes
            .iter()
            .find(|a| matches!(a, RouteAttribute::MultiPath(_)))
        else {
            panic!("no multipath in {m:?}");
        };
        assert_eq!(hops.len(), 2);
        assert_eq!(hops[1].hops, 2);
        assert_eq!(
            hops[1].attributes,
            vec![RouteAttribute::Via(RouteVia::Inet6(
                "fe80::1".parse().unwrap()
            ))]
        );
    }

    #[test]
    fn inexpressible_routes_are_refused_with_a_reason() {
        let none = KernelRoute {
            prefix: "10.0.0.0/8".parse().unwrap(),
            next_hops: vec![],
        };
        assert!(
            build(&none)
                .unwrap_err()
                .to_string()
                .contains("no next hop")
        );
        let v4_for_v6 = KernelRoute {
            prefix: "2001:db8::/32".parse().unwrap(),
            next_hops: vec![hop("192.0.2.1", 3)],
        };
        assert!(
            build(&v4_for_v6)
                .unwrap_err()
                .to_string()
                .contains("IPv4 gateway")
        );
        let heavy = KernelRoute {
            prefix: "10.0.0.0/8".parse().unwrap(),
            next_hops: vec![KernelNextHop {
                weight: 0,
                ..hop("192.0.2.1", 3)
            }],
        };
        assert!(build(&heavy).is_err());
        let no_dev = KernelRoute {
            prefix: "10.0.0.0/8".parse().unwrap(),
            next_hops: vec![hop("192.0.2.1", 0)],
        };
        assert!(build(&no_dev).is_err());
    }
}
