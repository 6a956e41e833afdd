//! bgp-ctl: the node agent of a BGP-routed container network.
//!
//! Layers, imported only downwards: the wire codec, the FSM and sessions, the RIBs and
//! policy, the FIB programmer and the dataplane maps ([`fib`]); the daemon, control API
//! and CLI sit on top. [`netlink`] is the kernel-facing side: pod routes, neighbors and
//! links learned from the kernel, and our routes written into its FIB. [`bfd`] detects
//! path failures to BGP peers in a few hundred milliseconds (single-hop BFD).

pub mod api;
pub mod bfd;
pub mod bgp;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod fib;
pub mod health;
pub mod http;
pub mod metrics;
pub mod netlink;
pub mod policy;
pub mod programmer;
pub mod rib;
pub mod speaker;
