//! Host routes for the scale runs: N /32s from [`HOST_BASE`], into the kernel's FIB
//! (`ip -batch`) and into this dataplane's maps (`Fib::add_route`), timed.

use std::{
    io::Write,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use ipnet::{IpNet, Ipv4Net};
use lab::Netns;

use crate::router::Router;

/// First host route: 100.64.0.0/10 holds 4M addresses, room for every scale step.
pub const HOST_BASE: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);

/// The `i`-th host address.
pub fn host(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(HOST_BASE) + i)
}

/// Adds host routes `from..to` to this dataplane's table, all through the next hop to
/// the sink, one `Fib::add_route` each (aya 0.14 has no batched map update). Returns
/// the time it took.
pub fn load_ours(router: &mut Router<'_>, from: u32, to: u32) -> Result<Duration> {
    router.with_fib(|fib, nh| -> Result<Duration> {
        let start = Instant::now();
        for i in from..to {
            let prefix = IpNet::V4(Ipv4Net::new(host(i), 32)?);
            fib.add_route(prefix, &[nh])
                .with_context(|| format!("adding {prefix}"))?;
        }
        Ok(start.elapsed())
    })?
}

/// Adds host routes `from..to` via `via` to the kernel FIB of `ns` with one
/// `ip -batch`. Returns the time it took.
pub fn load_kernel(ns: &Netns, via: &str, from: u32, to: u32) -> Result<Duration> {
    let path = std::env::temp_dir().join(format!("{}-routes", lab::unique_name()));
    let result = (|| -> Result<Duration> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for i in from..to {
            writeln!(file, "route add {}/32 via {via}", host(i))?;
        }
        file.flush()?;
        drop(file);
        let start = Instant::now();
        ns.ip(&["-batch", path.to_str().context("temp path")?])?;
        Ok(start.elapsed())
    })();
    let _ = std::fs::remove_file(&path);
    result
}
