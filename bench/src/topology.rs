//! The benchmark's namespaces: gen -> router -> sink for the forwarders, and gen -> sink
//! directly for the generator's ceiling.
//!
//! ```text
//! gen  g0 192.0.2.1 ---- r0 192.0.2.254  router  r1 198.51.100.254 ---- s0 198.51.100.1  sink
//! gen  g1 ------------------------------------------------------------- s1               sink
//! gen  k0 -- k1 (carries nothing: the generator is attached to k0 to stay in the
//!                kernel's XDP dispatcher)
//! ```
//!
//! The sink drops every frame with an XDP counter program (on s0 and s1), so nothing is
//! answered and the router's neighbors are static. The router's ingress (r0) and the
//! ceiling's sink (s1) run their NAPI as threads on the CPU the generator does not use.

use std::net::Ipv4Addr;

use anyhow::Result;
use lab::{Link, Netns, frames::V4};
use xdp_pktgen_common::{FRAME_LEN, GenConfig};

use crate::{cpu, pktgen::Pktgen};

/// Source address of generated packets (a pod behind the generator).
pub const SRC: Ipv4Addr = Ipv4Addr::new(10, 244, 8, 1);
/// Destination of the base runs (a pod behind the sink, in the routed /24).
pub const DST: Ipv4Addr = Ipv4Addr::new(10, 244, 9, 1);
/// The pod prefix behind the sink.
pub const SINK_PREFIX: &str = "10.244.9.0/24";
/// The pod prefix behind the generator.
pub const GEN_PREFIX: &str = "10.244.8.0/24";
/// The router's next hop towards the sink.
pub const SINK_ADDR: &str = "198.51.100.1";
/// The router's next hop towards the generator.
pub const GEN_ADDR: &str = "192.0.2.1";
/// First UDP source port; flows differ by source port.
pub const SPORT_BASE: u16 = 1024;
/// UDP destination port.
pub const DPORT: u16 = 9;

/// Interface names, unique on the machine (NAPI threads are named after them).
pub struct Devs {
    pub g0: String,
    pub r0: String,
    pub r1: String,
    pub s0: String,
    pub g1: String,
    pub s1: String,
    /// A pair inside the generator's namespace that carries nothing: the generator is
    /// attached to `k0` only to keep it in the kernel's XDP dispatcher.
    pub k0: String,
    pub k1: String,
}

/// The namespaces and what the benchmark needs to know about their interfaces.
pub struct Topology {
    pub gen_ns: Netns,
    pub router: Netns,
    pub sink: Netns,
    pub devs: Devs,
    pub g0: Link,
    pub r0: Link,
    pub r1: Link,
    pub s0: Link,
    pub g1: Link,
}

/// CPU of the generator; everything that receives runs on [`RX_CPU`].
pub const GEN_CPU: usize = 0;
/// CPU of the router's and the ceiling sink's NAPI threads.
pub const RX_CPU: usize = 1;

