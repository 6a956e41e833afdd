//! bgp-ctl: the node agent of a BGP-routed container network.
//!
//! Layers, imported only downwards: the wire codec, the FSM and sessions, the RIBs and
//! policy, the FIB programmer and the dataplane maps ([`fib`]); the daemon, control API
//! and CLI sit on top.

pub mod fib;
pub mod health;
pub mod http;
