//! The kernel-facing netlink layer: what the node agent learns from and writes to the
//! kernel over rtnetlink (netlink-sys + netlink-packet-route on tokio).
//!
//! - [`watch_pod_routes`]: the host routes a CNI installs for its pods, to originate in
//!   BGP ([`routes`] says what counts as one).
//! - [`watch_neighbors`] and [`NeighborResolver`]: next-hop and pod MACs, and making
//!   the kernel resolve the ones we lack.
//! - [`watch_links`]: ifindex, name, MAC, MTU and state of interfaces.
//! - [`watch_addresses`]: the node's own addresses on every interface.
//! - [`KernelFib`]: our routes in the kernel FIB, tagged [`RTPROT_BGP_CTL`].
//!
//! Each watcher dumps its table, then follows the kernel's multicast notifications
//! (event-driven, no polling), re-dumping after a receive-queue overrun and reporting
//! only the difference. It depends on nothing else of the agent.

pub mod addresses;
mod error;
pub mod kernel_fib;
pub mod links;
pub mod neighbors;
pub mod route_lookup;
pub mod routes;
mod socket;
mod watch;

pub use addresses::{Address, watch_addresses};
pub use error::NetlinkError;
pub use kernel_fib::{FibChange, KernelFib, KernelFibConfig, KernelNextHop, KernelRoute};
pub use links::{Link, OperState, XdpAttachment, watch_links, xdp_attachments};
pub use neighbors::{Neighbor, NeighborResolver, NeighborState, watch_neighbors};
pub use route_lookup::{Egress, RouteLookup};
pub use routes::{PodRoute, PodRouteConfig, RT_TABLE_MAIN, watch_pod_routes};
pub use watch::{Event, Watch, WatchOptions};

/// Our route protocol number (`rtm_protocol`), shown by `ip route` as `proto 200`.
///
/// Unused by the kernel's own list, iproute2's `rt_protos` (bird is 12, zebra 11) and
/// FRR's daemons (186-198; 196 is FRR's staticd), so `ip route show proto 200` lists
/// exactly our routes.
pub const RTPROT_BGP_CTL: u8 = 200;
