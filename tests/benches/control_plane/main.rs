//! Control-plane benchmark (issue 4): one fast feeder announces N IPv4 /32 routes over
//! eBGP to each receiver in turn (this project's speaker, BIRD 2, FRR's bgpd), in fresh
//! namespaces every run. Printed per receiver: seconds from Established until all N
//! are in its Loc-RIB, routes per second, peak RSS and bytes per route, and the time
//! until its Loc-RIB is empty after the feeder's session died. The last lines are
//! `RESULT control-plane ...`, one per N, the largest N last.
//!
//! Run with `cargo xtask bench control-plane` (root); `--only bird,frr` leaves the
//! speaker out while it is being written (then no RESULT line is printed).

mod answers;
mod bird_receiver;
mod frr_receiver;
mod measure;
mod ours_receiver;
mod receiver;
mod report;

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Parser;
use lab::feeder::{Feed, FeedOrder, FeedSpec, sink_time};

use crate::{
    measure::{FEEDER_ADDR, FEEDER_ASN, Poll, Run},
    receiver::Kind,
    report::Summary,
};

/// Control-plane benchmark: routes received per second, memory per route and
/// withdrawal time of ours, BIRD 2 and FRR, fed by the same feeder.
#[derive(Parser)]
struct Args {
    /// Receivers to measure, comma separated (ours, bird, frr). The RESULT line needs
    /// all three.
    #[arg(long, value_delimiter = ',', default_value = "ours,bird,frr")]
    only: Vec<Kind>,
    /// Feed sizes, comma separated, run in increasing order.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    routes: Vec<u32>,
    /// Runs per receiver and size (interleaved across receivers); medians are reported.
    /// Five, because runs on a shared 2-CPU machine scatter.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Pause between two queries of a receiver, milliseconds.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// Attribute sets the routes are spread over.
    #[arg(long, default_value_t = 5)]
    attribute_sets: usize,
    /// The order the routes are sent in: `ascending` (address by address, as FRR sends
    /// its table) or `scattered` (no two consecutive routes are neighbours).
    #[arg(long, default_value = "ascending", value_parser = ["ascending", "scattered"])]
    order: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("control-plane bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    lab::require_root()?;
    lab::sweep_stale();
    let mut kinds = args.only.clone();
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() || args.routes.is_empty() || args.runs == 0 {
        bail!("nothing to measure: give receivers, feed sizes and at least one run");
    }
    if kinds.contains(&Kind::Ours) {
        ours_receiver::preflight()?;
    }
    let mut sizes = args.routes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let poll = Poll {
        interval: Duration::from_millis(args.poll_ms),
        timeout_base: Duration::from_secs(60),
        timeout_per_route: Duration::from_micros(100),
    };
    print_header(&kinds, &args)?;

    let started = Instant::now();
    let mut results = Vec::new();
    for &n in &sizes {
        let feed = Arc::new(encode_feed(n, args.attribute_sets, order(&args))?);
        let mut runs: BTreeMap<Kind, Vec<Run>> = BTreeMap::new();
        for run_no in 1..=args.runs {
            for &kind in &kinds {
                let r = measure::run_once(kind, &feed, &poll)
                    .with_context(|| format!("{kind} with {n} routes, run {run_no}"))?;
                let load = load_average();
                println!(
                    "{}",
                    report::run_line(kind, run_no, args.runs, n, &r, &load)
                );
                runs.entry(kind).or_default().push(r);
            }
        }
        let summaries: BTreeMap<Kind, Summary> =
            runs.iter().map(|(k, r)| (*k, Summary::of(r))).collect();
        print!("{}", report::table(n, &summaries));
        if let (Some(ours), Some(bird)) = (summaries.get(&Kind::Ours), summaries.get(&Kind::Bird)) {
            println!(
                "  ours/bird receive time {:.2}; bytes per route ours {} vs bird {}",
                ours.receive_s / bird.receive_s,
                ours.bytes_per_route(n),
                bird.bytes_per_route(n)
            );
        }
        println!();
        results.push(report::result_line(n, &summaries));
    }
    println!(
        "total {:.0} s; load average at the end: {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    if results.iter().any(Option::is_none) {
        println!(
            "no RESULT line: it needs ours, bird and frr measured in the same run (--only {})",
            kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
        );
    }
    for line in results.into_iter().flatten() {
        println!("{line}");
    }
    Ok(())
}

fn print_header(kinds: &[Kind], args: &Args) -> Result<()> {
    println!(
        "control-plane benchmark: N IPv4 /32 routes over eBGP, one feeder, fresh namespaces per run"
    );
    println!(
        "  machine: {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    for kind in kinds {
        let version = match kind {
            Kind::Ours => ours_receiver::binary().display().to_string(),
            Kind::Bird => first_line("bird", &["--version"]),
            Kind::Frr => first_line("/usr/lib/frr/bgpd", &["--version"]),
        };
        println!("  {kind}: {version}");
    }
    println!(
        "  memory counted: ours = the daemon process; bird = the bird process (no kernel \
         protocol); frr = bgpd, run without zebra (-Z, no FIB)"
    );
    println!(
        "  Loc-RIB count: ours = `bgp-ctl show neighbors --json` accepted; bird = the \
         channel's imported count, then `show route table master4 count` = 0 for the \
         withdrawal; frr = min(pfxRcd, table version growth), then ribCount = 0 for the \
         withdrawal"
    );
    println!(
        "  times are upper bounds: taken when the query that saw the end returned ({} ms \
         between queries); `-x` = how much earlier the end may have come (back to the start \
         of the previous query); {} runs, medians",
        args.poll_ms, args.runs
    );
    Ok(())
}

/// The feed order `--order` names.
fn order(args: &Args) -> FeedOrder {
    if args.order == "scattered" {
        FeedOrder::Scattered
    } else {
        FeedOrder::Ascending
    }
}

/// Encodes the feed of `n` routes and prints how fast the feeder can send it.
fn encode_feed(n: u32, attribute_sets: usize, order: FeedOrder) -> Result<Feed> {
    let spec = FeedSpec {
        routes: n,
        first: Ipv4Addr::new(100, 64, 0, 0),
        order,
        asn: FEEDER_ASN,
        next_hop: FEEDER_ADDR,
        attribute_sets,
    };
    let start = Instant::now();
    let feed = Feed::encode(&spec)?;
    let encoded = start.elapsed();
    let sink = sink_time(&feed)?;
    println!(
        "feed: {} routes from {} ({:?} order) in {} UPDATEs ({:.1} MB, {} attribute sets), \
         encoded in {:.3} s; written into a loopback sink in {:.1} ms = {} routes/s",
        report::thousands(u64::from(n)),
        spec.first,
        spec.order,
        report::thousands(feed.updates() as u64),
        feed.len_bytes() as f64 / 1e6,
        attribute_sets,
        encoded.as_secs_f64(),
        sink.as_secs_f64() * 1e3,
        report::thousands(report::rate(n, sink.as_secs_f64())),
    );
    Ok(feed)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn first_line(program: &str, args: &[&str]) -> String {
    match lab::output(program, args) {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            text.lines().next().unwrap_or_default().trim().to_owned()
        }
        Err(e) => format!("({e:#})"),
    }
}
