//! Builds the benchmark's `xdp-pktgen` eBPF object (generator and sink) with aya-build,
//! the same way bgp-ctl's build script builds `xdp-fwd`. Only the benchmark embeds it.

use std::{env, path::Path, process::Command};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=XDP_FWD_TOOLCHAIN");
    let toolchain = env::var("XDP_FWD_TOOLCHAIN").unwrap_or_else(|_| "nightly".to_owned());
    let manifest_dir = env::var("CARGO_MANIFEST_DIR")?;
    let bench = Path::new(&manifest_dir);
    let ebpf_dir = bench.join("xdp-pktgen");
    // aya-build watches the program's own crate; the shared layouts are part of it too.
    for dep in [
        bench.join("xdp-pktgen-common"),
        bench.join("../xdp-fwd-common"),
    ] {
        println!("cargo:rerun-if-changed={}", dep.display());
    }

    // One clear line instead of a page of nested cargo output (as in bgp-ctl/build.rs).
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
    if env::var_os("CARGO_TERM_QUIET").is_none() {
        // SAFETY: as above.
        unsafe { env::set_var("CARGO_TERM_QUIET", "true") };
    }
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "xdp-pktgen",
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
