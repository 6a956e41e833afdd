//! The cargo invocations behind `build` and `test`.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// Builds every userspace binary (and, through bgp-ctl's build script, the eBPF object).
pub fn build(release: bool) -> Result<()> {
    let mut args = vec!["build", "--workspace"];
    args.extend(EXCLUDE_EBPF);
    args.push("--bins");
    if release {
        args.push("--release");
    }
    step("build", &args)
}

/// The whole test suite, in the order that fails fastest.
pub fn test() -> Result<()> {
    step("rustfmt", &["fmt", "--all", "--check"])?;
    step(
        "clippy",
        &with_workspace(&["clippy"], &["--all-targets", "--", "-D", "warnings"]),
    )?;
    // Integration tests run the bgp-ctl binary itself (e.g. to SIGKILL and restart it).
    step("binaries", &with_workspace(&["build"], &["--bins"]))?;
    step("tests", &with_workspace(&["test"], &["--no-fail-fast"]))?;
    println!("xtask test: rustfmt, clippy and every test passed");
    Ok(())
}

/// Builds in release mode and runs the benchmark `name` of the bench package.
pub fn bench(name: &str) -> Result<()> {
    step(
        &format!("bench {name}"),
        &["bench", "--package", "bgp-ctl-bench", "--bench", name],
    )
}

/// The eBPF crates only build for the BPF target (their users' build scripts build them).
const EXCLUDE_EBPF: [&str; 4] = ["--exclude", "xdp-fwd", "--exclude", "xdp-pktgen"];

/// `cargo <head> --workspace <exclusions> <tail>`.
fn with_workspace<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    let mut args = head.to_vec();
    args.push("--workspace");
    args.extend(EXCLUDE_EBPF);
    args.extend_from_slice(tail);
    args
}

fn step(name: &str, args: &[&str]) -> Result<()> {
    println!("==> {name}: cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(args)
        .status()
        .with_context(|| format!("running cargo {}", args[0]))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}
