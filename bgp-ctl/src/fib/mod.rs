//! The forwarding plane as userspace sees it: the embedded XDP object, its pinned maps,
//! and its attachments to uplinks.

mod dataplane;
mod error;

pub use dataplane::{AttachMode, DEFAULT_PIN_DIR, Dataplane};
pub use error::FibError;

/// The XDP program, built from the `xdp-fwd` crate by this crate's build script.
pub fn object() -> &'static [u8] {
    static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp-fwd"));
    OBJECT
}
