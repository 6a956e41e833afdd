//! The cargo invocations behind `build` and `test`.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// Builds every userspace binary (and, through bgp-ctl's build script, the eBPF object).
pub fn build(release: bool) -> Result<()> {
    let mut args = vec!["build", "--workspace", "--exclude", "xdp-fwd", "--bins"];
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
        &[
            "clippy",
            "--workspace",
            "--exclude",
            "xdp-fwd",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // Integration tests run the bgp-ctl binary itself (e.g. to SIGKILL and restart it).
    step(
        "binaries",
        &["build", "--workspace", "--exclude", "xdp-fwd", "--bins"],
    )?;
    // The packaging tests (tests/tests/dist.rs) inspect and install the .deb.
    crate::dist::dist()?;
    step(
        "tests",
        &[
            "test",
            "--workspace",
            "--exclude",
            "xdp-fwd",
            "--no-fail-fast",
        ],
    )?;
    println!("xtask test: rustfmt, clippy and every test passed");
    Ok(())
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
