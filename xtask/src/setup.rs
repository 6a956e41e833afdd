//! `cargo xtask setup`: installs what `prereq` finds missing, idempotently.

use std::{process::Command, time::Instant};

use anyhow::{Context, Result, bail};

use crate::prereq::{
    self, BPF_LINKER_VERSION, CARGO_DEB_VERSION, CARGO_FUZZ_VERSION, DEBIAN_TOOLCHAIN, Missing,
    Need,
};

/// Installs everything missing; prints that all is present when nothing is.
pub fn setup() -> Result<()> {
    setup_for(Need::Bench)
}

/// Installs what `need` lacks.
pub fn setup_for(need: Need) -> Result<()> {
    let start = Instant::now();
    let missing = prereq::missing(need);
    if missing.is_empty() {
        println!(
            "setup: everything is present (packages, toolchain `{}`, bpf-linker, bpffs, cargo-fuzz, cargo-deb, kubernetes-validate) [{:.1} s]",
            prereq::toolchain(),
            start.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("{} (setup needs root)", prereq::one_line(&missing));
    }
    for m in &missing {
        println!("setup: installing {m}");
        match m {
            Missing::Packages(p) => install_packages(p)?,
            Missing::Toolchain(tc) => install_toolchain(tc)?,
            Missing::BpfLinker => install_bpf_linker()?,
            Missing::Bpffs => run("mount", &["-t", "bpf", "bpf", "/sys/fs/bpf"])?,
            Missing::CargoDeb => run(
                "cargo",
                &[
                    "install",
                    &format!("cargo-deb@{CARGO_DEB_VERSION}"),
                    "--locked",
                ],
            )?,
            Missing::KubernetesValidate => install_kubernetes_validate()?,
            Missing::PeerServices(s) => {
                let mut args = vec!["disable", "--now"];
                args.extend(s.iter().map(String::as_str));
                run("systemctl", &args)?;
            }
            // Builds with the stable toolchain; running it needs the nightly features
            // of the eBPF toolchain (RUSTC_BOOTSTRAP=1 with Debian's rustc).
            Missing::CargoFuzz => run(
                "cargo",
                &[
                    "install",
                    &format!("cargo-fuzz@{CARGO_FUZZ_VERSION}"),
                    "--locked",
                ],
            )?,
        }
    }
    let still = prereq::missing(need);
    if !still.is_empty() {
        bail!("setup finished but {}", prereq::one_line(&still));
    }
    println!("setup: done [{:.1} s]", start.elapsed().as_secs_f64());
    Ok(())
}

fn install_packages(pkgs: &[String]) -> Result<()> {
    run("apt-get", &["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(pkgs.iter().map(String::as_str));
    let status = Command::new("apt-get")
        .args(&args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("apt-get install {} failed ({status})", pkgs.join(" "));
    }
    // Debian enables the peers' system services; the tests run their own instances in
    // namespaces, so nothing may hold port 179 in the root namespace.
    for service in prereq::PEER_SERVICES {
        let _ = Command::new("systemctl")
            .args(["disable", "--now", *service])
            .output();
    }
    Ok(())
}

fn install_toolchain(tc: &str) -> Result<()> {
    if tc == DEBIAN_TOOLCHAIN {
        // Debian's rustc-web is at /usr; linking is local, no download.
        run("rustup", &["toolchain", "link", DEBIAN_TOOLCHAIN, "/usr"])
    } else {
        // The upstream recipe, for machines that can download toolchains.
        run(
            "rustup",
            &[
                "toolchain",
                "install",
                tc,
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ],
        )
    }
}

fn install_bpf_linker() -> Result<()> {
    // bpf-linker links against the LLVM of the rustc that emits the bitcode: Debian's 22.
    let path = format!(
        "/usr/lib/llvm-22/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    let status = Command::new("cargo")
        .args([
            "install",
            &format!("bpf-linker@{BPF_LINKER_VERSION}"),
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("PATH", path)
        .status()
        .context("running cargo install")?;
    if !status.success() {
        bail!("cargo install bpf-linker failed ({status})");
    }
    Ok(())
}

/// kubernetes-validate and the Kubernetes schemas it bundles, in a venv of their own.
fn install_kubernetes_validate() -> Result<()> {
    let venv = lab::dist::TOOLS_VENV;
    run("python3", &["-m", "venv", venv])?;
    run(
        &format!("{venv}/bin/pip"),
        &[
            "install",
            "--quiet",
            &format!(
                "kubernetes-validate=={}",
                lab::dist::KUBERNETES_VALIDATE_VERSION
            ),
        ],
    )
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
