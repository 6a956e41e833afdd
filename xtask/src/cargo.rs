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

/// Only the agent (`bgp-ctl`, with its XDP program): what the dev fabric runs. The
/// benches' binaries (with their own BPF generator) are not needed for it.
pub fn build_agent() -> Result<()> {
    step("build", &["build", "-p", "bgp-ctl", "--bin", "bgp-ctl"])
}

/// The agent's release binary (`target/release/bgp-ctl`): what the benches measure and
/// the package ships. `name` is the step it is built for.
pub fn build_agent_release(name: &str) -> Result<()> {
    step(
        name,
        &[
            "build",
            "--release",
            "--package",
            "bgp-ctl",
            "--bin",
            "bgp-ctl",
        ],
    )
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
    // The packaging tests (tests/tests/dist.rs) inspect and install the .deb.
    crate::dist::dist()?;
    step("tests", &with_workspace(&["test"], &["--no-fail-fast"]))?;
    fuzz(FUZZ_SECONDS)?;
    println!("xtask test: rustfmt, clippy, every test and {FUZZ_SECONDS} s of fuzzing passed");
    Ok(())
}

/// Length of the fuzz run in `cargo xtask test`.
const FUZZ_SECONDS: u32 = 45;

/// Fuzzes `Message::decode` and `frame_length` (bgp-wire/fuzz) for `seconds`, from the
/// committed corpus; new inputs go to a temporary directory, so the tree stays clean.
/// cargo-fuzz needs nightly features: the eBPF toolchain provides them (Debian's rustc
/// with RUSTC_BOOTSTRAP=1). `-s none`: Debian's rustc ships no sanitizer runtime, and
/// the codec is safe Rust; libFuzzer still finds panics, and the target's assertions.
pub fn fuzz(seconds: u32) -> Result<()> {
    let fuzz_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../bgp-wire/fuzz");
    let scratch = std::env::temp_dir().join(format!("bgp-wire-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).context("creating the fuzz scratch corpus")?;
    let toolchain = crate::prereq::toolchain();
    let time = format!("-max_total_time={seconds}");
    let args = [
        "run",
        &toolchain,
        "cargo",
        "fuzz",
        "run",
        "--fuzz-dir",
        fuzz_dir,
        "-s",
        "none",
        "decode",
    ];
    println!(
        "==> fuzz: rustup {} {} {fuzz_dir}/corpus/decode -- {time}",
        args.join(" "),
        scratch.display()
    );
    let status = Command::new("rustup")
        .args(args)
        .arg(&scratch)
        .arg(format!("{fuzz_dir}/corpus/decode"))
        .args(["--", &time])
        .env("RUSTC_BOOTSTRAP", "1")
        .status()
        .context("running cargo fuzz");
    let _ = std::fs::remove_dir_all(&scratch);
    if !status?.success() {
        bail!("fuzzing bgp-wire failed (a crash input is in {fuzz_dir}/artifacts/decode)");
    }
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

/// Runs `cargo ARGS` as the step `name` of a command, failing if cargo fails.
pub fn step(name: &str, args: &[&str]) -> Result<()> {
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
