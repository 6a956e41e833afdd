//! Developer commands for the bgp-ctl workspace: `cargo xtask <command>`.

mod bench_agent;
mod bench_control_plane;
mod bench_fabric;
mod cargo;
mod dist;
mod fabric;
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
    /// Set up if needed, build, and bring up the dev fabric in network namespaces: a
    /// spine and two leaves (FRR), nodes running the bgp-ctl daemon dual-homed to both
    /// leaves, pods on every node. Prints what it built and how to look at it, pings
    /// between pods on different nodes, and removes everything on Ctrl-C.
    Run(fabric::RunOptions),
    /// Set up if needed, then: rustfmt check, clippy -D warnings, unit and integration
    /// tests (root: they create network namespaces).
    Test,
    /// Set up if needed, build and run a benchmark (root; release builds, except the
    /// fabric's, which runs the debug build `run` uses).
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
    /// The end-to-end measurements on the dev fabric: pod creation visible across nodes,
    /// kill -9 restarts of a node's daemon (packets lost, routes withdrawn), leaf
    /// failures with BFD (detection, longest gap). Ends with a `RESULT fabric ...` line.
    /// About 1 minute.
    Fabric,
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
        Cmd::Run(opts) => {
            setup_if_missing(Need::Everything)?;
            cargo::build_agent()?;
            fabric::run(&opts)
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
                Bench::Fabric => {
                    cargo::build_agent()?;
                    bench_fabric::run()
                }
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
