//! OPEN exchange: the OPEN we send, the checks of the peer's OPEN (RFC 4271 6.2, RFC 6286,
//! RFC 6793, RFC 7607, RFC 5492) and the negotiated session they produce.

use std::net::{Ipv4Addr, SocketAddr};

use bgp_wire::{
    Capability, CodecContext, Family, GracefulRestart, Notification, NotificationCode, Open,
    OpenSubcode,
};

use super::peer_config::{LocalInfo, PeerConfig};
use super::timers::HoldError;

/// What both OPENs agreed on: everything the layers above need to know about a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Our AS on this session.
    pub local_as: u32,
    /// The peer's AS (from the 4-octet AS capability when present).
    pub peer_as: u32,
    /// Our BGP identifier.
    pub local_id: Ipv4Addr,
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
    /// External session (the ASes differ).
    pub ebgp: bool,
    /// Negotiated hold time, seconds (0: no hold timer).
    pub hold_time: u16,
    /// Our keepalive interval, seconds (0: none).
    pub keepalive: u16,
    /// Families both sides announced (RFC 4760: no MP capability means IPv4 unicast).
    pub families: Vec<Family>,
    /// Both sent the 4-octet AS capability.
    pub four_octet_as: bool,
    /// Both sent the extended message capability.
    pub extended_message: bool,
    /// The peer accepts ROUTE-REFRESH (we always do).
    pub route_refresh: bool,
    /// Both sent enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// The peer's graceful restart capability, if it sent one.
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// We sent graceful restart too: with `peer_graceful_restart`, we are its helper.
    pub local_graceful_restart: bool,
    /// Both sides set the N bit (RFC 8538): graceful restart also follows a NOTIFICATION
    /// other than Hard Reset, and the expiry of the hold timer.
    pub graceful_notification: bool,
    /// Our end of the TCP connection.
    pub local_addr: SocketAddr,
    /// The peer's end.
    pub remote_addr: SocketAddr,
    /// Every capability of the peer's OPEN, for display.
    pub peer_capabilities: Vec<Capability>,
}

impl Negotiated {
    /// The codec settings of this session.
    pub fn codec_context(&self) -> CodecContext {
        CodecContext::new(self.four_octet_as, self.extended_message, self.ebgp)
    }

    /// Whether graceful restart applies to this session: both sides sent the capability,
    /// so we keep the peer's routes (as stale) while it restarts (RFC 4724 4.2).
    pub fn graceful_restart(&self) -> bool {
        self.local_graceful_restart && self.peer_graceful_restart.is_some()
    }

    /// Whether the family was negotiated.
    pub fn has_family(&self, family: Family) -> bool {
        self.families.contains(&family)
    }
}

/// The OPEN we send to this peer.
pub fn local_open(peer: &PeerConfig, local: &LocalInfo) -> Open {
    let mut caps: Vec<Capability> = peer
        .families
        .iter()
        .map(|f| Capability::MultiProtocol(*f))
        .collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::EnhancedRouteRefresh);
    if peer.extended_message {
        caps.push(Capability::ExtendedMessage);
    }
    if let Some(gr) = &peer.graceful_restart {
        caps.push(Capability::GracefulRestart(gr.clone()));
    }
    caps.push(Capability::FourOctetAs(peer.local_as(local)));
    Open::new(
        peer.local_as(local),
        peer.timers.hold_time,
        local.router_id,
        caps,
    )
}

/// Why a peer's OPEN is refused, and the NOTIFICATION that says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct OpenError {
    /// The NOTIFICATION to send.
    pub notification: Notification,
    /// What was wrong, for the log.
    pub reason: String,
}

impl OpenError {
    fn new(subcode: OpenSubcode, reason: String) -> Self {
        OpenError {
            notification: Notification::new(NotificationCode::OpenMessage(subcode)),
            reason,
        }
    }
}

