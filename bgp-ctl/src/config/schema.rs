//! The configuration file's shape (TOML, kebab-case keys), as an operator writes it.
//!
//! These types describe the file; the daemon converts them into the speaker's, the
//! policy engine's and the dataplane's own types after validation. Fields that other
//! fields refer to by name carry their span, so that a wrong reference is reported at
//! the line where it is made.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
};

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::policy::{Policy, PrefixList};

/// Default bpffs directory for the dataplane's pins.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/xdp-fwd";
/// Default control socket.
pub const DEFAULT_SOCKET: &str = "/run/bgp-ctl/bgp-ctl.sock";

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// BGP identifier.
    pub router_id: Spanned<Ipv4Addr>,
    /// Local AS number (4-octet).
    pub asn: Spanned<u32>,
    /// Where the speaker listens.
    #[serde(default)]
    pub listen: Listen,
    /// The XDP dataplane.
    pub dataplane: Spanned<Dataplane>,
    /// Pod routes learned from the kernel, and static originations.
    #[serde(default)]
    pub origination: Origination,
    /// Aggregates originated when a contributing route exists.
    #[serde(default)]
    pub aggregate: Vec<Aggregate>,
    /// ECMP settings.
    #[serde(default)]
    pub multipath: Multipath,
    /// Graceful restart (RFC 4724), both roles.
    #[serde(default)]
    pub graceful_restart: GracefulRestart,
    /// Default BFD timers for peers with `bfd = true`.
    #[serde(default = "Bfd::spanned_default")]
    pub bfd: Spanned<Bfd>,
    /// Default session timers.
    #[serde(default = "Timers::spanned_default")]
    pub timers: Spanned<Timers>,
    /// Named prefix lists: `pods = ["10.244.0.0/16 le 32"]` (first match wins, no match
    /// denies).
    #[serde(default = "empty_spanned")]
    pub prefix_lists: Spanned<BTreeMap<String, PrefixList>>,
    /// Named policies: ordered terms (`match`, `set`, `then`) and a `default` verdict.
    #[serde(default = "empty_spanned")]
    pub policies: Spanned<BTreeMap<String, Policy>>,
    /// Configured neighbors.
    #[serde(default)]
    pub peer: Vec<Neighbor>,
    /// Ranges from which sessions are accepted (dynamic neighbors).
    #[serde(default)]
    pub dynamic_neighbors: Vec<Neighbor>,
    /// Control socket.
    #[serde(default)]
    pub api: Api,
    /// Metrics and health endpoints.
    #[serde(default)]
    pub http: Http,
    /// Readiness settings.
    #[serde(default)]
    pub health: Health,
}

/// Listening sockets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Listen {
    /// Addresses to listen on (default: all IPv4 and IPv6 addresses).
    #[serde(default = "Listen::default_addresses")]
    pub addresses: Vec<IpAddr>,
    /// TCP port (default 179).
    #[serde(default = "Listen::default_port")]
    pub port: u16,
}

impl Listen {
    fn default_addresses() -> Vec<IpAddr> {
        vec![
            IpAddr::from([0u8, 0, 0, 0]),
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 0]),
        ]
    }
    fn default_port() -> u16 {
        179
    }
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            addresses: Listen::default_addresses(),
            port: Listen::default_port(),
        }
    }
}

/// XDP attach mode as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachMode {
    /// Native (driver) XDP.
    Driver,
    /// Generic (skb) XDP.
    Skb,
}

/// The XDP dataplane.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Dataplane {
    /// Uplink interfaces the program is attached to.
    pub uplinks: Vec<Spanned<String>>,
    /// Attach mode (default driver).
    #[serde(default = "Dataplane::default_mode")]
    pub mode: AttachMode,
    /// bpffs directory of the pins.
    #[serde(default = "Dataplane::default_pin_dir")]
    pub pin_dir: PathBuf,
    /// Forward IPv4 fragments (3-tuple hash) instead of passing them to the kernel.
    #[serde(default)]
    pub forward_fragments: bool,
    /// Also install routes in the kernel FIB (own protocol), for host-originated traffic.
    #[serde(default)]
    pub kernel_fib: bool,
    /// Also attach the program to the interface of every pod route (the host side of a
    /// pod's veth), so traffic from local pods is forwarded from the maps too.
    #[serde(default)]
    pub attach_pods: bool,
}

impl Dataplane {
    fn default_mode() -> AttachMode {
        AttachMode::Driver
    }
    fn default_pin_dir() -> PathBuf {
        PathBuf::from(DEFAULT_PIN_DIR)
    }
}

/// Route origination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Origination {
    /// Host routes (/32, /128) inside these prefixes are learned from the kernel.
    #[serde(default)]
    pub pod_cidrs: Vec<IpNet>,
    /// Prefixes always originated.
    #[serde(default)]
    pub static_routes: Vec<IpNet>,
}

