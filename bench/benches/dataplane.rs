//! `cargo xtask bench dataplane`: packets per second through gen -> router -> sink with
//! 64-byte UDP packets over many flows, for the kernel's forwarding, the kernel's
//! `xdp_fwd` sample and this dataplane (skb and driver mode), also with 1,000,000 host
//! routes; the generator's ceiling; and the program's cost per packet from
//! `BPF_PROG_TEST_RUN` at 10, 100,000 and 1,000,000 routes. The last line is
//! machine-readable.
//!
//! `BENCH_ROUNDS` (default 5), `BENCH_SECONDS` (default 2.5, per run) and `BENCH_SCALE`
//! (default 1,000,000 routes; the cost steps are 10, `BENCH_SCALE` / 10 and `BENCH_SCALE`) shorten it.

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result, bail};
use bench::{
    cost,
    kernel_sample::KernelSample,
    pktgen::{Blast, Pktgen, Probe},
    router::{Forwarder, Router},
    routes,
    stats::{median, mpps, ratio},
    topology::{self, GEN_CPU, Topology},
};
use bgp_ctl::fib::AttachMode::{Driver, Skb};

/// Source ports per destination: the flows.
const FLOWS: u32 = 4096;
/// Destination stride of the scale runs (a prime: coprime with any route count that is
/// not a multiple of it, so every destination is visited).
const DST_STRIDE: u32 = 7919;
const WARMUP: Duration = Duration::from_millis(500);

/// One timed configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Run {
    /// Generator straight into the sink.
    Ceiling,
    Kernel,
    FibLookupSkb,
    FibLookup,
    Skb,
    Driver,
    FibLookup1m,
    Driver1m,
}

impl Run {
    fn label(self) -> &'static str {
        match self {
            Self::Ceiling => "generator ceiling (no hop)",
            Self::Kernel => "(a) kernel forwarding",
            Self::FibLookupSkb => "    xdp_fwd sample, skb",
            Self::FibLookup => "(b) xdp_fwd sample, native",
            Self::Skb => "(c) xdp-fwd, skb",
            Self::Driver => "(d) xdp-fwd, driver",
            Self::FibLookup1m => "(b) xdp_fwd sample, native, 1M routes",
            Self::Driver1m => "(d) xdp-fwd, driver, 1M routes",
        }
    }

    fn forwarder(self) -> Option<Forwarder> {
        Some(match self {
            Self::Ceiling => return None,
            Self::Kernel => Forwarder::Kernel,
            Self::FibLookupSkb => Forwarder::FibLookup(Skb),
            Self::FibLookup | Self::FibLookup1m => Forwarder::FibLookup(Driver),
            Self::Skb => Forwarder::Ours(Skb),
            Self::Driver | Self::Driver1m => Forwarder::Ours(Driver),
        })
    }
}

fn main() -> ExitCode {
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench dataplane: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v} is not a valid value")),
        Err(_) => Ok(default),
    }
}

