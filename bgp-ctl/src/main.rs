//! `bgp-ctl`: the node agent's command-line interface.

use std::{path::PathBuf, process::ExitCode};

use bgp_ctl::{
    api::{Envelope, Reply, Request, client},
    cli::render,
    config::schema::DEFAULT_SOCKET,
    fib::{AttachMode, DEFAULT_PIN_DIR, Dataplane, Fib},
    health,
};
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
    /// Run the node agent: BGP speaker, pod-route origination, FIB programmer, control
    /// socket. SIGTERM leaves the dataplane pinned and forwarding.
    ///
    /// Example: bgp-ctl daemon --config /etc/bgp-ctl/bgp-ctl.toml
    Daemon {
        /// Configuration file.
        #[arg(long, default_value = "/etc/bgp-ctl/bgp-ctl.toml")]
        config: PathBuf,
    },
    /// Show the daemon's state.
    #[command(subcommand)]
    Show(ShowCommand),
    /// Operate a BGP session.
    #[command(subcommand)]
    Neighbor(NeighborCommand),
    /// Originate or withdraw a static route.
    #[command(subcommand)]
    Route(RouteCommand),
    /// Re-read the daemon's configuration file and apply what changed, as SIGHUP does:
    /// sessions whose settings did not change stay up; a policy change is applied without
    /// a reset. Prints every change; a file with mistakes changes nothing.
    ///
    /// Example: bgp-ctl reload
    Reload(Client),
    /// Readiness in one line; exit code 0 ready, 1 not ready, 2 daemon unreachable.
    Health {
        /// Control socket.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Operate the XDP forwarding plane directly (no daemon needed).
    #[command(subcommand)]
    Dataplane(DataplaneCommand),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// Options of every command that talks to the daemon.
#[derive(clap::Args, Clone)]
struct Client {
    /// Control socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// JSON lines (the control API's own messages) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ShowCommand {
    /// One line per BGP neighbor (like `birdc show protocols`).
    ///
    /// Example: bgp-ctl show neighbors
    Neighbors(Client),
    /// One neighbor in detail: timers, capabilities, counters, policies.
    ///
    /// Example: bgp-ctl show neighbor leaf1
    Neighbor {
        /// Name or address.
        neighbor: String,
        #[command(flatten)]
        client: Client,
    },
    /// Loc-RIB routes with their paths (best `*`, multipath `=`, stale `s`).
    ///
    /// Example: bgp-ctl show routes 10.244.2.0/24
    Routes {
        /// A prefix or address (longest match); all routes when absent.
        #[arg(value_parser = prefix_or_address)]
        prefix: Option<ipnet::IpNet>,
        #[command(flatten)]
        client: Client,
    },
    /// What the XDP maps hold: group, members, MACs.
    ///
    /// Example: bgp-ctl show fib 10.244.2.5/32
    Fib {
        /// A prefix or address (longest match); everything when absent.
        #[arg(value_parser = prefix_or_address)]
        prefix: Option<ipnet::IpNet>,
        #[command(flatten)]
        client: Client,
    },
    /// XDP counters summed over CPUs, and where the program is attached.
    ///
    /// Example: bgp-ctl show stats
    Stats(Client),
}

#[derive(Subcommand)]
enum NeighborCommand {
    /// Reset the session (Cease/Administrative Reset).
    Reset {
        /// Name or address.
        neighbor: String,
        /// Shutdown communication sent to the peer (RFC 9003).
        #[arg(long)]
        message: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Shut the session down until enabled (Cease/Administrative Shutdown).
    Disable {
        /// Name or address.
        neighbor: String,
        /// Shutdown communication sent to the peer (RFC 9003).
        #[arg(long)]
        message: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Enable a disabled session.
    Enable {
        /// Name or address.
        neighbor: String,
        #[command(flatten)]
        client: Client,
    },
}

#[derive(Subcommand)]
enum RouteCommand {
    /// Originate a prefix (traffic to it goes to this node's kernel).
    Add {
        /// The prefix.
        prefix: ipnet::IpNet,
        #[command(flatten)]
        client: Client,
    },
    /// Withdraw a prefix added with `route add`.
    Del {
        /// The prefix.
        prefix: ipnet::IpNet,
        #[command(flatten)]
        client: Client,
    },
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

/// `bgp-ctl generate ...`: writes the man pages and completions of [`Cli`] for the
/// package (`cargo xtask dist`). A parser of its own, so that it appears in neither
/// `--help` nor the pages and completions it writes.
#[derive(Parser)]
#[command(name = "bgp-ctl")]
struct GenerateCli {
    #[command(subcommand)]
    generate: Generate,
}

#[derive(Subcommand)]
enum Generate {
    /// Write the man pages or a shell's completions.
    #[command(subcommand)]
    Generate(GenerateCommand),
}

#[derive(Subcommand)]
enum GenerateCommand {
    /// Man pages: bgp-ctl.1 and one per subcommand (bgp-ctl-dataplane-attach.1, ...).
    Man {
        /// Directory to write them into.
        #[arg(long)]
        out: PathBuf,
    },
    /// The completion script for one shell.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
        /// Directory to write it into (as bgp-ctl, _bgp-ctl, bgp-ctl.fish, ...).
        #[arg(long)]
        out: PathBuf,
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
    let result = if std::env::args_os().nth(1).is_some_and(|a| a == "generate") {
        let Generate::Generate(what) = GenerateCli::parse().generate;
        generate(what)
    } else {
        run(Cli::parse())
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bgp-ctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Daemon { config } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            bgp_ctl::daemon::run(&config)?;
        }
        Command::Show(cmd) => show(cmd)?,
        Command::Neighbor(cmd) => {
            let (req, client) = match cmd {
                NeighborCommand::Reset {
                    neighbor,
                    message,
                    client,
                } => (Request::NeighborReset { neighbor, message }, client),
                NeighborCommand::Disable {
                    neighbor,
                    message,
                    client,
                } => (Request::NeighborDisable { neighbor, message }, client),
                NeighborCommand::Enable { neighbor, client } => {
                    (Request::NeighborEnable { neighbor }, client)
                }
            };
            print_replies(&client, &req)?;
        }
        Command::Route(cmd) => {
            let (req, client) = match cmd {
                RouteCommand::Add { prefix, client } => (Request::RouteAdd { prefix }, client),
                RouteCommand::Del { prefix, client } => (Request::RouteDel { prefix }, client),
            };
            print_replies(&client, &req)?;
        }
        Command::Reload(client) => print_replies(&client, &Request::Reload)?,
        Command::Health { socket } => {
            let replies = match client::collect(&socket, &Request::Health) {
                Ok(r) => r,
                Err(e) => {
                    println!("unreachable: {e:#}");
                    std::process::exit(health::EXIT_UNREACHABLE.into());
                }
            };
            for r in replies {
                if let Reply::Health(h) = r {
                    print!("{}", render::health(&h));
                    if !h.ready {
                        std::process::exit(health::EXIT_NOT_READY.into());
                    }
                }
            }
        }
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

/// Writes man pages or completions from the CLI definition itself, so they never drift
/// from `--help`.
fn generate(what: GenerateCommand) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use clap::CommandFactory as _;
    let (out, written) = match what {
        GenerateCommand::Man { out } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            clap_mangen::generate_to(Cli::command(), &out)
                .with_context(|| format!("writing man pages into {}", out.display()))?;
            (out, "man pages")
        }
        GenerateCommand::Completions { shell, out } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let path = clap_complete::generate_to(shell, &mut Cli::command(), "bgp-ctl", &out)
                .with_context(|| format!("writing {shell} completions into {}", out.display()))?;
            (path, "completions")
        }
    };
    println!("wrote {written} to {}", out.display());
    Ok(())
}

/// Sends a request and prints the replies as a table, or as JSON lines with `--json`.
fn print_replies(client: &Client, req: &Request) -> anyhow::Result<()> {
    let replies = client::collect(&client.socket, req)?;
    if client.json {
        for r in &replies {
            println!("{}", serde_json::to_string(&Envelope::new(r))?);
        }
        return Ok(());
    }
    let (mut neighbors, mut routes, mut fib) = (Vec::new(), Vec::new(), Vec::new());
    for r in replies {
        match r {
            Reply::Neighbor(n) => neighbors.push(n),
            Reply::Route(r) => routes.push(r),
            Reply::Fib(f) => fib.push(f),
            Reply::NeighborDetail(d) => print!("{}", render::neighbor(&d)),
            Reply::Stats(s) => print!("{}", render::stats(&s)),
            Reply::Reload(r) => print!("{}", render::reload(&r)),
            Reply::Health(h) => print!("{}", render::health(&h)),
            Reply::Done { message } => println!("{message}"),
            Reply::End | Reply::Error { .. } => {}
        }
    }
    match req {
        Request::ShowNeighbors => print!("{}", render::neighbors(&neighbors)),
        Request::ShowRoutes { .. } => print!("{}", render::routes(&routes)),
        Request::ShowFib { .. } => print!("{}", render::fib(&fib)),
        _ => {}
    }
    Ok(())
}

fn show(cmd: ShowCommand) -> anyhow::Result<()> {
    let (req, client) = match cmd {
        ShowCommand::Neighbors(c) => (Request::ShowNeighbors, c),
        ShowCommand::Neighbor { neighbor, client } => (Request::ShowNeighbor { neighbor }, client),
        ShowCommand::Routes { prefix, client } => (Request::ShowRoutes { prefix }, client),
        ShowCommand::Fib { prefix, client } => (Request::ShowFib { prefix }, client),
        ShowCommand::Stats(c) => (Request::ShowStats, c),
    };
    print_replies(&client, &req)
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

/// `10.244.2.0/24`, or an address (`10.244.2.5`, `fd00::5`) as its host prefix.
fn prefix_or_address(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is neither a prefix (10.244.2.0/24) nor an address"))
}