/// An aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Aggregate {
    /// The aggregate prefix.
    pub prefix: Spanned<IpNet>,
    /// Suppress the more specific routes towards the peers in `suppress-to` (all peers
    /// when empty).
    #[serde(default)]
    pub summary_only: bool,
    /// Peers towards which more specifics are suppressed; empty means all.
    #[serde(default)]
    pub suppress_to: Vec<Spanned<String>>,
}

/// ECMP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Multipath {
    /// Most paths in a multipath set (1 disables ECMP; at most 16, the dataplane's group size).
    #[serde(default = "Multipath::default_max_paths")]
    pub max_paths: Spanned<u8>,
    /// Paths from different neighbor ASes with equal AS-path length are equal
    /// (FRR `bestpath as-path multipath-relax`).
    #[serde(default)]
    pub relax_as_path: bool,
}

impl Multipath {
    fn default_max_paths() -> Spanned<u8> {
        Spanned::new(0..0, 16)
    }
}

impl Default for Multipath {
    fn default() -> Self {
        Multipath {
            max_paths: Multipath::default_max_paths(),
            relax_as_path: false,
        }
    }
}

/// Graceful restart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GracefulRestart {
    /// Advertise the capability and act as restarting speaker and helper.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Restart time we advertise, seconds (at most 4095).
    #[serde(default = "GracefulRestart::default_restart_time")]
    pub restart_time: Spanned<u16>,
    /// How long stale routes are kept after a peer came back without End-of-RIB, seconds.
    #[serde(default = "GracefulRestart::default_stale_time")]
    pub stale_time: u16,
}

impl GracefulRestart {
    fn default_restart_time() -> Spanned<u16> {
        Spanned::new(0..0, 120)
    }
    fn default_stale_time() -> u16 {
        360
    }
}

impl Default for GracefulRestart {
    fn default() -> Self {
        GracefulRestart {
            enabled: true,
            restart_time: GracefulRestart::default_restart_time(),
            stale_time: GracefulRestart::default_stale_time(),
        }
    }
}

fn empty_spanned<T: Default>() -> Spanned<T> {
    Spanned::new(0..0, T::default())
}

fn yes() -> bool {
    true
}

/// BFD timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Bfd {
    /// Desired transmit and required receive interval, milliseconds.
    #[serde(default = "Bfd::default_interval")]
    pub interval_ms: u32,
    /// Detection multiplier.
    #[serde(default = "Bfd::default_multiplier")]
    pub multiplier: u8,
}

impl Bfd {
    fn default_interval() -> u32 {
        300
    }
    fn default_multiplier() -> u8 {
        3
    }
    fn spanned_default() -> Spanned<Bfd> {
        Spanned::new(0..0, Bfd::default())
    }
}

impl Default for Bfd {
    fn default() -> Self {
        Bfd {
            interval_ms: Bfd::default_interval(),
            multiplier: Bfd::default_multiplier(),
        }
    }
}

/// Session timers, seconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Timers {
    /// Hold time proposed (0, or at least 3).
    #[serde(default = "Timers::default_hold")]
    pub hold: Spanned<u16>,
    /// Keepalive interval (default a third of hold).
    pub keepalive: Option<Spanned<u16>>,
    /// Seconds between connection attempts.
    #[serde(default = "Timers::default_connect_retry")]
    pub connect_retry: Spanned<u16>,
}

impl Timers {
    fn default_hold() -> Spanned<u16> {
        Spanned::new(0..0, 90)
    }
    fn default_connect_retry() -> Spanned<u16> {
        Spanned::new(0..0, 5)
    }
    fn spanned_default() -> Spanned<Timers> {
        Spanned::new(0..0, Timers::default())
    }

    /// Hold time in seconds.
    pub fn hold(&self) -> u16 {
        *self.hold.get_ref()
    }

    /// Keepalive interval in seconds: as configured, else a third of the hold time.
    pub fn keepalive(&self) -> u16 {
        self.keepalive
            .as_ref()
            .map_or(self.hold() / 3, |k| *k.get_ref())
    }
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            hold: Timers::default_hold(),
            keepalive: None,
            connect_retry: Timers::default_connect_retry(),
        }
    }
}