fn bench() -> Result<()> {
    let rounds: usize = env_or("BENCH_ROUNDS", 5)?;
    let window = Duration::from_secs_f64(env_or("BENCH_SECONDS", 2.5)?);
    let scale: u32 = env_or("BENCH_SCALE", 1_000_000)?;
    if scale < 100 || scale.is_multiple_of(DST_STRIDE) {
        bail!("BENCH_SCALE={scale}: at least 100 and not a multiple of {DST_STRIDE}");
    }
    let cost_steps = [10, scale / 10, scale];
    lab::require_root()?;
    if bench::cpu::online() < 2 {
        bail!("the benchmark needs 2 CPUs (generator on one, receivers on the other)");
    }
    println!(
        "bench dataplane: {rounds} rounds of {:.1} s per configuration",
        window.as_secs_f64()
    );
    println!("load average at start: {}", loadavg());

    let sample = KernelSample::build(&target_dir()?.join("xdp-fwd-sample"))?;
    let mut pktgen = Pktgen::load()?;
    let topo = Topology::new(&mut pktgen)?;
    let router = Router::new(&topo, sample)?;
    let mut rig = Rig {
        router,
        topo: &topo,
        pktgen,
        window,
    };
    let mut results = Results::default();

    println!(
        "\n== 64-byte UDP, {FLOWS} flows to {}: packets per second at the sink",
        topology::DST
    );
    let base = [
        Run::Ceiling,
        Run::Kernel,
        Run::FibLookup,
        Run::FibLookupSkb,
        Run::Skb,
        Run::Driver,
    ];
    let through = topo.through_router(FLOWS, topology::DST, 1, 1);
    for round in 1..=rounds {
        for run in base {
            let cfg = if run == Run::Ceiling {
                topo.straight_to_sink(FLOWS)
            } else {
                through
            };
            measure(&mut rig, run, &cfg, round, &mut results)?;
        }
    }

    println!(
        "\n== cost per packet (BPF_PROG_TEST_RUN, {} runs per call, {} calls per sample; the \
         kernel sample's program measured the same way, on the kernel FIB with the same routes)",
        cost::REPEAT,
        cost::CALLS
    );
    let mut loaded = 0;
    let (mut ours_load, mut kernel_load) = (Duration::ZERO, Duration::ZERO);
    let mut cost_ns = Vec::new();
    for step in cost_steps {
        let ours = routes::load_ours(&mut rig.router, loaded, step)?;
        let kernel = routes::load_kernel(&topo.router, topology::SINK_ADDR, loaded, step)?;
        println!(
            "loaded /32 routes {loaded}..{step}: into xdp-fwd's maps (Fib::add_route) {:.2} s, \
             {:.2} us per route; into the kernel FIB (ip -batch) {:.2} s, {:.2} us per route",
            ours.as_secs_f64(),
            per_route_us(ours, step - loaded),
            kernel.as_secs_f64(),
            per_route_us(kernel, step - loaded),
        );
        (ours_load, kernel_load) = (ours_load + ours, kernel_load + kernel);
        loaded = step;
        let (mut ours, mut sample) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(rig.router.ours_cost_ns(step)?);
            sample.push(rig.router.sample_cost_ns(step)?);
        }
        let m = median(&ours);
        println!(
            "  {step:>9} routes: xdp-fwd {m:.0} ns/packet [{}]; xdp_fwd sample {:.0} ns/packet [{}]",
            list(&ours, |x| format!("{x:.0}")),
            median(&sample),
            list(&sample, |x| format!("{x:.0}")),
        );
        cost_ns.push(m);
    }
    println!(
        "{scale} /32 routes loaded: into xdp-fwd's maps in {:.1} s ({:.2} us per route, one \
         Fib::add_route each: aya 0.14 has no batched map update), into the kernel FIB in \
         {:.1} s ({:.2} us per route)",
        ours_load.as_secs_f64(),
        per_route_us(ours_load, scale),
        kernel_load.as_secs_f64(),
        per_route_us(kernel_load, scale),
    );

    println!(
        "\n== 64-byte UDP, {FLOWS} flows over {scale} destinations (each a /32 route, stride {DST_STRIDE})"
    );
    let scaled = topo.through_router(FLOWS, routes::HOST_BASE, scale, DST_STRIDE);
    for round in 1..=rounds {
        for run in [Run::FibLookup1m, Run::Driver1m] {
            measure(&mut rig, run, &scaled, round, &mut results)?;
        }
    }

    println!(
        "\n== medians over {rounds} rounds: Mpps at the sink [every run]; receiver CPU ns per \
         packet [every run], and the Mpps that implies for a receiver with a CPU to itself"
    );
    let med = |r: Run| results.median_pps(r);
    for (run, v) in &results.pps {
        let cpu = results.median_cpu_ns(*run);
        println!(
            "{:<40} {:>6}  [{}]  {cpu:>4.0} ns [{}]  {:>6}",
            run.label(),
            mpps(med(*run)),
            list(v, |x| mpps(*x)),
            list(&results.cpu_ns[run], |x| format!("{x:.0}")),
            mpps(ratio(1e9, cpu)),
        );
    }
    let (kernel, fib, skb, drv) = (
        med(Run::Kernel),
        med(Run::FibLookup),
        med(Run::Skb),
        med(Run::Driver),
    );
    let (fib1m, drv1m, ceiling) = (med(Run::FibLookup1m), med(Run::Driver1m), med(Run::Ceiling));
    let (vs_kernel, vs_fib, vs_fib1m) = (ratio(drv, kernel), ratio(drv, fib), ratio(drv1m, fib1m));
    println!("driver / kernel forwarding          {vs_kernel:.2}  (bar: >= 3)");
    println!("driver / xdp_fwd sample             {vs_fib:.2}  (bar: >= 1.15)");
    println!("driver / xdp_fwd sample, 1M routes  {vs_fib1m:.2}  (bar: >= 1.3)");
    println!(
        "generator ceiling / driver          {:.2}",
        ratio(ceiling, drv)
    );
    println!(
        "cost at 1M routes / cost at 10      {:.2}  (bar: <= 1.5)",
        ratio(cost_ns[2], cost_ns[0])
    );
    let cpu = |r: Run| results.median_cpu_ns(r);
    println!(
        "from receiver CPU time per packet: driver / kernel {:.2}, driver / xdp_fwd sample {:.2}, \
         with 1M routes {:.2} (what the ratios would be if the router's CPU were its own)",
        ratio(cpu(Run::Kernel), cpu(Run::Driver)),
        ratio(cpu(Run::FibLookup), cpu(Run::Driver)),
        ratio(cpu(Run::FibLookup1m), cpu(Run::Driver1m)),
    );
    println!("load average at end: {}", loadavg());
    println!(
        "RESULT dataplane kernel_pps={:.0} fib_lookup_pps={:.0} skb_pps={:.0} driver_pps={:.0} \
         fib_lookup_1m_pps={:.0} driver_1m_pps={:.0} ceiling_pps={:.0} driver_vs_kernel={vs_kernel:.2} \
         driver_vs_fib_lookup={vs_fib:.2} driver_1m_vs_fib_lookup_1m={vs_fib1m:.2} \
         ns_per_pkt_10={:.0} ns_per_pkt_100k={:.0} ns_per_pkt_1m={:.0}",
        kernel, fib, skb, drv, fib1m, drv1m, ceiling, cost_ns[0], cost_ns[1], cost_ns[2]
    );
    Ok(())
}

