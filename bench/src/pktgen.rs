//! The XDP packet generator and sink (the `xdp-pktgen` object): loading, configuring,
//! sending for a while, and counting what arrived.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Ebpf,
    maps::{Array, PerCpuArray},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};
use lab::Netns;
use xdp_pktgen_common::{FRAME_LEN, GenConfig, name};

use crate::cpu;

/// The generator's object, built by this package's build script.
fn object() -> &'static [u8] {
    static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp-pktgen"));
    OBJECT
}

/// Frames per `BPF_PROG_TEST_RUN` call: about 30 ms at the generator's ceiling, so a run
/// ends close to its deadline.
const FRAMES_PER_CALL: u32 = 1 << 18;

/// Frames the kernel hands the program per batch (the kernel's default, NAPI's weight).
const BATCH: u32 = 64;

/// What one timed run sent and what reached the sink.
#[derive(Clone, Copy, Debug)]
pub struct Blast {
    /// Frames the generator produced in the measured window.
    pub sent: u64,
    /// Frames the sink counted in the measured window.
    pub received: u64,
    /// How the probe's counters moved in the measured window.
    pub probed: Probe,
    /// Length of the measured window.
    pub elapsed: Duration,
}

impl Blast {
    /// Frames per second the generator offered.
    pub fn offered_pps(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64()
    }

    /// Frames per second that arrived at the sink.
    pub fn received_pps(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64()
    }

    /// Frames per second the router's XDP program forwarded, where that is counted.
    pub fn forwarded_pps(&self) -> Option<f64> {
        self.probed
            .forwarded
            .map(|n| n as f64 / self.elapsed.as_secs_f64())
    }

    /// CPU time the receivers spent per frame that reached the sink, in ns.
    pub fn rx_cpu_ns_per_frame(&self) -> f64 {
        if self.received == 0 {
            return 0.0;
        }
        self.probed.rx_cpu_ns as f64 / self.received as f64
    }
}

/// Counters sampled at the start and the end of the measured window.
#[derive(Clone, Copy, Debug, Default)]
pub struct Probe {
    /// Frames the router's XDP program forwarded, where something counts them.
    pub forwarded: Option<u64>,
    /// CPU time of the receiving NAPI threads (which also run the sink's softirq work),
    /// in ns: on a shared machine, what a frame costs the receiving CPU whatever share
    /// of it the receivers get.
    pub rx_cpu_ns: u64,
}

impl Probe {
    fn since(self, before: Self) -> Self {
        Self {
            forwarded: before
                .forwarded
                .zip(self.forwarded)
                .map(|(a, b)| b.saturating_sub(a)),
            rx_cpu_ns: self.rx_cpu_ns.saturating_sub(before.rx_cpu_ns),
        }
    }
}

/// The loaded generator and sink programs.
pub struct Pktgen {
    ebpf: Ebpf,
    /// The frame the kernel starts from (the program rewrites its headers every run).
    template: [u8; FRAME_LEN],
}

impl Pktgen {
    /// Loads both programs.
    pub fn load() -> Result<Self> {
        let mut ebpf = Ebpf::load(object()).context("loading the xdp-pktgen object")?;
        for prog in [name::PKTGEN, name::SINK] {
            xdp_mut(&mut ebpf, prog)?
                .load()
                .with_context(|| format!("loading program {prog}"))?;
        }
        Ok(Self {
            ebpf,
            template: [0; FRAME_LEN],
        })
    }

    /// Attaches the sink in driver mode to `dev` in `ns`: it counts and drops every
    /// frame, and gives the veth the NAPI instance that natively redirected frames need.
    pub fn attach_sink(&mut self, ns: &Netns, dev: &str) -> Result<()> {
        let prog = xdp_mut(&mut self.ebpf, name::SINK)?;
        ns.enter(|| prog.attach(dev, XdpMode::Driver).map(drop))?
            .with_context(|| format!("attaching the sink to {dev} in {}", ns.name()))
    }

