//! `bgp-ctl`: the node agent's command-line interface.

use std::{path::PathBuf, process::ExitCode};

use bgp_ctl::fib::{AttachMode, DEFAULT_PIN_DIR, Dataplane, Fib};
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
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file: prints every mistake with its line and field, and
    /// warnings (such as RFC 8212 defaults); exits non-zero on any mistake.
    ///
    /// Example: bgp-ctl config check /etc/bgp-ctl/bgp-ctl.toml
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum DataplaneCommand {
    /// Load the program (adopting maps already pinned) and attach it to an interface
    /// through a pinned link, so it keeps running after this command exits.
    ///
    /// Example: bgp-ctl dataplane attach --iface eth0 --mode driver
    Attach {
        /// Interface to attach to (repeat for several uplinks).
        #[arg(long, required = true)]
        iface: Vec<String>,
        /// `driver` (native XDP) or `skb` (generic XDP).
        #[arg(long, default_value = "driver")]
        mode: AttachMode,
        /// bpffs directory holding the maps and links.
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// Keep running until SIGTERM or SIGINT, holding the dataplane as the daemon
        /// does. Killing this process, even with SIGKILL, leaves forwarding untouched.
        #[arg(long)]
        foreground: bool,
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
            foreground,
        }) => {
            let mut dp = Dataplane::open(&pin_dir)?;
            // Adopting the table now is what a restarted daemon does before it programs
            // anything; it also proves the pinned maps are readable.
            let fib = Fib::open(&pin_dir)?;
            for i in &iface {
                dp.attach(i, mode)?;
            }
            println!(
                "xdp-fwd attached to {} ({mode}), pinned in {}; adopted {} routes, {} groups, {} next hops",
                iface.join(", "),
                pin_dir.display(),
                fib.route_count(),
                fib.group_count(),
                fib.next_hop_count()
            );
            if foreground {
                use std::io::Write as _;
                std::io::stdout().flush()?;
                wait_for_termination();
            }
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
        Command::Config(ConfigCommand::Check { file }) => {
            let loaded = bgp_ctl::config::load(&file)?;
            for w in &loaded.warnings {
                eprintln!("{}: warning: {w}", file.display());
            }
            println!(
                "{}: ok ({} peers, {} dynamic-neighbor ranges, {} policies)",
                file.display(),
                loaded.config.peer.len(),
                loaded.config.dynamic_neighbors.len(),
                loaded.config.policies.get_ref().len()
            );
        }
        Command::Dataplane(DataplaneCommand::Stats { pin_dir }) => {
            let c = bgp_ctl::fib::FibMaps::open(&pin_dir)?.counters()?;
            println!("{c:#?}");
        }
    }
    Ok(())
}

/// Blocks until SIGTERM or SIGINT.
fn wait_for_termination() {
    // SAFETY: signal-mask calls on a zeroed sigset; no handler runs.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}