/// Every run's figures.
#[derive(Default)]
struct Results {
    /// Packets per second at the sink.
    pps: BTreeMap<Run, Vec<f64>>,
    /// Receiver CPU time per packet at the sink, ns.
    cpu_ns: BTreeMap<Run, Vec<f64>>,
}

impl Results {
    fn median_pps(&self, run: Run) -> f64 {
        median(self.pps.get(&run).map_or(&[][..], Vec::as_slice))
    }
    fn median_cpu_ns(&self, run: Run) -> f64 {
        median(self.cpu_ns.get(&run).map_or(&[][..], Vec::as_slice))
    }
}

/// The benchmark's fixed parts.
struct Rig<'t> {
    router: Router<'t>,
    topo: &'t Topology,
    pktgen: Pktgen,
    window: Duration,
}

/// One timed run of `run` with generator settings `cfg`, recorded in `results`.
fn measure(
    rig: &mut Rig<'_>,
    run: Run,
    cfg: &xdp_pktgen_common::GenConfig,
    round: usize,
    results: &mut Results,
) -> Result<()> {
    let (router, topo, pktgen, window) = (&mut rig.router, rig.topo, &mut rig.pktgen, rig.window);
    if let Some(f) = run.forwarder() {
        router
            .select(f)
            .with_context(|| format!("switching the router to {f}"))?;
    }
    topo.pin_napi()?;
    pktgen.configure(cfg)?;
    let rx_dev = match run {
        Run::Ceiling => &topo.devs.s1,
        _ => &topo.devs.r0,
    };
    let probe = || -> Result<Probe> {
        Ok(Probe {
            forwarded: match run {
                Run::Ceiling => None,
                _ => router.xdp_forwarded()?,
            },
            rx_cpu_ns: bench::cpu::napi_cpu_ns(rx_dev)?,
        })
    };
    let b: Blast = pktgen.blast(&topo.gen_ns, GEN_CPU, WARMUP, window, &probe)?;
    let forwarded = b.forwarded_pps().map_or(String::new(), |p| {
        format!("  router XDP forwarded {:>5} Mpps", mpps(p))
    });
    println!(
        "round {round}  {:<40} sent {:>5} Mpps  received {:>5} Mpps  receiver CPU {:>4.0} ns/packet{forwarded}",
        run.label(),
        mpps(b.offered_pps()),
        mpps(b.received_pps()),
        b.rx_cpu_ns_per_frame(),
    );
    results
        .cpu_ns
        .entry(run)
        .or_default()
        .push(b.rx_cpu_ns_per_frame());
    results.pps.entry(run).or_default().push(b.received_pps());
    Ok(())
}

fn per_route_us(took: Duration, routes: u32) -> f64 {
    took.as_secs_f64() * 1e6 / f64::from(routes.max(1))
}

fn list(xs: &[f64], f: impl Fn(&f64) -> String) -> String {
    xs.iter().map(f).collect::<Vec<_>>().join(" ")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The cargo target directory this benchmark was built in (`target/release/deps/..`).
fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .nth(3)
        .map(PathBuf::from)
        .context("no target directory above the benchmark executable")
}
