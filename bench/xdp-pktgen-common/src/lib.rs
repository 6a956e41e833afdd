//! Map layouts shared by the benchmark's XDP packet generator (`xdp-pktgen`) and the
//! benchmark that drives it (`bgp-ctl-bench`).
//!
//! The generator is test tooling, never part of the product: `bgp-ctl` does not embed it.
#![no_std]

/// Bytes of the generated frame: Ethernet + IPv4 + UDP + 18 payload bytes, 60 bytes
/// (64 on the wire with the FCS).
pub const FRAME_LEN: usize = 60;

/// Bytes at the start of the frame that the generator rewrites on every run: Ethernet,
/// IPv4 and UDP headers. Live-frame pages are recycled and come back carrying whatever
/// the receiver wrote into them.
pub const HEADERS_LEN: usize = 14 + 20 + 8;

/// Offsets into the frame of the fields the generator varies.
pub mod offset {
    /// IPv4 header checksum.
    pub const IP_CHECK: usize = 14 + 10;
    /// IPv4 destination address.
    pub const IP_DST: usize = 14 + 16;
    /// UDP source port.
    pub const UDP_SPORT: usize = 14 + 20;
}

/// Names of the maps and programs in the generator's object.
pub mod name {
    /// [`super::GenConfig`], one entry.
    pub const CONFIG: &str = "pktgen_config";
    /// Per-CPU run counter of the generator (u64): the sequence that varies flows.
    pub const SEQ: &str = "pktgen_seq";
    /// Per-CPU count of frames the sink program dropped (u64).
    pub const SINK_COUNT: &str = "sink_count";
    /// The generator: run by `BPF_PROG_TEST_RUN` with live frames, redirects a frame.
    pub const PKTGEN: &str = "pktgen";
    /// The sink: counts and drops every frame.
    pub const SINK: &str = "sink";
}

/// What the generator sends. Frame `n` (per CPU) is the template with
/// UDP source port `sport_base + n % flows` and IPv4 destination
/// `dst_base + (n * dst_stride) % dst_count` (host order), the IPv4 checksum updated.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// Interface the generator redirects into (in the generator's namespace).
    pub ifindex: u32,
    /// Number of distinct source ports (flows per destination); at least 1.
    pub flows: u32,
    /// First UDP source port.
    pub sport_base: u32,
    /// Number of destinations rotated through; at least 1.
    pub dst_count: u32,
    /// Step through the destinations, coprime with `dst_count` so that every one is
    /// visited and consecutive frames go to distant entries.
    pub dst_stride: u32,
    /// First destination address, host order. The template carries it, and its
    /// checksum is valid for it.
    pub dst_base: u32,
    /// The frame, with a valid IPv4 header checksum for `dst_base`.
    pub template: [u8; FRAME_LEN],
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            ifindex: 0,
            flows: 1,
            sport_base: 0,
            dst_count: 1,
            dst_stride: 1,
            dst_base: 0,
            template: [0; FRAME_LEN],
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: #[repr(C)], integers and a byte array, no padding (6 * 4 + 60 bytes), so any
// bit pattern is a valid value.
unsafe impl aya::Pod for GenConfig {}

const _: () = assert!(core::mem::size_of::<GenConfig>() == 6 * 4 + FRAME_LEN);
