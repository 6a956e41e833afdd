//! `cargo xtask bench agent`: builds the daemon in release mode and runs the `agent`
//! benchmark of the tests package, whose last line is `RESULT agent ...`.

use anyhow::Result;
use clap::Args;

/// Options of the agent benchmark (passed on to it).
#[derive(Args, Debug)]
pub struct Agent {
    /// Routes of the load beside BIRD 2 (default 1000000).
    #[arg(long)]
    routes: Option<u32>,
    /// Routes installed while latencies are measured (default 100000).
    #[arg(long)]
    base: Option<u32>,
    /// UPDATEs timed one by one (default 200).
    #[arg(long)]
    samples: Option<usize>,
}

/// Builds the daemon and runs the benchmark.
pub fn run(opts: &Agent) -> Result<()> {
    crate::cargo::build_agent_release("agent bench")?;
    let mut args: Vec<String> = [
        "bench",
        "--package",
        "bgp-ctl-tests",
        "--bench",
        "agent",
        "--",
    ]
    .map(String::from)
    .to_vec();
    for (flag, value) in [
        ("--routes", opts.routes.map(|v| v.to_string())),
        ("--base", opts.base.map(|v| v.to_string())),
        ("--samples", opts.samples.map(|v| v.to_string())),
    ] {
        if let Some(v) = value {
            args.extend([flag.to_owned(), v]);
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::cargo::step("agent bench", &args)
}
