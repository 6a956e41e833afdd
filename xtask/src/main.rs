//! Developer commands for the bgp-ctl workspace: `cargo xtask <command>`.

mod bench_fabric;
mod cargo;
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
    /// Set up if needed, build and run a benchmark (root).
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// The end-to-end measurements on the dev fabric: pod creation visible across nodes,
    /// kill -9 restarts of a node's daemon (packets lost, routes withdrawn), leaf
    /// failures with BFD (detection, longest gap). Ends with a `RESULT fabric ...` line.
    /// About 2 minutes.
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
            setup_if_missing()?;
            cargo::build(false)?;
            fabric::run(&opts)
        }
        Cmd::Test => {
            setup_if_missing()?;
            cargo::test()
        }
        Cmd::Bench { what } => {
            setup_if_missing()?;
            match what {
                Bench::Fabric => {
                    cargo::build(false)?;
                    bench_fabric::run()
                }
            }
        }
    }
}

/// `run` and `test` are the README's commands: on a fresh machine they set up first.
fn setup_if_missing() -> Result<()> {
    let missing = prereq::missing(Need::Everything);
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
