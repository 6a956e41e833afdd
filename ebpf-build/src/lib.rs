//! What the build scripts of bgp-ctl (`xdp-fwd`) and bgp-ctl-bench (`xdp-pktgen`) do to
//! build their eBPF object with aya-build, so that the crate embeds it.

use std::{env, path::Path, process::Command};

/// Builds the eBPF crate `name` in `root_dir` for `bpfel-unknown-none` with the rustup
/// toolchain named by `XDP_FWD_TOOLCHAIN` (default `nightly`). aya-build watches the
/// program's own crate; `also_watch` are the crates of shared layouts it uses. Call from
/// a build script's `main` (it sets environment variables: single-threaded).
///
/// An incomplete eBPF toolchain fails the build with one clear line (`cargo::error`),
/// not a page of nested cargo output; `cargo xtask build` checks the same before cargo
/// runs.
pub fn build(name: &str, root_dir: &Path, also_watch: &[&Path]) -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=XDP_FWD_TOOLCHAIN");
    let toolchain = env::var("XDP_FWD_TOOLCHAIN").unwrap_or_else(|_| "nightly".to_owned());
    for dep in also_watch {
        println!("cargo:rerun-if-changed={}", dep.display());
    }

    if Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_err()
    {
        return missing("bpf-linker is not installed");
    }
    if Command::new("rustup")
        .args(["run", &toolchain, "rustc", "--version"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        return missing(&format!(
            "rust toolchain `{toolchain}` (XDP_FWD_TOOLCHAIN) is not installed"
        ));
    }

    // -Z build-std=core on a stable compiler; set here so only the eBPF build sees it.
    if env::var_os("RUSTC_BOOTSTRAP").is_none() {
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { env::set_var("RUSTC_BOOTSTRAP", "1") };
    }
    // The inner cargo's progress lines would come out as a page of `warning:` lines;
    // compiler diagnostics still do, through its JSON messages.
    if env::var_os("CARGO_TERM_QUIET").is_none() {
        // SAFETY: as above.
        unsafe { env::set_var("CARGO_TERM_QUIET", "true") };
    }
    let root_dir = root_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", root_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name,
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
}

/// `cargo::error` fails the build with just this line once the script returns.
fn missing(what: &str) -> anyhow::Result<()> {
    println!("cargo::error={what}: run `cargo xtask setup`");
    Ok(())
}
