//! The control API's messages: versioned JSON, one object per line.
//!
//! A client sends one [`Envelope`]`<`[`Request`]`>` line; the daemon answers with a stream
//! of [`Reply`] lines (one per neighbor, route or FIB entry, so that `show routes` at a
//! million routes streams instead of building one huge document), closed by
//! [`Reply::End`] or [`Reply::Error`].

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Version of the messages below; a daemon refuses requests of another version.
pub const API_VERSION: u32 = 1;

/// A versioned message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// [`API_VERSION`] of the sender.
    pub version: u32,
    /// The message.
    #[serde(flatten)]
    pub body: T,
}

impl<T> Envelope<T> {
    /// Wraps `body` with the current version.
    pub fn new(body: T) -> Self {
        Envelope {
            version: API_VERSION,
            body,
        }
    }
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// One line per neighbor.
    ShowNeighbors,
    /// Details of one neighbor, by name or address.
    ShowNeighbor {
        /// Name or address.
        neighbor: String,
    },
    /// Loc-RIB routes, all or those of one prefix (longest match for an address).
    ShowRoutes {
        /// Prefix or address.
        prefix: Option<IpNet>,
    },
    /// What the XDP maps hold, all or for one prefix.
    ShowFib {
        /// Prefix or address.
        prefix: Option<IpNet>,
    },
    /// XDP counters summed over CPUs.
    ShowStats,
    /// Reset a session (Cease/Administrative Reset).
    NeighborReset {
        /// Name or address.
        neighbor: String,
        /// RFC 9003 shutdown communication.
        message: Option<String>,
    },
    /// Shut a session down and keep it down (Cease/Administrative Shutdown).
    NeighborDisable {
        /// Name or address.
        neighbor: String,
        /// RFC 9003 shutdown communication.
        message: Option<String>,
    },
    /// Bring a disabled session back.
    NeighborEnable {
        /// Name or address.
        neighbor: String,
    },
    /// Originate a static route.
    RouteAdd {
        /// The prefix.
        prefix: IpNet,
    },
    /// Withdraw a static route added with `route add`.
    RouteDel {
        /// The prefix.
        prefix: IpNet,
    },
    /// Reload the configuration file.
    Reload,
    /// Readiness and liveness.
    Health,
}

/// One line of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Reply {
    /// A neighbor's summary line.
    Neighbor(NeighborSummary),
    /// A neighbor's details.
    NeighborDetail(Box<NeighborDetail>),
    /// A prefix and its paths.
    Route(RouteView),
    /// A prefix as the dataplane holds it.
    Fib(FibView),
    /// Dataplane counters.
    Stats(StatsView),
    /// What a reload changed.
    Reload(ReloadReport),
    /// Health.
    Health(HealthView),
    /// A command succeeded; the text says what it did.
    Done {
        /// What was done.
        message: String,
    },
    /// End of a stream.
    End,
    /// The request failed.
    Error {
        /// Why.
        message: String,
    },
}

/// One neighbor, like a line of `birdc show protocols`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborSummary {
    /// Configured name (dynamic neighbors: group name and address).
    pub name: String,
    /// Neighbor address.
    pub address: IpAddr,
    /// Neighbor AS (configured, or learned from a dynamic neighbor's OPEN).
    pub remote_asn: u32,
    /// FSM state (`Idle`, `Connect`, `Active`, `OpenSent`, `OpenConfirm`, `Established`),
    /// or `Disabled`.
    pub state: String,
    /// Seconds in this state.
    pub since_secs: u64,
    /// Prefixes received (Adj-RIB-In, pre-policy).
    pub received: u64,
    /// Prefixes accepted by import policy.
    pub accepted: u64,
    /// Prefixes advertised (Adj-RIB-Out).
    pub advertised: u64,
    /// Last error, e.g. `sent NOTIFICATION Hold Timer Expired` or `connect: refused`.
    pub last_error: Option<String>,
    /// Accepted from a dynamic-neighbor range (not configured one by one).
    #[serde(default)]
    pub dynamic: bool,
    /// Seconds since the peer was configured (daemon start, the reload that added it,
    /// or the accepted connection of a dynamic neighbor).
    #[serde(default)]
    pub configured_secs: u64,
}