/// A configured neighbor (`[[peer]]`, with `address` and `remote-asn`) or a range of
/// dynamic neighbors (`[[dynamic-neighbors]]`, with `range` and `remote-asn-range`). One
/// shape for both, so every session setting is written the same way; validation checks
/// that each table has the keys of its kind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Neighbor {
    /// Name used by the CLI and the logs.
    pub name: Spanned<String>,
    /// Neighbor address (`[[peer]]`).
    pub address: Option<Spanned<IpAddr>>,
    /// Neighbor AS (`[[peer]]`).
    pub remote_asn: Option<Spanned<u32>>,
    /// Source addresses accepted, e.g. `192.168.1.0/24` (`[[dynamic-neighbors]]`).
    pub range: Option<Spanned<IpNet>>,
    /// Accepted ASNs, `4200000000-4200099999` or one number (`[[dynamic-neighbors]]`).
    pub remote_asn_range: Option<Spanned<String>>,
    /// Most sessions accepted from the range at once (`[[dynamic-neighbors]]`, default 1000).
    pub limit: Option<Spanned<u32>>,
    /// Local AS towards this peer, instead of `asn`.
    pub local_asn: Option<Spanned<u32>>,
    /// Source address of the session.
    pub local_address: Option<IpAddr>,
    /// Neighbor TCP port (default 179).
    pub port: Option<u16>,
    /// Never connect; wait for the peer.
    #[serde(default)]
    pub passive: bool,
    /// TCP MD5 password (RFC 2385).
    pub password: Option<Spanned<String>>,
    /// File holding the TCP MD5 password (first line).
    pub password_file: Option<Spanned<PathBuf>>,
    /// GTSM (RFC 5082): accept only packets from at most this many hops away.
    pub ttl_security: Option<Spanned<u8>>,
    /// eBGP multihop TTL.
    pub multihop: Option<Spanned<u8>>,
    /// Timers, overriding the defaults.
    pub timers: Option<Spanned<Timers>>,
    /// Most prefixes accepted from this peer.
    pub max_prefix: Option<Spanned<MaxPrefix>>,
    /// Import policy name (RFC 8212: none on an eBGP session imports nothing).
    pub import: Option<Spanned<String>>,
    /// Export policy name (RFC 8212: none on an eBGP session exports nothing).
    pub export: Option<Spanned<String>>,
    /// Run BFD on this session.
    #[serde(default)]
    pub bfd: bool,
    /// Route reflector client (iBGP).
    #[serde(default)]
    pub route_reflector_client: bool,
    /// Next hop self on routes advertised to this peer.
    #[serde(default)]
    pub next_hop_self: bool,
    /// Address families (default both unicast families).
    #[serde(default = "Neighbor::default_families")]
    pub families: Spanned<Vec<Family>>,
    /// Accept paths with our own AS in them up to this many times.
    #[serde(default)]
    pub allowas_in: u8,
    /// Shut down administratively.
    #[serde(default)]
    pub disabled: bool,
}

impl Neighbor {
    fn default_families() -> Spanned<Vec<Family>> {
        Spanned::new(0..0, vec![Family::Ipv4Unicast, Family::Ipv6Unicast])
    }
}

/// An address family as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// IPv4 unicast.
    Ipv4Unicast,
    /// IPv6 unicast.
    Ipv6Unicast,
}

/// Max-prefix limit (RFC 4486 Cease subcode 1 on overflow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MaxPrefix {
    /// Most prefixes accepted.
    pub limit: u32,
    /// Log a warning at this percentage of the limit.
    #[serde(default = "MaxPrefix::default_warning")]
    pub warning_percent: u8,
    /// Re-enable the session after this many seconds (none: stays down until reset).
    pub restart_after: Option<u32>,
}

impl MaxPrefix {
    fn default_warning() -> u8 {
        75
    }
}

/// Control API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Api {
    /// Unix socket path (mode 0600).
    #[serde(default = "Api::default_socket")]
    pub socket: PathBuf,
}

impl Api {
    fn default_socket() -> PathBuf {
        PathBuf::from(DEFAULT_SOCKET)
    }
}

impl Default for Api {
    fn default() -> Self {
        Api {
            socket: Api::default_socket(),
        }
    }
}

/// Readiness (`bgp-ctl health`, `/readyz`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Health {
    /// Seconds a configured peer may take to reach Established (from the daemon's
    /// start, or the reload that added or reset it) before the agent reports not ready.
    #[serde(default = "Health::default_peer_startup_grace")]
    pub peer_startup_grace: u32,
}

impl Health {
    fn default_peer_startup_grace() -> u32 {
        60
    }
}

impl Default for Health {
    fn default() -> Self {
        Health {
            peer_startup_grace: Health::default_peer_startup_grace(),
        }
    }
}

/// HTTP endpoints: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Http {
    /// Listen address; absent disables the endpoints.
    #[serde(default = "Http::default_listen")]
    pub listen: Option<std::net::SocketAddr>,
}

impl Http {
    fn default_listen() -> Option<std::net::SocketAddr> {
        Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9179)))
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: Http::default_listen(),
        }
    }
}