/// Checks the peer's OPEN and negotiates the session.
pub fn negotiate(
    peer: &PeerConfig,
    local: &LocalInfo,
    open: &Open,
    local_addr: SocketAddr,
    remote_addr: SocketAddr,
) -> Result<Negotiated, OpenError> {
    if open.version != 4 {
        return Err(OpenError {
            notification: Notification::with_data(
                NotificationCode::OpenMessage(OpenSubcode::UnsupportedVersionNumber),
                vec![0, 4],
            ),
            reason: format!("BGP version {} (we speak 4)", open.version),
        });
    }
    let peer_as = open.asn();
    let local_as = peer.local_as(local);
    if open.my_as == 0 || peer_as == 0 {
        return Err(OpenError::new(
            OpenSubcode::BadPeerAs,
            "peer AS 0 (RFC 7607)".into(),
        ));
    }
    if !peer.remote_as.accepts(peer_as) {
        return Err(OpenError::new(
            OpenSubcode::BadPeerAs,
            format!(
                "peer AS {peer_as}, configured {}",
                match peer.remote_as {
                    super::peer_config::RemoteAs::Exact(a) => a.to_string(),
                    super::peer_config::RemoteAs::Range { min, max } => format!("{min}-{max}"),
                }
            ),
        ));
    }
    let ebgp = peer_as != local_as;
    // RFC 6286 2.2: any non-zero identifier; equal to ours is refused only on iBGP.
    if open.bgp_id.is_unspecified() {
        return Err(OpenError::new(
            OpenSubcode::BadBgpIdentifier,
            "BGP identifier 0.0.0.0".into(),
        ));
    }
    if !ebgp && open.bgp_id == local.router_id {
        return Err(OpenError::new(
            OpenSubcode::BadBgpIdentifier,
            format!("iBGP peer uses our BGP identifier {}", open.bgp_id),
        ));
    }
    let times = peer.timers.negotiate(open.hold_time).map_err(|e| {
        OpenError::new(
            OpenSubcode::UnacceptableHoldTime,
            match e {
                HoldError::Illegal(_) | HoldError::BelowMinimum { .. } => e.to_string(),
            },
        )
    })?;
    let peer_families = open.families();
    let families: Vec<Family> = peer
        .families
        .iter()
        .copied()
        .filter(|f| peer_families.contains(f))
        .collect();
    if families.is_empty() {
        // RFC 5492 3: Unsupported Capability, with the capabilities at fault.
        let mut data = Vec::new();
        for f in &peer.families {
            let afi = f.afi.code().to_be_bytes();
            data.extend_from_slice(&[1, 4, afi[0], afi[1], 0, f.safi.code()]);
        }
        let theirs: Vec<String> = peer_families.iter().map(Family::to_string).collect();
        let ours: Vec<String> = peer.families.iter().map(Family::to_string).collect();
        return Err(OpenError {
            notification: Notification::with_data(
                NotificationCode::OpenMessage(OpenSubcode::UnsupportedCapability),
                data,
            ),
            reason: format!(
                "no common address family: peer offers {}, we offer {}",
                theirs.join(","),
                ours.join(",")
            ),
        });
    }
    Ok(Negotiated {
        local_as,
        peer_as,
        local_id: local.router_id,
        peer_id: open.bgp_id,
        ebgp,
        hold_time: times.hold,
        keepalive: times.keepalive,
        families,
        four_octet_as: open.four_octet_as(),
        extended_message: peer.extended_message && open.has(&Capability::ExtendedMessage),
        route_refresh: open.has(&Capability::RouteRefresh),
        enhanced_route_refresh: open.has(&Capability::EnhancedRouteRefresh),
        peer_graceful_restart: open.graceful_restart().cloned(),
        local_graceful_restart: peer.graceful_restart.is_some(),
        graceful_notification: peer
            .graceful_restart
            .as_ref()
            .is_some_and(|g| g.notification)
            && open.graceful_restart().is_some_and(|g| g.notification),
        local_addr,
        remote_addr,
        peer_capabilities: open.capabilities.clone(),
    })
}

#[cfg(test)]
mod tests {
    use bgp_wire::{AS_TRANS, GracefulRestartFamily};

    use super::*;
    use crate::bgp::peer_config::RemoteAs;

    fn local() -> LocalInfo {
        LocalInfo {
            asn: 65000,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
        }
    }

    fn addrs() -> (SocketAddr, SocketAddr) {
        (
            "10.0.0.1:179".parse().unwrap(),
            "10.0.0.2:40000".parse().unwrap(),
        )
    }

    fn check(peer: &PeerConfig, open: &Open) -> Result<Negotiated, OpenError> {
        let (l, r) = addrs();
        negotiate(peer, &local(), open, l, r)
    }

    fn subcode(r: Result<Negotiated, OpenError>) -> NotificationCode {
        r.expect_err("OPEN must be refused").notification.code
    }

    fn peer() -> PeerConfig {
        PeerConfig::new("10.0.0.2".parse().unwrap(), RemoteAs::Exact(65001))
    }

    fn open_from(asn: u32, hold: u16, caps: Vec<Capability>) -> Open {
        Open::new(asn, hold, Ipv4Addr::new(10, 0, 0, 2), caps)
    }

    #[test]
    fn a_full_open_negotiates_everything_both_sides_offer() {
        let gr = GracefulRestart {
            restarting: false,
            notification: true,
            restart_time: 120,
            families: vec![GracefulRestartFamily {
                family: Family::IPV4_UNICAST,
                forwarding_preserved: true,
            }],
        };
        let open = open_from(
            65001,
            90,
            vec![
                Capability::MultiProtocol(Family::IPV6_UNICAST),
                Capability::RouteRefresh,
                Capability::ExtendedMessage,
                Capability::GracefulRestart(gr.clone()),
                Capability::Other {
                    code: 73,
                    value: bytes::Bytes::from_static(b"host"),
                },
            ],
        );
        let n = check(&peer(), &open).unwrap();
        assert_eq!(n.peer_as, 65001);
        assert!(n.ebgp);
        assert_eq!((n.hold_time, n.keepalive), (9, 3));
        assert_eq!(n.families, vec![Family::IPV6_UNICAST]);
        assert!(n.four_octet_as && n.extended_message && n.route_refresh);
        assert!(!n.enhanced_route_refresh);
        assert_eq!(n.peer_graceful_restart, Some(gr));
        assert!(!n.graceful_restart(), "we did not advertise GR");
        assert_eq!(n.codec_context(), CodecContext::new(true, true, true));
    }

