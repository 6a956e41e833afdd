//! Developer commands for the bgp-ctl workspace: `cargo xtask <command>`.

mod bench_agent;
mod bench_control_plane;
mod cargo;
mod demo;
mod dist;
mod prereq;
mod setup;

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use prereq::Need;

/// Developer commands: setup, build, run, test, bench.
#[derive(Parser)]
#[command(about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install (idempotently) everything the build, the run and the tests need:
    /// Debian packages, the eBPF toolchain, bpf-linker, the test peers, a bpffs mount.
    /// The eBPF toolchain is `$XDP_FWD_TOOLCHAIN` (default `debian`, Debian's rustc
    /// linked into rustup; `nightly` follows the upstream aya recipe).
    Setup,
    /// Build the eBPF object and the userspace binaries.
    Build {
        /// Optimised build.
        #[arg(long)]
        release: bool,
    },
    /// Set up if needed, build, and bring up the demo.
    Run {
        /// Show the demo and tear it down at once instead of waiting for Ctrl-C.
        #[arg(long)]
        no_wait: bool,
    },
    /// Set up if needed, then: rustfmt check, clippy -D warnings, unit and integration
    /// tests (root: they create network namespaces).
    Test,
    /// Set up if needed, build in release mode and run a benchmark (root).
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
    /// Build the Debian package (release binary, systemd unit, example config, man
    /// pages, bash/zsh/fish completions) into target/dist/.
    Dist,
}

#[derive(Subcommand)]
enum Bench {
    /// N IPv4 /32 routes from one feeder into ours, BIRD 2 and FRR: receive time,
    /// routes/s, peak RSS, bytes per route, withdrawal time. Ends with `RESULT
    /// control-plane ...` lines. About 5 minutes.
    ControlPlane(bench_control_plane::ControlPlane),
    /// Packets per second through gen -> router -> sink for kernel forwarding, the
    /// kernel's xdp_fwd sample and xdp-fwd (skb, driver; also with 1M routes), the
    /// generator's ceiling, and the program's cost per packet at 10 to 1M routes.
    /// Ends with a `RESULT dataplane ...` line. About 5 minutes.
    Dataplane,
    /// The node agent: UPDATE -> XDP map latency with 100,000 routes installed, peer
    /// down -> dataplane, 1,000,000 routes into the XDP maps beside BIRD 2 into the
    /// kernel FIB, and RSS. Ends with a `RESULT agent ...` line. A few minutes.
    Agent(bench_agent::Agent),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Setup => setup::setup(),
        Cmd::Build { release } => {
            let missing = prereq::missing(Need::Build);
            if !missing.is_empty() {
                bail!("{}", prereq::one_line(&missing));
            }
            cargo::build(release)
        }
        Cmd::Run { no_wait } => {
            setup_if_missing(Need::Everything)?;
            cargo::build(false)?;
            demo::run(!no_wait)
        }
        Cmd::Test => {
            setup_if_missing(Need::Everything)?;
            cargo::test()
        }
        Cmd::Bench { what } => {
            setup_if_missing(Need::Bench)?;
            match what {
                Bench::ControlPlane(opts) => bench_control_plane::run(&opts),
                Bench::Dataplane => cargo::bench("dataplane"),
                Bench::Agent(opts) => bench_agent::run(&opts),
            }
        }
        Cmd::Dist => dist::dist().map(drop),
    }
}

/// `run`, `test` and `bench` are the README's commands: on a fresh machine they set up
/// first (setup installs everything, the benchmarks' baselines too).
fn setup_if_missing(need: Need) -> Result<()> {
    let missing = prereq::missing(need);
    if !missing.is_empty() {
        let what: Vec<String> = missing.iter().map(ToString::to_string).collect();
        println!(
            "xtask: missing {}; running `cargo xtask setup` first",
            what.join(", ")
        );
        setup::setup()?;
    }
    Ok(())
}