/// One neighbor in detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborDetail {
    /// The summary line.
    pub summary: NeighborSummary,
    /// Local AS used on this session.
    pub local_asn: u32,
    /// Local address of the TCP connection, when connected.
    pub local_address: Option<IpAddr>,
    /// Neighbor's BGP identifier, once known.
    pub router_id: Option<std::net::Ipv4Addr>,
    /// Negotiated hold time and keepalive, seconds.
    pub hold_time: Option<u16>,
    /// Negotiated keepalive interval, seconds.
    pub keepalive: Option<u16>,
    /// Configured hold time, seconds.
    pub configured_hold_time: u16,
    /// Capabilities we sent.
    pub capabilities_sent: Vec<String>,
    /// Capabilities the neighbor sent.
    pub capabilities_received: Vec<String>,
    /// Families in use.
    pub families: Vec<String>,
    /// Messages received by type.
    pub messages_received: MessageCounts,
    /// Messages sent by type.
    pub messages_sent: MessageCounts,
    /// Times the session left Established.
    pub flaps: u64,
    /// Import and export policy names.
    pub import_policy: Option<String>,
    /// Export policy name.
    pub export_policy: Option<String>,
    /// BFD session state, if BFD runs on this session.
    pub bfd: Option<String>,
    /// Graceful restart: whether the neighbor is restarting and its routes are stale.
    pub graceful_restart: Option<String>,
}

/// Messages by type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    /// OPEN.
    pub open: u64,
    /// UPDATE.
    pub update: u64,
    /// NOTIFICATION.
    pub notification: u64,
    /// KEEPALIVE.
    pub keepalive: u64,
    /// ROUTE-REFRESH.
    pub route_refresh: u64,
}

/// A prefix and its paths in the Loc-RIB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteView {
    /// The prefix.
    pub prefix: IpNet,
    /// Paths, best first.
    pub paths: Vec<PathView>,
}

/// One path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathView {
    /// Neighbor name, or `local`, `static`, `aggregate`.
    pub from: String,
    /// BGP next hop.
    pub next_hop: Option<IpAddr>,
    /// AS path as text.
    pub as_path: String,
    /// `igp`, `egp` or `incomplete`.
    pub origin: String,
    /// MED.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// Communities and large communities as text.
    pub communities: Vec<String>,
    /// The best path.
    pub best: bool,
    /// In the multipath (ECMP) set.
    pub multipath: bool,
    /// Kept stale by graceful restart.
    pub stale: bool,
}

/// A prefix in the dataplane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibView {
    /// The prefix.
    pub prefix: IpNet,
    /// One of the node's own addresses (or address space always its own: broadcast,
    /// multicast, IPv6 link-local), handed to the kernel ahead of any route; not a
    /// Loc-RIB route.
    #[serde(default)]
    pub local_address: bool,
    /// Next-hop group id.
    pub group: u32,
    /// Members of the group.
    pub members: Vec<FibMemberView>,
}

/// One member of a next-hop group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibMemberView {
    /// `forward`, `unresolved` (to the kernel until the neighbor is resolved), `local`
    /// or `blackhole`.
    pub kind: String,
    /// Neighbor address (forward and unresolved).
    pub address: Option<IpAddr>,
    /// Egress interface name.
    pub interface: Option<String>,
    /// Source MAC written into forwarded frames.
    pub src_mac: Option<String>,
    /// Destination MAC written into forwarded frames.
    pub dst_mac: Option<String>,
    /// Egress MTU.
    pub mtu: Option<u16>,
    /// Buckets of the group's 256 that point at this member.
    pub buckets: u16,
}