    #[test]
    fn a_two_octet_peer_gets_ipv4_unicast_and_its_my_as() {
        let mut open = open_from(65001, 9, vec![]);
        open.capabilities.clear();
        let n = check(&peer(), &open).unwrap();
        assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
        assert!(!n.four_octet_as && !n.extended_message);
        // AS_TRANS without the capability is AS 23456, not what we configured.
        let mut four = peer();
        four.remote_as = RemoteAs::Exact(4_200_000_001);
        open.my_as = AS_TRANS;
        assert_eq!(
            subcode(check(&four, &open)),
            NotificationCode::OpenMessage(OpenSubcode::BadPeerAs)
        );
        let ok = open_from(4_200_000_001, 9, vec![]);
        assert_eq!(ok.my_as, AS_TRANS);
        assert_eq!(check(&four, &ok).unwrap().peer_as, 4_200_000_001);
    }

    #[test]
    fn bad_opens_get_the_right_subcode() {
        let p = peer();
        assert_eq!(
            subcode(check(&p, &open_from(65002, 9, vec![]))),
            NotificationCode::OpenMessage(OpenSubcode::BadPeerAs)
        );
        let mut zero = open_from(65001, 9, vec![]);
        zero.capabilities.clear();
        zero.my_as = 0;
        assert_eq!(
            subcode(check(&p, &zero)),
            NotificationCode::OpenMessage(OpenSubcode::BadPeerAs)
        );
        for hold in [1, 2] {
            assert_eq!(
                subcode(check(&p, &open_from(65001, hold, vec![]))),
                NotificationCode::OpenMessage(OpenSubcode::UnacceptableHoldTime)
            );
        }
        let mut v3 = open_from(65001, 9, vec![]);
        v3.version = 3;
        let e = check(&p, &v3).unwrap_err();
        assert_eq!(
            e.notification.code,
            NotificationCode::OpenMessage(OpenSubcode::UnsupportedVersionNumber)
        );
        assert_eq!(&e.notification.data[..], &[0, 4]);
        let mut id0 = open_from(65001, 9, vec![]);
        id0.bgp_id = Ipv4Addr::UNSPECIFIED;
        assert_eq!(
            subcode(check(&p, &id0)),
            NotificationCode::OpenMessage(OpenSubcode::BadBgpIdentifier)
        );
        let other_family = open_from(
            65001,
            9,
            vec![Capability::MultiProtocol(Family {
                afi: bgp_wire::Afi::Ipv4,
                safi: bgp_wire::Safi::Other(128),
            })],
        );
        let e = check(&p, &other_family).unwrap_err();
        assert_eq!(
            e.notification.code,
            NotificationCode::OpenMessage(OpenSubcode::UnsupportedCapability)
        );
        assert_eq!(&e.notification.data[..6], &[1, 4, 0, 1, 0, 1]);
    }

    #[test]
    fn equal_identifiers_are_refused_on_ibgp_only() {
        let mut same = open_from(65001, 9, vec![]);
        same.bgp_id = local().router_id;
        assert!(
            check(&peer(), &same).is_ok(),
            "RFC 6286: eBGP may share ids"
        );
        let mut ibgp = peer();
        ibgp.remote_as = RemoteAs::Exact(65000);
        let mut same_ibgp = open_from(65000, 9, vec![]);
        same_ibgp.bgp_id = local().router_id;
        assert_eq!(
            subcode(check(&ibgp, &same_ibgp)),
            NotificationCode::OpenMessage(OpenSubcode::BadBgpIdentifier)
        );
    }

    #[test]
    fn dynamic_ranges_and_local_as_override() {
        let mut p = peer();
        p.remote_as = RemoteAs::Range {
            min: 64512,
            max: 64600,
        };
        p.local_as = Some(64999);
        let n = check(&p, &open_from(64555, 9, vec![])).unwrap();
        assert_eq!((n.local_as, n.peer_as), (64999, 64555));
        assert_eq!(
            subcode(check(&p, &open_from(64601, 9, vec![]))),
            NotificationCode::OpenMessage(OpenSubcode::BadPeerAs)
        );
        let ours = local_open(&p, &local());
        assert_eq!(ours.asn(), 64999);
        assert_eq!(ours.hold_time, 9);
        assert!(ours.has(&Capability::RouteRefresh));
        assert!(ours.has(&Capability::EnhancedRouteRefresh));
        assert!(ours.has(&Capability::ExtendedMessage));
        assert_eq!(
            ours.families(),
            vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
        );
    }
}