    /// Attaches the generator in driver mode to `dev` in `ns`, an interface that carries
    /// no traffic. Each `BPF_PROG_TEST_RUN` call of a program that is not attached
    /// natively anywhere adds it to the kernel's XDP dispatcher and removes it again,
    /// waiting for an RCU grace period each time (milliseconds with no frame sent);
    /// attached, it stays there.
    pub fn anchor(&mut self, ns: &Netns, dev: &str) -> Result<()> {
        let prog = xdp_mut(&mut self.ebpf, name::PKTGEN)?;
        ns.enter(|| prog.attach(dev, XdpMode::Driver).map(drop))?
            .with_context(|| format!("attaching the generator to {dev} in {}", ns.name()))
    }

    /// Sets what the generator sends.
    pub fn configure(&mut self, cfg: &GenConfig) -> Result<()> {
        let mut map: Array<_, GenConfig> = Array::try_from(
            self.ebpf
                .map_mut(name::CONFIG)
                .ok_or_else(|| anyhow!("no map {}", name::CONFIG))?,
        )?;
        map.set(0, cfg, 0)?;
        self.template = cfg.template;
        Ok(())
    }

    /// Frames the sink has counted so far, over all CPUs.
    pub fn sink_count(&self) -> Result<u64> {
        let map: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map(name::SINK_COUNT)
                .ok_or_else(|| anyhow!("no map {}", name::SINK_COUNT))?,
        )?;
        Ok(map.get(&0, 0)?.iter().sum())
    }

    /// Runs program `prog` (the generator or the sink) once on the configured template,
    /// without sending anything (`BPF_PROG_TEST_RUN` without live frames): returns the
    /// XDP action and the frame as the program left it.
    pub fn run_once(&self, prog: &str) -> Result<(u32, Vec<u8>)> {
        let prog: &Xdp = self
            .ebpf
            .program(prog)
            .ok_or_else(|| anyhow!("no program {prog}"))?
            .try_into()?;
        let mut out = vec![0u8; FRAME_LEN + 256];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&self.template);
        opts.data_out = Some(&mut out);
        let r = prog.test_run(opts)?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }

    /// Sends the configured traffic from `ns` on CPU `cpu` for `warmup + window`, and
    /// returns what was sent, received and `probe`d during `window`.
    pub fn blast(
        &self,
        ns: &Netns,
        cpu: usize,
        warmup: Duration,
        window: Duration,
        probe: &(dyn Fn() -> Result<Probe> + Sync),
    ) -> Result<Blast> {
        let prog: &Xdp = self
            .ebpf
            .program(name::PKTGEN)
            .ok_or_else(|| anyhow!("no program {}", name::PKTGEN))?
            .try_into()?;
        // The redirect target is resolved in the namespace of the thread that runs.
        ns.enter(|| -> Result<Blast> {
            cpu::pin_current_thread(cpu)?;
            let send = || -> Result<u64> {
                let mut opts = TestRunOptions::new();
                opts.data_in = Some(&self.template);
                opts.repeat = FRAMES_PER_CALL;
                opts.attrs = TestRunAttrs::new().xdp_live_frames(BATCH);
                prog.test_run(opts)
                    .context("BPF_PROG_TEST_RUN (live frames)")?;
                Ok(u64::from(FRAMES_PER_CALL))
            };
            let start = Instant::now();
            while start.elapsed() < warmup {
                send()?;
            }
            let (p0, rx0, t0) = (probe()?, self.sink_count()?, Instant::now());
            let mut sent = 0;
            while t0.elapsed() < window {
                sent += send()?;
            }
            let (rx1, elapsed, p1) = (self.sink_count()?, t0.elapsed(), probe()?);
            Ok(Blast {
                sent,
                received: rx1.saturating_sub(rx0),
                probed: p1.since(p0),
                elapsed,
            })
        })?
    }
}

fn xdp_mut<'a>(ebpf: &'a mut Ebpf, prog: &str) -> Result<&'a mut Xdp> {
    match ebpf.program_mut(prog) {
        Some(p) => Ok(p.try_into()?),
        None => bail!("no program {prog} in the xdp-pktgen object"),
    }
}
