//! The router namespace and what forwards in it: the kernel, the kernel's `xdp_fwd`
//! sample, or this dataplane (`bgp_ctl::fib`), in skb or driver mode.

use std::fmt;

use anyhow::{Context, Result, bail};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use aya_obj::programs::XdpAttachType;
use bgp_ctl::fib::{AttachMode, Dataplane, Fib, FrameRun, NextHopKey};
use lab::PinDir;
use xdp_fwd_common::{NH_FORWARD, NextHop};

use crate::{
    cost,
    kernel_sample::KernelSample,
    topology::{self, Topology},
};

/// What forwards packets in the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarder {
    /// The kernel's IP forwarding, no XDP program.
    Kernel,
    /// The kernel's `xdp_fwd` sample (`bpf_fib_lookup` + devmap), native or skb mode.
    FibLookup(AttachMode),
    /// This dataplane.
    Ours(AttachMode),
}

impl fmt::Display for Forwarder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kernel => write!(f, "kernel forwarding"),
            Self::FibLookup(m) => write!(f, "xdp_fwd sample ({m})"),
            Self::Ours(m) => write!(f, "xdp-fwd ({m})"),
        }
    }
}

/// The router's forwarders and the dataplane's tables.
pub struct Router<'t> {
    topo: &'t Topology,
    sample: KernelSample,
    /// This dataplane's program, loaded once; attached and detached per run.
    dp: Dataplane,
    fib: Fib,
    to_sink: NextHopKey,
    current: Option<Forwarder>,
    pins: PinDir,
}

impl<'t> Router<'t> {
    /// Loads this dataplane against fresh pinned maps, with next hops to the sink and the
    /// generator and the two pod /24s, as the forwarding tests do. Nothing is attached.
    pub fn new(topo: &'t Topology, sample: KernelSample) -> Result<Self> {
        let pins = PinDir::new()?;
        let (s0, g0, r0, r1) = (&topo.s0, &topo.g0, &topo.r0, &topo.r1);
        let to_sink = NextHopKey::Neighbor {
            ifindex: r1.ifindex,
            addr: topology::SINK_ADDR.parse()?,
        };
        let to_gen = NextHopKey::Neighbor {
            ifindex: r0.ifindex,
            addr: topology::GEN_ADDR.parse()?,
        };
        let nh = |ifindex, dst_mac, src_mac| NextHop {
            kind: NH_FORWARD,
            ifindex,
            mtu: 1500,
            src_mac,
            dst_mac,
        };
        // The egress devices are resolved in the writer's namespace.
        let (dp, fib) = topo.router.enter(|| -> Result<(Dataplane, Fib)> {
            let dp = Dataplane::open(pins.path())?;
            let mut fib = Fib::open(pins.path())?;
            fib.set_next_hop(to_sink, nh(r1.ifindex, s0.mac, r1.mac))?;
            fib.set_next_hop(to_gen, nh(r0.ifindex, g0.mac, r0.mac))?;
            fib.add_route(topology::SINK_PREFIX.parse()?, &[to_sink])?;
            fib.add_route(topology::GEN_PREFIX.parse()?, &[to_gen])?;
            Ok((dp, fib))
        })??;
        Ok(Self {
            topo,
            sample,
            dp,
            fib,
            to_sink,
            current: None,
            pins,
        })
    }

    /// One sample of this dataplane's cost per packet with `routes` host routes loaded
    /// (see [`cost::sample_ns`]), attached in driver mode meanwhile.
    ///
    /// A test run of an XDP program that is not attached natively anywhere adds it to
    /// the kernel's XDP dispatcher and removes it again, each time waiting for an RCU
    /// grace period: milliseconds per call. Attached, it is already there.
    pub fn ours_cost_ns(&mut self, routes: u32) -> Result<f64> {
        self.select(Forwarder::Ours(AttachMode::Driver))?;
        cost::sample_ns(
            |frame, repeat| Ok(self.dp.run_frame(frame, repeat)?),
            routes,
        )
    }

    /// One sample of the kernel sample's cost per packet, measured like
    /// [`Router::ours_cost_ns`], on the very program its loader attached to the router's
    /// ingress (so its devmap is filled, and it is in the XDP dispatcher), as if frames
    /// arrived there.
    pub fn sample_cost_ns(&mut self, routes: u32) -> Result<f64> {
        self.select(Forwarder::FibLookup(AttachMode::Driver))?;
        let topo = self.topo;
        let id = xdp_prog_id(&topo.router, &topo.devs.r0)?;
        let pin = self.pins.path().join("sample_prog");
        let pin_s = pin.to_str().context("pin path")?;
        lab::run("bpftool", &["prog", "pin", "id", &id.to_string(), pin_s])?;
        let prog = Xdp::from_pin(&pin, XdpAttachType::Interface);
        let _ = std::fs::remove_file(&pin);
        let prog = prog.context("opening the sample's program")?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex. The ingress device decides the namespace of the FIB lookup.
        let ctx = |len: usize| -> Vec<u8> {
            [0, len as u32, 0, topo.r0.ifindex, 0, 0]
                .iter()
                .flat_map(|w| w.to_ne_bytes())
                .collect()
        };
        topo.router.enter(|| {
            cost::sample_ns(
                |frame, repeat| {
                    let mut out = vec![0u8; frame.len() + 256];
                    let ctx_in = ctx(frame.len());
                    let mut opts = TestRunOptions::new();
                    opts.data_in = Some(frame);
                    opts.data_out = Some(&mut out);
                    opts.ctx_in = Some(&ctx_in);
                    opts.repeat = repeat;
                    let r = prog.test_run(opts)?;
                    out.truncate(r.data_size_out as usize);
                    Ok(FrameRun {
                        action: r.return_value,
                        frame: out,
                        per_run: r.duration,
                    })
                },
                routes,
            )
        })?
    }