/// Dataplane counters in program order, summed over CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsView {
    /// `(name, packets)`.
    pub counters: Vec<(String, u64)>,
    /// Uplinks and the mode the program is attached in.
    pub attached: Vec<(String, String)>,
    /// Entries in the dataplane's tables.
    pub tables: TableCounts,
    /// Map operations the FIB programmer issued since the daemon started: they show
    /// what an event cost (a peer going down must not write per route).
    pub map_ops: MapOpsView,
    /// Our routes in the kernel FIB (`[dataplane] kernel-fib`); `None` (left out) when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_fib: Option<KernelFibView>,
}

/// Our routes in the kernel FIB (`proto 200`), as the kernel FIB writer knows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelFibView {
    /// Routes of ours in the kernel (adopted ones included).
    pub routes: u64,
    /// Of those, routes adopted from a previous run that the Loc-RIB has not confirmed
    /// yet: removed when the resync period after a restart ends, unless learned again.
    pub stale: u64,
    /// Prefixes whose last write the kernel refused (logged with the reason).
    pub failed: u64,
    /// Prefixes waiting to be written.
    pub pending: u64,
}

/// Entries in the dataplane's tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCounts {
    /// Routes (prefixes) of the Loc-RIB.
    pub routes: u64,
    /// Local-address entries (the node's addresses, broadcast, multicast, link-local).
    #[serde(default)]
    pub local_addresses: u64,
    /// Next-hop groups (shared by every route with the same member set).
    pub groups: u64,
    /// Next hops.
    pub next_hops: u64,
}

/// Map operations by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapOpsView {
    /// Route entries written or deleted (LPM tries and host tables).
    pub route_writes: u64,
    /// Group slots and group references written.
    pub group_writes: u64,
    /// Next-hop slots, references and keys written.
    pub next_hop_writes: u64,
    /// RCU grace periods the programmer waited for before reusing a slot.
    pub barriers: u64,
    /// RCU grace periods started in the background (nobody waited).
    pub background_barriers: u64,
}

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// One line per change, e.g. `peer leaf3: added`, `peer leaf1: export policy changed`.
    pub changes: Vec<String>,
    /// Sessions reset because their settings changed.
    pub sessions_reset: Vec<String>,
}

/// Readiness and liveness, with every failing condition named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthView {
    /// Ready to serve (config loaded, dataplane attached, peers up or starting).
    pub ready: bool,
    /// Alive.
    pub live: bool,
    /// The stable names of the failing conditions (`peer-not-established:leaf1`,
    /// `uplink-not-attached:eth0`, ...), for scripts.
    pub failing: Vec<String>,
    /// The verdict in one line for people and probes (`ready: ...` or `not ready: ...`
    /// naming each failing condition and why).
    pub line: String,
}

impl From<&crate::health::Health> for HealthView {
    fn from(h: &crate::health::Health) -> Self {
        HealthView {
            ready: h.ready && h.live,
            live: h.live,
            failing: h.failing.iter().map(|c| c.name()).collect(),
            line: h.one_line(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_by_command_and_versioned() {
        let r = Envelope::new(Request::ShowRoutes {
            prefix: Some("10.244.1.0/24".parse().unwrap()),
        });
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"version":1,"command":"show-routes","prefix":"10.244.1.0/24"}"#
        );
        let back: Envelope<Request> = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        let reset: Envelope<Request> = serde_json::from_str(
            r#"{"version":1,"command":"neighbor-reset","neighbor":"leaf1","message":null}"#,
        )
        .unwrap();
        assert!(matches!(reset.body, Request::NeighborReset { .. }));
    }

    #[test]
    fn replies_are_tagged_by_type() {
        let line = serde_json::to_string(&Reply::Done {
            message: "ok".into(),
        })
        .unwrap();
        assert_eq!(line, r#"{"type":"done","message":"ok"}"#);
        assert_eq!(
            serde_json::to_string(&Reply::End).unwrap(),
            r#"{"type":"end"}"#
        );
    }
}
