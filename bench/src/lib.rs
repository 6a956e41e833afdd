//! The forwarding-plane benchmark (`cargo xtask bench dataplane`): a gen -> router -> sink
//! topology in network namespaces, an XDP packet generator and sink, the router's
//! forwarders (the kernel, the kernel's `xdp_fwd` sample, this dataplane), route loads,
//! and the program's cost per packet.
//!
//! Tooling only: nothing here is part of the `bgp-ctl` binary.

pub mod cost;
pub mod cpu;
pub mod kernel_sample;
pub mod pktgen;
pub mod router;
pub mod routes;
pub mod stats;
pub mod topology;