    /// This dataplane's table.
    pub fn fib(&self) -> &Fib {
        &self.fib
    }

    /// Runs `f` on this dataplane's table from inside the router's namespace.
    pub fn with_fib<R: Send>(
        &mut self,
        f: impl FnOnce(&mut Fib, NextHopKey) -> R + Send,
    ) -> Result<R> {
        let (fib, nh) = (&mut self.fib, self.to_sink);
        self.topo.router.enter(|| f(fib, nh))
    }

    /// Frames forwarded by the XDP program now in the router so far, where something
    /// counts them: this dataplane's own counter, or for the sample in driver mode the
    /// veth's count of native redirects on the ingress. The kernel counts nothing per
    /// forwarder, nor anything for generic XDP.
    pub fn xdp_forwarded(&self) -> Result<Option<u64>> {
        match self.current {
            Some(Forwarder::Ours(_)) => Ok(Some(self.fib.counters()?.forwarded)),
            Some(Forwarder::FibLookup(AttachMode::Driver)) => veth_stat(
                &self.topo.router,
                &self.topo.devs.r0,
                "rx_queue_0_xdp_redirect",
            )
            .map(Some),
            _ => Ok(None),
        }
    }

    /// Makes `f` the only thing forwarding in the router, and checks the interfaces say so.
    pub fn select(&mut self, f: Forwarder) -> Result<()> {
        if self.current == Some(f) {
            return Ok(());
        }
        let topo = self.topo;
        let (ns, r0, r1) = (&topo.router, topo.devs.r0.as_str(), topo.devs.r1.as_str());
        // Ours hang off pinned links (netlink cannot detach them); the sample's and
        // anything else off netlink.
        for dev in [r0, r1] {
            Dataplane::detach(self.pins.path(), dev)?;
        }
        KernelSample::detach(ns, &[r0, r1])?;
        // Only the kernel's forwarders may forward in the kernel; with XDP forwarding
        // the kernel must not deliver anything the program passed.
        let forwarding = matches!(f, Forwarder::Kernel | Forwarder::FibLookup(_));
        ns.exec(
            "sysctl",
            &[
                "-qw",
                &format!("net.ipv4.ip_forward={}", u8::from(forwarding)),
            ],
        )?;
        match f {
            Forwarder::Kernel => {}
            Forwarder::FibLookup(mode) => {
                self.sample.attach(ns, &[r0, r1], mode == AttachMode::Skb)?;
            }
            Forwarder::Ours(mode) => {
                let dp = &mut self.dp;
                ns.enter(|| -> Result<()> {
                    dp.attach(r0, mode)?;
                    dp.attach(r1, mode)?;
                    Ok(())
                })??;
            }
        }
        let want = match f {
            Forwarder::Kernel => None,
            Forwarder::FibLookup(m) | Forwarder::Ours(m) => Some(m),
        };
        for dev in [r0, r1] {
            let got = xdp_mode(ns, dev)?;
            if got != want {
                bail!("{f}: {dev} has XDP {got:?}, expected {want:?}");
            }
        }
        self.current = Some(f);
        Ok(())
    }
}

/// One of `ethtool -S` statistics of a veth.
fn veth_stat(ns: &lab::Netns, dev: &str, name: &str) -> Result<u64> {
    let out = ns.exec("ethtool", &["-S", dev])?;
    out.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.trim().parse().ok())
        .with_context(|| format!("no {name} in `ethtool -S {dev}`"))
}

/// The id of the XDP program attached to `dev`.
fn xdp_prog_id(ns: &lab::Netns, dev: &str) -> Result<u64> {
    let json = ns.ip(&["-j", "-d", "link", "show", "dev", dev])?;
    json.split("\"xdp\":")
        .nth(1)
        .and_then(|x| x.split("\"id\":").nth(1))
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no XDP program on {dev}"))
}

/// The mode of the XDP program attached to `dev`, if any.
fn xdp_mode(ns: &lab::Netns, dev: &str) -> Result<Option<AttachMode>> {
    let json = ns.ip(&["-j", "-d", "link", "show", "dev", dev])?;
    let Some(xdp) = json.split("\"xdp\":").nth(1) else {
        return Ok(None);
    };
    // XDP_ATTACHED_DRV = 1, XDP_ATTACHED_SKB = 2 (uapi if_link.h).
    let mode = xdp
        .split("\"mode\":")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .context("no XDP mode in `ip -d link` output")?;
    Ok(match mode {
        "1" => Some(AttachMode::Driver),
        "2" => Some(AttachMode::Skb),
        _ => bail!("{dev}: unexpected XDP attach mode {mode}"),
    })
}
