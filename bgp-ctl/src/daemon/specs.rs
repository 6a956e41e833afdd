//! From the configuration file to the speaker's peer and RIB settings.

use std::time::Duration;

use anyhow::{Context, Result};
use bgp_wire::{Family, GracefulRestart, GracefulRestartFamily};

use crate::{
    bgp::{self, LocalInfo, MaxPrefix, RemoteAs, TimerConfig},
    config::{Config, parse_asn_range, schema},
    policy::{PeerPolicy, RoutingPolicy},
    rib::{self, MultipathOptions, RibConfig},
    speaker::{DynamicSpec, PeerSpec, SpeakerSettings, Suppression},
};

/// Speaker-wide settings of a config.
pub fn speaker_settings(c: &Config) -> SpeakerSettings {
    let local = LocalInfo {
        asn: *c.asn.get_ref(),
        router_id: *c.router_id.get_ref(),
    };
    let mut rib = RibConfig::new(local.asn, local.router_id);
    rib.multipath = MultipathOptions {
        max_paths: *c.multipath.max_paths.get_ref(),
        relax_neighbor_as: c.multipath.relax_as_path,
    };
    SpeakerSettings {
        local,
        rib,
        routing: RoutingPolicy {
            prefix_lists: c.prefix_lists.get_ref().clone(),
            policies: c.policies.get_ref().clone(),
        },
        stale_time: Duration::from_secs(u64::from(c.graceful_restart.stale_time)),
        suppressions: c
            .aggregate
            .iter()
            .filter(|a| a.summary_only)
            .map(|a| Suppression {
                prefix: a.prefix.get_ref().trunc(),
                to: a.suppress_to.iter().map(|t| t.get_ref().clone()).collect(),
            })
            .collect(),
    }
}

fn family(f: schema::Family) -> Family {
    match f {
        schema::Family::Ipv4Unicast => Family::IPV4_UNICAST,
        schema::Family::Ipv6Unicast => Family::IPV6_UNICAST,
    }
}

fn timers(t: &schema::Timers) -> TimerConfig {
    TimerConfig {
        hold_time: t.hold(),
        keepalive: t.keepalive(),
        connect_retry: Duration::from_secs(u64::from(*t.connect_retry.get_ref())),
        ..TimerConfig::default()
    }
}

/// The session, RIB and policy settings of one `[[peer]]` or `[[dynamic-neighbors]]`
/// table; `remote_as` decides which.
fn spec(
    c: &Config,
    n: &schema::Neighbor,
    remote: std::net::IpAddr,
    remote_as: RemoteAs,
    restarting: bool,
) -> Result<PeerSpec> {
    let name = n.name.get_ref().clone();
    let families: Vec<Family> = n.families.get_ref().iter().copied().map(family).collect();
    let password = match (&n.password, &n.password_file) {
        (Some(p), _) => Some(p.get_ref().clone()),
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f.get_ref())
                .with_context(|| format!("peer {name}: password-file {}", f.get_ref().display()))?;
            Some(text.lines().next().unwrap_or_default().to_string())
        }
        (None, None) => None,
    };
    let mut session = bgp::PeerConfig::new(remote, remote_as);
    session.local_as = n.local_asn.as_ref().map(|a| *a.get_ref());
    session.local_addr = n.local_address;
    session.port = n.port.unwrap_or(179);
    session.passive = n.passive;
    session.md5_password = password;
    session.ttl_security = n.ttl_security.as_ref().map(|t| *t.get_ref());
    session.ebgp_multihop = n.multihop.as_ref().map(|t| *t.get_ref());
    session.timers = timers(
        n.timers
            .as_ref()
            .map_or(c.timers.get_ref(), |t| t.get_ref()),
    );
    session.families = families.clone();
    session.graceful_restart = c.graceful_restart.enabled.then(|| GracefulRestart {
        restarting,
        notification: true,
        restart_time: *c.graceful_restart.restart_time.get_ref(),
        // The XDP dataplane keeps forwarding from pinned maps across our restarts.
        families: families
            .iter()
            .map(|&family| GracefulRestartFamily {
                family,
                forwarding_preserved: true,
            })
            .collect(),
    });
    session.max_prefix = n.max_prefix.as_ref().map(|m| {
        let m = m.get_ref();
        MaxPrefix {
            limit: m.limit,
            warning_threshold_pct: m.warning_percent,
            restart_after: m.restart_after.map(|s| Duration::from_secs(u64::from(s))),
        }
    });
    let remote_asn = match remote_as {
        RemoteAs::Exact(a) => a,
        RemoteAs::Range { min, .. } => min,
    };
    let mut rib = rib::PeerConfig::new(remote, remote_asn);
    rib.rr_client = n.route_reflector_client;
    rib.allowas_in = n.allowas_in;
    rib.next_hop_self = n.next_hop_self;
    Ok(PeerSpec {
        name,
        session,
        rib,
        policy: PeerPolicy {
            import: n.import.as_ref().map(|p| p.get_ref().clone()),
            export: n.export.as_ref().map(|p| p.get_ref().clone()),
        },
        enabled: !n.disabled,
        bfd: n.bfd.then(|| {
            let b = c.bfd.get_ref();
            crate::bfd::SessionConfig::symmetric(
                Duration::from_millis(u64::from(b.interval_ms)),
                b.multiplier,
            )
        }),
    })
}

/// The configured peers; `restarting`: the daemon restarted with its forwarding state
/// (graceful restart's Restart State bit in the first OPEN).
pub fn peers(c: &Config, restarting: bool) -> Result<Vec<PeerSpec>> {
    c.peer
        .iter()
        .filter_map(|n| {
            let addr = *n.address.as_ref()?.get_ref();
            let asn = *n.remote_asn.as_ref()?.get_ref();
            Some(spec(c, n, addr, RemoteAs::Exact(asn), restarting))
        })
        .collect()
}

/// The dynamic-neighbor ranges (`restarting` as for [`peers`]).
pub fn dynamic(c: &Config, restarting: bool) -> Result<Vec<DynamicSpec>> {
    c.dynamic_neighbors
        .iter()
        .filter_map(|n| {
            let range = *n.range.as_ref()?.get_ref();
            let asns = parse_asn_range(n.remote_asn_range.as_ref()?.get_ref()).ok()?;
            let remote_as = RemoteAs::Range {
                min: *asns.start(),
                max: *asns.end(),
            };
            Some(
                spec(c, n, range.network(), remote_as, restarting).map(|template| DynamicSpec {
                    name: n.name.get_ref().clone(),
                    range,
                    template,
                    limit: n.limit.as_ref().map_or(1000, |l| *l.get_ref() as usize),
                }),
            )
        })
        .collect()
}