impl Topology {
    /// Builds the namespaces and links, and attaches the sink to s0 and s1.
    pub fn new(pktgen: &mut Pktgen) -> Result<Self> {
        lab::require_root()?;
        lab::sweep_stale();
        let (gen_ns, router, sink) = (Netns::new()?, Netns::new()?, Netns::new()?);
        for ns in [&gen_ns, &router, &sink] {
            // No IPv6 autoconfiguration chatter in the counts.
            ns.exec(
                "sysctl",
                &[
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            )?;
        }
        let p = format!("b{}", std::process::id());
        let devs = Devs {
            g0: format!("{p}g0"),
            r0: format!("{p}r0"),
            r1: format!("{p}r1"),
            s0: format!("{p}s0"),
            g1: format!("{p}g1"),
            s1: format!("{p}s1"),
            k0: format!("{p}k0"),
            k1: format!("{p}k1"),
        };
        lab::veth(&gen_ns, &devs.g0, &router, &devs.r0)?;
        lab::veth(&router, &devs.r1, &sink, &devs.s0)?;
        lab::veth(&gen_ns, &devs.g1, &sink, &devs.s1)?;
        lab::veth(&gen_ns, &devs.k0, &gen_ns, &devs.k1)?;
        gen_ns.ip(&["addr", "add", "192.0.2.1/24", "dev", &devs.g0])?;
        router.ip(&["addr", "add", "192.0.2.254/24", "dev", &devs.r0])?;
        router.ip(&["addr", "add", "198.51.100.254/24", "dev", &devs.r1])?;
        sink.ip(&["addr", "add", "198.51.100.1/24", "dev", &devs.s0])?;

        let (g0, r0, r1) = (
            gen_ns.link(&devs.g0)?,
            router.link(&devs.r0)?,
            router.link(&devs.r1)?,
        );
        let (s0, g1) = (sink.link(&devs.s0)?, gen_ns.link(&devs.g1)?);

        // The router's kernel: routes and static neighbors (the sink answers nothing),
        // no reverse-path filter. Whether it forwards is the forwarder's choice.
        router.ip(&["route", "add", SINK_PREFIX, "via", SINK_ADDR])?;
        router.ip(&["route", "add", GEN_PREFIX, "via", GEN_ADDR])?;
        let mac = |m: [u8; 6]| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        router.ip(&[
            "neigh",
            "replace",
            SINK_ADDR,
            "lladdr",
            &mac(s0.mac),
            "dev",
            &devs.r1,
            "nud",
            "permanent",
        ])?;
        router.ip(&[
            "neigh",
            "replace",
            GEN_ADDR,
            "lladdr",
            &mac(g0.mac),
            "dev",
            &devs.r0,
            "nud",
            "permanent",
        ])?;
        router.exec(
            "sysctl",
            &[
                "-qw",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
                &format!("net.ipv4.conf.{}.rp_filter=0", devs.r0),
            ],
        )?;
        // Frames redirected into a veth natively are taken only by a peer with NAPI: GRO
        // gives r0 one whatever the forwarder (the kernel's has no XDP program there).
        router.exec("ethtool", &["-K", &devs.r0, "gro", "on"])?;

        pktgen.attach_sink(&sink, &devs.s0)?;
        pktgen.attach_sink(&sink, &devs.s1)?;
        pktgen.anchor(&gen_ns, &devs.k0)?;
        let topo = Self {
            gen_ns,
            router,
            sink,
            devs,
            g0,
            r0,
            r1,
            s0,
            g1,
        };
        topo.pin_napi()?;
        Ok(topo)
    }

    /// Puts the receiving NAPI threads (router ingress, ceiling sink) on [`RX_CPU`].
    /// Called before every run: attaching or detaching XDP may recreate them.
    pub fn pin_napi(&self) -> Result<()> {
        cpu::pin_napi(&self.router, &self.devs.r0, RX_CPU)?;
        cpu::pin_napi(&self.sink, &self.devs.s1, RX_CPU)?;
        Ok(())
    }

    /// Generator settings for traffic to the router: `flows` source ports to each of
    /// `dst_count` destinations from `dst_base`, visited with stride `dst_stride`.
    pub fn through_router(
        &self,
        flows: u32,
        dst_base: Ipv4Addr,
        dst_count: u32,
        dst_stride: u32,
    ) -> GenConfig {
        GenConfig {
            ifindex: self.g0.ifindex,
            flows,
            sport_base: u32::from(SPORT_BASE),
            dst_count,
            dst_stride,
            dst_base: u32::from(dst_base),
            template: self.frame(dst_base, self.r0.mac),
        }
    }

    /// Generator settings for the ceiling: the same frames straight into the sink.
    pub fn straight_to_sink(&self, flows: u32) -> GenConfig {
        GenConfig {
            ifindex: self.g1.ifindex,
            flows,
            sport_base: u32::from(SPORT_BASE),
            dst_count: 1,
            dst_stride: 1,
            dst_base: u32::from(DST),
            template: self.frame(DST, [0x02, 0, 0, 0, 0, 0x99]),
        }
    }

    /// A 64-byte (60 + FCS) UDP frame from the generator to `dst` via `next_mac`.
    fn frame(&self, dst: Ipv4Addr, next_mac: [u8; 6]) -> [u8; FRAME_LEN] {
        let mut f = V4::udp(SRC, dst, SPORT_BASE, DPORT).build();
        f[..6].copy_from_slice(&next_mac);
        f[6..12].copy_from_slice(&self.g0.mac);
        let mut out = [0u8; FRAME_LEN];
        let n = f.len().min(FRAME_LEN);
        out[..n].copy_from_slice(&f[..n]);
        out
    }
}
