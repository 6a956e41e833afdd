//! `cargo xtask bench agent`: the node agent's figures, measured in namespaces with
//! scripted BGP peers (`lab::scripted_peer`, pre-encoded UPDATEs) and read from the
//! agent's pinned XDP maps, as the dataplane sees them.
//!
//! 1. UPDATE -> XDP map: with 100,000 routes installed, one new /32 at a time is sent;
//!    the time from just before the write to the session until the route's host-table
//!    entry is in the map (polled from this process every ~20 us with a map lookup).
//!    It includes the TCP path over a veth, the session's decoding, the speaker's RIB
//!    and policy, the hand-over to the FIB programmer's thread and its map writes.
//! 2. Peer down -> dataplane: the 100,000 routes are ECMP over two peers; one peer's
//!    TCP connection is closed (FIN, as when its process dies); the time from the close
//!    until the routes' group, read from the maps, no longer holds that peer's next hop
//!    (polled every ~20 us). Five runs, the peer back with its routes before each; the
//!    median is reported.
//! 3. 1,000,000 IPv4 /32s from one peer, from Established (the peer has read our
//!    KEEPALIVE) until all are in the XDP maps (the last one sent is in the host table,
//!    polled every 10 ms; the count of the table is checked afterwards), beside BIRD 2
//!    getting the same feed into its namespace's kernel FIB through its kernel protocol
//!    (the main table's prefix count from /proc/net/fib_triestat, polled every 100 ms).
//!    Memory: VmRSS of each daemon 1 s after its load completed.
//!
//! The last line is machine-readable:
//! `RESULT agent update_to_map_p50_ms=.. update_to_map_p99_ms=.. peer_down_to_dataplane_ms=..
//! routes=N fib_1m_s=.. bird_fib_1m_s=.. rss_1m_mb=N bird_rss_1m_mb=N`.

mod load;
mod maps;
mod updates;

use anyhow::{Context, Result, bail};

/// Options: `--routes N` (the big load, default 1,000,000), `--base N` (routes installed
/// during the latency runs, default 100,000), `--samples N` (UPDATEs timed, default
/// 200).
struct Options {
    routes: u32,
    base: u32,
    samples: usize,
}

fn options() -> Result<Options> {
    let mut o = Options {
        routes: 1_000_000,
        base: 100_000,
        samples: 200,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || -> Result<u64> {
            args.next()
                .with_context(|| format!("{a} needs a value"))?
                .parse()
                .with_context(|| format!("{a} needs a number"))
        };
        match a.as_str() {
            "--routes" => o.routes = u32::try_from(value()?)?,
            "--base" => o.base = u32::try_from(value()?)?,
            "--samples" => o.samples = usize::try_from(value()?)?,
            // cargo bench passes --bench to harness-less benchmarks.
            "--bench" => {}
            other => bail!("unknown option {other} (--routes, --base, --samples)"),
        }
    }
    if o.samples == 0 || o.base == 0 || o.routes == 0 {
        bail!("--routes, --base and --samples must be positive");
    }
    Ok(o)
}

fn main() -> Result<()> {
    let o = options()?;
    lab::require_root()?;
    lab::require_bpffs()?;
    lab::sweep_stale();
    println!(
        "agent bench: {} routes installed during the latency runs, {} UPDATEs timed, {} routes for the load",
        o.base, o.samples, o.routes
    );
    let lat = updates::run(o.base, o.samples)?;
    let ours = load::ours(o.routes)?;
    let bird = load::bird(o.routes)?;
    println!();
    println!(
        "UPDATE -> XDP map ({} samples, {} routes installed): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        o.samples, o.base, lat.p50_ms, lat.p99_ms, lat.max_ms
    );
    println!(
        "peer down -> its next hop out of the group of {} ECMP routes: {:.2} ms after the TCP close (median)",
        o.base, lat.peer_down_ms
    );
    println!(
        "{} routes, Established -> all in the FIB: ours (XDP maps) {:.2} s, RSS {} MB (peak {} MB); \
         BIRD 2 (kernel FIB) {:.2} s, RSS {} MB (peak {} MB)",
        o.routes,
        ours.seconds,
        ours.rss_mb,
        ours.peak_rss_mb,
        bird.seconds,
        bird.rss_mb,
        bird.peak_rss_mb
    );
    println!(
        "RESULT agent update_to_map_p50_ms={:.2} update_to_map_p99_ms={:.2} peer_down_to_dataplane_ms={:.2} \
         routes={} fib_1m_s={:.2} bird_fib_1m_s={:.2} rss_1m_mb={} bird_rss_1m_mb={}",
        lat.p50_ms,
        lat.p99_ms,
        lat.peer_down_ms,
        ours.routes,
        ours.seconds,
        bird.seconds,
        ours.rss_mb,
        bird.rss_mb
    );
    Ok(())
}
