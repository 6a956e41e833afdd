//! The speaker's answers to `show` requests.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use bgp_wire::{Capability, Family};
use ipnet::IpNet;

use super::{Peer, SpeakerSettings};
use crate::{
    api::protocol::{MessageCounts, NeighborDetail, NeighborSummary, PathView, RouteView},
    bgp,
    rib::{PathSource, PeerId, Rib},
};

fn since(t: Option<SystemTime>) -> u64 {
    t.and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

fn counts(c: bgp::stats::MessageCounts) -> MessageCounts {
    MessageCounts {
        open: c.open,
        update: c.update,
        notification: c.notification,
        keepalive: c.keepalive,
        route_refresh: c.route_refresh,
    }
}

pub(super) fn summary(p: &Peer, rib: &Rib) -> NeighborSummary {
    let stats = p.handle.stats();
    let (mut received, mut accepted, mut advertised) = (0u64, 0u64, 0u64);
    for f in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
        if let Ok(c) = rib.peer_counts(p.id, f) {
            received += c.received as u64;
            accepted += c.accepted as u64;
            advertised += c.advertised as u64;
        }
    }
    let state = if stats.enabled {
        stats.state.to_string()
    } else {
        "Disabled".to_string()
    };
    let remote_asn =
        stats
            .negotiated
            .as_ref()
            .map(|n| n.peer_as)
            .unwrap_or(match p.spec.session.remote_as {
                bgp::RemoteAs::Exact(a) => a,
                bgp::RemoteAs::Range { min, .. } => min,
            });
    NeighborSummary {
        name: p.spec.name.clone(),
        address: p.spec.session.remote_addr,
        remote_asn,
        state,
        since_secs: since(
            stats
                .established_since
                .or(stats.last_error.as_ref().map(|e| e.at)),
        ),
        received,
        accepted,
        advertised,
        last_error: stats.last_error.map(last_error),
        dynamic: p.dynamic.is_some(),
        configured_secs: p.configured_at.elapsed().as_secs(),
    }
}

/// The last error as the API documents it: who sent the NOTIFICATION, then what it was
/// (`sent NOTIFICATION Hold Timer Expired/Unspecific`); a connection failure as is.
fn last_error(e: bgp::stats::LastError) -> String {
    match (e.code, e.direction) {
        (None, _) => e.text,
        (Some(_), bgp::stats::ErrorDirection::Sent) => format!("sent NOTIFICATION {}", e.text),
        (Some(_), bgp::stats::ErrorDirection::Received) => {
            format!("received NOTIFICATION {}", e.text)
        }
    }
}

fn capability(c: &Capability) -> String {
    match c {
        Capability::MultiProtocol(f) => format!("mp {f}"),
        Capability::RouteRefresh => "route-refresh".into(),
        Capability::ExtendedMessage => "extended-message".into(),
        Capability::GracefulRestart(gr) => format!("graceful-restart {}s", gr.restart_time),
        Capability::FourOctetAs(a) => format!("4-octet-as {a}"),
        Capability::EnhancedRouteRefresh => "enhanced-route-refresh".into(),
        Capability::Other { code, .. } => format!("code {code}"),
    }
}

pub(super) fn detail(p: &Peer, rib: &Rib, settings: &SpeakerSettings) -> NeighborDetail {
    let stats = p.handle.stats();
    let n = stats.negotiated.as_deref();
    let mut sent = Vec::new();
    for f in &p.spec.session.families {
        sent.push(format!("mp {f}"));
    }
    sent.push(format!(
        "4-octet-as {}",
        p.spec.session.local_as.unwrap_or(settings.local.asn)
    ));
    sent.push("route-refresh".into());
    if p.spec.session.graceful_restart.is_some() {
        sent.push("graceful-restart".into());
    }
    NeighborDetail {
        summary: summary(p, rib),
        local_asn: p.spec.session.local_as.unwrap_or(settings.local.asn),
        local_address: n.map(|n| n.local_addr.ip().to_canonical()),
        router_id: n.map(|n| n.peer_id),
        hold_time: n.map(|n| n.hold_time),
        keepalive: n.map(|n| n.keepalive),
        configured_hold_time: p.spec.session.timers.hold_time,
        capabilities_sent: sent,
        capabilities_received: n
            .map(|n| n.peer_capabilities.iter().map(capability).collect())
            .unwrap_or_default(),
        families: n
            .map(|n| n.families.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        messages_received: counts(stats.received),
        messages_sent: counts(stats.sent),
        flaps: stats.flaps,
        import_policy: p.spec.policy.import.clone(),
        export_policy: p.spec.policy.export.clone(),
        bfd: p.spec.bfd.map(|_| {
            match p.bfd_up {
                Some(true) => "Up",
                Some(false) => "Down",
                None => "Init",
            }
            .to_owned()
        }),
        graceful_restart: (!p.stale.is_empty())
            .then(|| format!("peer restarting: {} families stale", p.stale.len())),
    }
}

/// Routes of the Loc-RIB (all, or the longest match of `prefix`), each with all its paths.
pub(super) fn routes(
    rib: &Rib,
    prefix: Option<IpNet>,
    names: &HashMap<PeerId, String>,
) -> Vec<RouteView> {
    let prefixes: Vec<IpNet> = match prefix {
        Some(p) => rib
            .longest_match(p)
            .map(|(p, _)| vec![p])
            .unwrap_or_default(),
        None => {
            let mut all: Vec<IpNet> = [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
                .into_iter()
                .flat_map(|f| rib.loc_rib(f).map(|(p, _)| p).collect::<Vec<_>>())
                .collect();
            all.sort();
            all
        }
    };
    prefixes
        .into_iter()
        .map(|prefix| RouteView {
            prefix,
            paths: rib
                .paths(prefix)
                .into_iter()
                .filter_map(|v| {
                    let a = v.accepted.as_ref()?;
                    let mut communities: Vec<String> =
                        a.path.communities.iter().map(ToString::to_string).collect();
                    communities.extend(a.path.large_communities.iter().map(ToString::to_string));
                    Some(PathView {
                        from: match v.source {
                            PathSource::Local => "local".into(),
                            PathSource::Peer(id) => names
                                .get(&id)
                                .cloned()
                                .unwrap_or_else(|| format!("peer {id:?}")),
                        },
                        next_hop: match v.source {
                            PathSource::Local => None,
                            PathSource::Peer(_) => Some(a.next_hop_addr()),
                        },
                        as_path: a.path.as_path.to_string(),
                        origin: match a.path.origin {
                            bgp_wire::Origin::Igp => "igp",
                            bgp_wire::Origin::Egp => "egp",
                            bgp_wire::Origin::Incomplete => "incomplete",
                        }
                        .into(),
                        med: a.path.med,
                        local_pref: a.path.local_pref,
                        communities,
                        best: v.best,
                        multipath: v.multipath,
                        stale: v.stale,
                    })
                })
                .collect(),
        })
        .collect()
}
