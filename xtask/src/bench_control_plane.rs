//! `cargo xtask bench control-plane`: builds the speaker in release mode (when it is
//! measured) and runs the `control_plane` benchmark of the tests package, which prints
//! `RESULT control-plane ...` lines last.

use anyhow::Result;
use clap::Args;

/// Options of the control-plane benchmark (passed on to it).
#[derive(Args, Debug)]
pub struct ControlPlane {
    /// Receivers, comma separated: ours, bird, frr (default all three; the RESULT line
    /// needs all three). `--only bird,frr` measures the others while the speaker is not
    /// ready.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Feed sizes, comma separated (default 100000,1000000).
    #[arg(long, value_delimiter = ',')]
    routes: Vec<u32>,
    /// Runs per receiver and size; medians are reported (default 5).
    #[arg(long)]
    runs: Option<usize>,
    /// Order of the routes: ascending (default, as FRR sends its table) or scattered.
    #[arg(long)]
    order: Option<String>,
}

impl ControlPlane {
    /// Whether this project's speaker is among the receivers.
    fn measures_ours(&self) -> bool {
        self.only.is_empty() || self.only.iter().any(|k| k.trim() == "ours")
    }

    /// The benchmark's own arguments.
    fn bench_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let list = |v: &[String]| v.join(",");
        if !self.only.is_empty() {
            args.extend(["--only".to_owned(), list(&self.only)]);
        }
        if !self.routes.is_empty() {
            let r: Vec<String> = self.routes.iter().map(u32::to_string).collect();
            args.extend(["--routes".to_owned(), list(&r)]);
        }
        if let Some(runs) = self.runs {
            args.extend(["--runs".to_owned(), runs.to_string()]);
        }
        if let Some(order) = &self.order {
            args.extend(["--order".to_owned(), order.clone()]);
        }
        args
    }
}

/// Builds what is measured and runs the benchmark.
pub fn run(opts: &ControlPlane) -> Result<()> {
    if opts.measures_ours() {
        crate::cargo::build_agent_release("control-plane bench")?;
    }
    let mut args = vec![
        "bench".to_owned(),
        "--package".to_owned(),
        "bgp-ctl-tests".to_owned(),
        "--bench".to_owned(),
        "control_plane".to_owned(),
        "--".to_owned(),
    ];
    args.extend(opts.bench_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::cargo::step("control-plane bench", &args)
}
