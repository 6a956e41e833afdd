//! `bgp-ctl`: the node agent's command-line interface.

use std::{path::PathBuf, process::ExitCode};

use bgp_ctl::fib::{AttachMode, DEFAULT_PIN_DIR, Dataplane};
use clap::{Parser, Subcommand};

/// BGP node agent for routed container networks, with an XDP forwarding plane.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Operate the XDP forwarding plane directly (no daemon needed).
    #[command(subcommand)]
    Dataplane(DataplaneCommand),
}

#[derive(Subcommand)]
enum DataplaneCommand {
    /// Load the program (adopting maps already pinned) and attach it to an interface
    /// through a pinned link, so it keeps running after this command exits.
    ///
    /// Example: bgp-ctl dataplane attach --iface eth0 --mode driver
    Attach {
        /// Interface to attach to.
        #[arg(long)]
        iface: String,
        /// `driver` (native XDP) or `skb` (generic XDP).
        #[arg(long, default_value = "driver")]
        mode: AttachMode,
        /// bpffs directory holding the maps and links.
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
    /// Detach the program from an interface (remove its pinned link).
    ///
    /// Example: bgp-ctl dataplane detach --iface eth0
    Detach {
        /// Interface to detach from; `--all` removes every pin, maps included.
        #[arg(long, required_unless_present = "all")]
        iface: Option<String>,
        /// Remove every link and map pinned under the pin directory.
        #[arg(long)]
        all: bool,
        /// bpffs directory holding the maps and links.
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
    /// Print the XDP counters, summed over CPUs.
    ///
    /// Example: bgp-ctl dataplane stats
    Stats {
        /// bpffs directory holding the maps and links.
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bgp-ctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dataplane(DataplaneCommand::Attach {
            iface,
            mode,
            pin_dir,
        }) => {
            let mut dp = Dataplane::open(&pin_dir)?;
            dp.attach(&iface, mode)?;
            println!(
                "xdp-fwd attached to {iface} ({mode}), pinned in {}",
                pin_dir.display()
            );
        }
        Command::Dataplane(DataplaneCommand::Detach {
            iface,
            all,
            pin_dir,
        }) => {
            if all {
                Dataplane::remove_pins(&pin_dir)?;
                println!("removed every pin under {}", pin_dir.display());
            } else if let Some(iface) = iface {
                if Dataplane::detach(&pin_dir, &iface)? {
                    println!("xdp-fwd detached from {iface}");
                } else {
                    anyhow::bail!("no link pinned for {iface} in {}", pin_dir.display());
                }
            }
        }
        Command::Dataplane(DataplaneCommand::Stats { pin_dir }) => {
            let c = bgp_ctl::fib::FibMaps::open(&pin_dir)?.counters()?;
            println!("{c:#?}");
        }
    }
    Ok(())
}
