//! The forwarding plane as userspace sees it: the embedded XDP object, its pinned maps,
//! its attachments to uplinks, and the table of routes, groups and next hops in them.

mod buckets;
mod dataplane;
mod error;
mod maps;
mod route_index;
mod table;

pub use buckets::rebalance;
pub use dataplane::{AttachMode, DEFAULT_PIN_DIR, Dataplane, FrameRun};
pub use error::FibError;
pub use maps::{FibMaps, MapOps};
pub use table::{Fib, NextHopKey};

/// The XDP program, built from the `xdp-fwd` crate by this crate's build script.
pub fn object() -> &'static [u8] {
    static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp-fwd"));
    OBJECT
}
