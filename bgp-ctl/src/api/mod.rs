//! The control API: versioned JSON lines over a root-only Unix socket. The daemon serves
//! it; the `bgp-ctl` CLI is its client.

pub mod client;
pub mod protocol;
pub mod server;

pub use protocol::{API_VERSION, Envelope, Reply, Request};
